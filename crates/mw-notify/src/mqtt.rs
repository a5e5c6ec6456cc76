//! MQTT delivery: each notification's JSON published at QoS 1 to the target's topic, over
//! mw-mqtt's client connection (`mw_mqtt::client::conn`). A notification counts as sent when
//! its PUBACK arrives. While the broker is away, notifications wait in the target's queue
//! (and those already handed to the client are sent again after the reconnection).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mw_mqtt::client::conn::{self, Ev};

use crate::config::MqttConfig;
use crate::policy::Notification;
use crate::queue::NoteQueue;
use crate::sink::TargetMetrics;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// rumqttc's request channel.
const CHANNEL: usize = 256;
/// Publishes awaiting their PUBACK at most.
const MAX_INFLIGHT: u64 = 64;

/// The topic of `n` from `template`: `{area}`, `{priority}`, `{alarm}` replaced by the alarm's
/// (`_` when empty, wildcard characters replaced by `_`). A rate-limit summary has no alarm:
/// its area is `_`, priority `low`, alarm `suppressed`.
pub fn topic(template: &str, n: &Notification) -> String {
    let clean = |s: &str| {
        if s.is_empty() {
            "_".to_owned()
        } else {
            s.replace(['+', '#', '\0'], "_")
        }
    };
    let (area, priority, alarm) = match &n.alarm {
        Some(a) => (clean(&a.area), clean(&a.priority), clean(&a.alarm)),
        None => ("_".to_owned(), "low".to_owned(), "suppressed".to_owned()),
    };
    template
        .replace("{area}", &area)
        .replace("{priority}", &priority)
        .replace("{alarm}", &alarm)
}

/// A built MQTT target: its config and the secrets read at build.
pub struct MqttTarget {
    pub name: String,
    pub cfg: MqttConfig,
    pub password: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl MqttTarget {
    pub fn build(name: &str, cfg: &MqttConfig) -> Result<MqttTarget, String> {
        let (password, tls) =
            conn::load_secrets(&cfg.connection, &format!("notify target {name:?}"))?;
        Ok(MqttTarget {
            name: name.to_owned(),
            cfg: cfg.clone(),
            password,
            tls,
        })
    }

    /// Publishes what `queue` holds until it is closed and drained (and every PUBACK arrived).
    pub async fn run(self, queue: Arc<NoteQueue>, m: TargetMetrics) {
        let c = &self.cfg.connection;
        let (client, lp) = conn::connect(
            c,
            self.password.as_deref(),
            self.tls.as_ref(),
            None,
            CHANNEL,
        );
        let mut poll = Box::pin(conn::poll_owned(lp, Duration::ZERO));
        let mut connected = false;
        let mut closing = false;
        let mut failing = false;
        let mut backoff = BACKOFF_MIN;
        let mut unacked: u64 = 0;
        loop {
            tokio::select! {
                (lp, r) = &mut poll => {
                    let delay = match r {
                        Ok(Ev::Connected { .. }) => {
                            connected = true;
                            backoff = BACKOFF_MIN;
                            if failing {
                                tracing::info!(target_name = %self.name, "notify: MQTT broker reachable again");
                                failing = false;
                            }
                            Duration::ZERO
                        }
                        Ok(Ev::PubAck(_)) => {
                            unacked = unacked.saturating_sub(1);
                            m.sent.increment(1);
                            Duration::ZERO
                        }
                        Ok(_) => Duration::ZERO,
                        Err(e) => {
                            connected = false;
                            if !failing {
                                tracing::warn!(target_name = %self.name, broker = %format!("{}:{}", c.host, c.port),
                                    error = %e, "notify: MQTT broker unreachable; notifications wait in the queue");
                                failing = true;
                            }
                            let d = backoff;
                            backoff = (backoff * 2).min(c.backoff_max.max(BACKOFF_MIN));
                            d
                        }
                    };
                    if closing && unacked == 0 && queue.is_empty() {
                        break;
                    }
                    poll = Box::pin(conn::poll_owned(lp, delay));
                }
                n = queue.pop(), if connected && !closing && unacked < MAX_INFLIGHT => {
                    m.depth.set(queue.len() as f64);
                    match n {
                        Some(n) => {
                            let t = topic(&self.cfg.topic, &n);
                            let body = match serde_json::to_vec(&n) {
                                Ok(b) => Bytes::from(b),
                                Err(_) => continue,
                            };
                            match client.try_publish(&t, 1, self.cfg.retain, body) {
                                Ok(()) => unacked += 1,
                                Err(e) => {
                                    m.failed.increment(1);
                                    tracing::warn!(target_name = %self.name, error = %e, "notify: MQTT publish refused");
                                }
                            }
                        }
                        None => {
                            closing = true;
                            if unacked == 0 {
                                break;
                            }
                        }
                    }
                }
            }
        }
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut poll).await;
    }
}
