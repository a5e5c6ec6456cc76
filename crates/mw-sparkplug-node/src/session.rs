//! What the edge node's and the host's connection tasks share: the clock in Sparkplug's unit,
//! the reconnection backoff, and the end of a session.

use std::time::{Duration, Instant};

use mw_bus::Shutdown;
use mw_mqtt::client::conn::{Client, Ev, Loop, poll_owned};

/// The first reconnection delay (doubling up to the connection's `backoff_max_ms`).
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// rumqttc's request channel.
pub(crate) const CHANNEL: usize = 1024;
/// How long a stop waits for its goodbye (NDEATH, offline STATE) and DISCONNECT to go out.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(mw_model::now_ns() / 1_000_000).unwrap_or(0)
}

/// A poll of the event loop, kept across `select!` iterations.
pub(crate) type Poll = std::pin::Pin<Box<dyn Future<Output = (Loop, Result<Ev, String>)> + Send>>;

pub(crate) fn poll(lp: Loop) -> Poll {
    Box::pin(poll_owned(lp, Duration::ZERO))
}

/// Sends DISCONNECT after what is queued and drives the connection until it is written (or
/// [`STOP_GRACE`] passed).
pub(crate) async fn finish(client: &Client, mut p: Poll) {
    let _ = client.try_disconnect();
    let deadline = Instant::now() + STOP_GRACE;
    while let Ok((lp, r)) = tokio::time::timeout_at(deadline.into(), &mut p).await {
        if r.is_err() {
            break;
        }
        p = poll(lp);
    }
}

/// Waits `*backoff` (false: the shutdown came first) and doubles it up to `max`.
pub(crate) async fn back_off(
    shutdown: &mut Shutdown,
    backoff: &mut Duration,
    max: Duration,
) -> bool {
    let waited = tokio::select! {
        _ = tokio::time::sleep(*backoff) => true,
        _ = shutdown.wait() => false,
    };
    *backoff = (*backoff * 2).min(max);
    waited
}
