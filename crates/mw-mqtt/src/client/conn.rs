//! One broker connection on rumqttc, both protocol versions behind one shape: [`connect`] builds
//! the client and event loop from a checked [`ClientConfig`] (and a last will), [`Loop::poll`]
//! reports version-neutral [`Ev`]s, [`poll_owned`] keeps a poll alive across `select!`
//! iterations. Used by `[[mqtt.client]]` and by the Sparkplug runtime (mw-sparkplug-node).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::config::{ClientConfig, PasswordSource, Protocol};

/// Reads the password (from its file or variable) and loads the TLS files of a connection.
/// Errors name `label`, the file or the variable, never a secret.
pub fn load_secrets(
    cfg: &ClientConfig,
    label: &str,
) -> Result<(Option<String>, Option<Arc<rustls::ClientConfig>>), String> {
    let password = match &cfg.user {
        None => None,
        Some((_, PasswordSource::File(p))) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| {
                    format!(
                        "cannot read the password file {} of {label}: {e}",
                        p.display()
                    )
                })?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        Some((_, PasswordSource::Env(v))) => Some(std::env::var(v).map_err(|_| {
            format!(
                "the environment variable {v:?} (password_env of {label}) is not set or not UTF-8"
            )
        })?),
    };
    let tls = match &cfg.tls {
        None => None,
        Some(t) => Some(Arc::new(
            mw_security::certs::client_config_files(
                &t.ca,
                t.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            )
            .map_err(|e| format!("cannot load the TLS files of {label}: {e}"))?,
        )),
    };
    Ok((password, tls))
}

/// A rumqttc client of either protocol version.
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The event loop of a [`Client`].
pub enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What the event loop reported, version-neutral.
#[derive(Debug)]
pub enum Ev {
    Connected {
        session_present: bool,
    },
    Message {
        topic: String,
        payload: Bytes,
    },
    SubAck {
        refused: usize,
    },
    /// A PUBLISH was written (its packet id; 0 at QoS 0).
    Sent(u16),
    PubAck(u16),
    Other,
}

pub(crate) fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

pub(crate) fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The last will of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

/// Makes the client and event loop of one entry's connection (nothing is sent before the first
/// poll): its options from `c` (client id, keep-alive, clean start, credentials, transport),
/// `will` if given, and a request channel of `capacity` requests.
pub fn connect(
    c: &ClientConfig,
    password: Option<&str>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    will: Option<Will>,
    capacity: usize,
) -> (Client, Loop) {
    let cap = capacity.max(1);
    let transport = match tls {
        None => rumqttc::Transport::Tcp,
        Some(t) => rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(t.clone())),
    };
    match c.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(c.client_id.clone(), c.host.clone(), c.port);
            o.set_keep_alive(c.keep_alive)
                .set_clean_session(c.clean_start)
                .set_transport(transport)
                .set_request_channel_capacity(cap)
                .set_max_packet_size(1 << 20, 1 << 20);
            if let (Some((u, _)), Some(p)) = (&c.user, password) {
                o.set_credentials(u.clone(), p.to_owned());
            }
            if let Some(w) = &will {
                o.set_last_will(rumqttc::LastWill::new(
                    w.topic.clone(),
                    w.payload.clone(),
                    qos4(w.qos),
                    w.retain,
                ));
            }
            let (client, lp) = rumqttc::AsyncClient::new(o, cap);
            (Client::V4(client), Loop::V4(Box::new(lp)))
        }
        Protocol::V5 => {
            let mut o = rumqttc::v5::MqttOptions::new(c.client_id.clone(), c.host.clone(), c.port);
            o.set_keep_alive(c.keep_alive)
                .set_clean_start(c.clean_start)
                .set_transport(transport)
                .set_request_channel_capacity(cap)
                .set_max_packet_size(Some(1 << 20));
            if !c.clean_start {
                o.set_session_expiry_interval(Some(86_400));
            }
            if let (Some((u, _)), Some(p)) = (&c.user, password) {
                o.set_credentials(u.clone(), p.to_owned());
            }
            if let Some(w) = &will {
                o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                    w.topic.clone(),
                    w.payload.clone(),
                    qos5(w.qos),
                    w.retain,
                    None,
                ));
            }
            let (client, lp) = rumqttc::v5::AsyncClient::new(o, cap);
            (Client::V5(client), Loop::V5(Box::new(lp)))
        }
    }
}

impl Client {
    /// Queues a PUBLISH (fails when the request channel is full).
    pub fn try_publish(
        &self,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: Bytes,
    ) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_publish(topic, qos4(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_publish(topic, qos5(qos), retain, payload)
                .map_err(|e| e.to_string()),
        }
    }

    /// Queues a SUBSCRIBE (fails when the request channel is full).
    pub fn try_subscribe(&self, filter: &str, qos: u8) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_subscribe(filter, qos4(qos))
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe(filter, qos5(qos))
                .map_err(|e| e.to_string()),
        }
    }
}

impl Client {
    /// Queues a DISCONNECT (the event loop reports an error once it is sent).
    pub fn try_disconnect(&self) -> Result<(), String> {
        match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        }
    }
}

impl Loop {
    /// The next event; an error means the connection is gone (polling again reconnects).
    pub async fn poll(&mut self) -> Result<Ev, String> {
        match self {
            Loop::V4(lp) => {
                use rumqttc::{Event, Outgoing, Packet};
                Ok(match lp.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(a)) => Ev::Connected {
                        session_present: a.session_present,
                    },
                    Event::Incoming(Packet::Publish(p)) => Ev::Message {
                        topic: p.topic,
                        payload: p.payload,
                    },
                    Event::Incoming(Packet::SubAck(a)) => Ev::SubAck {
                        refused: a
                            .return_codes
                            .iter()
                            .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                            .count(),
                    },
                    Event::Incoming(Packet::PubAck(a)) => Ev::PubAck(a.pkid),
                    Event::Outgoing(Outgoing::Publish(id)) => Ev::Sent(id),
                    _ => Ev::Other,
                })
            }
            Loop::V5(lp) => {
                use rumqttc::v5::Event;
                use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
                Ok(match lp.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(a)) => Ev::Connected {
                        session_present: a.session_present,
                    },
                    Event::Incoming(Packet::Publish(p)) => Ev::Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload,
                    },
                    Event::Incoming(Packet::SubAck(a)) => Ev::SubAck {
                        refused: a
                            .return_codes
                            .iter()
                            .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                            .count(),
                    },
                    Event::Incoming(Packet::PubAck(a)) => Ev::PubAck(a.pkid),
                    Event::Outgoing(rumqttc::Outgoing::Publish(id)) => Ev::Sent(id),
                    _ => Ev::Other,
                })
            }
        }
    }
}

/// Owns the event loop across `select!` iterations, so a poll is never cancelled half-way
/// (rumqttc's poll is not cancel safe): the future is kept and polled again.
pub async fn poll_owned(mut lp: Loop, delay: Duration) -> (Loop, Result<Ev, String>) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let r = lp.poll().await;
    (lp, r)
}
