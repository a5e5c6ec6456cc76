//! The per-device poll loop: one task per [`DeviceConfig`], a thin shell around the pure
//! [`crate::plan`] and [`crate::codec`].
//!
//! Every `poll_interval` the task reads all of the device's tags — grouped into as few requests
//! as the protocol allows (see [`crate::plan`]) — and publishes **one batch with one sample per
//! tag**, whatever the outcome, then reports the cycle with [`SourceHandle::cycle_done`]
//! (failed cycles count too: readiness means "every device has completed one cycle").
//!
//! # Outcomes per request
//! | outcome | tags of the request get | connection | `mw_errors_total{error_type}` |
//! |---|---|---|---|
//! | response | `Good`, value via [`TagDef::convert_raw`] (scaling and type), `source_ts = receive_ts` = time of the response | kept | — |
//! | Modbus exception | `Bad("modbus exception: illegal data address (2)")` | kept | `exception` |
//! | no response within `timeout` | `Bad("timeout after 1000 ms")` | dropped (a late answer must not be taken for the next one) | `timeout` |
//! | I/O error, connection closed | `Bad("disconnected: connection reset")` | dropped | `io` |
//! | malformed/short/mismatched response | `Bad("protocol error: …")` | dropped | `protocol` |
//!
//! A bad sample carries the tag's **last good value** if there was one, else a neutral value
//! (`F64(NaN)` for numeric tags, `Bool(false)` for bool tags); its `source_ts` is the poll time
//! and `receive_ts` the time the failure was known. An "illegal data address" (2) or "gateway target device failed to respond" (11) answer to a request
//! that merged several tags makes the poller read those tags one by one from the next cycle on,
//! so only the tag that is really unmapped stays bad.
//!
//! # Disconnect and restart
//! Connecting (name resolution included) is bounded by `timeout`. The device's state is `Up`
//! once it answers a request (data or exception); a TCP connect alone is not enough, so a
//! device that accepts connections and never answers stays
//! `Down("disconnected: timeout after … ms")`. After a failed connect or a dropped connection
//! the device is `Down(reason)` and the next attempt waits a backoff that starts at 250 ms and
//! doubles up to `backoff_max`; attempts happen on poll ticks, so the effective delay is the
//! backoff rounded up to the next tick. The backoff resets once the device answers a request.
//! Each transition between answering and not (and the first failure) is also published as a
//! `ConnectionChange` event (`source = "modbus/DEVICE"`) in the same batch as that cycle's
//! samples, before them.
//! **While disconnected, every poll tick still publishes one bad sample per tag**
//! (`Bad("disconnected: connection refused")`, `Bad("disconnected: connect timeout after
//! 1000 ms")`, …) so every consumer sees the tags go bad and stay bad, and `cycle_done` keeps
//! counting. Errors are logged once per transition (a device failing the same way every cycle
//! is not logged every cycle). A restarted device is picked up by the next attempt; a restarted
//! Millwright starts from scratch (no state is persisted), first cycle immediately.
//!
//! # Overload
//! The loop awaits [`Publisher::publish`]. When the bus is full the publish waits, the next tick
//! is delayed (ticks missed meanwhile are not replayed: `MissedTickBehavior::Delay`), and at most
//! one batch per device is ever in hand — nothing queues without bound.
//!
//! # Isolation and shutdown
//! Each device is its own task and every wait (resolve, connect, request, publish) is either
//! bounded by `timeout` or raced against the shutdown signal, so a hanging device never stalls
//! another one. When the shutdown watch turns `true` (or its sender is dropped) the task drops
//! its connection and returns within one scheduler turn, even in the middle of a request.
//!
//! # Writes
//! Tags configured `writable = true` (holding registers and coils) are registered in the
//! [`mw_bus::WriteRegistry`]; their requests arrive on the device's [`WriteReceiver`] and are
//! carried out **between poll cycles**, one at a time, on the poll connection (a cycle in progress
//! is never cut short for a write). A value is checked first by [`write_request`] — type,
//! `write_min`/`write_max` in engineering units, scaling inverted, the register type's range,
//! the word order — and refused with the reason before anything is sent. Then fc 5 (coil), fc 6
//! (one register) or fc 16 (two registers) is sent, bounded by `timeout`; the answer must echo
//! the request. `Ok` is answered only after the device confirmed; a timeout, I/O or protocol
//! error fails the write **and drops the connection** as a failed read does; an exception fails
//! it and keeps the connection. A write while disconnected fails at once with the reason (it is
//! never kept for later). After a confirmed write the device is read at once, so the new value is
//! published by the poller itself — what the bus carries stays what the device reports. One log
//! line per write (`tag written` / `write refused` / `write failed`, with value and origin).
//!
//! # Metrics
//! Labelled `component="modbus"`, `instance=<device name>`, counted per cycle or request, not per
//! sample: `mw_received_samples_total` (good samples), `mw_received_bytes_total` (data bytes of
//! read responses: 2 per register, 1 per 8 bits), `mw_errors_total{stage="receiving",
//! error_type="timeout|exception|io|protocol|connect"}` (one per failed request or connect),
//! `mw_poll_duration_seconds` (histogram, every cycle), `mw_connected` (0/1) and
//! `mw_reconnects_total` (connections established after the first one), `mw_written_values_total`
//! (confirmed writes) and `mw_errors_total{stage="writing",error_type="write"}` (failed writes;
//! refusals are counted by the registry's `mw_tag_writes_total{outcome="refused"}`).

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use crate::codec::RawValue;
use crate::config::{DeviceConfig, ModbusTag, RegisterTable};
use metrics::{Counter, Gauge, Histogram};
use mw_bus::{Batch, Publisher, SourceHandle, SourceState, WriteReceiver, WriteRequest};
use mw_model::{DataType, Event, EventKind, Quality, Sample, TagDef, Value, now_ns};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use crate::codec;
use crate::plan::{self, ReadRequest};

/// First reconnect delay; doubles up to the device's `backoff_max`.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(250);

/// Why [`run_device`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown signal turned `true` (or its sender was dropped).
    Shutdown,
    /// The bus no longer accepts samples.
    BusClosed,
}

/// Polls one device until shutdown (see the module docs for the full behaviour), carrying out
/// the writes that arrive on `writes` between poll cycles.
pub async fn run_device(
    cfg: DeviceConfig,
    publisher: Publisher,
    status: SourceHandle,
    mut shutdown: watch::Receiver<bool>,
    mut writes: Option<WriteReceiver>,
) -> Stopped {
    let period = cfg.poll_interval.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dev = DevicePoller::new(cfg, status);
    tracing::debug!(device = %dev.cfg.name, endpoint = %dev.cfg.endpoint, requests = dev.requests.len(), "modbus poller started");
    let stopped = loop {
        // Writes are taken only between cycles: a cycle is never cut short, so a request in
        // flight is never abandoned on a connection that stays open.
        tokio::select! {
            biased;
            () = signalled(&mut shutdown) => break Stopped::Shutdown,
            Some(req) = next_write(&mut writes) => {
                tokio::select! {
                    biased;
                    () = signalled(&mut shutdown) => break Stopped::Shutdown,
                    written = dev.write(req) => if written {
                        // Read the device at once, so the written value is published now.
                        ticker.reset_immediately();
                    },
                }
            }
            _ = ticker.tick() => {
                let published = tokio::select! {
                    biased;
                    () = signalled(&mut shutdown) => break Stopped::Shutdown,
                    published = async {
                        let samples = dev.cycle().await;
                        let events = std::mem::take(&mut dev.events);
                        publisher.send(Batch { samples, events }).await
                    } => published,
                };
                if published.is_err() {
                    break Stopped::BusClosed;
                }
            }
        }
    };
    dev.close();
    tracing::debug!(device = %dev.cfg.name, ?stopped, "modbus poller stopped");
    stopped
}

/// The next write request, or never when the device takes no writes.
async fn next_write(writes: &mut Option<WriteReceiver>) -> Option<WriteRequest> {
    match writes {
        Some(w) => w.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves once the watch holds `true` or its sender is gone.
async fn signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

struct Metrics {
    samples: Counter,
    bytes: Counter,
    err_timeout: Counter,
    err_exception: Counter,
    err_io: Counter,
    err_protocol: Counter,
    err_connect: Counter,
    duration: Histogram,
    connected: Gauge,
    reconnects: Counter,
    writes: Counter,
    err_write: Counter,
}

impl Metrics {
    fn new(instance: &str) -> Metrics {
        let l = |n: &'static str| metrics::counter!(n, "component" => "modbus", "instance" => instance.to_owned());
        let e = |t: &'static str| {
            metrics::counter!("mw_errors_total", "component" => "modbus", "instance" => instance.to_owned(),
                "stage" => "receiving", "error_type" => t)
        };
        Metrics {
            samples: l("mw_received_samples_total"),
            bytes: l("mw_received_bytes_total"),
            err_timeout: e("timeout"),
            err_exception: e("exception"),
            err_io: e("io"),
            err_protocol: e("protocol"),
            err_connect: e("connect"),
            duration: metrics::histogram!("mw_poll_duration_seconds", "component" => "modbus", "instance" => instance.to_owned()),
            connected: metrics::gauge!("mw_connected", "component" => "modbus", "instance" => instance.to_owned()),
            reconnects: l("mw_reconnects_total"),
            writes: l("mw_written_values_total"),
            err_write: metrics::counter!("mw_errors_total", "component" => "modbus", "instance" => instance.to_owned(),
                "stage" => "writing", "error_type" => "write"),
        }
    }
}

/// Data of one successful read.
enum Data {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
}

/// Why one read failed.
#[derive(Debug)]
enum ReadError {
    Exception(ExceptionCode),
    Timeout,
    Io(io::Error),
    Protocol(String),
}

impl ReadError {
    /// Quality reason for the request's tags.
    fn reason(&self, timeout: Duration) -> String {
        match self {
            ReadError::Exception(code) => exception_reason(*code),
            ReadError::Timeout => format!("timeout after {} ms", timeout.as_millis()),
            ReadError::Io(e) => format!("disconnected: {}", io_reason(e)),
            ReadError::Protocol(m) => format!("protocol error: {m}"),
        }
    }
}

/// `"modbus exception: illegal data address (2)"`.
pub(crate) fn exception_reason(code: ExceptionCode) -> String {
    let n = u8::from(code);
    let name = match n {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown exception",
    };
    format!("modbus exception: {name} ({n})")
}

/// A short, stable description of a network error (`"connection refused"`).
fn io_reason(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected
        | UnexpectedEof | HostUnreachable | NetworkUnreachable | AddrNotAvailable | TimedOut => {
            e.kind().to_string()
        }
        // tokio-modbus reports a closed stream as `io::Error::last_os_error()`, i.e. a stale errno.
        WouldBlock => "connection closed by peer".to_owned(),
        _ if e.raw_os_error() == Some(0) => "connection closed by peer".to_owned(),
        _ => e.to_string(),
    }
}

struct DevicePoller {
    cfg: DeviceConfig,
    requests: Vec<ReadRequest>,
    unreadable: Vec<(usize, String)>,
    /// Last good value per tag (index as in `cfg.tags`).
    last: Vec<Option<Value>>,
    conn: Option<Context>,
    backoff: Duration,
    retry_at: Instant,
    /// Why the device is disconnected (reason for the tags while waiting to reconnect).
    down_reason: String,
    ever_connected: bool,
    /// The device answered the last request (data or exception) on the current connection.
    answering: bool,
    /// Last error per request (by table and start), to log changes once instead of every cycle.
    request_errors: HashMap<(RegisterTable, u16), String>,
    status: SourceHandle,
    metrics: Metrics,
    /// Connection changes not yet published, and the last one reported (`None`: none yet).
    events: Vec<Event>,
    reported_up: Option<bool>,
}

impl DevicePoller {
    fn new(cfg: DeviceConfig, status: SourceHandle) -> DevicePoller {
        let plan = plan::plan(&cfg.tags, plan::DEFAULT_MAX_GAP);
        for (i, reason) in &plan.unreadable {
            tracing::warn!(device = %cfg.name, tag = %cfg.tags[*i].def.path, "tag cannot be read: {reason}");
        }
        DevicePoller {
            last: vec![None; cfg.tags.len()],
            requests: plan.requests,
            unreadable: plan.unreadable,
            conn: None,
            backoff: INITIAL_BACKOFF.min(cfg.backoff_max),
            retry_at: Instant::now(),
            down_reason: "disconnected: not connected yet".to_owned(),
            ever_connected: false,
            answering: false,
            request_errors: HashMap::new(),
            metrics: Metrics::new(&cfg.name),
            status,
            events: Vec::new(),
            reported_up: None,
            cfg,
        }
    }

    /// Queues a `ConnectionChange` event if the state differs from the last one reported.
    fn report(&mut self, up: bool, reason: Option<String>) {
        if self.reported_up == Some(up) {
            return;
        }
        self.reported_up = Some(up);
        self.events.push(Event::new(
            now_ns(),
            format!("modbus/{}", self.cfg.name),
            EventKind::ConnectionChange { up, reason },
        ));
    }

    fn close(&mut self) {
        self.conn = None;
        self.answering = false;
        self.metrics.connected.set(0.0);
    }

    /// One poll cycle: (re)connect if due, read every request, return one sample per tag.
    async fn cycle(&mut self) -> Vec<Sample> {
        let started = Instant::now();
        let poll_ts = now_ns();
        let mut out: Vec<Option<Sample>> = vec![None; self.cfg.tags.len()];

        if self.conn.is_none() && Instant::now() >= self.retry_at {
            self.connect().await;
        }

        let mut good = 0u64;
        let mut bytes = 0u64;
        let mut to_split = Vec::new();
        for ri in 0..self.requests.len() {
            let req = self.requests[ri].clone();
            if self.conn.is_none() {
                let reason = self.down_reason.clone();
                self.fill_bad(&mut out, &req.tags, &reason, poll_ts);
                continue;
            }
            match self.read(&req).await {
                Ok(data) => {
                    self.answered();
                    if let Some(prev) = self.request_errors.remove(&(req.table, req.start)) {
                        tracing::info!(device = %self.cfg.name, table = %req.table, start = req.start, "read recovered (was: {prev})");
                    }
                    let ts = now_ns();
                    bytes += match &data {
                        Data::Registers(r) => 2 * r.len() as u64,
                        Data::Bits(b) => b.len().div_ceil(8) as u64,
                    };
                    for &ti in &req.tags {
                        let tag = &self.cfg.tags[ti];
                        // The planner puts a tag only in a request that covers it; should that
                        // ever not hold, the empty slice makes a decode error, not a panic.
                        let offset = tag.address.checked_sub(req.start).map(usize::from);
                        let raw = match &data {
                            Data::Registers(r) => codec::decode_registers(
                                tag.def.data_type,
                                tag.word_order,
                                offset.and_then(|o| r.get(o..)).unwrap_or(&[]),
                            ),
                            Data::Bits(b) => codec::decode_bits(
                                tag.def.data_type,
                                offset.and_then(|o| b.get(o..)).unwrap_or(&[]),
                            ),
                        };
                        out[ti] = Some(match raw {
                            Ok(raw) => {
                                let value = tag.def.convert_raw(raw.to_f64());
                                self.last[ti] = Some(value.clone());
                                good += 1;
                                Sample::good(tag.def.path.clone(), value, ts)
                            }
                            Err(e) => bad_sample(
                                &tag.def,
                                self.last[ti].clone(),
                                format!("cannot decode: {e}"),
                                poll_ts,
                            ),
                        });
                    }
                }
                Err(err) => {
                    let reason = err.reason(self.cfg.timeout);
                    let prev = self
                        .request_errors
                        .insert((req.table, req.start), reason.clone());
                    match &err {
                        ReadError::Exception(code) => {
                            self.metrics.err_exception.increment(1);
                            self.answered();
                            if prev.as_deref() != Some(reason.as_str()) {
                                tracing::warn!(device = %self.cfg.name, table = %req.table, start = req.start,
                                    count = req.count, "read refused: {reason}");
                            }
                            // 2: one unmapped address; 11: one point without data (e.g. a sensor dropout
                            // behind a gateway). Either way, read tag by tag so only that tag stays bad.
                            if matches!(
                                code,
                                ExceptionCode::IllegalDataAddress
                                    | ExceptionCode::GatewayTargetDevice
                            ) && req.tags.len() > 1
                            {
                                to_split.push(ri);
                            }
                        }
                        ReadError::Timeout | ReadError::Io(_) | ReadError::Protocol(_) => {
                            match err {
                                ReadError::Timeout => self.metrics.err_timeout.increment(1),
                                ReadError::Io(_) => self.metrics.err_io.increment(1),
                                _ => self.metrics.err_protocol.increment(1),
                            }
                            let down = if reason.starts_with("disconnected: ") {
                                reason.clone()
                            } else {
                                format!("disconnected: {reason}")
                            };
                            self.connection_lost(down);
                        }
                    }
                    self.fill_bad(&mut out, &req.tags, &reason, poll_ts);
                }
            }
        }

        for (ti, reason) in self.unreadable.clone() {
            self.fill_bad(&mut out, &[ti], &reason, poll_ts);
        }

        if !to_split.is_empty() {
            let mut requests = Vec::with_capacity(self.requests.len() + to_split.len());
            for (ri, req) in self.requests.iter().enumerate() {
                if to_split.contains(&ri) {
                    tracing::info!(device = %self.cfg.name, table = %req.table, start = req.start, count = req.count,
                        "merged read refused with illegal data address; reading its tags one by one");
                    self.request_errors.remove(&(req.table, req.start));
                    requests.extend(plan::split(req, &self.cfg.tags));
                } else {
                    requests.push(req.clone());
                }
            }
            self.requests = requests;
        }

        if good > 0 {
            self.metrics.samples.increment(good);
            self.metrics.bytes.increment(bytes);
        }
        let latency = started.elapsed().as_secs_f64();
        self.metrics.duration.record(latency);
        self.status.cycle_done(latency);
        out.into_iter().flatten().collect()
    }

    fn fill_bad(&self, out: &mut [Option<Sample>], tags: &[usize], reason: &str, poll_ts: i64) {
        for &ti in tags {
            let def = &self.cfg.tags[ti].def;
            out[ti] = Some(bad_sample(
                def,
                self.last[ti].clone(),
                reason.to_owned(),
                poll_ts,
            ));
        }
    }

    async fn connect(&mut self) {
        let timeout = self.cfg.timeout;
        let attempt =
            tokio::time::timeout(timeout, open(&self.cfg.endpoint, self.cfg.unit_id)).await;
        match attempt {
            Ok(Ok(ctx)) => {
                self.conn = Some(ctx);
                self.metrics.connected.set(1.0);
                if self.ever_connected {
                    self.metrics.reconnects.increment(1);
                }
                self.ever_connected = true;
                tracing::debug!(device = %self.cfg.name, endpoint = %self.cfg.endpoint, "connected");
            }
            Ok(Err(e)) => {
                self.metrics.err_connect.increment(1);
                self.connection_lost(format!("disconnected: {e}"));
            }
            Err(_) => {
                self.metrics.err_connect.increment(1);
                self.connection_lost(format!(
                    "disconnected: connect timeout after {} ms",
                    timeout.as_millis()
                ));
            }
        }
    }

    /// The device answered a request: it is `Up` (logged once per transition), backoff resets.
    fn answered(&mut self) {
        self.backoff = INITIAL_BACKOFF.min(self.cfg.backoff_max);
        if !self.answering {
            self.answering = true;
            self.status.set_state(SourceState::Up);
            self.report(true, None);
            tracing::info!(device = %self.cfg.name, endpoint = %self.cfg.endpoint, "device answering");
        }
    }

    /// Drops the connection (if any) and schedules the next attempt. Logged once per
    /// transition: a device that keeps failing the same way is not logged every cycle.
    fn connection_lost(&mut self, reason: String) {
        self.conn = None;
        self.metrics.connected.set(0.0);
        let was_answering = std::mem::replace(&mut self.answering, false);
        if was_answering || reason != self.down_reason {
            tracing::warn!(device = %self.cfg.name, endpoint = %self.cfg.endpoint,
                retry_in_ms = self.backoff.as_millis() as u64, "{reason}");
        } else {
            tracing::debug!(device = %self.cfg.name, retry_in_ms = self.backoff.as_millis() as u64, "{reason}");
        }
        self.status.set_state(SourceState::Down(reason.clone()));
        self.report(false, Some(reason.clone()));
        self.down_reason = reason;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = self.backoff.saturating_mul(2).min(self.cfg.backoff_max);
    }

    /// Carries out one write request and answers it; true when the device took the value.
    /// Bounded by the device's `timeout`. A timeout, I/O or protocol error drops the connection,
    /// as a failed read does; an exception keeps it.
    async fn write(&mut self, req: WriteRequest) -> bool {
        let Some(i) = self
            .cfg
            .tags
            .iter()
            .position(|t| t.def.path == req.tag && t.write.is_some())
        else {
            req.refuse("the tag is not writable on this device");
            return false;
        };
        let tag = &self.cfg.tags[i];
        let request = match write_request(tag, &req.value) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(device = %self.cfg.name, tag = %req.tag, value = %req.value, origin = %req.origin, "write refused: {why}");
                req.refuse(why);
                return false;
            }
        };
        let Some(ctx) = self.conn.as_mut() else {
            let why = self.down_reason.clone();
            tracing::warn!(device = %self.cfg.name, tag = %req.tag, origin = %req.origin, "write failed: {why}");
            req.fail(why);
            return false;
        };
        let expected = request.clone();
        let result = tokio::time::timeout(self.cfg.timeout, ctx.call(request)).await;
        let outcome = match result {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(tokio_modbus::Error::Transport(e))) => Err(ReadError::Io(e)),
            Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(ReadError::Protocol(e.to_string())),
            Ok(Ok(Err(code))) => Err(ReadError::Exception(code)),
            Ok(Ok(Ok(response))) => check_write_echo(&expected, &response),
        };
        match outcome {
            Ok(()) => {
                self.answered();
                self.metrics.writes.increment(1);
                tracing::info!(device = %self.cfg.name, tag = %req.tag, value = %req.value, origin = %req.origin, "tag written");
                req.reply(Ok(()));
                true
            }
            Err(e) => {
                let why = e.reason(self.cfg.timeout);
                self.metrics.err_write.increment(1);
                tracing::warn!(device = %self.cfg.name, tag = %req.tag, value = %req.value, origin = %req.origin, "write failed: {why}");
                if matches!(e, ReadError::Exception(_)) {
                    self.answered();
                } else {
                    self.connection_lost(why.clone());
                }
                req.fail(why);
                false
            }
        }
    }

    async fn read(&mut self, req: &ReadRequest) -> Result<Data, ReadError> {
        let Some(ctx) = self.conn.as_mut() else {
            return Err(ReadError::Io(io::Error::from(io::ErrorKind::NotConnected)));
        };
        let (start, count) = (req.start, req.count);
        let request = match req.table {
            RegisterTable::Coil => Request::ReadCoils(start, count),
            RegisterTable::DiscreteInput => Request::ReadDiscreteInputs(start, count),
            RegisterTable::HoldingRegister => Request::ReadHoldingRegisters(start, count),
            RegisterTable::InputRegister => Request::ReadInputRegisters(start, count),
        };
        let response = match tokio::time::timeout(self.cfg.timeout, ctx.call(request)).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(Err(tokio_modbus::Error::Transport(e))) => return Err(ReadError::Io(e)),
            Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                return Err(ReadError::Protocol(e.to_string()));
            }
            Ok(Ok(Err(code))) => return Err(ReadError::Exception(code)),
            Ok(Ok(Ok(response))) => response,
        };
        let n = usize::from(count);
        // tokio-modbus does not check the quantity of a response against the request: do it here.
        let short =
            |got: usize| ReadError::Protocol(format!("asked for {n} {}, got {got}", req.table));
        match (req.table, response) {
            (RegisterTable::Coil, Response::ReadCoils(mut bits))
            | (RegisterTable::DiscreteInput, Response::ReadDiscreteInputs(mut bits)) => {
                // Bits come packed in bytes: up to 7 padding bits follow.
                if bits.len() < n || bits.len() >= n + 8 {
                    return Err(short(bits.len()));
                }
                bits.truncate(n);
                Ok(Data::Bits(bits))
            }
            (RegisterTable::HoldingRegister, Response::ReadHoldingRegisters(regs))
            | (RegisterTable::InputRegister, Response::ReadInputRegisters(regs)) => {
                if regs.len() != n {
                    return Err(short(regs.len()));
                }
                Ok(Data::Registers(regs))
            }
            (_, other) => Err(ReadError::Protocol(format!(
                "unexpected response {:?}",
                other.function_code()
            ))),
        }
    }
}

/// The Modbus request that writes `value` (engineering units) to `tag`, or why it cannot:
/// wrong type, outside the tag's write limits, not representable in its register type after
/// scaling. Pure.
pub fn write_request(tag: &ModbusTag, value: &Value) -> Result<Request<'static>, String> {
    let limits = tag.write.unwrap_or_default();
    let dt = tag.def.data_type;
    if dt == DataType::Bool {
        let b = match value {
            Value::Bool(b) => *b,
            Value::I64(0) | Value::U64(0) => false,
            Value::I64(1) | Value::U64(1) => true,
            other => return Err(format!("a bool tag takes true or false, not {other}")),
        };
        return match tag.table {
            RegisterTable::Coil => Ok(Request::WriteSingleCoil(tag.address, b)),
            t => Err(format!("table {t} cannot be written")),
        };
    }
    let eu = match value {
        Value::Str(_) | Value::Bool(_) => {
            return Err(format!("a {dt} tag takes a number, not {value}"));
        }
        v => v.as_f64().unwrap_or(f64::NAN),
    };
    if !eu.is_finite() {
        return Err(format!("{eu} is not a finite number"));
    }
    if let Some(lo) = limits.min.filter(|lo| eu < *lo) {
        return Err(format!("{eu} is below the tag's write_min {lo}"));
    }
    if let Some(hi) = limits.max.filter(|hi| eu > *hi) {
        return Err(format!("{eu} is above the tag's write_max {hi}"));
    }
    let scaled = tag.def.scaling.is_some();
    let raw = tag.def.scaling.as_ref().map_or(eu, |s| s.invert(eu));
    let whole = |lo: f64, hi: f64| -> Result<f64, String> {
        let r = if scaled { raw.round() } else { raw };
        if r.fract() != 0.0 {
            return Err(format!("a {dt} tag takes whole numbers, not {eu}"));
        }
        if !(lo..=hi).contains(&r) {
            let shown = if scaled {
                format!(" (raw {r} after scaling)")
            } else {
                String::new()
            };
            return Err(format!(
                "{eu}{shown} does not fit a {dt} register ({lo}..={hi})"
            ));
        }
        Ok(r)
    };
    let rv = match dt {
        DataType::U16 => RawValue::U16(whole(0.0, f64::from(u16::MAX))? as u16),
        DataType::I16 => RawValue::I16(whole(f64::from(i16::MIN), f64::from(i16::MAX))? as i16),
        DataType::U32 => RawValue::U32(whole(0.0, f64::from(u32::MAX))? as u32),
        DataType::I32 => RawValue::I32(whole(f64::from(i32::MIN), f64::from(i32::MAX))? as i32),
        DataType::F32 => {
            let f = raw as f32;
            if !f.is_finite() {
                return Err(format!("{eu} does not fit an f32 register"));
            }
            RawValue::F32(f)
        }
        other => return Err(format!("type {other} cannot be written over Modbus")),
    };
    if tag.table != RegisterTable::HoldingRegister {
        return Err(format!("table {} cannot be written", tag.table));
    }
    let regs = codec::encode_registers(rv, tag.word_order).map_err(|e| e.to_string())?;
    Ok(match regs.as_slice() {
        [one] => Request::WriteSingleRegister(tag.address, *one),
        _ => Request::WriteMultipleRegisters(tag.address, regs.into()),
    })
}

/// A write response must echo what was written (fc 5, 6) or its range (fc 15, 16).
fn check_write_echo(req: &Request<'_>, resp: &Response) -> Result<(), ReadError> {
    let ok = match (req, resp) {
        (Request::WriteSingleCoil(a, v), Response::WriteSingleCoil(ra, rv)) => a == ra && v == rv,
        (Request::WriteSingleRegister(a, v), Response::WriteSingleRegister(ra, rv)) => {
            a == ra && v == rv
        }
        (Request::WriteMultipleRegisters(a, v), Response::WriteMultipleRegisters(ra, rn)) => {
            a == ra && v.len() == usize::from(*rn)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ReadError::Protocol(format!(
            "the write response {resp:?} does not match the request"
        )))
    }
}

/// Resolves `endpoint` and connects to the first address that accepts. Errors read like
/// `"connection refused"` or `"cannot resolve host.invalid:502: …"`.
async fn open(endpoint: &str, unit_id: u8) -> Result<Context, String> {
    let addrs: Vec<_> = tokio::net::lookup_host(endpoint)
        .await
        .map_err(|e| format!("cannot resolve {endpoint}: {e}"))?
        .collect();
    let mut last = format!("{endpoint} resolves to no address");
    for addr in addrs {
        match tokio_modbus::client::tcp::connect_slave(addr, Slave(unit_id)).await {
            Ok(ctx) => return Ok(ctx),
            Err(e) => last = io_reason(&e),
        }
    }
    Err(last)
}

/// A bad-quality sample: last good value if any, else a neutral value.
fn bad_sample(def: &TagDef, last: Option<Value>, reason: String, poll_ts: i64) -> Sample {
    let value = last.unwrap_or(match def.data_type {
        DataType::Bool if def.scaling.is_none() => Value::Bool(false),
        _ => Value::F64(f64::NAN),
    });
    Sample {
        tag: def.path.clone(),
        value,
        quality: Quality::Bad(reason),
        source_ts: poll_ts,
        receive_ts: now_ns(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            exception_reason(ExceptionCode::IllegalDataAddress),
            "modbus exception: illegal data address (2)"
        );
        assert_eq!(
            exception_reason(ExceptionCode::GatewayTargetDevice),
            "modbus exception: gateway target device failed to respond (11)"
        );
        assert_eq!(
            exception_reason(ExceptionCode::Custom(0x42)),
            "modbus exception: unknown exception (66)"
        );
        assert_eq!(
            io_reason(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            "connection refused"
        );
        assert_eq!(
            io_reason(&io::Error::from(io::ErrorKind::WouldBlock)),
            "connection closed by peer"
        );
        assert_eq!(
            ReadError::Timeout.reason(Duration::from_millis(1000)),
            "timeout after 1000 ms"
        );
        assert_eq!(
            ReadError::Io(io::Error::from(io::ErrorKind::ConnectionReset)).reason(Duration::ZERO),
            "disconnected: connection reset"
        );
    }

    #[test]
    fn bad_samples_keep_last_value_or_go_neutral() {
        let p = mw_model::TagPath::new("a/b").unwrap();
        let num = TagDef::new(p.clone(), DataType::U16);
        let s = bad_sample(&num, None, "x".into(), 5);
        assert!(matches!(s.value, Value::F64(v) if v.is_nan()));
        assert_eq!((s.quality, s.source_ts), (Quality::Bad("x".into()), 5));
        let s = bad_sample(&num, Some(Value::U64(7)), "x".into(), 5);
        assert_eq!(s.value, Value::U64(7));
        let b = TagDef::new(p, DataType::Bool);
        assert_eq!(
            bad_sample(&b, None, "x".into(), 5).value,
            Value::Bool(false)
        );
    }
}
