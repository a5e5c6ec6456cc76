//! The web layer's seams (`mw_web::TagStore`, `mw_web::FaultControl`, `mw_web::DetectorControl`)
//! over this process's live store, in-process simulator and live detectors. Thin delegation: the
//! behaviour is in `mw-live`, `mw-sim` and `mw-analytics-live`, the JSON shapes in `mw-web`.

use std::sync::{Arc, Mutex};

use mw_live::LiveStore;
use mw_model::{Sample, TagPath};
use mw_web::{FaultInfo, FaultSpec};

/// The live store as the API's tag store. It keeps only a recent window per tag, so range and
/// aggregate queries keep their default answer (`QueryError::Unsupported`).
pub struct LiveTags(pub LiveStore);

impl mw_web::TagStore for LiveTags {
    fn latest(&self, tag: &TagPath) -> Option<Sample> {
        self.0.latest(tag)
    }

    fn latest_all(&self) -> Vec<Sample> {
        self.0.latest_all()
    }

    fn recent(&self, tag: &TagPath, limit: usize) -> Option<Vec<Sample>> {
        self.0.recent(tag, limit)
    }

    fn window(&self) -> usize {
        self.0.window()
    }
}

/// The demo's simulator and its clock. The simulator runs `speed` times faster than the wall
/// clock from `wall_start_ns` on (its own clock starts at the same instant), so a simulator time
/// `sim_s` happened at wall time `wall_start_ns + sim_s / speed` — the time base of the tags.
pub struct SimFaults {
    pub plant: Arc<Mutex<mw_sim::Plant>>,
    pub wall_start_ns: i64,
    pub speed: f64,
}

impl SimFaults {
    /// Wall-clock ns of a simulator time.
    fn wall_ns(&self, sim_s: f64) -> i64 {
        self.wall_start_ns + (sim_s / self.speed * 1e9) as i64
    }

    fn info(&self, f: mw_sim::FaultRecord) -> FaultInfo {
        FaultInfo {
            id: f.id.0,
            kind: f.kind.to_string(),
            asset: f.asset,
            point: f.point,
            origin: f.origin.as_str().to_owned(),
            active: f.active,
            start_ns: f.start_ns,
            end_ns: f.end_ns,
            start_s: f.start_s,
            end_s: f.end_s,
            wall_start_ns: self.wall_ns(f.start_s),
            wall_end_ns: self.wall_ns(f.end_s),
        }
    }

    fn plant(&self) -> std::sync::MutexGuard<'_, mw_sim::Plant> {
        self.plant.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl mw_web::FaultControl for SimFaults {
    fn inject(&self, spec: FaultSpec) -> Result<FaultInfo, String> {
        let kind: mw_sim::FaultKind = spec.kind.parse().map_err(|e| format!("{e}"))?;
        let mut plant = self.plant();
        let id = plant
            .inject(mw_sim::FaultRequest {
                asset: spec.asset,
                kind,
                duration_s: spec.duration_s,
                point: spec.point,
            })
            .map_err(|e| e.to_string())?;
        // `inject` records the fault at once; a missing record would be a simulator bug.
        let rec = plant.faults().into_iter().find(|f| f.id == id);
        drop(plant);
        rec.map(|r| self.info(r))
            .ok_or_else(|| format!("fault {id} was started but the simulator does not list it"))
    }

    fn list(&self) -> Vec<FaultInfo> {
        let faults = self.plant().faults();
        faults.into_iter().map(|f| self.info(f)).collect()
    }
}

/// The HTTP API's view of the live detectors.
pub struct DetectorsApi(pub Arc<mw_analytics_live::Control>);

impl mw_web::DetectorControl for DetectorsApi {
    fn list(&self) -> Vec<mw_web::DetectorInfo> {
        self.0
            .list()
            .into_iter()
            .map(|d| mw_web::DetectorInfo {
                asset: d.asset,
                kind: d.kind,
                inputs: d.inputs,
                score_tag: d.score_tag,
                flag_tag: d.flag_tag,
            })
            .collect()
    }

    fn relearn(&self, asset: &str) -> usize {
        self.0.relearn(asset)
    }
}

/// The audit trail in `DATA_DIR/audit/` as the API reads it.
pub struct AuditFile(pub std::path::PathBuf);

impl mw_web::AuditLog for AuditFile {
    fn recent(&self, limit: usize) -> Result<Vec<mw_security::audit::AuditRecord>, String> {
        mw_security::audit::read_recent(&self.0, limit).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use mw_web::FaultControl;

    use super::*;

    #[test]
    fn faults_carry_wall_clock_times_at_the_simulator_speed() {
        let sim = SimFaults {
            plant: Arc::new(Mutex::new(mw_sim::Plant::new(mw_sim::SimConfig::default()))),
            wall_start_ns: 1_000_000_000_000,
            speed: 10.0,
        };
        sim.plant().step(20.0);
        let spec = |kind: &str| FaultSpec {
            asset: "gd1".into(),
            kind: kind.into(),
            duration_s: 60.0,
            point: None,
        };
        let f = sim.inject(spec("gas_release")).unwrap();
        assert_eq!(
            (f.id, f.origin.as_str(), f.active),
            (1, "api", true),
            "{f:?}"
        );
        assert_eq!(f.asset, "acme/plant1/utilities/compressor_house/gd1");
        assert_eq!((f.start_s, f.end_s), (20.0, 80.0));
        // 20 s and 80 s of simulator time at 10x are 2 s and 8 s of wall time
        assert_eq!(f.wall_start_ns, 1_002_000_000_000);
        assert_eq!(f.wall_end_ns, 1_008_000_000_000);
        assert_eq!(sim.list(), vec![f]);

        let err = sim.inject(spec("meteor")).unwrap_err();
        assert!(
            err.starts_with("unknown fault kind \"meteor\" (expected one of: gas_release"),
            "{err}"
        );
        let mut bad = spec("leak");
        bad.asset = "nowhere".into();
        assert!(
            sim.inject(bad)
                .unwrap_err()
                .starts_with("unknown asset \"nowhere\"")
        );
        assert_eq!(sim.list().len(), 1, "refused faults are not recorded");
    }
}
