//! Tag writes: the way back from a consumer (a Sparkplug host's NCMD/DCMD, an operator on the
//! HTTP API) to the source that owns a tag (a Modbus device's holding register).
//!
//! ```text
//! writer ──WriteRegistry::write(tag, value)──► owner's bounded queue ──► owner writes to its device
//!        ◄─────────────── Ok(()) / WriteError (refused, failed, busy, timeout) ───────────┘
//! ```
//! * A source that accepts writes registers its writable tags once, at build time, with
//!   [`WriteRegistry::register`], and gets a [`WriteReceiver`] (a queue of `capacity` requests).
//!   A tag has at most one owner; registering it twice is an error naming both owners.
//! * A writer calls [`WriteRegistry::write`]: the request is queued for the owner **without
//!   waiting** (a full queue answers [`WriteError::Busy`] at once — a writer is never held up by
//!   a slow device) and the answer is awaited for at most the writer's `timeout`. A request the
//!   owner never answers (it dropped it, it stopped) answers [`WriteError::Gone`].
//! * The owner validates the value (type, range, encoding: it knows its device) and answers each
//!   request exactly once with [`WriteRequest::reply`]: `Ok(())` only after the device confirmed
//!   the write. It does not publish the written value itself; its next reading does, so what the
//!   bus carries stays what the device reports.
//! * Dropping the [`WriteReceiver`] unregisters its tags.
//! * Nothing here audits: the writer knows who asked (a user, a Sparkplug host) and records it.
//!
//! Owner contract on disconnect and restart: a request that arrives while the device is
//! unreachable is answered [`WriteError::Failed`] with the reason (never queued for later: a
//! setpoint written minutes late is worse than a refusal the operator sees); after a restart
//! nothing is remembered.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mw_model::{TagPath, Value};
use tokio::sync::{mpsc, oneshot};

/// Why a write did not happen.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WriteError {
    /// No source accepts writes to this tag.
    #[error("tag {0} is not writable (no source accepts writes to it)")]
    NotWritable(String),
    /// The owner refused the value before trying (wrong type, out of range, …).
    #[error("{owner} refused the write to {tag}: {reason}")]
    Refused {
        owner: String,
        tag: String,
        reason: String,
    },
    /// The owner tried and the device did not take it (exception, disconnected, timeout).
    #[error("{owner} could not write {tag}: {reason}")]
    Failed {
        owner: String,
        tag: String,
        reason: String,
    },
    /// The owner's queue of writes is full; try again later.
    #[error("{owner} is busy with earlier writes (queue of {capacity} full); {tag} not written")]
    Busy {
        owner: String,
        tag: String,
        capacity: usize,
    },
    /// No answer within the writer's timeout. The write may still happen.
    #[error("{owner} did not answer the write to {tag} within {after:?}; it may still be applied")]
    Timeout {
        owner: String,
        tag: String,
        after: Duration,
    },
    /// The owner stopped before answering.
    #[error("{owner} stopped before answering the write to {tag}")]
    Gone { owner: String, tag: String },
}

impl WriteError {
    /// A short label for metrics (`not_writable`, `refused`, `failed`, `busy`, `timeout`, `gone`).
    pub fn kind(&self) -> &'static str {
        match self {
            WriteError::NotWritable(_) => "not_writable",
            WriteError::Refused { .. } => "refused",
            WriteError::Failed { .. } => "failed",
            WriteError::Busy { .. } => "busy",
            WriteError::Timeout { .. } => "timeout",
            WriteError::Gone { .. } => "gone",
        }
    }
}

/// A tag registered twice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tag {tag} is already writable through {owner}; {other} cannot own it too")]
pub struct AlreadyOwned {
    pub tag: String,
    pub owner: String,
    pub other: String,
}

/// One write for an owner to carry out.
pub struct WriteRequest {
    pub tag: TagPath,
    pub value: Value,
    /// Who asked, for the owner's log line (`sparkplug host spBv1.0/G/NCMD/N`, `http user ada`).
    pub origin: String,
    reply: oneshot::Sender<Result<(), WriteError>>,
    owner: Arc<str>,
}

impl WriteRequest {
    /// Answers the writer (once). A writer that gave up is not told.
    pub fn reply(self, result: Result<(), WriteError>) {
        let _ = self.reply.send(result);
    }

    /// Answers with [`WriteError::Refused`].
    pub fn refuse(self, reason: impl Into<String>) {
        let e = WriteError::Refused {
            owner: self.owner.to_string(),
            tag: self.tag.as_str().to_owned(),
            reason: reason.into(),
        };
        self.reply(Err(e));
    }

    /// Answers with [`WriteError::Failed`].
    pub fn fail(self, reason: impl Into<String>) {
        let e = WriteError::Failed {
            owner: self.owner.to_string(),
            tag: self.tag.as_str().to_owned(),
            reason: reason.into(),
        };
        self.reply(Err(e));
    }
}

impl fmt::Debug for WriteRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteRequest")
            .field("tag", &self.tag)
            .field("value", &self.value)
            .field("origin", &self.origin)
            .finish()
    }
}

/// The owner's side: requests for its tags, in arrival order.
pub struct WriteReceiver {
    rx: mpsc::Receiver<WriteRequest>,
    registry: WriteRegistry,
    owner: Arc<str>,
}

impl WriteReceiver {
    /// The next request; `None` once every writer handle is gone (never while the registry lives).
    pub async fn recv(&mut self) -> Option<WriteRequest> {
        self.rx.recv().await
    }

    /// A request if one is queued.
    pub fn try_recv(&mut self) -> Option<WriteRequest> {
        self.rx.try_recv().ok()
    }
}

impl Drop for WriteReceiver {
    fn drop(&mut self) {
        let mut map = self.registry.write_map();
        map.retain(|_, t| !Arc::ptr_eq(&t.owner, &self.owner));
    }
}

struct Target {
    owner: Arc<str>,
    tx: mpsc::Sender<WriteRequest>,
    capacity: usize,
}

/// Which tags are writable and where their writes go. One per process, shared by every
/// component through [`crate::Parts::writes`]; cheap to clone.
#[derive(Clone, Default)]
pub struct WriteRegistry {
    inner: Arc<RwLock<HashMap<String, Target>>>,
}

impl WriteRegistry {
    pub fn new() -> WriteRegistry {
        WriteRegistry::default()
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Target>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `owner` (`modbus/plc1`) as the one that writes `tags`, with a queue of
    /// `capacity` requests (at least 1). Registers nothing if any tag already has an owner.
    pub fn register(
        &self,
        owner: &str,
        tags: impl IntoIterator<Item = TagPath>,
        capacity: usize,
    ) -> Result<WriteReceiver, AlreadyOwned> {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let owner: Arc<str> = owner.into();
        let tags: Vec<TagPath> = tags.into_iter().collect();
        let mut map = self.write_map();
        if let Some((tag, t)) = tags
            .iter()
            .find_map(|t| map.get(t.as_str()).map(|o| (t, o)))
        {
            return Err(AlreadyOwned {
                tag: tag.as_str().to_owned(),
                owner: t.owner.to_string(),
                other: owner.to_string(),
            });
        }
        for t in tags {
            map.insert(
                t.as_str().to_owned(),
                Target {
                    owner: owner.clone(),
                    tx: tx.clone(),
                    capacity,
                },
            );
        }
        drop(map);
        Ok(WriteReceiver {
            rx,
            registry: self.clone(),
            owner,
        })
    }

    /// The owner of `tag`, if it is writable.
    pub fn owner(&self, tag: &str) -> Option<String> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(tag).map(|t| t.owner.to_string())
    }

    /// Every writable tag and its owner, sorted by tag.
    pub fn writable(&self) -> Vec<(String, String)> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map
            .iter()
            .map(|(k, t)| (k.clone(), t.owner.to_string()))
            .collect();
        v.sort();
        v
    }

    /// Asks the owner of `tag` to write `value` and waits at most `timeout` for its answer.
    /// Counted in `mw_tag_writes_total{owner,outcome}`.
    pub async fn write(
        &self,
        tag: &TagPath,
        value: Value,
        origin: impl Into<String>,
        timeout: Duration,
    ) -> Result<(), WriteError> {
        let (owner, result) = self.write_inner(tag, value, origin.into(), timeout).await;
        let outcome = match &result {
            Ok(()) => "ok",
            Err(e) => e.kind(),
        };
        metrics::counter!("mw_tag_writes_total", "owner" => owner, "outcome" => outcome)
            .increment(1);
        result
    }

    async fn write_inner(
        &self,
        tag: &TagPath,
        value: Value,
        origin: String,
        timeout: Duration,
    ) -> (String, Result<(), WriteError>) {
        let (tx, owner, capacity) = {
            let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
            match map.get(tag.as_str()) {
                Some(t) => (t.tx.clone(), t.owner.clone(), t.capacity),
                None => {
                    return (
                        String::new(),
                        Err(WriteError::NotWritable(tag.as_str().to_owned())),
                    );
                }
            }
        };
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            tag: tag.clone(),
            value,
            origin,
            reply,
            owner: owner.clone(),
        };
        let tag_s = tag.as_str().to_owned();
        let owner_s = owner.to_string();
        let gone = || WriteError::Gone {
            owner: owner_s.clone(),
            tag: tag_s.clone(),
        };
        match tx.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let e = WriteError::Busy {
                    owner: owner_s.clone(),
                    tag: tag_s,
                    capacity,
                };
                return (owner_s, Err(e));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return (owner_s.clone(), Err(gone())),
        }
        let result = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(WriteError::Timeout {
                owner: owner_s.clone(),
                tag: tag_s.clone(),
                after: timeout,
            }),
        };
        (owner_s, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> TagPath {
        TagPath::new(s).expect("valid tag")
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_write_reaches_its_owner_and_carries_the_answer_back() {
        let reg = WriteRegistry::new();
        let mut rx = reg.register("modbus/plc1", [tag("a/sp")], 4).unwrap();
        let owner = tokio::spawn(async move {
            let r = rx.recv().await.unwrap();
            assert_eq!(r.tag.as_str(), "a/sp");
            assert_eq!(r.value, Value::F64(42.0));
            assert_eq!(r.origin, "test");
            r.reply(Ok(()));
            let r = rx.recv().await.unwrap();
            r.refuse("above 100");
            rx
        });
        assert_eq!(
            reg.write(&tag("a/sp"), Value::F64(42.0), "test", T).await,
            Ok(())
        );
        let e = reg
            .write(&tag("a/sp"), Value::F64(420.0), "test", T)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "refused");
        assert_eq!(
            e.to_string(),
            "modbus/plc1 refused the write to a/sp: above 100"
        );
        drop(owner.await.unwrap());
    }

    #[tokio::test]
    async fn unknown_tags_full_queues_silent_and_stopped_owners_answer_at_once_or_in_time() {
        let reg = WriteRegistry::new();
        let e = reg.write(&tag("x/y"), Value::Bool(true), "t", T).await;
        assert_eq!(e, Err(WriteError::NotWritable("x/y".into())));

        let mut rx = reg.register("dev", [tag("a/b")], 1).unwrap();
        // Nobody answers: the first write times out, and it still occupies the one slot.
        let e = reg
            .write(&tag("a/b"), Value::I64(1), "t", Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "timeout", "{e}");
        let e = reg
            .write(&tag("a/b"), Value::I64(2), "t", T)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "busy", "{e}");
        // The owner drops a request without answering: the writer hears `gone`.
        drop(rx.try_recv().unwrap());
        let w = {
            let reg = reg.clone();
            tokio::spawn(async move { reg.write(&tag("a/b"), Value::I64(3), "t", T).await })
        };
        drop(rx.recv().await.unwrap());
        assert_eq!(w.await.unwrap().unwrap_err().kind(), "gone");
        // Dropping the receiver unregisters.
        drop(rx);
        assert!(reg.writable().is_empty());
        let e = reg
            .write(&tag("a/b"), Value::I64(4), "t", T)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "not_writable");
    }

    #[test]
    fn a_tag_has_one_owner() {
        let reg = WriteRegistry::new();
        let _a = reg
            .register("modbus/a", [tag("p/x"), tag("p/y")], 2)
            .unwrap();
        let err = reg
            .register("modbus/b", [tag("p/z"), tag("p/y")], 2)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "tag p/y is already writable through modbus/a; modbus/b cannot own it too"
        );
        assert_eq!(
            reg.writable(),
            vec![
                ("p/x".to_owned(), "modbus/a".to_owned()),
                ("p/y".to_owned(), "modbus/a".to_owned())
            ],
            "nothing of the refused registration stays"
        );
        assert_eq!(reg.owner("p/x").as_deref(), Some("modbus/a"));
    }
}
