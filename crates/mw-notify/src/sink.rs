//! The bus sink: takes every delivery at once (it never blocks the bus), runs its events
//! through the [`Engine`], and hands the notifications to one bounded [`NoteQueue`] and one
//! delivery task per target. A timer ticks the engine (escalations, rate-limit summaries).
//!
//! * **Overload**: the sink's bus queue drops the oldest batch when full (`drop_oldest`,
//!   counted by the bus); a full target queue drops its oldest non-critical notification
//!   (`mw_notify_dropped_total{reason="queue_full"}`).
//! * **Disconnect**: a webhook retries each notification (`retries`, backoff with jitter), the
//!   next ones wait in the queue; an MQTT target keeps them queued until the broker is back.
//!   One warning when a target starts failing, one line when it works again.
//! * **Shutdown**: when the bus closes, what is queued gets [`STOP_GRACE`] to go out.
//! * **Restart**: nothing is kept: an alarm still unacknowledged at a restart escalates only
//!   after its next transition (docs/alarms.md, "Notifications").

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use metrics::{Counter, Gauge};
use mw_bus::{BoxFuture, Overload, Sink, SinkInput, SinkOptions, Wants};

use crate::config::{NotifySection, TargetKind};
use crate::mqtt::MqttTarget;
use crate::policy::{Engine, Step};
use crate::queue::NoteQueue;
use crate::webhook::{Webhook, backoff, random_u32, retryable};

/// How often the engine is ticked.
pub const TICK: Duration = Duration::from_millis(250);
/// What queued notifications get once the bus closed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the sink reads the time (ns since the Unix epoch); tests inject their own.
pub trait Clock: Send + Sync + 'static {
    fn now_ns(&self) -> i64;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        mw_model::now_ns()
    }
}

/// A clock that moves only when told (tests).
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ns: i64) -> ManualClock {
        ManualClock(AtomicI64::new(ns))
    }

    pub fn set(&self, ns: i64) {
        self.0.store(ns, Ordering::SeqCst);
    }

    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(
            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for Arc<ManualClock> {
    fn now_ns(&self) -> i64 {
        self.as_ref().now_ns()
    }
}

/// One target's metrics (labelled `target`).
#[derive(Clone)]
pub struct TargetMetrics {
    pub sent: Counter,
    pub failed: Counter,
    pub retries: Counter,
    pub depth: Gauge,
    pub duplicate: Counter,
    pub rate_limited: Counter,
    pub queue_full: Counter,
}

impl TargetMetrics {
    pub fn new(target: &str) -> TargetMetrics {
        let t = target.to_owned();
        let dropped = |reason: &'static str| metrics::counter!("mw_notify_dropped_total", "target" => t.clone(), "reason" => reason);
        TargetMetrics {
            sent: metrics::counter!("mw_notify_sent_total", "target" => t.clone()),
            failed: metrics::counter!("mw_notify_failed_total", "target" => t.clone()),
            retries: metrics::counter!("mw_notify_retries_total", "target" => t.clone()),
            depth: metrics::gauge!("mw_notify_queue_depth", "target" => t.clone()),
            duplicate: dropped("duplicate"),
            rate_limited: dropped("rate_limited"),
            queue_full: dropped("queue_full"),
        }
    }
}

enum Delivery {
    Webhook(Webhook),
    Mqtt(MqttTarget),
}

struct Target {
    name: String,
    queue: Arc<NoteQueue>,
    metrics: TargetMetrics,
    /// Moved into its task when the sink starts.
    delivery: Option<Delivery>,
}

/// The notification sink of one `[notify]` section.
pub struct NotifySink {
    opts: SinkOptions,
    engine: Engine,
    targets: Vec<Target>,
    clock: Box<dyn Clock>,
    tick: Duration,
    /// Episodes the engine could not open (counted so far).
    untracked: u64,
}

/// The host name reported in notifications.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

impl NotifySink {
    /// Reads every target's secrets and TLS files. `capacity`: the sink's bus queue (batches).
    pub fn build(
        section: &NotifySection,
        site: &str,
        capacity: usize,
        clock: Box<dyn Clock>,
    ) -> Result<NotifySink, String> {
        let mut targets = Vec::new();
        for t in &section.targets {
            let delivery = match &t.kind {
                TargetKind::Webhook(w) => Delivery::Webhook(Webhook::build(&t.name, w)?),
                TargetKind::Mqtt(m) => Delivery::Mqtt(MqttTarget::build(&t.name, m)?),
            };
            targets.push(Target {
                name: t.name.clone(),
                queue: Arc::new(NoteQueue::new(t.queue)),
                metrics: TargetMetrics::new(&t.name),
                delivery: Some(delivery),
            });
        }
        let now = clock.now_ns();
        Ok(NotifySink {
            opts: SinkOptions::new("notify", capacity)
                .wants(Wants::Events)
                .overload(Overload::DropOldest),
            engine: Engine::new(section, site, &host_name(), now),
            targets,
            clock,
            tick: TICK,
            untracked: 0,
        })
    }

    /// Ticks the engine every `d` instead of [`TICK`] (it is also ticked after every delivery
    /// with events: a test with a [`ManualClock`] sets a long period and drives time by
    /// publishing).
    pub fn tick_every(mut self, d: Duration) -> NotifySink {
        self.tick = d.max(Duration::from_millis(1));
        self
    }

    /// Counts the escalation episodes the engine could not open (its bound was reached).
    fn count_untracked(&mut self) {
        let n = self.engine.episodes_refused;
        if n > self.untracked {
            if self.untracked == 0 {
                tracing::warn!(
                    max = crate::policy::MAX_EPISODES,
                    "notify: too many unacknowledged alarms at once; newer ones are not escalated"
                );
            }
            metrics::counter!("mw_notify_escalation_untracked_total").increment(n - self.untracked);
            self.untracked = n;
        }
    }

    fn dispatch(&self, step: Step) {
        for (i, reason) in step.dropped {
            let m = &self.targets[i].metrics;
            match reason {
                crate::policy::DropReason::Duplicate => m.duplicate.increment(1),
                crate::policy::DropReason::RateLimited => m.rate_limited.increment(1),
            }
        }
        for o in step.out {
            let t = &self.targets[o.target];
            if let Some(lost) = t.queue.push(o.note) {
                t.metrics.queue_full.increment(1);
                tracing::debug!(target_name = %t.name, id = %lost.id, "notify: queue full, dropped");
            }
            t.metrics.depth.set(t.queue.len() as f64);
        }
    }
}

impl Sink for NotifySink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            let mut me = *self;
            let mut tasks = Vec::new();
            let mut queues = Vec::new();
            for t in &mut me.targets {
                let q = t.queue.clone();
                queues.push(q.clone());
                let m = t.metrics.clone();
                match t.delivery.take() {
                    Some(Delivery::Webhook(w)) => {
                        tasks.push(tokio::spawn(run_webhook(t.name.clone(), w, q, m)));
                    }
                    Some(Delivery::Mqtt(mt)) => tasks.push(tokio::spawn(mt.run(q, m))),
                    None => {}
                }
            }
            let mut tick = tokio::time::interval(me.tick);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    d = input.recv() => match d {
                        Some(d) => {
                            let now = me.clock.now_ns();
                            for e in &d.batch.events {
                                let step = me.engine.on_event(e, now);
                                me.dispatch(step);
                            }
                            if !d.batch.events.is_empty() {
                                let step = me.engine.tick(now);
                                me.dispatch(step);
                                me.count_untracked();
                            }
                            d.commit();
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        let step = me.engine.tick(me.clock.now_ns());
                        me.dispatch(step);
                    }
                }
            }
            for q in &queues {
                q.close();
            }
            let deadline = tokio::time::Instant::now() + STOP_GRACE;
            for t in tasks {
                let abort = t.abort_handle();
                if tokio::time::timeout_at(deadline, t).await.is_err() {
                    abort.abort();
                }
            }
            let left: usize = queues.iter().map(|q| q.len()).sum();
            if left > 0 {
                tracing::warn!(
                    notifications = left,
                    "notify: stopped with notifications undelivered"
                );
            }
        })
    }
}

/// Delivers what `queue` holds, one notification at a time, until it is closed and empty.
async fn run_webhook(name: String, w: Webhook, queue: Arc<NoteQueue>, m: TargetMetrics) {
    let origin = w.endpoint.origin();
    let mut failing = false;
    let mut failed_attempts: u64 = 0;
    while let Some(n) = queue.pop().await {
        m.depth.set(queue.len() as f64);
        let body = match serde_json::to_vec(&n) {
            Ok(b) => Bytes::from(b),
            Err(_) => continue,
        };
        let mut attempt = 0u32;
        loop {
            let (ok, retry, why) = match w.attempt(&body, &n.id).await {
                Ok(s) if (200..300).contains(&s) => (true, false, String::new()),
                Ok(s) => (false, retryable(s), format!("HTTP status {s}")),
                Err(e) => (false, true, e),
            };
            if ok {
                m.sent.increment(1);
                if failing {
                    tracing::info!(target_name = %name, url = %origin, failed_attempts,
                        "notify: webhook delivering again");
                    failing = false;
                    failed_attempts = 0;
                }
                break;
            }
            failed_attempts += 1;
            if !failing {
                tracing::warn!(target_name = %name, url = %origin, error = %why,
                    "notify: webhook delivery failing (retrying with backoff; logged once until it works again)");
                failing = true;
            }
            if !retry || attempt >= w.retry.retries {
                m.failed.increment(1);
                tracing::debug!(target_name = %name, id = %n.id, error = %why, "notify: notification given up");
                break;
            }
            attempt += 1;
            m.retries.increment(1);
            tokio::time::sleep(backoff(&w.retry, attempt, random_u32())).await;
        }
    }
}
