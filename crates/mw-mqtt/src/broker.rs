//! The broker's shared state: sessions, subscriptions, retained messages, pending wills, and
//! the routing of one publish to every matching session's bounded queue.
//!
//! One mutex guards the state; it is held only to route (match filters, push onto queues) and
//! to change sessions, never across I/O. Each session owns a bounded [`Queue`] that its
//! connection task drains.
//!
//! Flow control, so that a subscriber that keeps up loses nothing and memory stays bounded:
//! a delivery to an online session whose queue holds `max_queued` or more is still queued, and
//! the publisher's connection stops reading (TCP backpressure reaches the publishing client)
//! until that queue has drained to three quarters, for at most `max_publish_wait`. A queue that
//! made a publisher wait that long is marked slow: until it drains, deliveries beyond
//! `max_queued` are dropped and counted (`mw_mqtt_dropped_total{reason="slow_consumer"}`)
//! instead of holding the publishers, so one stalled subscriber costs the others one wait, not
//! their throughput. No online queue holds more than twice `max_queued`. A disconnected
//! persistent session keeps its queue (new deliveries beyond `max_queued` dropped and counted,
//! `reason="queue_full"`), its subscriptions, the QoS 2 packet ids it has received but not
//! released, and its unacknowledged outgoing publishes, which are sent again (DUP) when it
//! resumes; [`crate::persist`] saves all of that across a restart.
//!
//! Matching walks every subscription (O(subscriptions) per publish).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use crate::auth::Acl;
use crate::persist;
use crate::topic;
use crate::wire::{PubProps, RetainHandling, Will};

/// A member of a shared subscription group: session id, granted QoS, subscription id.
type Member<'a> = (&'a str, u8, Option<usize>);

/// Limits and defaults of one broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest packet accepted from a client, in bytes (announced in the MQTT 5 CONNACK).
    pub max_packet_size: usize,
    /// Connections beyond this are refused with "server busy".
    pub max_connections: usize,
    /// Unacknowledged QoS 1/2 publishes in flight towards one client (also bounded by the
    /// client's receive maximum).
    pub max_inflight: u16,
    /// QoS 2 publishes a client may have unreleased at once (the broker's receive maximum).
    pub receive_maximum: u16,
    /// Deliveries queued per session: beyond, a publisher towards an online session waits
    /// (see the module's flow control); towards an offline one, new deliveries are dropped.
    pub max_queued: usize,
    /// Longest a publisher waits for a full subscriber queue before that subscriber is
    /// treated as slow (its excess deliveries dropped).
    pub max_publish_wait: Duration,
    /// Longest a disconnected session is kept (caps MQTT 5 session expiry and 3.1.1 persistent
    /// sessions).
    pub max_session_expiry: Duration,
    /// Topic aliases a client may use towards the broker.
    pub topic_alias_max: u16,
    /// Time allowed between accepting a connection and receiving its CONNECT.
    pub connect_timeout: Duration,
    /// Retained messages kept at most (a new topic beyond this is not retained, and counted).
    pub max_retained: usize,
    /// Publishes per second one connection may send (a token bucket of one second); `None`:
    /// unlimited.
    pub max_publish_rate: Option<u32>,
    /// Whether a client without username may connect.
    pub allow_anonymous: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_packet_size: 1 << 20,
            max_connections: 10_000,
            max_inflight: 32,
            receive_maximum: 1024,
            max_queued: 10_000,
            max_publish_wait: Duration::from_secs(5),
            max_session_expiry: Duration::from_secs(86_400),
            topic_alias_max: 64,
            connect_timeout: Duration::from_secs(10),
            max_retained: 100_000,
            max_publish_rate: None,
            allow_anonymous: false,
        }
    }
}

/// A message as the broker routes it.
#[derive(Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub props: PubProps,
    pub expires_at: Option<Instant>,
    /// The client id of the publisher (for MQTT 5 "no local").
    pub from: Option<String>,
}

impl Message {
    /// A message published by the process itself (no properties, no expiry).
    pub fn new(
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        qos: u8,
        retain: bool,
    ) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: qos.min(2),
            retain,
            props: PubProps::default(),
            expires_at: None,
            from: None,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// The granted QoS (min of publish and subscription).
    pub qos: u8,
    /// The RETAIN flag to send.
    pub retain: bool,
    pub sub_ids: Vec<usize>,
    /// Set on a delivery to an acknowledging tap ([`Broker::tap_acked`]) of a client's QoS 1/2
    /// publish: the publisher's PUBACK/PUBREC waits for it.
    pub settle: Option<Settle>,
}

/// Tells the publishing connection whether the process took a QoS 1/2 message on (`true`:
/// e.g. the ingest's bus commit) — it then sends its PUBACK/PUBREC. Dropped without an answer
/// counts as `false` (the message was dropped on the way).
#[derive(Debug, Clone)]
pub struct Settle(Arc<Mutex<Option<oneshot::Sender<bool>>>>);

impl Settle {
    /// A settle and the receiver of its answer.
    pub(crate) fn new() -> (Settle, oneshot::Receiver<bool>) {
        let (tx, rx) = oneshot::channel();
        (Settle(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// Answers (the first answer counts).
    pub fn done(&self, taken: bool) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(taken);
        }
    }
}

/// A session's bounded delivery queue.
#[derive(Debug)]
pub struct Queue {
    q: Mutex<VecDeque<Delivery>>,
    pub(crate) notify: Notify,
    /// Woken when the queue drains to [`Queue::low`] (publishers waiting for room).
    space: Notify,
    cap: usize,
    /// Set when a publisher gave up waiting for this queue; cleared when it drains.
    slow: std::sync::atomic::AtomicBool,
    /// The attached connection's keep-alive (1.5 × its interval) in ms, 0: none; checked by
    /// the sweeper, so an idle connection needs no timer of its own.
    keep_alive_ms: AtomicU64,
    /// When the attached connection last received something (ms since the broker started).
    last_rx_ms: AtomicU64,
}

/// What [`Queue::push`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Queued, and the queue is at or above its capacity: the publisher should wait.
    Full,
    Dropped,
}

impl Queue {
    fn new(cap: usize) -> Arc<Queue> {
        Arc::new(Queue {
            q: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            space: Notify::new(),
            cap: cap.max(1),
            slow: std::sync::atomic::AtomicBool::new(false),
            keep_alive_ms: AtomicU64::new(0),
            last_rx_ms: AtomicU64::new(0),
        })
    }

    /// Sets the attached connection's keep-alive (`None`: none) and marks it active now.
    pub(crate) fn set_keep_alive(&self, ka: Option<Duration>, now_ms: u64) {
        self.last_rx_ms.store(now_ms, Ordering::Relaxed);
        self.keep_alive_ms.store(
            ka.map_or(0, |k| (k.as_millis() as u64).max(1)),
            Ordering::Relaxed,
        );
    }

    /// The attached connection received something.
    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_rx_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Whether the attached connection's keep-alive ran out at `now_ms`.
    fn keep_alive_expired(&self, now_ms: u64) -> bool {
        let ka = self.keep_alive_ms.load(Ordering::Relaxed);
        ka > 0 && now_ms.saturating_sub(self.last_rx_ms.load(Ordering::Relaxed)) > ka
    }

    /// The length a full queue must drain to before waiting publishers go on.
    fn low(&self) -> usize {
        self.cap * 3 / 4
    }

    /// Queues `d` under the flow-control rules of the module header (`online`: a connection
    /// or the process drains this queue).
    pub(crate) fn push(&self, d: Delivery, stats: &Stats, online: bool) -> Pushed {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        let len = q.len();
        let limit = if !online || self.slow.load(Ordering::Relaxed) {
            self.cap
        } else {
            2 * self.cap
        };
        if len >= limit {
            drop(q);
            let reason = if online {
                stats.dropped_slow_consumer.fetch_add(1, Ordering::Relaxed);
                "slow_consumer"
            } else {
                stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                "queue_full"
            };
            metrics::counter!("mw_mqtt_dropped_total", "component" => "mqtt-broker", "instance" => "broker", "reason" => reason).increment(1);
            return Pushed::Dropped;
        }
        q.push_back(d);
        drop(q);
        self.notify.notify_one();
        if online && len + 1 >= self.cap {
            Pushed::Full
        } else {
            Pushed::Queued
        }
    }

    /// Whether a waiting publisher may go on.
    pub(crate) fn has_room(&self) -> bool {
        self.len() <= self.low()
    }

    /// Waits until [`Queue::has_room`].
    pub(crate) async fn room(&self) {
        loop {
            let n = self.space.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.has_room() {
                return;
            }
            n.await;
        }
    }

    /// Marks the queue slow (a publisher gave up waiting for it).
    pub(crate) fn mark_slow(&self) {
        if !self.slow.swap(true, Ordering::Relaxed) {
            metrics::counter!("mw_mqtt_slow_consumers_total", "component" => "mqtt-broker", "instance" => "broker").increment(1);
        }
    }

    /// The next delivery that has not expired.
    pub(crate) fn pop(&self, now: Instant, stats: &Stats) -> Option<Delivery> {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(d) = q.pop_front() {
            if q.len() == self.low() {
                self.slow.store(false, Ordering::Relaxed);
                self.space.notify_waiters();
            }
            if d.msg.expired(now) {
                stats.expired.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("mw_mqtt_dropped_total", "component" => "mqtt-broker", "instance" => "broker", "reason" => "expired").increment(1);
                continue;
            }
            return Some(d);
        }
        None
    }

    /// Whether a QoS 0 delivery could be taken without using an in-flight slot.
    pub(crate) fn front_qos(&self) -> Option<u8> {
        self.q
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .map(|d| d.qos)
    }

    /// What is queued, oldest first (for a snapshot).
    pub(crate) fn items(&self) -> Vec<Delivery> {
        self.q
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for a delivery (for the process's own subscribers, see [`Broker::tap`]).
    pub async fn recv(&self, stats: &Stats) -> Delivery {
        loop {
            if let Some(d) = self.pop(Instant::now(), stats) {
                return d;
            }
            self.notify.notified().await;
        }
    }
}

/// Counters (also exported through the `metrics` facade).
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// Deliveries to an offline session beyond its `max_queued`.
    pub dropped_queue_full: AtomicU64,
    /// Deliveries to an online session marked slow, beyond its `max_queued`.
    pub dropped_slow_consumer: AtomicU64,
    pub dropped_too_large: AtomicU64,
    pub dropped_retained_full: AtomicU64,
    pub expired: AtomicU64,
    pub refused_connects: AtomicU64,
    pub protocol_errors: AtomicU64,
}

/// A subscription of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sub {
    pub group: Option<String>,
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub id: Option<usize>,
}

/// An outgoing QoS 1/2 publish not yet completed.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// Sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish(Delivery),
    /// PUBREL sent; waiting for PUBCOMP.
    Release,
}

/// Control messages to a connection task.
#[derive(Debug)]
pub(crate) enum Ctl {
    /// Another connection took the session over (MQTT 5 reason 0x8E).
    TakenOver,
    /// The broker stops (MQTT 5 reason 0x8B).
    Shutdown,
    /// Nothing received for 1.5 × the keep-alive interval (MQTT 5 reason 0x8D).
    KeepAlive,
}

#[derive(Debug)]
struct Session {
    generation: u64,
    /// The connection's control channel while one is attached (taken to tell it to close).
    online: Option<oneshot::Sender<Ctl>>,
    /// The process's own subscriber: always online, never expires.
    internal: bool,
    /// An internal subscriber that settles the QoS 1/2 publishes it gets ([`Broker::tap_acked`]).
    acks: bool,
    queue: Arc<Queue>,
    subs: BTreeMap<String, Sub>,
    /// Seconds to keep the session after disconnect; `None`: the broker's maximum.
    expiry: Option<u32>,
    disconnected_at: Option<Instant>,
    inbound_qos2: BTreeSet<u16>,
    unacked: BTreeMap<u16, Pending>,
}

#[derive(Debug)]
struct PendingWill {
    client_id: String,
    due: Instant,
    will: Will,
}

#[derive(Debug, Default)]
struct State {
    /// Boxed: the map's slots stay small (10k idle sessions in a map of 16k slots).
    sessions: HashMap<String, Box<Session>>,
    retained: BTreeMap<String, Arc<Message>>,
    wills: Vec<PendingWill>,
    next_generation: u64,
    round_robin: HashMap<(String, String), usize>,
}

/// What a connection gets when its CONNECT is accepted.
pub(crate) struct Attached {
    pub generation: u64,
    pub session_present: bool,
    pub queue: Arc<Queue>,
    pub unacked: BTreeMap<u16, Pending>,
}

/// What a connection hands back when it ends.
pub(crate) struct Detached {
    pub generation: u64,
    pub will: Option<Will>,
    pub expiry: Option<u32>,
    pub unacked: BTreeMap<u16, Pending>,
}

pub(crate) struct Inner {
    pub cfg: BrokerConfig,
    pub auth: Option<Arc<dyn mw_security::Authenticator>>,
    pub throttle: mw_security::LoginThrottle,
    pub acl: Acl,
    pub stats: Stats,
    state: Mutex<State>,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    taps: AtomicU64,
    changes: AtomicU64,
    sweeper: std::sync::atomic::AtomicBool,
    /// The origin of the connections' millisecond clocks ([`Broker::now_ms`]).
    epoch: Instant,
}

/// The broker: cheap to clone, shared by its listeners and the process's own publishers.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

/// A subscription of the process itself (e.g. the pipeline's MQTT source): a session that is
/// always online, with its own bounded queue.
pub struct Tap {
    broker: Broker,
    queue: Arc<Queue>,
    id: String,
}

impl Tap {
    /// The next message matching the tap's filters.
    pub async fn recv(&self) -> Delivery {
        self.queue.recv(&self.broker.inner.stats).await
    }

    /// The next queued message, if one is there (without waiting).
    pub fn try_recv(&self) -> Option<Delivery> {
        self.queue.pop(Instant::now(), &self.broker.inner.stats)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.broker.lock().sessions.remove(&self.id);
    }
}

impl Broker {
    /// A broker with `cfg`; `auth` verifies usernames and passwords (`None`: every client
    /// with a username is refused, anonymous ones per `cfg.allow_anonymous`).
    pub fn new(
        cfg: BrokerConfig,
        auth: Option<Arc<dyn mw_security::Authenticator>>,
        acl: Acl,
    ) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                cfg,
                auth,
                throttle: mw_security::LoginThrottle::new(Default::default()),
                acl,
                stats: Stats::default(),
                state: Mutex::new(State::default()),
                shutdown: tokio::sync::watch::channel(false).0,
                taps: AtomicU64::new(0),
                changes: AtomicU64::new(0),
                sweeper: Default::default(),
                epoch: Instant::now(),
            }),
        }
    }

    /// Starts the task that publishes delayed wills, ends expired sessions and closes
    /// connections whose keep-alive ran out (every 250 ms;
    /// once per broker; [`crate::listen`] calls it). Needs a tokio runtime.
    pub fn start_sweeper(&self) {
        if self.inner.sweeper.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Broker { inner }.sweep(Instant::now());
            }
        });
    }

    /// Milliseconds since the broker was made (the keep-alive clock).
    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The state, counted as a change (see [`Broker::changes`]).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.changes.fetch_add(1, Ordering::Relaxed);
        self.lock_ro()
    }

    fn lock_ro(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Grows whenever the state may have changed (the persistence task saves when it moved).
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Relaxed)
    }

    /// The persistent sessions (not the process's taps) and retained messages, for
    /// [`crate::persist`].
    pub fn snapshot(&self) -> persist::Snapshot {
        let now = Instant::now();
        let st = self.lock_ro();
        let retained = st
            .retained
            .values()
            .filter(|m| !m.expired(now))
            .map(|m| save_message(m, now))
            .collect();
        let sessions = st
            .sessions
            .iter()
            .filter(|(_, s)| !s.internal && s.expiry != Some(0))
            .map(|(id, s)| persist::SavedSession {
                client_id: id.clone(),
                expiry: s.expiry,
                disconnected_ms: s
                    .disconnected_at
                    .map_or(0, |at| now.duration_since(at).as_millis() as u64),
                subs: s
                    .subs
                    .iter()
                    .map(|(raw, sub)| persist::SavedSub {
                        raw: raw.clone(),
                        group: sub.group.clone(),
                        filter: sub.filter.clone(),
                        qos: sub.qos,
                        no_local: sub.no_local,
                        retain_as_published: sub.retain_as_published,
                        id: sub.id,
                    })
                    .collect(),
                queue: s
                    .queue
                    .items()
                    .iter()
                    .filter(|d| !d.msg.expired(now))
                    .map(|d| save_delivery(d, now))
                    .collect(),
                inbound_qos2: s.inbound_qos2.iter().copied().collect(),
                unacked: s
                    .unacked
                    .iter()
                    .map(|(k, p)| {
                        (
                            *k,
                            match p {
                                Pending::Publish(d) => {
                                    persist::SavedPending::Publish(Box::new(save_delivery(d, now)))
                                }
                                Pending::Release => persist::SavedPending::Release,
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        persist::Snapshot::new(retained, sessions)
    }

    /// Loads a snapshot into an empty broker (before it listens): sessions come back
    /// disconnected, keeping the time they had been disconnected; what expired meanwhile is
    /// skipped. Returns (sessions, retained messages, queued deliveries) restored.
    pub fn restore(&self, snap: persist::Snapshot) -> Result<(usize, usize, usize), String> {
        let now = Instant::now();
        let max = self.inner.cfg.max_session_expiry;
        let mut st = self.lock();
        let mut queued = 0;
        for m in snap.retained {
            let m = load_message(m, now)?;
            st.retained.insert(m.topic.clone(), Arc::new(m));
        }
        for s in snap.sessions {
            let gone = Duration::from_millis(s.disconnected_ms);
            let keep = s
                .expiry
                .map(|e| Duration::from_secs(e as u64).min(max))
                .unwrap_or(max);
            if gone >= keep {
                continue;
            }
            let queue = Queue::new(self.inner.cfg.max_queued);
            for d in s.queue {
                if queue.push(load_delivery(d, now)?, &self.inner.stats, false) != Pushed::Dropped {
                    queued += 1;
                }
            }
            let mut unacked = BTreeMap::new();
            for (k, p) in s.unacked {
                unacked.insert(
                    k,
                    match p {
                        persist::SavedPending::Publish(d) => {
                            Pending::Publish(load_delivery(*d, now)?)
                        }
                        persist::SavedPending::Release => Pending::Release,
                    },
                );
            }
            st.next_generation += 1;
            let generation = st.next_generation;
            st.sessions.insert(
                s.client_id,
                Box::new(Session {
                    generation,
                    online: None,
                    internal: false,
                    acks: false,
                    queue,
                    subs: s
                        .subs
                        .into_iter()
                        .map(|x| {
                            (
                                x.raw,
                                Sub {
                                    group: x.group,
                                    filter: x.filter,
                                    qos: x.qos.min(2),
                                    no_local: x.no_local,
                                    retain_as_published: x.retain_as_published,
                                    id: x.id,
                                },
                            )
                        })
                        .collect(),
                    expiry: s.expiry,
                    disconnected_at: Some(now.checked_sub(gone).unwrap_or(now)),
                    inbound_qos2: s.inbound_qos2.into_iter().collect(),
                    unacked,
                }),
            );
        }
        let counts = (
            st.sessions.values().filter(|s| !s.internal).count(),
            st.retained.len(),
            queued,
        );
        metrics::gauge!("mw_mqtt_sessions", "component" => "mqtt-broker", "instance" => "broker")
            .set(st.sessions.len() as f64);
        metrics::gauge!("mw_mqtt_retained", "component" => "mqtt-broker", "instance" => "broker")
            .set(st.retained.len() as f64);
        Ok(counts)
    }

    /// Asks every connection to close (MQTT 5: DISCONNECT 0x8B).
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        for s in self.lock().sessions.values_mut() {
            if let Some(tx) = s.online.take() {
                let _ = tx.send(Ctl::Shutdown);
            }
        }
    }

    /// Number of sessions (online and offline, without the process's own taps).
    pub fn session_count(&self) -> usize {
        self.lock()
            .sessions
            .values()
            .filter(|s| !s.internal)
            .count()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.lock_ro().retained.len()
    }

    /// Subscribes the process itself to `filters` with at most `capacity` queued deliveries.
    pub fn tap(&self, filters: &[&str], capacity: usize) -> Result<Tap, String> {
        self.tap_with(filters, capacity, false)
    }

    /// [`Broker::tap`] whose deliveries of clients' QoS 1/2 publishes carry a [`Settle`]: the
    /// publisher's PUBACK (PUBREC) is sent only once the tap's consumer answered it (the
    /// ingest: after the bus committed the samples).
    pub fn tap_acked(&self, filters: &[&str], capacity: usize) -> Result<Tap, String> {
        self.tap_with(filters, capacity, true)
    }

    fn tap_with(&self, filters: &[&str], capacity: usize, acks: bool) -> Result<Tap, String> {
        let id = format!(
            "$mw/tap/{}",
            self.inner.taps.fetch_add(1, Ordering::Relaxed)
        );
        let mut subs = BTreeMap::new();
        for f in filters {
            let s = topic::parse_subscription(f)?;
            subs.insert(
                f.to_string(),
                Sub {
                    group: s.group.map(str::to_string),
                    filter: s.filter.to_string(),
                    qos: 2,
                    no_local: false,
                    retain_as_published: true,
                    id: None,
                },
            );
        }
        let queue = Queue::new(capacity);
        let mut st = self.lock();
        st.next_generation += 1;
        let generation = st.next_generation;
        st.sessions.insert(
            id.clone(),
            Box::new(Session {
                generation,
                online: None,
                internal: true,
                acks,
                queue: queue.clone(),
                subs,
                expiry: None,
                disconnected_at: None,
                inbound_qos2: BTreeSet::new(),
                unacked: BTreeMap::new(),
            }),
        );
        Ok(Tap {
            broker: self.clone(),
            queue,
            id,
        })
    }

    /// Publishes a message of the process itself (no ACL applies); how many sessions it was
    /// queued for. The process does not wait for full queues (its publishers are bounded
    /// sinks with their own overload policy).
    pub fn publish(&self, msg: Message) -> usize {
        self.route(Arc::new(msg), &mut Vec::new())
    }

    /// Routes `msg` to every matching session and stores it if retained; returns how many
    /// sessions it was queued for, and adds to `full` the online queues the publisher should
    /// wait for (see the module header).
    pub(crate) fn route(&self, msg: Arc<Message>, full: &mut Vec<Arc<Queue>>) -> usize {
        self.route_settled(msg, full, None)
    }

    /// [`Broker::route`] for a client's publish: a delivery to an acknowledging tap carries a
    /// [`Settle`] whose receiver is added to `settles` (the PUBACK waits for each).
    pub(crate) fn route_settled(
        &self,
        msg: Arc<Message>,
        full: &mut Vec<Arc<Queue>>,
        mut settles: Option<&mut Vec<oneshot::Receiver<bool>>>,
    ) -> usize {
        let stats = &self.inner.stats;
        stats.received.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("mw_mqtt_messages_received_total", "component" => "mqtt-broker", "instance" => "broker").increment(1);
        let mut st = self.lock();
        let st = &mut *st;
        if msg.retain {
            if msg.payload.is_empty() {
                st.retained.remove(&msg.topic);
            } else if st.retained.len() < self.inner.cfg.max_retained
                || st.retained.contains_key(&msg.topic)
            {
                st.retained.insert(msg.topic.clone(), msg.clone());
            } else {
                stats.dropped_retained_full.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("mw_mqtt_dropped_total", "component" => "mqtt-broker", "instance" => "broker", "reason" => "retained_full")
                    .increment(1);
            }
            metrics::gauge!("mw_mqtt_retained", "component" => "mqtt-broker", "instance" => "broker").set(st.retained.len() as f64);
        }
        // per session: (granted qos, retain flag, subscription ids)
        let mut direct: HashMap<&str, (u8, bool, Vec<usize>)> = HashMap::new();
        let mut groups: BTreeMap<(&str, &str), Vec<Member>> = BTreeMap::new();
        for (id, s) in &st.sessions {
            for sub in s.subs.values() {
                if !topic::matches(&msg.topic, &sub.filter) {
                    continue;
                }
                let qos = msg.qos.min(sub.qos);
                match &sub.group {
                    Some(g) => groups
                        .entry((g.as_str(), sub.filter.as_str()))
                        .or_default()
                        .push((id.as_str(), qos, sub.id)),
                    None => {
                        if sub.no_local && msg.from.as_deref() == Some(id.as_str()) {
                            continue;
                        }
                        let e = direct.entry(id.as_str()).or_insert((0, false, Vec::new()));
                        e.0 = e.0.max(qos);
                        e.1 |= sub.retain_as_published && msg.retain;
                        e.2.extend(sub.id);
                    }
                }
            }
        }
        let mut targets: Vec<(String, Delivery)> = direct
            .into_iter()
            .map(|(id, (qos, retain, sub_ids))| {
                (
                    id.to_string(),
                    Delivery {
                        msg: msg.clone(),
                        qos,
                        retain,
                        sub_ids,
                        settle: None,
                    },
                )
            })
            .collect();
        for ((group, filter), mut members) in groups {
            members.sort_by(|a, b| a.0.cmp(b.0));
            let online: Vec<&Member> = members
                .iter()
                .filter(|m| {
                    st.sessions
                        .get(m.0)
                        .is_some_and(|s| s.online.is_some() || s.internal)
                })
                .collect();
            let pool: Vec<&Member> = if online.is_empty() {
                members.iter().collect()
            } else {
                online
            };
            let key = (group.to_string(), filter.to_string());
            let n = st.round_robin.get(&key).copied().unwrap_or(0);
            let (id, qos, sub_id) = *pool[n % pool.len()];
            targets.push((
                id.to_string(),
                Delivery {
                    msg: msg.clone(),
                    qos,
                    retain: false,
                    sub_ids: sub_id.into_iter().collect(),
                    settle: None,
                },
            ));
            st.round_robin.insert(key, n.wrapping_add(1));
        }
        let mut queued = 0;
        for (id, mut d) in targets {
            if let Some(s) = st.sessions.get(&id) {
                if s.acks
                    && d.qos > 0
                    && let Some(list) = settles.as_deref_mut()
                {
                    let (settle, rx) = Settle::new();
                    d.settle = Some(settle);
                    list.push(rx);
                }
                match s.queue.push(d, stats, s.online.is_some() || s.internal) {
                    Pushed::Queued => queued += 1,
                    Pushed::Full => {
                        queued += 1;
                        if !full.iter().any(|q| Arc::ptr_eq(q, &s.queue)) {
                            full.push(s.queue.clone());
                        }
                    }
                    Pushed::Dropped => {}
                }
            }
        }
        queued
    }

    /// Attaches a connection to the session `client_id` (creating it, or replacing it when
    /// `clean_start`); a connection already attached is told to close (taken over).
    pub(crate) fn attach(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry: Option<u32>,
        ctl: oneshot::Sender<Ctl>,
    ) -> Attached {
        let mut st = self.lock();
        st.next_generation += 1;
        let generation = st.next_generation;
        // a will waiting on its delay is cancelled by a new connection to the same session,
        // published at once if that connection ends the session (clean start)
        let mut fire = Vec::new();
        st.wills.retain_mut(|w| {
            if w.client_id != client_id {
                return true;
            }
            if clean_start {
                fire.push(w.will.clone());
            }
            false
        });
        let mut existing = st.sessions.remove(client_id);
        if let Some(tx) = existing.as_mut().and_then(|old| old.online.take()) {
            let _ = tx.send(Ctl::TakenOver);
        }
        let (session, present) = match existing {
            Some(mut s) if !clean_start => {
                s.generation = generation;
                s.online = Some(ctl);
                s.expiry = expiry;
                s.disconnected_at = None;
                (s, true)
            }
            _ => (
                Box::new(Session {
                    generation,
                    online: Some(ctl),
                    internal: false,
                    acks: false,
                    queue: Queue::new(self.inner.cfg.max_queued),
                    subs: BTreeMap::new(),
                    expiry,
                    disconnected_at: None,
                    inbound_qos2: BTreeSet::new(),
                    unacked: BTreeMap::new(),
                }),
                false,
            ),
        };
        let attached = Attached {
            generation,
            session_present: present,
            queue: session.queue.clone(),
            unacked: session.unacked.clone(),
        };
        st.sessions.insert(client_id.to_string(), session);
        metrics::gauge!("mw_mqtt_sessions", "component" => "mqtt-broker", "instance" => "broker")
            .set(st.sessions.len() as f64);
        drop(st);
        for w in fire {
            self.publish_will(client_id, w);
        }
        attached
    }

    /// The connection of `generation` ended: keeps or ends the session and publishes or
    /// schedules its will.
    pub(crate) fn detach(&self, client_id: &str, d: Detached) {
        let now = Instant::now();
        let mut st = self.lock();
        let current = st
            .sessions
            .get(client_id)
            .is_some_and(|s| s.generation == d.generation);
        let mut fire = None;
        if current {
            let max = self.inner.cfg.max_session_expiry;
            let keep = d
                .expiry
                .map(|e| Duration::from_secs(e as u64).min(max))
                .unwrap_or(max);
            if keep.is_zero() {
                st.sessions.remove(client_id);
            } else if let Some(s) = st.sessions.get_mut(client_id) {
                s.online = None;
                s.expiry = d.expiry;
                s.disconnected_at = Some(now);
                s.unacked = d.unacked;
            }
            if let Some(w) = d.will {
                let delay = Duration::from_secs(w.delay as u64).min(keep);
                if delay.is_zero() {
                    fire = Some(w);
                } else {
                    st.wills.push(PendingWill {
                        client_id: client_id.to_string(),
                        due: now + delay,
                        will: w,
                    });
                }
            }
        } else if let Some(w) = d.will {
            // taken over: the new connection decides about the session; a will without delay
            // is published (the network connection was closed by the server)
            if w.delay == 0 {
                fire = Some(w);
            }
        }
        metrics::gauge!("mw_mqtt_sessions", "component" => "mqtt-broker", "instance" => "broker")
            .set(st.sessions.len() as f64);
        drop(st);
        if let Some(w) = fire {
            self.publish_will(client_id, w);
        }
    }

    fn publish_will(&self, client_id: &str, w: Will) {
        let expires_at = w
            .props
            .message_expiry_interval
            .map(|s| Instant::now() + Duration::from_secs(s as u64));
        tracing::debug!(client = client_id, topic = %w.topic, "mqtt: publishing will");
        self.route(
            Arc::new(Message {
                topic: w.topic,
                payload: w.payload,
                qos: w.qos,
                retain: w.retain,
                props: w.props,
                expires_at,
                from: Some(client_id.to_string()),
            }),
            &mut Vec::new(),
        );
    }

    /// Publishes wills whose delay ran out and ends sessions whose expiry ran out.
    pub(crate) fn sweep(&self, now: Instant) {
        let max = self.inner.cfg.max_session_expiry;
        let mut st = self.lock();
        let mut due = Vec::new();
        st.wills.retain(|w| {
            if w.due <= now {
                due.push((w.client_id.clone(), w.will.clone()));
                false
            } else {
                true
            }
        });
        let now_ms = self.now_ms();
        for s in st.sessions.values_mut() {
            if s.online.is_some()
                && s.queue.keep_alive_expired(now_ms)
                && let Some(tx) = s.online.take()
            {
                let _ = tx.send(Ctl::KeepAlive);
            }
        }
        let before = st.sessions.len();
        st.sessions.retain(|_, s| match s.disconnected_at {
            Some(at) if !s.internal => {
                let keep = s
                    .expiry
                    .map(|e| Duration::from_secs(e as u64).min(max))
                    .unwrap_or(max);
                now.duration_since(at) < keep
            }
            _ => true,
        });
        if st.sessions.len() != before {
            metrics::gauge!("mw_mqtt_sessions", "component" => "mqtt-broker", "instance" => "broker").set(st.sessions.len() as f64);
        }
        drop(st);
        for (id, w) in due {
            self.publish_will(&id, w);
        }
    }

    /// Adds or replaces a subscription and queues the retained messages it asks for (after
    /// the SUBACK, which the connection writes before it drains the queue again).
    pub(crate) fn subscribe(&self, client_id: &str, raw: &str, sub: Sub, handling: RetainHandling) {
        let stats = &self.inner.stats;
        let mut st = self.lock();
        let st = &mut *st;
        let Some(s) = st.sessions.get_mut(client_id) else {
            return;
        };
        let is_new = s.subs.insert(raw.to_string(), sub.clone()).is_none();
        let send = sub.group.is_none()
            && match handling {
                RetainHandling::OnSubscribe => true,
                RetainHandling::OnNewSubscription => is_new,
                RetainHandling::Never => false,
            };
        if !send {
            return;
        }
        let now = Instant::now();
        for m in st.retained.values() {
            if m.expired(now) || !topic::matches(&m.topic, &sub.filter) {
                continue;
            }
            s.queue.push(
                Delivery {
                    msg: m.clone(),
                    qos: m.qos.min(sub.qos),
                    retain: true,
                    sub_ids: sub.id.into_iter().collect(),
                    settle: None,
                },
                stats,
                true,
            );
        }
    }

    /// Records an incoming QoS 2 packet id of the session (kept in the session, so a resumed
    /// session still knows it); whether it is new, i.e. the publish must be routed. `None`
    /// when the session holds [`BrokerConfig::receive_maximum`] ids already.
    pub(crate) fn qos2_received(&self, client_id: &str, pkid: u16) -> Option<bool> {
        let mut st = self.lock();
        let s = st.sessions.get_mut(client_id)?;
        if s.inbound_qos2.contains(&pkid) {
            return Some(false);
        }
        if s.inbound_qos2.len() >= self.inner.cfg.receive_maximum as usize {
            return None;
        }
        s.inbound_qos2.insert(pkid);
        Some(true)
    }

    /// PUBREL of an incoming QoS 2 packet id: whether it was known.
    pub(crate) fn qos2_released(&self, client_id: &str, pkid: u16) -> bool {
        let mut st = self.lock();
        st.sessions
            .get_mut(client_id)
            .is_some_and(|s| s.inbound_qos2.remove(&pkid))
    }

    /// Removes a subscription; whether it existed.
    pub(crate) fn unsubscribe(&self, client_id: &str, raw: &str) -> bool {
        let mut st = self.lock();
        st.sessions
            .get_mut(client_id)
            .is_some_and(|s| s.subs.remove(raw).is_some())
    }
}

fn save_message(m: &Message, now: Instant) -> persist::SavedMessage {
    persist::SavedMessage {
        topic: m.topic.clone(),
        payload: persist::b64(&m.payload),
        qos: m.qos,
        retain: m.retain,
        expires_in_ms: m
            .expires_at
            .map(|t| t.saturating_duration_since(now).as_millis() as u64),
        payload_format_indicator: m.props.payload_format_indicator,
        content_type: m.props.content_type.clone(),
        response_topic: m.props.response_topic.clone(),
        correlation_data: m.props.correlation_data.as_deref().map(persist::b64),
        user_properties: m.props.user_properties.clone(),
        from: m.from.clone(),
    }
}

fn load_message(m: persist::SavedMessage, now: Instant) -> Result<Message, String> {
    let expires_at = m.expires_in_ms.map(|ms| now + Duration::from_millis(ms));
    Ok(Message {
        payload: Bytes::from(persist::unb64(
            &m.payload,
            &format!("payload of {}", m.topic),
        )?),
        props: PubProps {
            payload_format_indicator: m.payload_format_indicator,
            message_expiry_interval: m.expires_in_ms.map(|ms| ms.div_ceil(1000) as u32),
            content_type: m.content_type,
            response_topic: m.response_topic,
            correlation_data: match m.correlation_data {
                None => None,
                Some(c) => Some(Bytes::from(persist::unb64(&c, "correlation data")?)),
            },
            user_properties: m.user_properties,
        },
        topic: m.topic,
        qos: m.qos.min(2),
        retain: m.retain,
        expires_at,
        from: m.from,
    })
}

fn save_delivery(d: &Delivery, now: Instant) -> persist::SavedDelivery {
    persist::SavedDelivery {
        msg: save_message(&d.msg, now),
        qos: d.qos,
        retain: d.retain,
        sub_ids: d.sub_ids.clone(),
    }
}

fn load_delivery(d: persist::SavedDelivery, now: Instant) -> Result<Delivery, String> {
    Ok(Delivery {
        msg: Arc::new(load_message(d.msg, now)?),
        qos: d.qos.min(2),
        retain: d.retain,
        sub_ids: d.sub_ids,
        settle: None,
    })
}
