//! One sink's bounded queue: a single producer (the fan-out) and a single consumer (the sink).
//! Written here rather than taken from tokio's `mpsc` because `drop_oldest` must evict from the
//! sending side and every evicted delivery must settle its acknowledgement as dropped.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::Delivery;

#[derive(Default)]
struct State {
    items: VecDeque<Delivery>,
    /// The fan-out is done: the consumer gets `None` once the queue is empty.
    sender_closed: bool,
    /// The sink stopped reading: pushes fail.
    receiver_closed: bool,
}

pub(crate) struct Queue {
    cap: usize,
    state: Mutex<State>,
    /// Signalled on push and on sender close (one consumer, so a stored permit suffices).
    readable: Notify,
    /// Signalled on pop and on receiver close (one producer).
    writable: Notify,
}

/// What a non-blocking push did.
pub(crate) enum Pushed {
    Queued,
    /// The queue was full; the new delivery is handed back (drop_newest).
    Full(Delivery),
    /// The oldest delivery was evicted to make room (drop_oldest).
    Evicted(Delivery),
    /// The sink stopped reading; the delivery is handed back.
    Closed(Delivery),
}

impl Queue {
    pub(crate) fn new(cap: usize) -> Queue {
        Queue {
            cap: cap.max(1),
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            writable: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Pushes without waiting; when full, either hands the new delivery back or evicts the
    /// oldest one.
    pub(crate) fn try_push(&self, d: Delivery, evict_oldest: bool) -> Pushed {
        let mut s = self.lock();
        if s.receiver_closed {
            return Pushed::Closed(d);
        }
        let out = if s.items.len() < self.cap {
            Pushed::Queued
        } else if evict_oldest {
            match s.items.pop_front() {
                Some(old) => Pushed::Evicted(old),
                None => Pushed::Queued,
            }
        } else {
            return Pushed::Full(d);
        };
        s.items.push_back(d);
        drop(s);
        self.readable.notify_one();
        out
    }

    /// Pushes, waiting while the queue is full. Hands the delivery back if the sink stopped.
    pub(crate) async fn push(&self, mut d: Delivery) -> Result<(), Delivery> {
        loop {
            match self.try_push(d, false) {
                Pushed::Queued | Pushed::Evicted(_) => return Ok(()),
                Pushed::Closed(back) => return Err(back),
                Pushed::Full(back) => {
                    d = back;
                    self.writable.notified().await;
                }
            }
        }
    }

    /// The next delivery; `None` once the sender closed and the queue is empty.
    pub(crate) async fn pop(&self) -> Option<Delivery> {
        loop {
            {
                let mut s = self.lock();
                if let Some(d) = s.items.pop_front() {
                    drop(s);
                    self.writable.notify_one();
                    return Some(d);
                }
                if s.sender_closed {
                    return None;
                }
            }
            self.readable.notified().await;
        }
    }

    pub(crate) fn close_sender(&self) {
        self.lock().sender_closed = true;
        self.readable.notify_one();
    }

    /// The sink stopped: refuse further pushes and hand back what is still queued.
    pub(crate) fn close_receiver(&self) -> Vec<Delivery> {
        let mut s = self.lock();
        s.receiver_closed = true;
        let left = s.items.drain(..).collect();
        drop(s);
        self.writable.notify_one();
        left
    }
}
