//! The broker's view of the wire: MQTT 3.1.1 and 5.0 packets, decoded with rumqttc's public
//! codecs (`rumqttc::mqttbytes::v4`, `rumqttc::v5::mqttbytes::v5`) into one version-neutral shape
//! ([`In`]) and encoded back from one ([`Out`]) for the version the client connected with.
//!
//! What the codecs leave unchecked is checked here, before a packet reaches the broker: the
//! protocol level (read from the CONNECT itself, 3 → "unacceptable protocol version"), the fixed
//! header flags (PUBREL, SUBSCRIBE and UNSUBSCRIBE must carry `0010`, the others `0000`), QoS 3,
//! invalid UTF-8 or wildcards in a PUBLISH topic, and a packet a client must never send (CONNACK,
//! SUBACK, …). Every refusal is a [`WireError`] with the MQTT 5 reason code to disconnect with.
//! Decoding never panics (`tests/wire.rs` feeds it random and truncated bytes).

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self as b4, v4};
use rumqttc::v5::mqttbytes::{self as b5, v5};

/// The protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

/// MQTT 5 reason codes the broker sends (3.1.1 connections get the nearest CONNACK return code
/// or, after CONNECT, a plain close).
pub mod reason {
    pub const SUCCESS: u8 = 0x00;
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    pub const UNSPECIFIED: u8 = 0x80;
    pub const MALFORMED_PACKET: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    pub const CLIENT_ID_NOT_VALID: u8 = 0x85;
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    pub const SERVER_BUSY: u8 = 0x89;
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const PACKET_ID_IN_USE: u8 = 0x91;
    pub const PACKET_ID_NOT_FOUND: u8 = 0x92;
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
}

/// Why a packet was refused, with the reason code to disconnect with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} (reason 0x{code:02X})")]
pub struct WireError {
    pub code: u8,
    pub what: String,
}

impl WireError {
    pub fn new(code: u8, what: impl Into<String>) -> WireError {
        WireError {
            code,
            what: what.into(),
        }
    }
    fn malformed(what: impl std::fmt::Display) -> WireError {
        WireError::new(
            reason::MALFORMED_PACKET,
            format!("malformed packet: {what}"),
        )
    }
}

/// Properties a PUBLISH (or a will) carries through the broker unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PubProps {
    pub payload_format_indicator: Option<u8>,
    /// Seconds, as received; the broker turns it into a deadline.
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
}

/// A will, as the CONNECT gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// Seconds the broker waits before publishing it (MQTT 5 will delay).
    pub delay: u32,
    pub props: PubProps,
}

/// A CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub will: Option<Will>,
    /// MQTT 5 session expiry interval (3.1.1: 0 for a clean session, "never" otherwise).
    pub session_expiry: Option<u32>,
    /// How many unacknowledged QoS 1/2 publishes the client accepts (65535 when not given).
    pub receive_maximum: u16,
    /// The largest packet the client accepts.
    pub max_packet_size: Option<u32>,
    /// Topic aliases the client accepts from the broker.
    pub topic_alias_max: u16,
    pub user_properties: Vec<(String, String)>,
}

/// A PUBLISH as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    /// Empty when the client sent only a topic alias (resolved by the connection).
    pub topic: String,
    pub topic_alias: Option<u16>,
    pub pkid: u16,
    pub payload: Bytes,
    pub props: PubProps,
}

/// Retain handling of an MQTT 5 subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainHandling {
    /// Send retained messages on every SUBSCRIBE.
    OnSubscribe,
    /// Only when the subscription is new.
    OnNewSubscription,
    Never,
}

/// One filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

/// What a client sends, version-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum In {
    Connect(Box<Connect>),
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<Filter>,
        id: Option<usize>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect {
        reason: u8,
        session_expiry: Option<u32>,
    },
    Auth,
}

/// A PUBLISH the broker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutPublish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pkid: u16,
    pub payload: Bytes,
    pub props: PubProps,
    pub subscription_ids: Vec<usize>,
}

/// What the CONNACK announces (MQTT 5 properties; 3.1.1 gets the session flag and code only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProps {
    pub session_expiry: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub max_qos: Option<u8>,
    pub max_packet_size: Option<u32>,
    pub assigned_client_id: Option<String>,
    pub topic_alias_max: Option<u16>,
    pub reason_string: Option<String>,
    pub server_keep_alive: Option<u16>,
}

/// What the broker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    ConnAck {
        session_present: bool,
        code: u8,
        props: Box<ConnAckProps>,
    },
    Publish(Box<OutPublish>),
    PubAck {
        pkid: u16,
        code: u8,
    },
    PubRec {
        pkid: u16,
        code: u8,
    },
    PubRel {
        pkid: u16,
        code: u8,
    },
    PubComp {
        pkid: u16,
        code: u8,
    },
    /// One code per filter: the granted QoS (0–2) or an MQTT 5 failure reason (≥ 0x80).
    SubAck {
        pkid: u16,
        codes: Vec<u8>,
    },
    UnsubAck {
        pkid: u16,
        codes: Vec<u8>,
    },
    PingResp,
    Disconnect {
        code: u8,
        reason: Option<String>,
    },
}

/// The protocol level of the CONNECT at the head of `buf`: `Ok(None)` while it is incomplete.
/// A first packet that is not a CONNECT, or an unknown protocol name, is refused.
pub fn sniff_version(buf: &[u8]) -> Result<Option<Version>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first >> 4 != 1 {
        return Err(WireError::new(
            reason::PROTOCOL_ERROR,
            "the first packet must be CONNECT",
        ));
    }
    if first & 0x0F != 0 {
        return Err(WireError::malformed("CONNECT with reserved flags set"));
    }
    // remaining length: 1 to 4 bytes
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(WireError::malformed("remaining length longer than 4 bytes"));
        }
    }
    let Some(head) = buf.get(i..i + 7) else {
        return Ok(None);
    };
    let name_len = u16::from_be_bytes([head[0], head[1]]) as usize;
    if name_len == 6 && buf.get(i + 2..i + 8).is_some_and(|n| n == b"MQIsdp") {
        return Err(WireError::new(
            reason::UNSUPPORTED_PROTOCOL_VERSION,
            "MQTT 3.1 (MQIsdp) is not supported; use 3.1.1 or 5.0",
        ));
    }
    if &head[2..6] != b"MQTT" || name_len != 4 {
        return Err(WireError::new(
            reason::UNSUPPORTED_PROTOCOL_VERSION,
            "protocol name is not MQTT",
        ));
    }
    match head[6] {
        4 => Ok(Some(Version::V311)),
        5 => Ok(Some(Version::V5)),
        n => Err(WireError::new(
            reason::UNSUPPORTED_PROTOCOL_VERSION,
            format!("protocol level {n} is not supported; use 4 (3.1.1) or 5 (5.0)"),
        )),
    }
}

/// The fixed header's first byte and the frame length at the head of `buf`, if complete enough
/// to tell; refuses a remaining length over `max`.
fn frame(buf: &[u8], max: usize) -> Result<Option<(u8, usize)>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len: usize = 0;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= ((b & 0x7F) as usize) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(WireError::malformed("remaining length longer than 4 bytes"));
        }
    }
    if len + i > max {
        return Err(WireError::new(
            reason::PACKET_TOO_LARGE,
            format!(
                "packet of {} bytes exceeds the maximum packet size of {max}",
                len + i
            ),
        ));
    }
    Ok(Some((first, len + i)))
}

fn check_flags(first: u8) -> Result<(), WireError> {
    let kind = first >> 4;
    let flags = first & 0x0F;
    let want = match kind {
        3 => {
            if (flags >> 1) & 3 == 3 {
                return Err(WireError::malformed("PUBLISH with QoS 3"));
            }
            return Ok(());
        }
        6 | 8 | 10 => 0b0010,
        0 | 15 => {
            return Err(WireError::malformed(format!("reserved packet type {kind}")));
        }
        _ => 0,
    };
    if flags != want {
        return Err(WireError::malformed(format!(
            "packet type {kind} with fixed header flags {flags:04b} (must be {want:04b})"
        )));
    }
    Ok(())
}

fn check_topic(topic: &str) -> Result<(), WireError> {
    if topic.contains(['+', '#']) {
        return Err(WireError::new(
            reason::TOPIC_NAME_INVALID,
            format!("PUBLISH topic {topic:?} contains a wildcard"),
        ));
    }
    if topic.contains('\0') {
        return Err(WireError::new(
            reason::TOPIC_NAME_INVALID,
            "PUBLISH topic contains U+0000",
        ));
    }
    Ok(())
}

fn qos4(q: b4::QoS) -> u8 {
    q as u8
}
fn qos5(q: b5::QoS) -> u8 {
    q as u8
}

/// Decodes the next packet of `buf` (consuming it), `Ok(None)` while incomplete. `max` bounds the
/// whole packet's size in bytes.
pub fn decode(buf: &mut BytesMut, version: Version, max: usize) -> Result<Option<In>, WireError> {
    let Some((first, len)) = frame(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < len {
        return Ok(None);
    }
    check_flags(first)?;
    let kind = first >> 4;
    match kind {
        2 | 9 | 11 | 13 => {
            return Err(WireError::new(
                reason::PROTOCOL_ERROR,
                format!("packet type {kind} is sent by servers only"),
            ));
        }
        15 if version == Version::V311 => {
            return Err(WireError::malformed("AUTH is MQTT 5 only"));
        }
        _ => {}
    }
    let packet = match version {
        Version::V311 => decode4(buf, max)?,
        Version::V5 => decode5(buf, max)?,
    };
    let zero_id = match &packet {
        In::Publish(p) => {
            check_topic(&p.topic)?;
            p.qos > 0 && p.pkid == 0
        }
        In::Subscribe { pkid, .. } | In::Unsubscribe { pkid, .. } => *pkid == 0,
        _ => false,
    };
    if zero_id {
        return Err(WireError::malformed(
            "packet identifier 0 (SUBSCRIBE, UNSUBSCRIBE and QoS 1/2 PUBLISH need a non-zero one, MQTT-2.3.1-1)",
        ));
    }
    Ok(Some(packet))
}

fn decode4(buf: &mut BytesMut, max: usize) -> Result<In, WireError> {
    let p = v4::Packet::read(buf, max).map_err(WireError::malformed)?;
    Ok(match p {
        v4::Packet::Connect(c) => {
            let will = c.last_will.map(|w| Will {
                topic: w.topic,
                payload: w.message,
                qos: qos4(w.qos),
                retain: w.retain,
                delay: 0,
                props: PubProps::default(),
            });
            In::Connect(Box::new(Connect {
                version: Version::V311,
                session_expiry: if c.clean_session { Some(0) } else { None },
                client_id: c.client_id,
                clean_start: c.clean_session,
                keep_alive: c.keep_alive,
                username: c.login.as_ref().map(|l| l.username.clone()),
                password: c.login.map(|l| l.password),
                will,
                receive_maximum: u16::MAX,
                max_packet_size: None,
                topic_alias_max: 0,
                user_properties: Vec::new(),
            }))
        }
        v4::Packet::Publish(p) => In::Publish(Publish {
            dup: p.dup,
            qos: qos4(p.qos),
            retain: p.retain,
            topic: p.topic,
            topic_alias: None,
            pkid: p.pkid,
            payload: p.payload,
            props: PubProps::default(),
        }),
        v4::Packet::PubAck(a) => In::PubAck(a.pkid),
        v4::Packet::PubRec(a) => In::PubRec(a.pkid),
        v4::Packet::PubRel(a) => In::PubRel(a.pkid),
        v4::Packet::PubComp(a) => In::PubComp(a.pkid),
        v4::Packet::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| Filter {
                    filter: f.path,
                    qos: qos4(f.qos),
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::OnSubscribe,
                })
                .collect(),
            id: None,
        },
        v4::Packet::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => In::PingReq,
        v4::Packet::Disconnect => In::Disconnect {
            reason: 0,
            session_expiry: None,
        },
        other => {
            return Err(WireError::new(
                reason::PROTOCOL_ERROR,
                format!("unexpected packet from a client: {other:?}"),
            ));
        }
    })
}

fn props5(
    p: Option<v5::PublishProperties>,
) -> Result<(PubProps, Option<u16>, Vec<usize>), WireError> {
    let Some(p) = p else {
        return Ok((PubProps::default(), None, Vec::new()));
    };
    Ok((
        PubProps {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
        },
        p.topic_alias,
        p.subscription_identifiers,
    ))
}

fn utf8(bytes: Bytes, what: &str) -> Result<String, WireError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| WireError::new(reason::TOPIC_NAME_INVALID, format!("{what} is not UTF-8")))
}

fn decode5(buf: &mut BytesMut, max: usize) -> Result<In, WireError> {
    // a DISCONNECT without reason code and properties means 0x00 (§3.14.2.1); the codec wants
    // a payload
    if buf.len() >= 2 && buf[0] == 0xE0 && buf[1] == 0 {
        let _ = buf.split_to(2);
        return Ok(In::Disconnect {
            reason: reason::SUCCESS,
            session_expiry: None,
        });
    }
    let p = v5::Packet::read(buf, Some(max as u32)).map_err(WireError::malformed)?;
    Ok(match p {
        v5::Packet::Connect(c, will, login) => {
            let props = c.properties.unwrap_or_default();
            let will = match will {
                None => None,
                Some(w) => {
                    let wp = w.properties.unwrap_or(v5::LastWillProperties {
                        delay_interval: None,
                        payload_format_indicator: None,
                        message_expiry_interval: None,
                        content_type: None,
                        response_topic: None,
                        correlation_data: None,
                        user_properties: Vec::new(),
                    });
                    Some(Will {
                        topic: utf8(w.topic, "will topic")?,
                        payload: w.message,
                        qos: qos5(w.qos),
                        retain: w.retain,
                        delay: wp.delay_interval.unwrap_or(0),
                        props: PubProps {
                            payload_format_indicator: wp.payload_format_indicator,
                            message_expiry_interval: wp.message_expiry_interval,
                            content_type: wp.content_type,
                            response_topic: wp.response_topic,
                            correlation_data: wp.correlation_data,
                            user_properties: wp.user_properties,
                        },
                    })
                }
            };
            if props.receive_maximum == Some(0) {
                return Err(WireError::new(
                    reason::PROTOCOL_ERROR,
                    "receive maximum of 0",
                ));
            }
            if props.max_packet_size == Some(0) {
                return Err(WireError::new(
                    reason::PROTOCOL_ERROR,
                    "maximum packet size of 0",
                ));
            }
            if props.authentication_method.is_some() {
                return Err(WireError::new(
                    0x8C,
                    "enhanced authentication (AUTH method) is not supported; use username and password",
                ));
            }
            In::Connect(Box::new(Connect {
                version: Version::V5,
                client_id: c.client_id,
                clean_start: c.clean_start,
                keep_alive: c.keep_alive,
                username: login.as_ref().map(|l| l.username.clone()),
                password: login.map(|l| l.password),
                will,
                session_expiry: Some(props.session_expiry_interval.unwrap_or(0)),
                receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
                max_packet_size: props.max_packet_size,
                topic_alias_max: props.topic_alias_max.unwrap_or(0),
                user_properties: props.user_properties,
            }))
        }
        v5::Packet::Publish(p) => {
            let (props, topic_alias, _) = props5(p.properties)?;
            In::Publish(Publish {
                dup: p.dup,
                qos: qos5(p.qos),
                retain: p.retain,
                topic: utf8(p.topic, "PUBLISH topic")?,
                topic_alias,
                pkid: p.pkid,
                payload: p.payload,
                props,
            })
        }
        v5::Packet::PubAck(a) => In::PubAck(a.pkid),
        v5::Packet::PubRec(a) => In::PubRec(a.pkid),
        v5::Packet::PubRel(a) => In::PubRel(a.pkid),
        v5::Packet::PubComp(a) => In::PubComp(a.pkid),
        v5::Packet::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            id: s.properties.and_then(|p| p.id),
            filters: s
                .filters
                .into_iter()
                .map(|f| Filter {
                    filter: f.path,
                    qos: qos5(f.qos),
                    no_local: f.nolocal,
                    retain_as_published: f.preserve_retain,
                    retain_handling: match f.retain_forward_rule {
                        v5::RetainForwardRule::OnEverySubscribe => RetainHandling::OnSubscribe,
                        v5::RetainForwardRule::OnNewSubscribe => RetainHandling::OnNewSubscription,
                        v5::RetainForwardRule::Never => RetainHandling::Never,
                    },
                })
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => In::PingReq,
        v5::Packet::Disconnect(d) => In::Disconnect {
            reason: d.reason_code as u8,
            session_expiry: d.properties.and_then(|p| p.session_expiry_interval),
        },
        v5::Packet::Auth(_) => In::Auth,
        other => {
            return Err(WireError::new(
                reason::PROTOCOL_ERROR,
                format!("unexpected packet from a client: {other:?}"),
            ));
        }
    })
}

fn to_qos4(q: u8) -> b4::QoS {
    match q {
        0 => b4::QoS::AtMostOnce,
        1 => b4::QoS::AtLeastOnce,
        _ => b4::QoS::ExactlyOnce,
    }
}
fn to_qos5(q: u8) -> b5::QoS {
    match q {
        0 => b5::QoS::AtMostOnce,
        1 => b5::QoS::AtLeastOnce,
        _ => b5::QoS::ExactlyOnce,
    }
}

fn connack_code4(code: u8) -> v4::ConnectReturnCode {
    use v4::ConnectReturnCode as C;
    match code {
        reason::SUCCESS => C::Success,
        reason::UNSUPPORTED_PROTOCOL_VERSION => C::RefusedProtocolVersion,
        reason::CLIENT_ID_NOT_VALID => C::BadClientId,
        reason::BAD_USERNAME_OR_PASSWORD => C::BadUserNamePassword,
        reason::NOT_AUTHORIZED => C::NotAuthorized,
        _ => C::ServiceUnavailable,
    }
}

fn connack_code5(code: u8) -> v5::ConnectReturnCode {
    use v5::ConnectReturnCode as C;
    match code {
        reason::SUCCESS => C::Success,
        reason::MALFORMED_PACKET => C::MalformedPacket,
        reason::PROTOCOL_ERROR => C::ProtocolError,
        reason::UNSUPPORTED_PROTOCOL_VERSION => C::UnsupportedProtocolVersion,
        reason::CLIENT_ID_NOT_VALID => C::ClientIdentifierNotValid,
        reason::BAD_USERNAME_OR_PASSWORD => C::BadUserNamePassword,
        reason::NOT_AUTHORIZED => C::NotAuthorized,
        reason::SERVER_BUSY => C::ServerBusy,
        reason::PACKET_TOO_LARGE => C::PacketTooLarge,
        reason::QUOTA_EXCEEDED => C::QuotaExceeded,
        0x8C => C::BadAuthenticationMethod,
        0x9F => C::ConnectionRateExceeded,
        _ => C::UnspecifiedError,
    }
}

fn disconnect_code5(code: u8) -> v5::DisconnectReasonCode {
    use v5::DisconnectReasonCode as D;
    match code {
        reason::SUCCESS => D::NormalDisconnection,
        reason::MALFORMED_PACKET => D::MalformedPacket,
        reason::PROTOCOL_ERROR => D::ProtocolError,
        reason::NOT_AUTHORIZED => D::NotAuthorized,
        reason::SERVER_BUSY => D::ServerBusy,
        reason::SERVER_SHUTTING_DOWN => D::ServerShuttingDown,
        reason::KEEP_ALIVE_TIMEOUT => D::KeepAliveTimeout,
        reason::SESSION_TAKEN_OVER => D::SessionTakenOver,
        reason::TOPIC_FILTER_INVALID => D::TopicFilterInvalid,
        reason::TOPIC_NAME_INVALID => D::TopicNameInvalid,
        reason::RECEIVE_MAXIMUM_EXCEEDED => D::ReceiveMaximumExceeded,
        reason::TOPIC_ALIAS_INVALID => D::TopicAliasInvalid,
        reason::PACKET_TOO_LARGE => D::PacketTooLarge,
        reason::MESSAGE_RATE_TOO_HIGH => D::MessageRateTooHigh,
        reason::QUOTA_EXCEEDED => D::QuotaExceeded,
        _ => D::UnspecifiedError,
    }
}

fn suback_code4(c: u8) -> v4::SubscribeReasonCode {
    match c {
        0 => v4::SubscribeReasonCode::Success(b4::QoS::AtMostOnce),
        1 => v4::SubscribeReasonCode::Success(b4::QoS::AtLeastOnce),
        2 => v4::SubscribeReasonCode::Success(b4::QoS::ExactlyOnce),
        _ => v4::SubscribeReasonCode::Failure,
    }
}

fn suback_code5(c: u8) -> v5::SubscribeReasonCode {
    use v5::SubscribeReasonCode as S;
    match c {
        0..=2 => S::Success(to_qos5(c)),
        reason::NOT_AUTHORIZED => S::NotAuthorized,
        reason::TOPIC_FILTER_INVALID => S::TopicFilterInvalid,
        reason::PACKET_ID_IN_USE => S::PkidInUse,
        reason::QUOTA_EXCEEDED => S::QuotaExceeded,
        reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED => S::SharedSubscriptionsNotSupported,
        _ => S::Unspecified,
    }
}

fn unsuback_code5(c: u8) -> v5::UnsubAckReason {
    use v5::UnsubAckReason as U;
    match c {
        reason::SUCCESS => U::Success,
        reason::NO_SUBSCRIPTION_EXISTED => U::NoSubscriptionExisted,
        reason::NOT_AUTHORIZED => U::NotAuthorized,
        reason::TOPIC_FILTER_INVALID => U::TopicFilterInvalid,
        _ => U::UnspecifiedError,
    }
}

fn ack_reason_string(code: u8) -> &'static str {
    match code {
        reason::NOT_AUTHORIZED => "not authorized",
        reason::QUOTA_EXCEEDED => "quota exceeded",
        reason::PACKET_ID_NOT_FOUND => "packet identifier not found",
        _ => "",
    }
}

/// The size `out` would take on the wire, for the client's maximum packet size.
pub fn encoded_len(out: &Out, version: Version) -> usize {
    let mut b = BytesMut::new();
    encode(out, version, &mut b);
    b.len()
}

/// Appends `out` to `buf` as `version` encodes it. Broker packets are always encodable (sizes
/// are checked before a publish is queued), so a codec error only drops the packet and is logged.
pub fn encode(out: &Out, version: Version, buf: &mut BytesMut) {
    let r = match version {
        Version::V311 => encode4(out, buf),
        Version::V5 => encode5(out, buf),
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "mqtt: a packet could not be encoded and was dropped");
    }
}

fn encode4(out: &Out, buf: &mut BytesMut) -> Result<(), String> {
    let max = usize::MAX;
    let p = match out {
        Out::ConnAck {
            session_present,
            code,
            ..
        } => v4::Packet::ConnAck(v4::ConnAck::new(connack_code4(*code), *session_present)),
        Out::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: to_qos4(p.qos),
            retain: p.retain,
            topic: p.topic.clone(),
            pkid: p.pkid,
            payload: p.payload.clone(),
        }),
        Out::PubAck { pkid, .. } => v4::Packet::PubAck(v4::PubAck::new(*pkid)),
        Out::PubRec { pkid, .. } => v4::Packet::PubRec(v4::PubRec::new(*pkid)),
        Out::PubRel { pkid, .. } => v4::Packet::PubRel(v4::PubRel::new(*pkid)),
        Out::PubComp { pkid, .. } => v4::Packet::PubComp(v4::PubComp::new(*pkid)),
        Out::SubAck { pkid, codes } => v4::Packet::SubAck(v4::SubAck::new(
            *pkid,
            codes.iter().map(|c| suback_code4(*c)).collect(),
        )),
        Out::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(*pkid)),
        Out::PingResp => v4::Packet::PingResp,
        // 3.1.1 has no server DISCONNECT: the connection is closed instead.
        Out::Disconnect { .. } => return Ok(()),
    };
    p.write(buf, max).map(|_| ()).map_err(|e| e.to_string())
}

fn encode5(out: &Out, buf: &mut BytesMut) -> Result<(), String> {
    let reason_props = |code: u8| {
        let s = ack_reason_string(code);
        (!s.is_empty()).then(|| s.to_string())
    };
    let p = match out {
        Out::ConnAck {
            session_present,
            code,
            props,
        } => v5::Packet::ConnAck(v5::ConnAck {
            session_present: *session_present,
            code: connack_code5(*code),
            properties: Some(v5::ConnAckProperties {
                session_expiry_interval: props.session_expiry,
                receive_max: props.receive_maximum,
                max_qos: props.max_qos,
                retain_available: None,
                max_packet_size: props.max_packet_size,
                assigned_client_identifier: props.assigned_client_id.clone(),
                topic_alias_max: props.topic_alias_max,
                reason_string: props.reason_string.clone(),
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: None,
                shared_subscription_available: None,
                server_keep_alive: props.server_keep_alive,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }),
        Out::Publish(p) => {
            let props = &p.props;
            let any = props.payload_format_indicator.is_some()
                || props.message_expiry_interval.is_some()
                || props.content_type.is_some()
                || props.response_topic.is_some()
                || props.correlation_data.is_some()
                || !props.user_properties.is_empty()
                || !p.subscription_ids.is_empty();
            v5::Packet::Publish(v5::Publish {
                dup: p.dup,
                qos: to_qos5(p.qos),
                retain: p.retain,
                topic: Bytes::copy_from_slice(p.topic.as_bytes()),
                pkid: p.pkid,
                payload: p.payload.clone(),
                properties: any.then(|| v5::PublishProperties {
                    payload_format_indicator: props.payload_format_indicator,
                    message_expiry_interval: props.message_expiry_interval,
                    topic_alias: None,
                    response_topic: props.response_topic.clone(),
                    correlation_data: props.correlation_data.clone(),
                    user_properties: props.user_properties.clone(),
                    subscription_identifiers: p.subscription_ids.clone(),
                    content_type: props.content_type.clone(),
                }),
            })
        }
        Out::PubAck { pkid, code } => v5::Packet::PubAck(v5::PubAck {
            pkid: *pkid,
            reason: match *code {
                reason::SUCCESS => v5::PubAckReason::Success,
                reason::NO_MATCHING_SUBSCRIBERS => v5::PubAckReason::NoMatchingSubscribers,
                reason::NOT_AUTHORIZED => v5::PubAckReason::NotAuthorized,
                reason::TOPIC_NAME_INVALID => v5::PubAckReason::TopicNameInvalid,
                reason::QUOTA_EXCEEDED => v5::PubAckReason::QuotaExceeded,
                reason::PACKET_ID_IN_USE => v5::PubAckReason::PacketIdentifierInUse,
                _ => v5::PubAckReason::UnspecifiedError,
            },
            properties: reason_props(*code).map(|s| v5::PubAckProperties {
                reason_string: Some(s),
                user_properties: Vec::new(),
            }),
        }),
        Out::PubRec { pkid, code } => v5::Packet::PubRec(v5::PubRec {
            pkid: *pkid,
            reason: match *code {
                reason::SUCCESS => v5::PubRecReason::Success,
                reason::NO_MATCHING_SUBSCRIBERS => v5::PubRecReason::NoMatchingSubscribers,
                reason::NOT_AUTHORIZED => v5::PubRecReason::NotAuthorized,
                reason::TOPIC_NAME_INVALID => v5::PubRecReason::TopicNameInvalid,
                reason::QUOTA_EXCEEDED => v5::PubRecReason::QuotaExceeded,
                reason::PACKET_ID_IN_USE => v5::PubRecReason::PacketIdentifierInUse,
                _ => v5::PubRecReason::UnspecifiedError,
            },
            properties: reason_props(*code).map(|s| v5::PubRecProperties {
                reason_string: Some(s),
                user_properties: Vec::new(),
            }),
        }),
        Out::PubRel { pkid, code } => v5::Packet::PubRel(v5::PubRel {
            pkid: *pkid,
            reason: if *code == reason::SUCCESS {
                v5::PubRelReason::Success
            } else {
                v5::PubRelReason::PacketIdentifierNotFound
            },
            properties: None,
        }),
        Out::PubComp { pkid, code } => v5::Packet::PubComp(v5::PubComp {
            pkid: *pkid,
            reason: if *code == reason::SUCCESS {
                v5::PubCompReason::Success
            } else {
                v5::PubCompReason::PacketIdentifierNotFound
            },
            properties: None,
        }),
        Out::SubAck { pkid, codes } => v5::Packet::SubAck(v5::SubAck {
            pkid: *pkid,
            return_codes: codes.iter().map(|c| suback_code5(*c)).collect(),
            properties: None,
        }),
        Out::UnsubAck { pkid, codes } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid: *pkid,
            reasons: codes.iter().map(|c| unsuback_code5(*c)).collect(),
            properties: None,
        }),
        Out::PingResp => v5::Packet::PingResp(v5::PingResp),
        Out::Disconnect { code, reason } => v5::Packet::Disconnect(v5::Disconnect {
            reason_code: disconnect_code5(*code),
            properties: reason.as_ref().map(|r| v5::DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some(r.clone()),
                user_properties: Vec::new(),
                server_reference: None,
            }),
        }),
    };
    p.write(buf, None).map(|_| ()).map_err(|e| e.to_string())
}
