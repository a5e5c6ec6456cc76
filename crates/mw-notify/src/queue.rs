//! A target's bounded queue of notifications: critical ones first, then the others in order.
//! When full, the oldest non-critical notification is dropped (the oldest critical one only when
//! every queued notification is critical), and the caller counts it.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::config::Priority;
use crate::policy::Notification;

struct State {
    critical: VecDeque<Notification>,
    other: VecDeque<Notification>,
    closed: bool,
}

pub struct NoteQueue {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
}

impl NoteQueue {
    pub fn new(capacity: usize) -> NoteQueue {
        NoteQueue {
            state: Mutex::new(State {
                critical: VecDeque::new(),
                other: VecDeque::new(),
                closed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `n`; returns the notification dropped to make room, if any.
    pub fn push(&self, n: Notification) -> Option<Notification> {
        let mut s = self.lock();
        let dropped = if s.critical.len() + s.other.len() >= self.capacity {
            s.other.pop_front().or_else(|| {
                if n.rank == Priority::Critical {
                    s.critical.pop_front()
                } else {
                    None
                }
            })
        } else {
            None
        };
        // full of critical notifications and `n` is not: `n` is the one dropped
        if dropped.is_none() && s.critical.len() + s.other.len() >= self.capacity {
            return Some(n);
        }
        if n.rank == Priority::Critical {
            s.critical.push_back(n);
        } else {
            s.other.push_back(n);
        }
        drop(s);
        self.ready.notify_one();
        dropped
    }

    /// Puts `n` back at the front (a delivery that could not start).
    pub fn push_front(&self, n: Notification) {
        let mut s = self.lock();
        if n.rank == Priority::Critical {
            s.critical.push_front(n);
        } else {
            s.other.push_front(n);
        }
    }

    pub fn len(&self) -> usize {
        let s = self.lock();
        s.critical.len() + s.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No more pushes; [`NoteQueue::pop`] returns `None` once it is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// The next notification without waiting.
    pub fn try_pop(&self) -> Option<Notification> {
        let mut s = self.lock();
        s.critical.pop_front().or_else(|| s.other.pop_front())
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The next notification, critical first; `None` once closed and empty.
    pub async fn pop(&self) -> Option<Notification> {
        loop {
            let wait = self.ready.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            {
                let mut s = self.lock();
                if let Some(n) = s.critical.pop_front().or_else(|| s.other.pop_front()) {
                    return Some(n);
                }
                if s.closed {
                    return None;
                }
            }
            wait.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::NoteKind;

    fn note(id: &str, rank: Priority) -> Notification {
        Notification {
            kind: NoteKind::Alarm,
            id: id.to_owned(),
            alarm: None,
            message: String::new(),
            ts: String::new(),
            site: String::new(),
            host: String::new(),
            escalation: 0,
            escalation_name: None,
            suppressed: None,
            rank,
        }
    }

    #[test]
    fn critical_first_and_bounded() {
        let q = NoteQueue::new(3);
        assert!(q.push(note("a", Priority::Low)).is_none());
        assert!(q.push(note("b", Priority::High)).is_none());
        assert!(q.push(note("c", Priority::Critical)).is_none());
        // full: the oldest non-critical goes
        assert_eq!(q.push(note("d", Priority::Critical)).unwrap().id, "a");
        assert_eq!(q.push(note("e", Priority::Critical)).unwrap().id, "b");
        // full of critical: a non-critical newcomer is the one dropped
        assert_eq!(q.push(note("f", Priority::Low)).unwrap().id, "f");
        // a critical newcomer replaces the oldest critical
        assert_eq!(q.push(note("g", Priority::Critical)).unwrap().id, "c");
        let order: Vec<String> = std::iter::from_fn(|| q.try_pop()).map(|n| n.id).collect();
        assert_eq!(order, ["d", "e", "g"]);
        q.push(note("h", Priority::Low));
        q.push(note("i", Priority::Critical));
        assert_eq!(q.try_pop().unwrap().id, "i");
        assert_eq!(q.len(), 1);
    }
}
