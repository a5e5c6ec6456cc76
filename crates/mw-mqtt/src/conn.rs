//! One client connection: CONNECT (version, authentication, session), then the packet loop —
//! publishes in (topic aliases, ACL, QoS 1/2 acknowledgements, rate limit), deliveries out
//! (in-flight window, packet ids, DUP on resume, message expiry, the client's maximum packet
//! size), keep-alive (1.5 × the client's interval), takeover and shutdown.
//!
//! A protocol violation closes the connection (MQTT 5: DISCONNECT with its reason code first)
//! and publishes the will; a clean DISCONNECT discards it (MQTT 5 reason 0x04 keeps it).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::broker::{Broker, Ctl, Delivery, Detached, Message, Pending, Queue, Sub};
use crate::topic;
use crate::wire::Will;
use crate::wire::{
    self, ConnAckProps, Connect, In, Out, OutPublish, Publish, Version, WireError, reason,
};

/// How a connection ended, for the will.
enum End {
    /// DISCONNECT (0x00): the will is discarded.
    Normal,
    /// Anything else: network error, keep-alive, protocol error, takeover, DISCONNECT 0x04.
    WithWill,
}

const DRAIN_BUDGET: usize = 256;

struct ConnGuard<'a>(&'a Broker);
impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        let n = self
            .0
            .inner
            .stats
            .connections
            .fetch_sub(1, Ordering::Relaxed)
            - 1;
        metrics::gauge!("mw_mqtt_connections", "component" => "mqtt-broker", "instance" => "broker").set(n as f64);
    }
}

/// Serves one accepted connection until it ends.
///
/// Memory: an idle connection (10k of them at about 1 KB each is the goal) holds only this
/// future's own state — the stream, the small [`Conn`], a 32-byte read buffer and the idle
/// `select!` (a read, the queue's notification, the oneshot control channel). Keep-alive has
/// no timer per connection: the broker's sweeper checks every 250 ms when each connection
/// last received something and tells it to close through the control channel. The CONNECT handshake and the packet loop ([`busy`]) run as boxed futures that
/// exist only while they run; the read buffer and write buffer are freed when empty.
pub async fn serve<S>(broker: Broker, mut stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let stats = &broker.inner.stats;
    let n = stats.connections.fetch_add(1, Ordering::Relaxed) + 1;
    metrics::gauge!("mw_mqtt_connections", "component" => "mqtt-broker", "instance" => "broker")
        .set(n as f64);
    let _guard = ConnGuard(&broker);
    let Some(h) = Box::pin(handshake(&broker, &mut stream, peer, n)).await else {
        return;
    };
    let Hello {
        version,
        client_id,
        username,
        will,
        expiry,
        expiry_was_zero,
        keep_alive,
        out_max,
        out_max_packet,
        generation,
        queue,
        unacked,
        ctl,
        wbuf,
        rbuf,
    } = *h;
    let mut c = Conn {
        broker: &broker,
        version,
        client_id,
        username,
        queue,
        inflight: unacked,
        out_max,
        out_max_packet,
        next_pkid: 1,
        aliases: None,
        wbuf,
        more: false,
        tokens: None,
        expiry_was_zero,
        expiry,
        blocked: Vec::new(),
        settling: None,
    };
    // resume: what was in flight goes again, same packet ids
    let resend: Vec<(u16, Pending)> = c.inflight.iter().map(|(k, v)| (*k, v.clone())).collect();
    for (pkid, p) in resend {
        match p {
            Pending::Publish(d) => c.write_publish(&d, pkid, true),
            Pending::Release => c.write(&Out::PubRel { pkid, code: 0 }),
        }
    }
    c.queue.set_keep_alive(keep_alive, broker.now_ms());
    let mut link = Link {
        stream,
        rbuf,
        ctl,
        read_full: false,
        peer,
    };
    // a connection attached while the broker began to stop was not among those told to close
    let end = if *broker.inner.shutdown.borrow() {
        c.write(&Out::Disconnect {
            code: reason::SERVER_SHUTTING_DOWN,
            reason: None,
        });
        End::WithWill
    } else {
        loop {
            if let Err(end) = Box::pin(busy(&mut c, &mut link)).await {
                break end;
            }
            // idle: nothing buffered, nothing to write, nothing deliverable
            let mut small = [0u8; 32];
            let woke = tokio::select! {
                biased;
                ctl = &mut link.ctl => Wake::Ctl(ctl.ok()),
                r = link.stream.read(&mut small) => Wake::Read(r.unwrap_or(0)),
                _ = c.queue.notify.notified() => Wake::Deliveries,
            };
            match woke {
                Wake::Ctl(ctl) => break c.closed_by(ctl),
                Wake::Read(0) => break End::WithWill,
                Wake::Read(n) => {
                    link.rbuf.extend_from_slice(&small[..n]);
                    c.queue.touch(broker.now_ms());
                    // the packet loop reads on (512 B, 64 KiB once a read fills that) while
                    // bytes are there
                    link.read_full = false;
                }
                Wake::Deliveries => {}
            }
        }
    };
    let Link { mut stream, .. } = link;
    if !c.wbuf.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&c.wbuf)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    let inflight = std::mem::take(&mut c.inflight);
    let (client_id, expiry) = (std::mem::take(&mut c.client_id), c.expiry);
    drop(c);
    tracing::debug!(%peer, client = %client_id, "mqtt: disconnected");
    broker.detach(
        &client_id,
        Detached {
            generation,
            will: match end {
                End::Normal => None,
                End::WithWill => will.map(|w| *w),
            },
            expiry,
            unacked: inflight,
        },
    );
}

/// What ended an idle wait.
enum Wake {
    Ctl(Option<Ctl>),
    /// Bytes read into the small buffer (0: closed or failed).
    Read(usize),
    Deliveries,
}

/// What the handshake hands the connection: the CONNECT's fields it keeps (not the packet,
/// whose password is dropped with it), the attached session and the buffers.
struct Hello {
    version: Version,
    client_id: String,
    username: Option<String>,
    will: Option<Box<Will>>,
    expiry: Option<u32>,
    expiry_was_zero: bool,
    keep_alive: Option<Duration>,
    out_max: usize,
    out_max_packet: Option<usize>,
    generation: u64,
    queue: Arc<Queue>,
    unacked: BTreeMap<u16, Pending>,
    ctl: oneshot::Receiver<Ctl>,
    /// The CONNACK.
    wbuf: BytesMut,
    /// What came after the CONNECT.
    rbuf: BytesMut,
}

/// The connection's stream and what its loops keep between them.
struct Link<S> {
    stream: S,
    rbuf: BytesMut,
    ctl: oneshot::Receiver<Ctl>,
    /// The last read filled the buffer (the next one gets 64 KiB).
    read_full: bool,
    peer: SocketAddr,
}

/// CONNECT within the connect timeout, client id rules, authentication, the will, the session,
/// the CONNACK (in the returned write buffer). `None`: refused (and answered) or gone.
async fn handshake<S>(
    broker: &Broker,
    stream: &mut S,
    peer: SocketAddr,
    n: usize,
) -> Option<Box<Hello>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let stats = &broker.inner.stats;
    let mut rbuf = BytesMut::with_capacity(512);
    let cfg = broker.config();

    // CONNECT, within the connect timeout
    let connect = match tokio::time::timeout(
        cfg.connect_timeout,
        read_connect(stream, &mut rbuf, cfg.max_packet_size),
    )
    .await
    {
        Err(_) => {
            tracing::debug!(%peer, "mqtt: no CONNECT within {:?}; closed", cfg.connect_timeout);
            return None;
        }
        Ok(Err((version, e))) => {
            stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, error = %e, "mqtt: connection refused");
            if let Some(v) = version
                .or((e.code == reason::UNSUPPORTED_PROTOCOL_VERSION).then_some(Version::V311))
            {
                let mut b = BytesMut::new();
                wire::encode(&connack(false, e.code, ConnAckProps::default()), v, &mut b);
                let _ = stream.write_all(&b).await;
            }
            return None;
        }
        Ok(Ok(c)) => c,
    };
    let version = connect.version;
    let refuse = |code: u8, why: &str| {
        stats.refused_connects.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("mw_mqtt_refused_connects_total", "component" => "mqtt-broker", "instance" => "broker").increment(1);
        tracing::info!(%peer, client = %connect.client_id, user = ?connect.username, "mqtt: connection refused: {why}");
        let mut b = BytesMut::new();
        wire::encode(
            &connack(
                false,
                code,
                ConnAckProps {
                    reason_string: Some(why.to_string()),
                    ..Default::default()
                },
            ),
            version,
            &mut b,
        );
        b
    };
    if n > cfg.max_connections || *broker.inner.shutdown.borrow() {
        let b = refuse(reason::SERVER_BUSY, "too many connections");
        let _ = stream.write_all(&b).await;
        return None;
    }
    // client id
    let mut client_id = connect.client_id.clone();
    let mut assigned = None;
    if client_id.starts_with("$mw/") {
        let b = refuse(
            reason::CLIENT_ID_NOT_VALID,
            "client ids starting with $mw/ are reserved",
        );
        let _ = stream.write_all(&b).await;
        return None;
    }
    if client_id.is_empty() {
        if version == Version::V311 && !connect.clean_start {
            let b = refuse(
                reason::CLIENT_ID_NOT_VALID,
                "an empty client id needs a clean session",
            );
            let _ = stream.write_all(&b).await;
            return None;
        }
        client_id = format!("mw-{:016x}", rand_u64());
        assigned = Some(client_id.clone());
    }
    // authentication
    if let Err((code, why)) = authenticate(broker, &connect, peer).await {
        let b = refuse(code, &why);
        let _ = stream.write_all(&b).await;
        return None;
    }
    let username = connect.username.clone();
    let acl = &broker.inner.acl;
    let mut will = connect.will.clone();
    if let Some(w) = &will
        && (topic::valid_filter(&w.topic).is_err()
            || w.topic.contains(['+', '#'])
            || w.topic.is_empty())
    {
        let b = refuse(reason::TOPIC_NAME_INVALID, "invalid will topic");
        let _ = stream.write_all(&b).await;
        return None;
    }
    if let Some(w) = &will
        && !acl.may_publish(username.as_deref(), &client_id, &w.topic)
    {
        tracing::info!(%peer, client = %client_id, topic = %w.topic, "mqtt: will topic not allowed by the ACL; the will is dropped");
        will = None;
    }
    // session
    let max_expiry = cfg.max_session_expiry.as_secs().min(u32::MAX as u64 - 1) as u32;
    let expiry = match connect.session_expiry {
        Some(u32::MAX) | None => None,
        Some(e) => Some(e.min(max_expiry)),
    };
    let announced_expiry = match (version, connect.session_expiry) {
        (Version::V5, Some(e)) if e > max_expiry => Some(max_expiry),
        _ => None,
    };
    let (ctl_tx, ctl) = oneshot::channel();
    let attached = broker.attach(&client_id, connect.clean_start, expiry, ctl_tx);
    let mut wbuf = BytesMut::new();
    wire::encode(
        &connack(
            attached.session_present,
            reason::SUCCESS,
            ConnAckProps {
                session_expiry: announced_expiry,
                receive_maximum: Some(cfg.receive_maximum),
                max_qos: None,
                max_packet_size: Some(cfg.max_packet_size as u32),
                assigned_client_id: assigned,
                topic_alias_max: Some(cfg.topic_alias_max),
                reason_string: None,
                server_keep_alive: None,
            },
        ),
        version,
        &mut wbuf,
    );
    tracing::debug!(%peer, client = %client_id, ?version, present = attached.session_present, "mqtt: connected");
    if rbuf.is_empty() {
        rbuf = BytesMut::new();
    }
    Some(Box::new(Hello {
        version,
        client_id,
        username,
        will: will.map(Box::new),
        expiry,
        expiry_was_zero: connect.session_expiry == Some(0) && version == Version::V5,
        keep_alive: (connect.keep_alive > 0)
            .then(|| Duration::from_millis(connect.keep_alive as u64 * 1500)),
        out_max: (cfg.max_inflight.min(connect.receive_maximum).max(1)) as usize,
        out_max_packet: connect.max_packet_size.map(|m| m as usize),
        generation: attached.generation,
        queue: attached.queue,
        unacked: attached.unacked,
        ctl,
        wbuf,
        rbuf,
    }))
}

/// The packet loop while the connection has something to do: decodes what was read (until a
/// subscriber queue is full), drains deliveries, writes, and waits for the next thing — but
/// returns `Ok(())` (idle) as soon as nothing is ready, so its state is freed while the
/// connection idles. `Err`: the connection ends.
async fn busy<S>(c: &mut Conn<'_>, l: &mut Link<S>) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let cfg = c.broker.config();
    let mut blocked_until = None;
    loop {
        // the packets read so far, until one of them fills a subscriber queue: the rest stay
        // in the buffer until that queue has room (so one read of many publishes cannot push a
        // queue past its size)
        while c.blocked.is_empty() {
            match wire::decode(&mut l.rbuf, c.version, cfg.max_packet_size) {
                Ok(None) => break,
                Ok(Some(p)) => match c.handle(p) {
                    Ok(None) => {}
                    Ok(Some(end)) => return Err(end),
                    Err(e) => {
                        c.protocol_error(&e, l.peer);
                        return Err(End::WithWill);
                    }
                },
                Err(e) => {
                    c.protocol_error(&e, l.peer);
                    return Err(End::WithWill);
                }
            }
        }
        if l.rbuf.is_empty() && !l.read_full {
            l.rbuf = BytesMut::new();
        }
        c.settle_ready()?;
        c.drain();
        if !c.wbuf.is_empty() {
            if l.stream.write_all(&c.wbuf).await.is_err() {
                return Err(End::WithWill);
            }
            c.wbuf.clear();
            // an idle connection keeps no buffer
            if !c.more {
                c.wbuf = BytesMut::new();
            }
        }
        if c.blocked.is_empty() {
            blocked_until = None;
        }
        let wait_until = *blocked_until
            .get_or_insert_with(|| tokio::time::Instant::now() + cfg.max_publish_wait);
        // read on while bytes are there (the select tries the read before going idle); idle
        // only without a partial packet in the buffer
        let reading = c.blocked.is_empty();
        let idle = c.blocked.is_empty() && !c.more && l.rbuf.is_empty() && c.settling.is_none();
        if reading {
            let want = if l.read_full { 64 * 1024 } else { 512 };
            if l.rbuf.capacity() - l.rbuf.len() < want / 2 {
                l.rbuf.reserve(want);
            }
        }
        let spare = l.rbuf.capacity() - l.rbuf.len();
        tokio::select! {
            biased;
            ctl = &mut l.ctl => return Err(c.closed_by(ctl.ok())),
            // flow control: a subscriber queue this connection published into is full
            r = tokio::time::timeout_at(wait_until, wait_room(&c.blocked)), if !c.blocked.is_empty() => {
                if r.is_err() {
                    for q in c.blocked.iter().filter(|q| !q.has_room()) {
                        q.mark_slow();
                    }
                    tracing::warn!(client = %c.client_id, "mqtt: a subscriber did not keep up for {:?}; its excess deliveries are dropped until it drains", cfg.max_publish_wait);
                }
                c.blocked.clear();
                // the broker did not read it meanwhile: its keep-alive starts again
                c.queue.touch(c.broker.now_ms());
            }
            r = l.stream.read_buf(&mut l.rbuf), if reading => {
                match r {
                    Ok(0) | Err(_) => return Err(End::WithWill),
                    Ok(n) => l.read_full = n >= spare,
                }
                c.queue.touch(c.broker.now_ms());
            }
            _ = c.queue.notify.notified() => {}
            // the ingest answered the first waiting acknowledgement
            () = settle_wait(&mut c.settling), if c.settling.is_some() => {}
            _ = async {}, if c.more => {}
            _ = std::future::ready(()), if idle => {
                // the idle wait keeps no buffer
                l.rbuf = BytesMut::new();
                l.read_full = false;
                return Ok(());
            }
        }
    }
}

/// Until every queue in `qs` has room again.
async fn wait_room(qs: &[Arc<Queue>]) {
    for q in qs {
        q.room().await;
    }
}

fn connack(session_present: bool, code: u8, props: ConnAckProps) -> Out {
    Out::ConnAck {
        session_present,
        code,
        props: Box::new(props),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

type ConnectError = (Option<Version>, WireError);

async fn read_connect<R: AsyncRead + Unpin>(
    rd: &mut R,
    rbuf: &mut BytesMut,
    max: usize,
) -> Result<Box<Connect>, ConnectError> {
    let mut version = None;
    loop {
        if version.is_none() {
            version = wire::sniff_version(rbuf).map_err(|e| (None, e))?;
        }
        if let Some(v) = version {
            match wire::decode(rbuf, v, max) {
                Ok(Some(In::Connect(c))) => return Ok(c),
                Ok(Some(_)) => {
                    return Err((
                        Some(v),
                        WireError::new(reason::PROTOCOL_ERROR, "the first packet must be CONNECT"),
                    ));
                }
                Ok(None) => {}
                Err(e) => return Err((Some(v), e)),
            }
        }
        match rd.read_buf(rbuf).await {
            Ok(0) | Err(_) => {
                return Err((
                    version,
                    WireError::new(reason::UNSPECIFIED, "connection closed before CONNECT"),
                ));
            }
            Ok(_) => {}
        }
    }
}

async fn authenticate(broker: &Broker, c: &Connect, peer: SocketAddr) -> Result<(), (u8, String)> {
    let inner = &broker.inner;
    let Some(user) = c.username.clone() else {
        if inner.cfg.allow_anonymous {
            return Ok(());
        }
        return Err((
            reason::NOT_AUTHORIZED,
            "a username and password are required".into(),
        ));
    };
    let Some(auth) = inner.auth.clone() else {
        return Err((
            reason::BAD_USERNAME_OR_PASSWORD,
            "this listener has no users".into(),
        ));
    };
    let password = c.password.clone().unwrap_or_default();
    let b = broker.clone();
    let r = tokio::task::spawn_blocking(move || {
        mw_security::login(
            &*auth,
            &b.inner.throttle,
            &user,
            &password,
            Some(peer.ip()),
            Instant::now(),
        )
    })
    .await;
    match r {
        Ok(Ok(_principal)) => Ok(()),
        Ok(Err(e)) => Err((reason::BAD_USERNAME_OR_PASSWORD, e.to_string())),
        Err(_) => Err((reason::UNSPECIFIED, "authentication failed".into())),
    }
}

struct Conn<'a> {
    broker: &'a Broker,
    version: Version,
    client_id: String,
    username: Option<String>,
    queue: Arc<Queue>,
    inflight: BTreeMap<u16, Pending>,
    out_max: usize,
    out_max_packet: Option<usize>,
    next_pkid: u16,
    /// Topic aliases the client set (boxed: most clients use none).
    #[allow(
        clippy::box_collection,
        reason = "8 bytes instead of 48 in every idle connection"
    )]
    aliases: Option<Box<HashMap<u16, String>>>,
    wbuf: BytesMut,
    /// The drain budget ran out with deliveries left.
    more: bool,
    /// Publish rate limit: tokens left and when they were counted (only with a limit).
    tokens: Option<Box<(f64, Instant)>>,
    expiry_was_zero: bool,
    expiry: Option<u32>,
    /// Subscriber queues this connection's publishes filled: it reads no more until they
    /// have room (flow control, see [`crate::broker`]).
    blocked: Vec<Arc<Queue>>,
    /// PUBACKs/PUBRECs not sent yet, in the order of their publishes: the first waits for the
    /// ingest's bus commit of its message ([`crate::broker::Settle`]), those behind it for
    /// their turn (acknowledgements go out in order). Boxed: most connections never have one.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes instead of 32 in every idle connection"
    )]
    settling: Option<Box<std::collections::VecDeque<Settling>>>,
}

/// Resolves when the first waiting acknowledgement of `settling` may have its answers.
/// (Takes the connection's field as it is: boxed, see [`Conn`].)
#[allow(clippy::box_collection, reason = "the field's own type")]
async fn settle_wait(settling: &mut Option<Box<std::collections::VecDeque<Settling>>>) {
    if let Some(front) = settling.as_mut().and_then(|q| q.front_mut())
        && let Some(a) = front
            .wait
            .iter_mut()
            .find(|a| matches!(a, Answer::Waiting(_)))
        && let Answer::Waiting(rx) = a
    {
        let taken = (&mut *rx).await.unwrap_or(false);
        *a = Answer::Done(taken);
    }
}

/// One tap's answer for a waiting acknowledgement.
enum Answer {
    Waiting(oneshot::Receiver<bool>),
    Done(bool),
}

/// An acknowledgement of a QoS 1 (PUBACK) or QoS 2 (PUBREC) publish waiting to be sent.
struct Settling {
    pkid: u16,
    qos2: bool,
    code: u8,
    /// Answers of the acknowledging taps the message went to (all must be `true`).
    wait: Vec<Answer>,
}

impl Conn<'_> {
    fn write(&mut self, out: &Out) {
        wire::encode(out, self.version, &mut self.wbuf);
    }

    /// Sends the acknowledgement now, or queues it behind those still waiting.
    fn ack_later(&mut self, a: Settling) {
        match &mut self.settling {
            None if a.wait.is_empty() => self.write_ack(&a, true),
            None => self.settling = Some(Box::new(std::collections::VecDeque::from([a]))),
            Some(q) => q.push_back(a),
        }
    }

    fn write_ack(&mut self, a: &Settling, taken: bool) {
        // not taken: MQTT 5 says so with its reason code; 3.1.1 has none (see `settle_ready`)
        let code = if taken { a.code } else { reason::UNSPECIFIED };
        if a.qos2 {
            if !taken {
                // the publish may come again: it is not a duplicate then
                self.broker.qos2_released(&self.client_id, a.pkid);
            }
            self.write(&Out::PubRec { pkid: a.pkid, code });
        } else {
            self.write(&Out::PubAck { pkid: a.pkid, code });
        }
    }

    /// Writes the acknowledgements at the front whose answers are all in. A message the
    /// process did not take (the ingest could not commit it) gets reason 0x80 in MQTT 5; an
    /// MQTT 3.1.1 client, which has no negative acknowledgement, is disconnected instead so it
    /// sends the publish again (`Err`).
    fn settle_ready(&mut self) -> Result<(), End> {
        while let Some(q) = &mut self.settling {
            let Some(front) = q.front_mut() else {
                self.settling = None;
                break;
            };
            let mut taken = true;
            let mut ready = true;
            for a in &mut front.wait {
                if let Answer::Waiting(rx) = a {
                    match rx.try_recv() {
                        Ok(t) => *a = Answer::Done(t),
                        Err(oneshot::error::TryRecvError::Empty) => {}
                        Err(oneshot::error::TryRecvError::Closed) => *a = Answer::Done(false),
                    }
                }
                match a {
                    Answer::Done(t) => taken &= *t,
                    Answer::Waiting(_) => ready = false,
                }
            }
            if !ready {
                break;
            }
            let a = q.pop_front().expect("front exists");
            if !taken && self.version != Version::V5 {
                tracing::warn!(client = %self.client_id, pkid = a.pkid,
                    "mqtt: the ingest could not commit a publish; disconnecting the 3.1.1 client so it sends it again");
                if a.qos2 {
                    self.broker.qos2_released(&self.client_id, a.pkid);
                }
                return Err(End::WithWill);
            }
            self.write_ack(&a, taken);
        }
        Ok(())
    }

    fn protocol_error(&mut self, e: &WireError, peer: SocketAddr) {
        self.broker
            .inner
            .stats
            .protocol_errors
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("mw_mqtt_protocol_errors_total", "component" => "mqtt-broker", "instance" => "broker").increment(1);
        tracing::info!(%peer, client = %self.client_id, error = %e, "mqtt: protocol error; disconnected");
        self.write(&Out::Disconnect {
            code: e.code,
            reason: Some(e.what.clone()),
        });
    }

    /// The broker told the connection to close (`None`: the broker is gone).
    fn closed_by(&mut self, ctl: Option<Ctl>) -> End {
        let code = match ctl {
            Some(Ctl::TakenOver) => reason::SESSION_TAKEN_OVER,
            Some(Ctl::KeepAlive) => {
                tracing::info!(client = %self.client_id, "mqtt: keep-alive timeout");
                reason::KEEP_ALIVE_TIMEOUT
            }
            Some(Ctl::Shutdown) | None => reason::SERVER_SHUTTING_DOWN,
        };
        self.write(&Out::Disconnect { code, reason: None });
        End::WithWill
    }

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = if self.next_pkid == u16::MAX {
                1
            } else {
                self.next_pkid + 1
            };
            if !self.inflight.contains_key(&id) {
                return id;
            }
        }
    }

    fn out_publish(&self, d: &Delivery, pkid: u16, dup: bool) -> Out {
        let mut props = d.msg.props.clone();
        if let Some(at) = d.msg.expires_at {
            let left = at.saturating_duration_since(Instant::now());
            props.message_expiry_interval = Some(left.as_secs_f64().ceil() as u32);
        }
        Out::Publish(Box::new(OutPublish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: d.msg.topic.clone(),
            pkid,
            payload: d.msg.payload.clone(),
            props,
            subscription_ids: d.sub_ids.clone(),
        }))
    }

    fn write_publish(&mut self, d: &Delivery, pkid: u16, dup: bool) {
        let out = self.out_publish(d, pkid, dup);
        self.write(&out);
        self.broker.inner.stats.sent.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("mw_mqtt_messages_sent_total", "component" => "mqtt-broker", "instance" => "broker").increment(1);
    }

    /// Moves queued deliveries onto the wire while the in-flight window has room.
    fn drain(&mut self) {
        let stats = &self.broker.inner.stats;
        let mut n = 0;
        self.more = false;
        while n < DRAIN_BUDGET {
            match self.queue.front_qos() {
                None => return,
                Some(q) if q > 0 && self.inflight.len() >= self.out_max => return,
                _ => {}
            }
            let Some(d) = self.queue.pop(Instant::now(), stats) else {
                return;
            };
            if let Some(max) = self.out_max_packet {
                let probe = self.out_publish(&d, if d.qos > 0 { 1 } else { 0 }, false);
                if wire::encoded_len(&probe, self.version) > max {
                    stats.dropped_too_large.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("mw_mqtt_dropped_total", "component" => "mqtt-broker", "instance" => "broker", "reason" => "too_large_for_client")
                        .increment(1);
                    continue;
                }
            }
            let pkid = if d.qos > 0 { self.alloc_pkid() } else { 0 };
            self.write_publish(&d, pkid, false);
            if d.qos > 0 {
                self.inflight.insert(pkid, Pending::Publish(d));
            }
            n += 1;
        }
        self.more = !self.queue.is_empty();
    }

    fn rate_ok(&mut self) -> bool {
        let Some(rate) = self.broker.config().max_publish_rate else {
            return true;
        };
        let now = Instant::now();
        let (t, at) = &mut **self
            .tokens
            .get_or_insert_with(|| Box::new((rate as f64, now)));
        *t = (*t + now.duration_since(*at).as_secs_f64() * rate as f64).min(rate as f64);
        *at = now;
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }

    fn handle(&mut self, p: In) -> Result<Option<End>, WireError> {
        match p {
            In::Connect(_) => Err(WireError::new(
                reason::PROTOCOL_ERROR,
                "second CONNECT on one connection",
            )),
            In::Publish(p) => self.publish(p).map(|()| None),
            In::PubAck(pkid) => {
                if matches!(self.inflight.get(&pkid), Some(Pending::Publish(d)) if d.qos == 1) {
                    self.inflight.remove(&pkid);
                }
                Ok(None)
            }
            In::PubRec(pkid) => {
                let known =
                    matches!(self.inflight.get(&pkid), Some(Pending::Publish(d)) if d.qos == 2);
                if known {
                    self.inflight.insert(pkid, Pending::Release);
                }
                let code = if known || matches!(self.inflight.get(&pkid), Some(Pending::Release)) {
                    0
                } else {
                    reason::PACKET_ID_NOT_FOUND
                };
                self.write(&Out::PubRel { pkid, code });
                Ok(None)
            }
            In::PubRel(pkid) => {
                let known = self.broker.qos2_released(&self.client_id, pkid);
                self.write(&Out::PubComp {
                    pkid,
                    code: if known {
                        0
                    } else {
                        reason::PACKET_ID_NOT_FOUND
                    },
                });
                Ok(None)
            }
            In::PubComp(pkid) => {
                if matches!(self.inflight.get(&pkid), Some(Pending::Release)) {
                    self.inflight.remove(&pkid);
                }
                Ok(None)
            }
            In::Subscribe { pkid, filters, id } => {
                let mut codes = Vec::with_capacity(filters.len());
                for f in filters {
                    let code = match topic::parse_subscription(&f.filter) {
                        Err(_) => reason::TOPIC_FILTER_INVALID,
                        Ok(s)
                            if !self.broker.inner.acl.may_subscribe(
                                self.username.as_deref(),
                                &self.client_id,
                                s.filter,
                            ) =>
                        {
                            reason::NOT_AUTHORIZED
                        }
                        Ok(s) if s.group.is_some() && f.no_local => reason::PROTOCOL_ERROR,
                        Ok(s) => {
                            let sub = Sub {
                                group: s.group.map(str::to_string),
                                filter: s.filter.to_string(),
                                qos: f.qos.min(2),
                                no_local: f.no_local,
                                retain_as_published: f.retain_as_published,
                                id,
                            };
                            self.broker.subscribe(
                                &self.client_id,
                                &f.filter,
                                sub,
                                f.retain_handling,
                            );
                            f.qos.min(2)
                        }
                    };
                    if code == reason::PROTOCOL_ERROR {
                        return Err(WireError::new(
                            reason::PROTOCOL_ERROR,
                            "no local on a shared subscription",
                        ));
                    }
                    codes.push(code);
                }
                self.write(&Out::SubAck { pkid, codes });
                Ok(None)
            }
            In::Unsubscribe { pkid, filters } => {
                let codes = filters
                    .iter()
                    .map(|f| {
                        if self.broker.unsubscribe(&self.client_id, f) {
                            reason::SUCCESS
                        } else {
                            reason::NO_SUBSCRIPTION_EXISTED
                        }
                    })
                    .collect();
                self.write(&Out::UnsubAck { pkid, codes });
                Ok(None)
            }
            In::PingReq => {
                self.write(&Out::PingResp);
                Ok(None)
            }
            In::Disconnect {
                reason: r,
                session_expiry,
            } => {
                if let Some(e) = session_expiry {
                    if self.expiry_was_zero && e != 0 {
                        return Err(WireError::new(
                            reason::PROTOCOL_ERROR,
                            "session expiry set on DISCONNECT after 0 on CONNECT",
                        ));
                    }
                    let max = self
                        .broker
                        .config()
                        .max_session_expiry
                        .as_secs()
                        .min(u32::MAX as u64 - 1) as u32;
                    self.expiry = if e == u32::MAX {
                        None
                    } else {
                        Some(e.min(max))
                    };
                }
                Ok(Some(if r == 0x04 {
                    End::WithWill
                } else {
                    End::Normal
                }))
            }
            In::Auth => Err(WireError::new(
                reason::PROTOCOL_ERROR,
                "AUTH without an authentication method",
            )),
        }
    }

    fn publish(&mut self, mut p: Publish) -> Result<(), WireError> {
        if !self.rate_ok() {
            return Err(WireError::new(
                reason::MESSAGE_RATE_TOO_HIGH,
                "publish rate limit exceeded",
            ));
        }
        if let Some(a) = p.topic_alias {
            if a == 0 || a > self.broker.config().topic_alias_max {
                return Err(WireError::new(
                    reason::TOPIC_ALIAS_INVALID,
                    format!(
                        "topic alias {a} outside 1..={}",
                        self.broker.config().topic_alias_max
                    ),
                ));
            }
            if p.topic.is_empty() {
                p.topic = self
                    .aliases
                    .as_ref()
                    .and_then(|m| m.get(&a))
                    .cloned()
                    .ok_or_else(|| {
                        WireError::new(
                            reason::PROTOCOL_ERROR,
                            format!("topic alias {a} was never set"),
                        )
                    })?;
            } else {
                self.aliases
                    .get_or_insert_with(Default::default)
                    .insert(a, p.topic.clone());
            }
        }
        if p.topic.is_empty() {
            return Err(WireError::new(
                reason::TOPIC_NAME_INVALID,
                "PUBLISH with an empty topic",
            ));
        }
        if p.topic.split('/').count() > topic::MAX_LEVELS {
            return Err(WireError::new(
                reason::TOPIC_NAME_INVALID,
                format!("PUBLISH topic has more than {} levels", topic::MAX_LEVELS),
            ));
        }
        let allowed =
            self.broker
                .inner
                .acl
                .may_publish(self.username.as_deref(), &self.client_id, &p.topic);
        if !allowed {
            metrics::counter!("mw_mqtt_dropped_total", "component" => "mqtt-broker", "instance" => "broker", "reason" => "acl").increment(1);
            tracing::debug!(client = %self.client_id, topic = %p.topic, "mqtt: publish denied by the ACL");
        }
        let denied_code = if self.version == Version::V5 {
            reason::NOT_AUTHORIZED
        } else {
            0
        };
        let msg = || {
            Arc::new(Message {
                expires_at: p
                    .props
                    .message_expiry_interval
                    .map(|s| Instant::now() + Duration::from_secs(s as u64)),
                topic: p.topic.clone(),
                payload: p.payload.clone(),
                qos: p.qos,
                retain: p.retain,
                props: p.props.clone(),
                from: Some(self.client_id.to_string()),
            })
        };
        match p.qos {
            0 => {
                if allowed {
                    self.broker.route(msg(), &mut self.blocked);
                }
            }
            1 => {
                let mut wait = Vec::new();
                if allowed {
                    self.broker
                        .route_settled(msg(), &mut self.blocked, Some(&mut wait));
                }
                self.ack_later(Settling {
                    pkid: p.pkid,
                    qos2: false,
                    code: if allowed { 0 } else { denied_code },
                    wait: wait.into_iter().map(Answer::Waiting).collect(),
                });
            }
            _ => {
                if !allowed {
                    self.write(&Out::PubRec {
                        pkid: p.pkid,
                        code: denied_code,
                    });
                    return Ok(());
                }
                let mut wait = Vec::new();
                match self.broker.qos2_received(&self.client_id, p.pkid) {
                    None => {
                        return Err(WireError::new(
                            reason::RECEIVE_MAXIMUM_EXCEEDED,
                            "more unreleased QoS 2 publishes than the receive maximum",
                        ));
                    }
                    Some(true) => {
                        self.broker
                            .route_settled(msg(), &mut self.blocked, Some(&mut wait));
                    }
                    Some(false) => {} // a resend: routed already
                }
                self.ack_later(Settling {
                    pkid: p.pkid,
                    qos2: true,
                    code: 0,
                    wait: wait.into_iter().map(Answer::Waiting).collect(),
                });
            }
        }
        Ok(())
    }
}
