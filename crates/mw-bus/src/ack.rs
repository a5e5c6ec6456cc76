//! End-to-end acknowledgements (the idea of Vector's batch notifiers).
//!
//! A source that needs to know whether its data is durable publishes with
//! [`crate::Publisher::send_with_ack`] and awaits the returned [`AckReceiver`]. The fan-out gives
//! every **durable** sink that receives the batch an [`AckShare`] inside its [`crate::Delivery`];
//! non-durable sinks get none, so they never hold an acknowledgement back. The outcome is known
//! when the last share is settled:
//! * [`AckOutcome::Committed`] — every durable sink that received the batch committed it (also
//!   when there are none: nothing was asked to keep it, and nothing refused);
//! * [`AckOutcome::Dropped`] — a durable sink's overload policy dropped it (and no sink failed);
//! * [`AckOutcome::Failed`] — a durable sink failed it, stopped before committing it, or let its
//!   share go without settling it.
//!
//! Pending acknowledgements are bounded: each holds a permit of the bus's `max_pending_acks`
//! semaphore from `send_with_ack` until its outcome is known, so a source waits for a slot
//! rather than piling up promises.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, oneshot};

/// How a batch published with an acknowledgement ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Every durable sink that received the batch committed it (`sinks` of them; 0 when no
    /// durable sink wanted it).
    Committed { sinks: usize },
    /// A durable sink's overload policy dropped it.
    Dropped { sink: String, reason: String },
    /// A durable sink failed it.
    Failed { sink: String, reason: String },
}

impl AckOutcome {
    pub fn is_committed(&self) -> bool {
        matches!(self, AckOutcome::Committed { .. })
    }

    fn rank(&self) -> u8 {
        match self {
            AckOutcome::Committed { .. } => 0,
            AckOutcome::Dropped { .. } => 1,
            AckOutcome::Failed { .. } => 2,
        }
    }
}

#[derive(Default)]
struct State {
    committed: usize,
    /// The worst non-committed outcome so far (the first of equal rank wins).
    worst: Option<AckOutcome>,
}

/// Shared by the fan-out's hold and every share; the outcome is sent when the last one goes.
pub(crate) struct AckInner {
    state: Mutex<State>,
    tx: Option<oneshot::Sender<AckOutcome>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl AckInner {
    pub(crate) fn new(permit: Option<OwnedSemaphorePermit>) -> (Arc<AckInner>, AckReceiver) {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::new(AckInner {
            state: Mutex::new(State::default()),
            tx: Some(tx),
            _permit: permit,
        });
        (inner, AckReceiver { rx })
    }

    fn record(&self, outcome: AckOutcome) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let AckOutcome::Committed { .. } = outcome {
            s.committed += 1;
        } else if s.worst.as_ref().is_none_or(|w| w.rank() < outcome.rank()) {
            s.worst = Some(outcome);
        }
    }

    /// A share of this acknowledgement for the durable sink `sink`.
    pub(crate) fn share(self: &Arc<Self>, sink: &Arc<str>) -> AckShare {
        AckShare {
            inner: Some(self.clone()),
            sink: sink.clone(),
        }
    }
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let s = std::mem::take(self.state.get_mut().unwrap_or_else(|e| e.into_inner()));
        let outcome = s
            .worst
            .unwrap_or(AckOutcome::Committed { sinks: s.committed });
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(outcome); // the source may have stopped waiting
        }
    }
}

/// One durable sink's part of an acknowledgement. Settle it with [`AckShare::commit`] once the
/// batch is durable, or [`AckShare::fail`]. Dropping it unsettled counts as a failure.
pub struct AckShare {
    inner: Option<Arc<AckInner>>,
    sink: Arc<str>,
}

impl AckShare {
    pub fn commit(mut self) {
        if let Some(i) = self.inner.take() {
            i.record(AckOutcome::Committed { sinks: 1 });
        }
    }

    pub fn fail(mut self, reason: impl Into<String>) {
        self.settle_failed(reason.into());
    }

    /// Settles as dropped by the sink's overload policy.
    pub(crate) fn dropped(mut self, reason: &str) {
        if let Some(i) = self.inner.take() {
            i.record(AckOutcome::Dropped {
                sink: self.sink.to_string(),
                reason: reason.to_owned(),
            });
        }
    }

    fn settle_failed(&mut self, reason: String) {
        if let Some(i) = self.inner.take() {
            i.record(AckOutcome::Failed {
                sink: self.sink.to_string(),
                reason,
            });
        }
    }
}

impl Drop for AckShare {
    fn drop(&mut self) {
        if self.inner.is_some() {
            self.settle_failed("the sink let the batch go without committing it".to_owned());
        }
    }
}

/// The source's end of an acknowledgement.
pub struct AckReceiver {
    rx: oneshot::Receiver<AckOutcome>,
}

impl AckReceiver {
    /// Waits for the outcome.
    pub async fn outcome(self) -> AckOutcome {
        self.rx.await.unwrap_or_else(|_| AckOutcome::Failed {
            sink: "bus".to_owned(),
            reason: "the acknowledgement was lost".to_owned(),
        })
    }

    /// The outcome if it is known already.
    pub fn try_outcome(&mut self) -> Option<AckOutcome> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(n: &str) -> Arc<str> {
        Arc::from(n)
    }

    #[tokio::test]
    async fn no_durable_sink_commits_with_zero() {
        let (inner, rx) = AckInner::new(None);
        drop(inner);
        assert_eq!(rx.outcome().await, AckOutcome::Committed { sinks: 0 });
    }

    #[tokio::test]
    async fn waits_for_every_share_and_counts_commits() {
        let (inner, mut rx) = AckInner::new(None);
        let a = inner.share(&sink("a"));
        let b = inner.share(&sink("b"));
        drop(inner);
        a.commit();
        assert_eq!(rx.try_outcome(), None, "b has not committed yet");
        b.commit();
        assert_eq!(rx.outcome().await, AckOutcome::Committed { sinks: 2 });
    }

    #[tokio::test]
    async fn failure_beats_drop_beats_commit() {
        let (inner, rx) = AckInner::new(None);
        let (a, b, c) = (
            inner.share(&sink("a")),
            inner.share(&sink("b")),
            inner.share(&sink("c")),
        );
        drop(inner);
        a.dropped("queue full");
        b.fail("disk full");
        c.commit();
        assert_eq!(
            rx.outcome().await,
            AckOutcome::Failed {
                sink: "b".into(),
                reason: "disk full".into()
            }
        );
    }

    #[tokio::test]
    async fn an_unsettled_share_is_a_failure() {
        let (inner, rx) = AckInner::new(None);
        let a = inner.share(&sink("hist"));
        drop(inner);
        drop(a);
        let out = rx.outcome().await;
        assert!(
            matches!(&out, AckOutcome::Failed { sink, .. } if sink == "hist"),
            "{out:?}"
        );
    }
}
