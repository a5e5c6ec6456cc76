//! One task per stream: fetch a batch from the shared durable pull consumer, write its samples
//! to VictoriaMetrics and its events to PostgreSQL, then acknowledge each message whose write
//! succeeded and nak (with a bounded backoff delay) each whose write failed.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use tokio::sync::{Mutex, watch};

use crate::config::CentralConfig;
use crate::metrics::Metrics;
use crate::wire::{self, Envelope, Item};
use mw_uplink::vm::VmClient;

/// The PostgreSQL side, shared by the stream tasks: the connection string (with its password)
/// and the current client, reconnected after a failure.
pub struct Pg {
    pub config: tokio_postgres::Config,
    /// `None`: not connected yet, or the connection broke.
    pub client: Mutex<Option<tokio_postgres::Client>>,
    /// The migrations have been applied (by this process, once).
    pub migrated: std::sync::atomic::AtomicBool,
    /// `postgres_tls`, loaded.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Pg {
    async fn insert(&self, rows: &[wire::EventRow]) -> Result<u64, crate::pg::PgError> {
        let mut guard = self.client.lock().await;
        let mut client = match guard.take() {
            Some(c) if !c.is_closed() => c,
            _ => crate::pg::connect(&self.config, self.tls.as_ref()).await?,
        };
        if !self.migrated.load(std::sync::atomic::Ordering::SeqCst) {
            // PostgreSQL was unreachable at start: the schema first
            let applied = crate::pg::migrate(&mut client).await?;
            tracing::info!(applied = ?applied, "central PostgreSQL schema up to date");
            self.migrated
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let n = crate::pg::insert_events(&client, rows).await?;
        *guard = Some(client);
        Ok(n)
    }
}

/// The nak delay after `failures` failed writes in a row: 200 ms doubling, at most 10 s.
pub fn nak_delay(failures: u32) -> Duration {
    Duration::from_millis((200u64 << failures.min(6)).min(10_000))
}

/// Gets (or creates: the first replica to arrive does) the durable pull consumer.
async fn consumer(
    js: &jetstream::Context,
    cfg: &CentralConfig,
    stream: &str,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
    s.get_or_create_consumer(
        &cfg.consumer,
        pull::Config {
            durable_name: Some(cfg.consumer.clone()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: cfg.ack_wait,
            max_deliver: if cfg.max_deliver == 0 {
                -1
            } else {
                cfg.max_deliver
            },
            filter_subject: cfg.filter_subject.clone().unwrap_or_default(),
            max_ack_pending: (cfg.batch as i64 * 16).max(1000),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| format!("consumer {} on stream {stream}: {e}", cfg.consumer))
}

/// Runs until `stop` turns true; the batch in hand is finished (written, acknowledged) first.
pub async fn run_stream(
    js: jetstream::Context,
    cfg: Arc<CentralConfig>,
    stream: String,
    pg: Option<Arc<Pg>>,
    m: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut vm = VmClient::new(cfg.victoria_metrics.clone());
    let mut failures = 0u32;
    let mut lag_started = false;
    'outer: while !*stop.borrow() {
        let c = match consumer(&js, &cfg, &stream).await {
            Ok(c) => c,
            Err(e) => {
                m.error(&stream, "receiving", "consumer");
                tracing::warn!(stream = %stream, error = %e, "central: no consumer yet; retrying");
                failures += 1;
                if sleep_or_stop(nak_delay(failures), &mut stop).await {
                    break;
                }
                continue;
            }
        };
        tracing::info!(stream = %stream, consumer = %cfg.consumer, "central consuming");
        if !lag_started {
            lag_started = true;
            tokio::spawn(lag_task(c.clone(), stream.clone(), m.clone(), stop.clone()));
        }
        failures = 0;
        loop {
            if *stop.borrow() {
                break 'outer;
            }
            let fetched = c
                .fetch()
                .max_messages(cfg.batch)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut msgs = match fetched {
                Ok(ms) => ms,
                Err(e) => {
                    m.error(&stream, "receiving", "fetch");
                    tracing::warn!(stream = %stream, error = %e, "central: fetch failed");
                    if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                        break 'outer;
                    }
                    continue 'outer; // get the consumer again (it may have been deleted)
                }
            };
            let mut batch = Vec::with_capacity(cfg.batch);
            while let Some(r) = msgs.next().await {
                match r {
                    Ok(msg) => batch.push(msg),
                    Err(e) => {
                        tracing::debug!(stream = %stream, error = %e, "central: fetch ended");
                        break;
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            let ok = handle(&batch, &stream, &mut vm, pg.as_deref(), &m, failures).await;
            failures = if ok { 0 } else { failures.saturating_add(1) };
        }
    }
    tracing::info!(stream = %stream, "central stopped consuming");
}

/// Writes and acknowledges one batch; answers whether every write succeeded.
async fn handle(
    batch: &[jetstream::Message],
    stream: &str,
    vm: &mut VmClient,
    pg: Option<&Pg>,
    m: &Metrics,
    failures: u32,
) -> bool {
    let mut samples = Vec::new();
    let mut sample_msgs = Vec::new();
    let mut events = Vec::new();
    let mut event_msgs = Vec::new();
    let mut redelivered = 0u64;
    for msg in batch {
        let (seq, delivered) = msg
            .info()
            .map(|i| (i.stream_sequence, i.delivered))
            .unwrap_or((0, 1));
        if delivered > 1 {
            redelivered += 1;
        }
        let id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned());
        let env = Envelope {
            subject: msg.subject.as_str(),
            payload: &msg.payload,
            msg_id: id.as_deref(),
            stream,
            stream_seq: seq,
        };
        match wire::parse(&env) {
            Ok(Item::Sample(s)) => {
                samples.push(s);
                sample_msgs.push(msg);
            }
            Ok(Item::Samples(list)) => {
                samples.extend(list);
                sample_msgs.push(msg);
            }
            Ok(Item::Event(e)) if pg.is_some() => {
                events.push(e);
                event_msgs.push(msg);
            }
            Ok(Item::Event(e)) => {
                m.discarded(stream, "no_event_sink", 1);
                tracing::warn!(stream = %stream, kind = %e.kind, "central: an event, but no [central] postgres; terminated");
                let _ = msg.ack_with(AckKind::Term).await;
            }
            Err(e) => {
                m.discarded(stream, "bad_message", 1);
                tracing::warn!(stream = %stream, seq, subject = %msg.subject, error = %e,
                    "central: a message it cannot read; terminated (not redelivered)");
                let _ = msg.ack_with(AckKind::Term).await;
            }
        }
    }
    m.received(stream, batch.len() as u64, redelivered);
    let vm_write = async {
        if samples.is_empty() {
            return Ok(());
        }
        vm.import(wire::vm_import(&samples)).await
    };
    let pg_write = async {
        match pg {
            Some(pg) if !events.is_empty() => pg.insert(&events).await.map(Some),
            _ => Ok(None),
        }
    };
    let (vm_res, pg_res) = tokio::join!(vm_write, pg_write);
    let mut all_ok = true;
    let delay = nak_delay(failures);
    match vm_res {
        Ok(()) => {
            m.written_samples(stream, samples.len() as u64);
            ack_all(&sample_msgs).await;
        }
        Err(e) => {
            all_ok = false;
            m.error(stream, "sending", e.kind());
            tracing::warn!(stream = %stream, samples = samples.len(), error = %e, retry_in = ?delay,
                "central: VictoriaMetrics write failed; messages nak'ed");
            nak_all(&sample_msgs, delay).await;
        }
    }
    match pg_res {
        Ok(Some(new)) => {
            m.written_events(stream, new, events.len() as u64 - new);
            ack_all(&event_msgs).await;
        }
        Ok(None) => {}
        Err(e) => {
            all_ok = false;
            m.error(stream, "sending", "postgres");
            tracing::warn!(stream = %stream, events = events.len(), error = %e, retry_in = ?delay,
                "central: PostgreSQL write failed; messages nak'ed");
            nak_all(&event_msgs, delay).await;
        }
    }
    all_ok
}

async fn ack_all(msgs: &[&jetstream::Message]) {
    for msg in msgs {
        // a lost ack means a redelivery, which the sinks absorb (docs/central.md)
        if let Err(e) = msg.ack().await {
            tracing::debug!(error = %e, "central: ack not sent");
        }
    }
}

async fn nak_all(msgs: &[&jetstream::Message], delay: Duration) {
    for msg in msgs {
        let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
    }
}

async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

/// Every 2 s: the consumer's pending (not yet delivered) and unacknowledged counts.
async fn lag_task(
    c: jetstream::consumer::Consumer<pull::Config>,
    stream: String,
    m: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Ok(i) = c.get_info().await {
            m.lag(
                &stream,
                i.num_pending,
                i.num_ack_pending as u64,
                i.num_redelivered as u64,
            );
        }
        if sleep_or_stop(Duration::from_secs(2), &mut stop).await {
            return;
        }
    }
}
