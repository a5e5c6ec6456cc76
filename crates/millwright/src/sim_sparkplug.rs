//! `millwright sim --sparkplug URL`: the simulator as a Sparkplug edge node too. The plant's
//! points become samples (tag `asset/name`, booleans as booleans, a dropped-out sensor bad
//! `"sensor unavailable"`) published once a second onto a small bus whose only sink is the
//! edge node of mw-sparkplug-node (`[sparkplug.edge]` with its defaults: one device per asset,
//! named after the asset's last segment; bdSeq under `DATA_DIR/sparkplug/`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mw_bus::{BusBuilder, BusConfig, Parts, RunningBus, SourceRegistry};
use mw_model::{Quality, Sample, TagPath, Value};
use mw_sim::{Plant, PointReading};
use mw_sparkplug_node::EdgeConfig;
use tokio::task::JoinHandle;

/// How often the plant's points are handed to the edge node (it publishes what changed).
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The edge node of `url` (`mqtt://HOST[:PORT]`; TLS and credentials need a `[sparkplug.edge]`
/// config), group and edge node ids checked.
pub fn edge_config(url: &str, group: &str, edge: &str) -> Result<EdgeConfig, String> {
    let (host, port, tls) = mw_mqtt::client::config::parse_url(url)?;
    if tls {
        return Err(format!(
            "{url:?}: --sparkplug speaks plain MQTT only; for TLS run `millwright run` with a [sparkplug.edge] section"
        ));
    }
    for (what, id) in [("group id", group), ("edge node id", edge)] {
        if !mw_sparkplug_node::config::valid_id(id) {
            return Err(format!(
                "Sparkplug {what} {id:?}: 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.', not starting with '.'"
            ));
        }
    }
    Ok(EdgeConfig::new(group, edge, &host, port))
}

/// The samples of the plant's current readings, stamped `ts` (ns).
pub fn plant_samples(points: &[PointReading], ts: i64) -> Vec<Sample> {
    points
        .iter()
        .zip(mw_sim::register_map())
        .filter_map(|(p, reg)| {
            let tag = TagPath::new(&p.path()).ok()?;
            let (value, quality) = match p.value {
                None => (
                    Value::F64(f64::NAN),
                    Quality::Bad("sensor unavailable".into()),
                ),
                Some(v) if reg.data_type == "bool" => (Value::Bool(v != 0.0), Quality::Good),
                Some(v) => (Value::F64(v), Quality::Good),
            };
            Some(Sample {
                tag,
                value,
                quality,
                source_ts: ts,
                receive_ts: ts,
            })
        })
        .collect()
}

/// A running edge node fed by the plant.
pub struct SimEdge {
    bus: RunningBus,
    feeder: JoinHandle<()>,
}

impl SimEdge {
    /// Starts the edge node (`data_dir` keeps its bdSeq) and the task feeding it the plant's
    /// points every [`PUBLISH_EVERY`].
    pub fn start(
        cfg: EdgeConfig,
        data_dir: &Path,
        plant: Arc<Mutex<Plant>>,
    ) -> Result<SimEdge, String> {
        let mut parts = Parts::new();
        mw_sparkplug_node::add_edge(cfg, data_dir, 16, &mut parts)?;
        let mut b = BusBuilder::new(BusConfig::default());
        b.parts(parts);
        let publisher = b.publisher();
        let bus = b.start(&SourceRegistry::new());
        let mut stop = bus.shutdown_signal();
        let feeder = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait() => break,
                }
                let samples = {
                    let p = plant.lock().unwrap_or_else(|e| e.into_inner());
                    plant_samples(&p.points(), mw_model::now_ns())
                };
                if publisher.publish(samples).await.is_err() {
                    break;
                }
            }
        });
        Ok(SimEdge { bus, feeder })
    }

    /// Stops feeding, then the edge node (which publishes its NDEATH).
    pub async fn stop(self) {
        let SimEdge { bus, feeder } = self;
        // the feeder holds a publisher: the bus ends once the stop signal ended it too
        let _ = tokio::join!(bus.stop(Duration::from_secs(5)), feeder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_become_samples_and_urls_are_checked() {
        let plant = Plant::new(mw_sim::SimConfig {
            seed: 1,
            start_epoch_ns: 0,
            random_faults: None,
            schedule: Vec::new(),
        });
        let s = plant_samples(&plant.points(), 5);
        assert_eq!(s.len(), mw_sim::register_map().len());
        assert!(s.iter().any(|s| matches!(s.value, Value::Bool(_))));
        assert!(edge_config("mqtt://127.0.0.1:1999", "millwright", "sim").is_ok());
        assert!(edge_config("mqtts://h", "millwright", "sim").is_err());
        assert!(edge_config("mqtt://h", "a/b", "sim").is_err());
    }
}
