//! Shared helpers for the integration tests: configs, a bus with one subscriber, bounded waits.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use mw_bus::{BusBuilder, BusConfig, RunningBus, SinkInput, SinkOptions, SourceRegistry};
use mw_modbus::config::{DeviceConfig, ModbusTag, RegisterTable, WordOrder};
use mw_modbus::{RegisterImage, SharedImage, Stopped};
use mw_model::{DataType, Sample, Scaling, TagDef, TagPath};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn tag(
    path: &str,
    table: RegisterTable,
    address: u16,
    t: DataType,
    order: WordOrder,
) -> ModbusTag {
    ModbusTag {
        def: TagDef::new(TagPath::new(path).unwrap(), t),
        table,
        address,
        word_order: order,
        write: None,
    }
}

pub fn scaled(mut t: ModbusTag, raw: (f64, f64), eu: (f64, f64), unit: &str) -> ModbusTag {
    t.def.scaling = Some(Scaling::new(raw, eu, false).unwrap());
    t.def.unit = Some(unit.to_owned());
    t
}

pub fn device(name: &str, endpoint: String, tags: Vec<ModbusTag>) -> DeviceConfig {
    DeviceConfig {
        name: name.to_owned(),
        endpoint,
        unit_id: 1,
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        backoff_max: Duration::from_millis(500),
        word_order: WordOrder::Abcd,
        tags,
    }
}

/// Starts our server on an ephemeral port; returns the endpoint and a shutdown sender.
pub async fn start_server(
    image: SharedImage,
) -> (String, watch::Sender<bool>, JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    let h = tokio::spawn(mw_modbus::serve(listener, image, rx));
    (addr.to_string(), tx, h)
}

pub fn image_with_holding(regs: &[u16]) -> SharedImage {
    let mut img = RegisterImage::with_sizes(0, 0, 0, regs.len());
    img.holding_registers.copy_from_slice(regs);
    img.shared()
}

/// Pollers running on one bus, with one subscriber.
pub struct Harness {
    pub sub: SinkInput,
    pub bus: RunningBus,
    pub registry: SourceRegistry,
    pub shutdown: watch::Sender<bool>,
    pub tasks: Vec<JoinHandle<Stopped>>,
    /// Latest sample per tag.
    pub latest: HashMap<String, Sample>,
    /// Every sample received, in order.
    pub all: Vec<Sample>,
}

pub fn spawn(devices: Vec<DeviceConfig>) -> Harness {
    spawn_with(devices, 256, 256)
}

/// Pollers on a bus of `capacity` batches, with one subscriber (a blocking sink queue of
/// `sink_capacity` batches).
pub fn spawn_with(devices: Vec<DeviceConfig>, capacity: usize, sink_capacity: usize) -> Harness {
    spawn_devices(
        devices.into_iter().map(|d| (d, None)).collect(),
        capacity,
        sink_capacity,
    )
}

/// One poller that also carries out the writes arriving on `writes`.
pub fn spawn_with_writes(d: DeviceConfig, writes: mw_bus::WriteReceiver) -> Harness {
    spawn_devices(vec![(d, Some(writes))], 256, 256)
}

fn spawn_devices(
    devices: Vec<(DeviceConfig, Option<mw_bus::WriteReceiver>)>,
    capacity: usize,
    sink_capacity: usize,
) -> Harness {
    let mut b = BusBuilder::new(BusConfig {
        capacity,
        ..BusConfig::default()
    });
    let sub = b.subscribe(SinkOptions::new("test", sink_capacity));
    let registry = SourceRegistry::new();
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (d, writes) in devices {
        let status = registry.register("modbus", &d.name);
        tasks.push(tokio::spawn(mw_modbus::run_device(
            d,
            b.publisher(),
            status,
            rx.clone(),
            writes,
        )));
    }
    let bus = b.start(&SourceRegistry::new());
    Harness {
        sub,
        bus,
        registry,
        shutdown,
        tasks,
        latest: HashMap::new(),
        all: Vec::new(),
    }
}

impl Harness {
    /// Receives batches until `done(latest)` holds; panics after `limit` with the last state.
    pub async fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&HashMap<String, Sample>) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(&self.latest) {
            match tokio::time::timeout_at(deadline, self.sub.recv()).await {
                Ok(Some(d)) => {
                    for s in d.batch.samples.iter() {
                        self.latest.insert(s.tag.as_str().to_owned(), s.clone());
                        self.all.push(s.clone());
                    }
                }
                Ok(None) => panic!("bus closed while waiting for: {what}"),
                Err(_) => panic!(
                    "timed out after {limit:?} waiting for: {what}\nlatest: {:#?}",
                    self.latest
                ),
            }
        }
    }

    /// Receives for `dur`, recording everything.
    pub async fn record_for(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        while let Ok(Some(d)) = tokio::time::timeout_at(deadline, self.sub.recv()).await {
            for s in d.batch.samples.iter() {
                self.latest.insert(s.tag.as_str().to_owned(), s.clone());
                self.all.push(s.clone());
            }
        }
    }

    pub fn reason(&self, tag: &str) -> Option<String> {
        self.latest
            .get(tag)
            .and_then(|s| s.quality.reason().map(str::to_owned))
    }

    /// Signals shutdown and requires every poller to return within `limit`. Tests pass 500 ms:
    /// generous for a loaded CI machine, yet half the 1 s request timeouts a poller would otherwise
    /// sit out, so it still proves that shutdown cancels a request in flight.
    pub async fn stop(&mut self, limit: Duration) {
        let started = Instant::now();
        self.shutdown.send_replace(true);
        for t in std::mem::take(&mut self.tasks) {
            let r = tokio::time::timeout_at(started + limit, t).await;
            let stopped = r
                .unwrap_or_else(|_| panic!("poller did not stop within {limit:?}"))
                .unwrap();
            assert_eq!(stopped, Stopped::Shutdown);
        }
    }
}

pub fn is_good(m: &HashMap<String, Sample>, tag: &str) -> bool {
    m.get(tag).is_some_and(|s| s.quality.is_good())
}

pub fn reason_is(m: &HashMap<String, Sample>, tag: &str, reason: &str) -> bool {
    m.get(tag).and_then(|s| s.quality.reason()) == Some(reason)
}
