//! The forwarder: reads the disk buffer and publishes to NATS JetStream, acknowledging a buffer
//! record only after the server's PubAck for it.
//!
//! # Two flows, live first
//! At every (re)connection the forwarder notes the buffer's next sequence number, the *split*.
//! Records from the split on are **live**: they are published as soon as they are appended.
//! Records before it that are not yet acknowledged (buffered while the upstream was
//! unreachable, or in flight when the connection broke) are the **backlog**: drained, oldest
//! first, in a window of its own beside the live one, flagged `historical`. Each flow keeps at
//! most `batch` messages awaiting their PubAck, so live data never waits behind the backlog for
//! more than one window.
//!
//! # Order (the exact guarantee)
//! Within each flow, messages are published in buffer order, which is bus order, so per tag:
//! the live messages of a tag reach the stream in the order the tag produced them, and so do its
//! historical messages; a historical message may reach the stream *after* a newer live message
//! of the same tag (that is what live first means; consumers tell them apart by `historical` and
//! order by `ts`). A broken connection re-queues both flows' unacknowledged records; a record
//! whose PubAck was lost may be sent again, with the same `Nats-Msg-Id`, and the server's
//! duplicate window drops the copy.
//!
//! # Acknowledgement and restart
//! A record is acknowledged in the buffer only after its PubAck (so it is in the stream,
//! replicated and stored as the stream's config says); the buffer deletes it once its segment
//! is wholly acknowledged. After a restart the forwarder resumes at the first unacknowledged
//! record of the buffer's persisted ledger: records PubAck'd in the last `ack_persist_ms` before
//! a crash, and live records acknowledged out of order beyond the ledger's prefix while a
//! backlog drained, are sent again and dropped by the server if they are still within the
//! stream's duplicate window (`duplicate_window_s`).
//!
//! # Disconnect and errors
//! The client (async-nats) reconnects by itself with a backoff (100 ms doubling to 5 s); while
//! it is disconnected nothing is published and the sink keeps appending to the buffer (which
//! applies its full policy). A failed or timed-out PubAck breaks the session: every message in
//! flight is re-queued, and the forwarder starts again after a backoff (100 ms doubling to 5 s,
//! reset by a PubAck), re-creating the stream if it is missing.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use mw_buffer::{Buffer, BufferError, Record, Seq};
use tokio::sync::watch;

use crate::wire;

/// Everything the forwarder needs to connect and publish.
#[derive(Clone)]
pub struct ForwarderConfig {
    /// Instance name (metrics, logs).
    pub name: String,
    pub urls: Vec<String>,
    pub edge_id: String,
    pub site: String,
    pub stream: String,
    pub batch: usize,
    pub duplicate_window: Duration,
    /// Replicas of the stream when it is created here.
    pub replicas: usize,
    pub credentials: Credentials,
    /// CA file and optional client certificate + key.
    pub tls: TlsPaths,
    /// How long a PubAck may take.
    pub ack_timeout: Duration,
}

/// The secrets read from their files. `Debug` never shows them.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    UserPassword(String, Secret),
    Token(Secret),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::UserPassword(u, _) => write!(f, "UserPassword({u:?}, <redacted>)"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// A secret string; `Debug` and `Display` print `<redacted>`.
#[derive(Clone)]
pub struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What the forwarder reports, for status pages and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkStatus {
    pub connected: bool,
    /// Messages sent (each attempt counts).
    pub published: u64,
    /// PubAcks received (each acknowledged one buffer record).
    pub acked: u64,
    /// PubAcks the server marked duplicate (a copy it dropped).
    pub duplicates: u64,
    /// Of the acknowledged messages, those sent from the backlog (`historical`).
    pub acked_historical: u64,
    /// Connections re-established after a loss.
    pub reconnects: u64,
    /// Sessions started: connected, the stream found or created, and the split between live
    /// and backlog fixed (records appended from then on are live).
    pub sessions: u64,
    /// Sessions broken by a failed publish or PubAck.
    pub errors: u64,
    /// Buffer records this version could not read (skipped and acknowledged).
    pub skipped: u64,
    pub last_error: Option<String>,
}

/// A shared view of one uplink's status.
#[derive(Clone, Default)]
pub struct StatusHandle(Arc<Mutex<UplinkStatus>>);

impl StatusHandle {
    pub fn get(&self) -> UplinkStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut UplinkStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

pub(crate) struct Metrics {
    published: metrics::Counter,
    acked: metrics::Counter,
    acked_historical: metrics::Counter,
    duplicates: metrics::Counter,
    reconnects: metrics::Counter,
    errors: metrics::Counter,
    backlog_records: metrics::Gauge,
    backlog_bytes: metrics::Gauge,
    connected: metrics::Gauge,
    latency: metrics::Histogram,
}

impl Metrics {
    pub(crate) fn new(name: &str) -> Metrics {
        let i = name.to_owned();
        Metrics {
            published: metrics::counter!("mw_uplink_published_total", "component" => "uplink", "instance" => i.clone()),
            acked: metrics::counter!("mw_uplink_acked_total", "component" => "uplink", "instance" => i.clone()),
            acked_historical: metrics::counter!("mw_uplink_acked_historical_total", "component" => "uplink", "instance" => i.clone()),
            duplicates: metrics::counter!("mw_uplink_duplicates_total", "component" => "uplink", "instance" => i.clone()),
            reconnects: metrics::counter!("mw_uplink_reconnects_total", "component" => "uplink", "instance" => i.clone()),
            errors: metrics::counter!("mw_errors_total", "component" => "uplink", "instance" => i.clone(),
                "stage" => "sending", "error_type" => "publish"),
            backlog_records: metrics::gauge!("mw_uplink_backlog_records", "component" => "uplink", "instance" => i.clone()),
            backlog_bytes: metrics::gauge!("mw_uplink_backlog_bytes", "component" => "uplink", "instance" => i.clone()),
            connected: metrics::gauge!("mw_uplink_connected", "component" => "uplink", "instance" => i.clone()),
            latency: metrics::histogram!("mw_uplink_publish_latency_seconds", "component" => "uplink", "instance" => i),
        }
    }
}

/// A boxed future of the forwarder's upstreams.
pub type BoxFut<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The acknowledgement of one record: `Ok(duplicate)` once the upstream has it durably
/// (`duplicate`: it said it had it already and dropped the copy).
pub type Ack = BoxFut<'static, Result<bool, String>>;

/// Where the forwarder sends buffer records (the NATS JetStream stream; VictoriaMetrics,
/// [`crate::vm`]). The forwarder keeps the two flows, their windows, the order and the buffer
/// acknowledgements; an upstream only sends and acknowledges.
pub trait Upstream: Send {
    /// Called once connected, at the start of each session: makes sure the destination exists
    /// (the stream, …). An error ends the session (retried after a backoff).
    fn prepare(&mut self) -> BoxFut<'_, Result<(), String>>;
    /// Sends buffer record `seq` (its subject and its body with the `historical` flag, as
    /// [`wire::decode`] gives them) and answers the future of its acknowledgement. Records are
    /// sent in buffer order within each flow; an error ends the session.
    fn send(&mut self, seq: Seq, subject: String, body: Vec<u8>)
    -> BoxFut<'_, Result<Ack, String>>;
}

type AckFut = BoxFut<'static, (Seq, Instant, Result<bool, String>)>;

/// One flow's messages awaiting their PubAck, in publish order.
struct Flow {
    inflight: FuturesOrdered<AckFut>,
    /// The sequence numbers in flight, oldest first (to re-queue them).
    seqs: VecDeque<Seq>,
    historical: bool,
}

impl Flow {
    fn new(historical: bool) -> Flow {
        Flow {
            inflight: FuturesOrdered::new(),
            seqs: VecDeque::new(),
            historical,
        }
    }

    /// Forgets what is in flight; answers the oldest sequence number that was.
    fn reset(&mut self) -> Option<Seq> {
        self.inflight = FuturesOrdered::new();
        let first = self.seqs.front().copied();
        self.seqs.clear();
        first
    }
}

/// Why a session ended.
enum End {
    Shutdown,
    Broken(String),
}

/// The forwarder task to NATS JetStream: runs until `stop` turns true.
pub async fn run(
    cfg: ForwarderConfig,
    buffer: Buffer,
    status: StatusHandle,
    mut stop: watch::Receiver<bool>,
) {
    let m = Arc::new(Metrics::new(&cfg.name));
    let (conn_tx, conn_rx) = watch::channel(false);
    let client = match connect(&cfg, conn_tx, status.clone(), m.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(uplink = %cfg.name, error = %e, "uplink cannot be set up; nothing is forwarded (the buffer keeps the data)");
            status.update(|s| s.last_error = Some(e));
            until(&mut stop, true).await;
            return;
        }
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(cfg.ack_timeout)
        .max_ack_inflight(2 * cfg.batch + 16)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let mut up = Nats {
        js,
        cfg: cfg.clone(),
    };
    drive(
        &cfg.name, cfg.batch, &mut up, conn_rx, &buffer, &status, &m, stop,
    )
    .await;
    // in flight at shutdown: not acknowledged, so sent again (and deduplicated) after a restart
    drop(client);
}

/// The forwarder task to an upstream without connection events of its own (VictoriaMetrics:
/// HTTP requests; a failed one breaks the session): runs until `stop` turns true.
pub async fn run_upstream(
    name: String,
    batch: usize,
    mut up: impl Upstream,
    buffer: Buffer,
    status: StatusHandle,
    stop: watch::Receiver<bool>,
) {
    let m = Metrics::new(&name);
    let (conn_tx, conn_rx) = watch::channel(true);
    m.connected.set(1.0);
    status.update(|s| s.connected = true);
    drive(&name, batch, &mut up, conn_rx, &buffer, &status, &m, stop).await;
    drop(conn_tx);
}

/// The NATS JetStream upstream.
struct Nats {
    js: jetstream::Context,
    cfg: ForwarderConfig,
}

impl Upstream for Nats {
    fn prepare(&mut self) -> BoxFut<'_, Result<(), String>> {
        Box::pin(ensure_stream(&self.js, &self.cfg))
    }

    fn send(
        &mut self,
        seq: Seq,
        subject: String,
        body: Vec<u8>,
    ) -> BoxFut<'_, Result<Ack, String>> {
        Box::pin(async move {
            let msg = PublishMessage::build()
                .payload(body.into())
                .message_id(wire::msg_id(&self.cfg.edge_id, seq));
            let fut = self
                .js
                .send_publish(subject, msg)
                .await
                .map_err(|e| format!("publish: {e}"))?;
            Ok(Box::pin(async move {
                fut.await
                    .map(|a| a.duplicate)
                    .map_err(|e| format!("PubAck for record {seq}: {e}"))
            }) as Ack)
        })
    }
}

/// Forwards `buffer` to `up` until `stop` turns true: sessions while `conn` says connected,
/// each starting with [`Upstream::prepare`], broken ones retried after a backoff (see the
/// module docs). `name` and `batch` are the uplink's.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive(
    name: &str,
    batch: usize,
    up: &mut dyn Upstream,
    mut conn_rx: watch::Receiver<bool>,
    buffer: &Buffer,
    status: &StatusHandle,
    m: &Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut st = State {
        live_next: 0,
        live: Flow::new(false),
        backlog: VecDeque::new(),
        back: Flow::new(true),
        back_next: 0,
        first_session: true,
    };
    let mut failures = 0u32;
    loop {
        // wait for a connection
        tokio::select! {
            () = until(&mut stop, true) => break,
            () = until(&mut conn_rx, true) => {}
        }
        if let Err(e) = up.prepare().await {
            tracing::warn!(uplink = %name, error = %e, "uplink cannot prepare its destination; retrying");
            status.update(|s| s.last_error = Some(e));
            failures += 1;
            if backoff(failures, &mut stop).await {
                break;
            }
            continue;
        }
        st.recover(buffer);
        tracing::debug!(uplink = %name, live_next = st.live_next, back_next = st.back_next,
            backlog = ?st.backlog, "session starts");
        status.update(|s| s.sessions += 1);
        match session(
            name,
            batch,
            up,
            buffer,
            &mut st,
            status,
            m,
            &mut stop,
            &mut conn_rx,
            &mut failures,
        )
        .await
        {
            End::Shutdown => break,
            End::Broken(why) => {
                tracing::debug!(uplink = %name, reason = %why, live_next = st.live_next,
                    back_next = st.back_next, backlog = ?st.backlog, "session broken");
                m.errors.increment(1);
                tracing::warn!(uplink = %name, reason = %why, "uplink session broken; unacknowledged records are sent again");
                status.update(|s| {
                    s.errors += 1;
                    s.last_error = Some(why);
                });
                failures += 1;
                if backoff(failures, &mut stop).await {
                    break;
                }
            }
        }
    }
}

/// Resolves once the watch holds `v` (or its sender is gone).
async fn until(rx: &mut watch::Receiver<bool>, v: bool) {
    let _ = rx.wait_for(|x| *x == v).await;
}

/// Sleeps 100 ms doubling to 5 s; true if shutdown came first.
async fn backoff(failures: u32, stop: &mut watch::Receiver<bool>) -> bool {
    let d = Duration::from_millis((100u64 << failures.min(6)).min(5000));
    tokio::select! {
        () = until(stop, true) => true,
        () = tokio::time::sleep(d) => false,
    }
}

async fn connect(
    cfg: &ForwarderConfig,
    conn_tx: watch::Sender<bool>,
    status: StatusHandle,
    m: Arc<Metrics>,
) -> Result<async_nats::Client, String> {
    let name = cfg.name.clone();
    let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let conn_tx = Arc::new(conn_tx);
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("millwright uplink {}", cfg.name))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|n| Duration::from_millis((100u64 << n.min(6)).min(5000)))
        .event_callback(move |ev| {
            let (seen, conn_tx, status, m, name) = (
                seen.clone(),
                conn_tx.clone(),
                status.clone(),
                m.clone(),
                name.clone(),
            );
            async move {
                match ev {
                    async_nats::Event::Connected => {
                        if seen.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            m.reconnects.increment(1);
                            status.update(|s| s.reconnects += 1);
                            tracing::info!(uplink = %name, "uplink reconnected");
                        } else {
                            tracing::info!(uplink = %name, "uplink connected");
                        }
                        m.connected.set(1.0);
                        status.update(|s| s.connected = true);
                        let _ = conn_tx.send(true);
                    }
                    async_nats::Event::Disconnected => {
                        m.connected.set(0.0);
                        status.update(|s| s.connected = false);
                        tracing::warn!(uplink = %name, "uplink disconnected; buffering");
                        let _ = conn_tx.send(false);
                    }
                    e @ (async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_)) => {
                        // e.g. "server error: authorization violation"; never carries a secret
                        tracing::warn!(uplink = %name, error = %e, "uplink connection error");
                        status.update(|s| s.last_error = Some(e.to_string()));
                    }
                    other => tracing::debug!(uplink = %name, event = %other, "uplink client event"),
                }
            }
        });
    opts = with_auth(opts, &cfg.credentials, &cfg.tls);
    // never shows credentials: the URLs were checked to carry none
    async_nats::connect_with_options(cfg.urls.clone(), opts)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", cfg.urls.join(",")))
}

/// CA file and optional client certificate + key.
pub(crate) type TlsPaths = Option<(
    std::path::PathBuf,
    Option<(std::path::PathBuf, std::path::PathBuf)>,
)>;

/// `opts` with the credentials and TLS files of an uplink (or of `[remote_config]`).
pub(crate) fn with_auth(
    mut opts: async_nats::ConnectOptions,
    credentials: &Credentials,
    tls: &TlsPaths,
) -> async_nats::ConnectOptions {
    opts = match credentials {
        Credentials::None => opts,
        Credentials::UserPassword(u, p) => opts.user_and_password(u.clone(), p.0.clone()),
        Credentials::Token(t) => opts.token(t.0.clone()),
    };
    if let Some((ca, client)) = tls {
        opts = opts.require_tls(true).add_root_certificates(ca.clone());
        if let Some((cert, key)) = client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
    }
    opts
}

async fn ensure_stream(js: &jetstream::Context, cfg: &ForwarderConfig) -> Result<(), String> {
    let subject = format!("mw.{}.>", cfg.site);
    js.get_or_create_stream(stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![subject.clone()],
        storage: stream::StorageType::File,
        duplicate_window: cfg.duplicate_window,
        num_replicas: cfg.replicas,
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("stream {} ({subject}): {e}", cfg.stream))
}

struct State {
    live_next: Seq,
    live: Flow,
    /// Ranges still to drain, oldest first.
    backlog: VecDeque<Range<Seq>>,
    back: Flow,
    back_next: Seq,
    first_session: bool,
}

impl State {
    /// At the start of a session: what was in flight goes (back) to the backlog, the split is
    /// the buffer's next sequence number.
    fn recover(&mut self, buffer: &Buffer) {
        let split = buffer.stats().next_seq;
        if self.first_session {
            self.first_session = false;
            if let Some(first) = buffer.first_unacked()
                && first < split
            {
                self.backlog.push_back(first..split);
            }
        } else {
            if let Some(first) = self.back.reset() {
                self.back_next = first;
            }
            let live_from = self.live.reset().unwrap_or(self.live_next);
            if live_from < split {
                self.backlog.push_back(live_from..split);
            }
        }
        if let Some(r) = self.backlog.front() {
            self.back_next = self.back_next.max(r.start);
        }
        self.live_next = split;
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    name: &str,
    batch: usize,
    up: &mut dyn Upstream,
    buffer: &Buffer,
    st: &mut State,
    status: &StatusHandle,
    m: &Metrics,
    stop: &mut watch::Receiver<bool>,
    conn: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> End {
    type ReadFut =
        Pin<Box<dyn std::future::Future<Output = Result<Vec<Record>, BufferError>> + Send>>;
    let mut live_read: Option<ReadFut> = None;
    let mut gauges_at = Instant::now();
    loop {
        if gauges_at.elapsed() >= Duration::from_millis(500) {
            gauges_at = Instant::now();
            let s = buffer.stats();
            m.backlog_records.set(s.pending_records as f64);
            m.backlog_bytes.set(s.used_bytes as f64);
        }
        // the backlog: refill its window once it is half empty (a buffer read costs about the
        // same for one record as for a hundred)
        while st.back.seqs.len() <= batch / 2 && !st.backlog.is_empty() {
            let range = st.backlog[0].clone();
            let from = st.back_next.max(range.start);
            let want = batch - st.back.seqs.len();
            let b = buffer.clone();
            let recs = match tokio::task::spawn_blocking(move || b.read_from(from, want)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return End::Broken(format!("reading the buffer: {e}")),
                Err(e) => return End::Broken(format!("reading the buffer: {e}")),
            };
            let recs: Vec<Record> = recs.into_iter().filter(|r| r.seq < range.end).collect();
            if recs.is_empty() {
                st.backlog.pop_front(); // drained (what is left of it was dropped or acknowledged)
                continue;
            }
            if let Err(e) = publish(
                name,
                up,
                buffer,
                &mut st.back,
                &mut st.back_next,
                recs,
                status,
                m,
            )
            .await
            {
                return End::Broken(e);
            }
        }
        if live_read.is_none() && st.live.seqs.len() <= batch / 2 {
            let (b, from, n) = (buffer.clone(), st.live_next, batch - st.live.seqs.len());
            live_read = Some(Box::pin(async move { b.next_batch(from, n).await }));
        }
        // biased, live before the backlog: the backlog's PubAcks are nearly always ready while
        // it drains and must not starve new data
        tokio::select! {
            biased;
            () = until(stop, true) => return End::Shutdown,
            () = until(conn, false) => return End::Broken("disconnected".into()),
            r = async { live_read.as_mut().expect("checked").await }, if live_read.is_some() => {
                live_read = None;
                let recs = match r {
                    Ok(r) => r,
                    Err(e) => return End::Broken(format!("reading the buffer: {e}")),
                };
                if let Err(e) =
                    publish(name, up, buffer, &mut st.live, &mut st.live_next, recs, status, m).await
                {
                    return End::Broken(e);
                }
            }
            Some((seq, t0, r)) = st.live.inflight.next(), if !st.live.inflight.is_empty() => {
                if let Err(e) = acked(buffer, &mut st.live, seq, t0, r, status, m) {
                    return End::Broken(e);
                }
                *failures = 0;
            }
            Some((seq, t0, r)) = st.back.inflight.next(), if !st.back.inflight.is_empty() => {
                if let Err(e) = acked(buffer, &mut st.back, seq, t0, r, status, m) {
                    return End::Broken(e);
                }
                *failures = 0;
            }
        }
    }
}

/// Publishes `recs` in order; `next` follows each record sent, so a failure in the middle leaves
/// it at the first record not sent.
#[allow(clippy::too_many_arguments)]
async fn publish(
    name: &str,
    up: &mut dyn Upstream,
    buffer: &Buffer,
    flow: &mut Flow,
    next: &mut Seq,
    recs: Vec<Record>,
    status: &StatusHandle,
    m: &Metrics,
) -> Result<(), String> {
    let mut sent = 0u64;
    let mut skipped = 0u64;
    let r = publish_each(name, up, buffer, flow, next, recs, &mut sent, &mut skipped).await;
    m.published.increment(sent);
    status.update(|s| {
        s.published += sent;
        s.skipped += skipped;
    });
    r
}

#[allow(clippy::too_many_arguments)]
async fn publish_each(
    name: &str,
    up: &mut dyn Upstream,
    buffer: &Buffer,
    flow: &mut Flow,
    next: &mut Seq,
    recs: Vec<Record>,
    sent: &mut u64,
    skipped: &mut u64,
) -> Result<(), String> {
    for r in recs {
        let Some((subject, body)) = wire::decode(&r.payload, flow.historical) else {
            // not a record of ours: skip it rather than block the buffer forever
            tracing::error!(uplink = %name, seq = r.seq, "uplink: unreadable buffer record skipped");
            *skipped += 1;
            let _ = buffer.ack(r.seq);
            *next = r.seq + 1;
            continue;
        };
        let t0 = Instant::now();
        let fut = up.send(r.seq, subject, body).await?;
        flow.seqs.push_back(r.seq);
        *next = r.seq + 1;
        let seq = r.seq;
        flow.inflight
            .push_back(Box::pin(async move { (seq, t0, fut.await) }));
        *sent += 1;
    }
    Ok(())
}

fn acked(
    buffer: &Buffer,
    flow: &mut Flow,
    seq: Seq,
    t0: Instant,
    r: Result<bool, String>,
    status: &StatusHandle,
    m: &Metrics,
) -> Result<(), String> {
    let duplicate = r?;
    flow.seqs.pop_front();
    m.latency.record(t0.elapsed().as_secs_f64());
    if let Err(e) = buffer.ack(seq) {
        // recorded in memory; persisting the ledger is retried by the buffer
        tracing::warn!(error = %e, "uplink: acknowledging a buffer record failed");
    }
    m.acked.increment(1);
    if flow.historical {
        m.acked_historical.increment(1);
    }
    if duplicate {
        m.duplicates.increment(1);
    }
    status.update(|s| {
        s.acked += 1;
        s.duplicates += u64::from(duplicate);
        s.acked_historical += u64::from(flow.historical);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let c = Credentials::UserPassword("edge1".into(), Secret("hunter2".into()));
        let t = Credentials::Token(Secret("tok-123".into()));
        let shown = format!("{c:?} {t:?} {:?}", Secret("x-secret".into()));
        assert!(
            shown.contains("edge1") && shown.contains("<redacted>"),
            "{shown}"
        );
        for s in ["hunter2", "tok-123", "x-secret"] {
            assert!(!shown.contains(s), "{shown}");
        }
    }
}
