//! The MQTT uplink (`[[uplink]] url = "mqtt://HOST:PORT"` or `mqtts://`): the buffer's records
//! published at QoS 1 to an upstream broker as plain UNS JSON, a record acknowledged in the
//! buffer once the broker's PUBACK for it arrived. The connection is mw-mqtt's client
//! (rumqttc, 3.1.1, TLS with the workspace's rustls).
//!
//! # Topics
//! `{topic_prefix}/{tag path}` for a sample (the UNS tree: the tag path is
//! `enterprise/site/area/line/asset/tag`), `{topic_prefix}/$samples` for a pack,
//! `{topic_prefix}/$events/{kind}` for an event; the payload is the uplink's JSON
//! (docs/uplink.md), `historical` included. `topic_prefix` defaults to `millwright/{site}`.
//!
//! # Sessions and duplicates
//! Each session is a new connection with a clean session (`prepare`); a broken connection fails
//! every publish not yet acknowledged, the forwarder's session breaks and those records are
//! sent again from the buffer in order. So delivery is **at least once**: a record whose PUBACK
//! was lost arrives twice (MQTT has no deduplication like JetStream's `Nats-Msg-Id`; consumers
//! tell copies apart by `tag` + `ts`). Order per tag holds within each flow, as for NATS.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mw_mqtt::client::conn::{self, Ev};
use mw_mqtt::client::{ClientConfig, PasswordSource};
use tokio::sync::{mpsc, oneshot};

use crate::forward::{Ack, BoxFut, Upstream};

/// Where an MQTT uplink connects (from its `url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttTarget {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS (the entry's `tls` table names the CA).
    pub tls: bool,
    /// `None`: `millwright/{site}`.
    pub topic_prefix: Option<String>,
}

impl MqttTarget {
    /// Parses `mqtt://HOST:PORT` or `mqtts://HOST:PORT`.
    pub fn parse(u: &str) -> Result<MqttTarget, String> {
        let (tls, rest) = if let Some(r) = u.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = u.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!("{u:?} is not an mqtt:// or mqtts:// URL"));
        };
        if rest.contains('@') || rest.contains('/') {
            return Err(format!(
                "{u:?}: give HOST:PORT only (credentials go in user + password_file)"
            ));
        }
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(format!("{u:?} has no port (expected mqtt://HOST:PORT)"));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match port.parse::<u16>() {
            Ok(p) if p > 0 && !host.is_empty() => Ok(MqttTarget {
                host: host.to_owned(),
                port: p,
                tls,
                topic_prefix: None,
            }),
            _ => Err(format!("{u:?} has no valid HOST:PORT")),
        }
    }
}

/// The topic of a buffer record's subject (see the module docs).
pub fn topic_of(prefix: &str, subject: &str) -> String {
    let mut tokens = subject.split('.').skip(2); // mw, site
    let mut t = String::with_capacity(prefix.len() + subject.len());
    t.push_str(prefix);
    for tok in tokens.by_ref() {
        t.push('/');
        t.push_str(&tok.replace('~', "."));
    }
    t
}

type Req = (String, Bytes, oneshot::Sender<Result<bool, String>>);

/// The MQTT upstream: one connection per session.
pub struct MqttUpstream {
    cfg: ClientConfig,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    prefix: String,
    window: usize,
    tx: Option<mpsc::Sender<Req>>,
}

impl MqttUpstream {
    /// An upstream for `cfg` (host, port, client id, user, TLS files) publishing under
    /// `prefix`, with up to `window` publishes per flow awaiting their PUBACK; reads the
    /// password and TLS files now (errors name the files, never a secret).
    pub fn new(cfg: ClientConfig, prefix: String, window: usize) -> Result<MqttUpstream, String> {
        let (password, tls) = conn::load_secrets(&cfg, &format!("uplink {:?}", cfg.name))?;
        Ok(MqttUpstream {
            cfg,
            password,
            tls,
            prefix,
            window,
            tx: None,
        })
    }
}

/// Builds the client configuration of an MQTT uplink.
pub fn client_config(
    name: &str,
    target: &MqttTarget,
    edge_id: &str,
    user: Option<(String, std::path::PathBuf)>,
    tls: Option<(
        std::path::PathBuf,
        Option<(std::path::PathBuf, std::path::PathBuf)>,
    )>,
) -> ClientConfig {
    let mut c = ClientConfig::new(name, &target.host, target.port);
    c.client_id = format!("millwright-uplink-{edge_id}");
    c.user = user.map(|(u, p)| (u, PasswordSource::File(p)));
    c.tls = tls.map(|(ca, client)| mw_mqtt::client::config::TlsFiles { ca, client });
    c
}

impl Upstream for MqttUpstream {
    fn prepare(&mut self) -> BoxFut<'_, Result<(), String>> {
        Box::pin(async move {
            self.tx = None; // the previous connection's task disconnects and ends
            let cap = 2 * self.window + 16;
            let (client, lp) = conn::connect(
                &self.cfg,
                self.password.as_deref(),
                self.tls.as_ref(),
                None,
                cap,
            );
            let (tx, rx) = mpsc::channel(cap);
            let (ready_tx, ready) = oneshot::channel();
            tokio::spawn(connection(client, lp, rx, ready_tx));
            match tokio::time::timeout(Duration::from_secs(10), ready).await {
                Ok(Ok(Ok(()))) => {
                    self.tx = Some(tx);
                    Ok(())
                }
                Ok(Ok(Err(e))) => Err(format!(
                    "cannot connect to {}:{}: {e}",
                    self.cfg.host, self.cfg.port
                )),
                Ok(Err(_)) => Err("the MQTT connection task ended".into()),
                Err(_) => Err(format!(
                    "no CONNACK from {}:{} within 10 s",
                    self.cfg.host, self.cfg.port
                )),
            }
        })
    }

    fn send(
        &mut self,
        _seq: u64,
        subject: String,
        body: Vec<u8>,
    ) -> BoxFut<'_, Result<Ack, String>> {
        Box::pin(async move {
            let tx = self.tx.as_ref().ok_or("not connected")?;
            let (done, rx) = oneshot::channel();
            tx.send((topic_of(&self.prefix, &subject), Bytes::from(body), done))
                .await
                .map_err(|_| "the MQTT connection ended".to_owned())?;
            Ok(Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err("the MQTT connection ended".into()))
            }) as Ack)
        })
    }
}

/// Runs one connection: publishes what comes on `rx` at QoS 1 once connected, answers each
/// with its PUBACK; on any error fails everything unacknowledged and ends (a new session makes
/// a new connection).
async fn connection(
    client: conn::Client,
    lp: conn::Loop,
    mut rx: mpsc::Receiver<Req>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    // publishes queued with rumqttc, not yet written (their packet id comes with `Sent`)
    let mut queued: VecDeque<oneshot::Sender<Result<bool, String>>> = VecDeque::new();
    let mut inflight: HashMap<u16, oneshot::Sender<Result<bool, String>>> = HashMap::new();
    let mut poll = Box::pin(conn::poll_owned(lp, Duration::ZERO));
    let why = loop {
        tokio::select! {
            (lp, ev) = &mut poll => {
                match ev {
                    Ok(Ev::Connected { .. }) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Ok(Ev::Sent(id)) => {
                        if let Some(d) = queued.pop_front() {
                            inflight.insert(id, d);
                        }
                    }
                    Ok(Ev::PubAck(id)) => {
                        if let Some(d) = inflight.remove(&id) {
                            let _ = d.send(Ok(false));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => break e,
                }
                poll = Box::pin(conn::poll_owned(lp, Duration::ZERO));
            }
            req = rx.recv(), if ready.is_none() => match req {
                Some((topic, payload, done)) => match client.try_publish(&topic, 1, false, payload) {
                    Ok(()) => queued.push_back(done),
                    Err(e) => {
                        let _ = done.send(Err(format!("publish: {e}")));
                    }
                },
                None => {
                    let _ = client.try_disconnect();
                    break "closed".into();
                }
            },
        }
    };
    if let Some(r) = ready.take() {
        let _ = r.send(Err(why.clone()));
    }
    for d in queued.into_iter().chain(inflight.into_values()) {
        let _ = d.send(Err(format!("MQTT connection lost: {why}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_topics() {
        let t = MqttTarget::parse("mqtts://broker.plant:8883").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("broker.plant", 8883, true)
        );
        assert!(!MqttTarget::parse("mqtt://h:1883").unwrap().tls);
        for bad in [
            "mqtt://h",
            "mqtt://u:p@h:1",
            "http://h:1",
            "mqtt://h:0",
            "mqtt://h:1/x",
        ] {
            assert!(MqttTarget::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            topic_of("millwright/p1", "mw.p1.acme.line~1.pump1.flow"),
            "millwright/p1/acme/line.1/pump1/flow"
        );
        assert_eq!(topic_of("x", "mw.p1.$samples"), "x/$samples");
        assert_eq!(
            topic_of("x", "mw.p1.$events.alarm_transition"),
            "x/$events/alarm_transition"
        );
    }
}
