//! `millwright sim --export` and the demo's honesty: the simulator's ground truth is exported as
//! a labelled CSV and replayed, with `millwright backtest`, through every detector configured in
//! `examples/plant.toml` (the demo's configuration). Each detector must catch every fault that
//! reaches its asset and stay quiet outside the faults and their recovery.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A gas release, a blocked valve, a tank leak and accelerated bearing wear, spaced so that each
/// fault's aftermath is over before the next one. The run ends with the bearing-wear fault: the
/// damage it leaves is permanent, so rows after it would be abnormal without a label.
const SCHEDULE: &str = "# start_s,asset,kind,duration_s\n\
                        1500,gd1,gas_release,300\n\
                        3000,valve1,blocked_valve,600\n\
                        6000,tank1,leak,900\n\
                        9000,pump1,bearing_wear,1800\n";
const DURATION_S: usize = 10_800;
/// Rows after a fault's end in which an alarm still counts as the fault's (the plant recovering:
/// a tank refilling takes up to ~30 minutes). Measured once: the longest tail was 1 651 rows
/// (tank1 after the blocked valve, start 06:00), see docs/analytics.md.
const RECOVERY_ROWS: usize = 1_800;
/// Allowed detection delay in rows (1 s each). Measured once: 0–134 rows.
const MAX_DELAY_ROWS: usize = 300;

const PUMP: &str = "acme/plant1/utilities/water/pump1";

/// Known limitation, pinned so it cannot silently get worse: the tank's level, outflow and net
/// flow follow the water demand's daily cycle (lowest at 02:00), which a warm-up of minutes cannot
/// learn. Started at midnight, the tank detector raises a standing alarm from 02:31 (measured: 1 491
/// rows). (asset, start, allowed false-alarm rows); every other case must have none.
const KNOWN_FALSE_ALARMS: &[(&str, &str, usize)] = &[(
    "acme/plant1/utilities/water/tank1",
    "2026-01-15T00:00:00Z",
    1_600,
)];

/// Exports the scheduled run starting at `start` (the time of day sets the ambient temperature's
/// daily cycle and the water demand).
fn export(dir: &Path, start: &str) -> PathBuf {
    let schedule = dir.join("schedule.csv");
    std::fs::write(&schedule, SCHEDULE).unwrap();
    let out = dir.join(format!("sim-{}.csv", start.replace([':', ' '], "")));
    let o = Command::new(BIN)
        .args(["sim", "--fault-interval", "0", "--seed", "1", "--step", "1"])
        .args(["--start", start])
        .args(["--duration", &DURATION_S.to_string()])
        .arg("--schedule")
        .arg(&schedule)
        .arg("--export")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sim --export failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &Path) -> Table {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        let header = lines
            .next()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        let rows = lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        Table { header, rows }
    }

    fn col(&self, name: &str) -> Vec<&str> {
        let i = self
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name:?} in {:?}", self.header));
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }

    fn flags(&self, name: &str) -> Vec<bool> {
        self.col(name).iter().map(|v| *v == "1").collect()
    }
}

/// Maximal runs of `true` as `start..end` row ranges.
fn windows(flags: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &f) in flags.iter().chain([false].iter()).enumerate() {
        match (f, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    out
}

#[test]
fn export_writes_every_point_and_per_asset_ground_truth() {
    let dir = TempDir::new("sim-export");
    let t = Table::read(&export(&dir.path, "2026-01-15T06:00:00Z"));
    assert_eq!(
        t.rows.len(),
        DURATION_S + 1,
        "one row per second, both ends"
    );
    assert_eq!(t.header[0], "timestamp");
    for c in [
        "acme/plant1/utilities/water/pump1/flow",
        "acme/plant1/utilities/compressor_house/gd3/gas",
        "fault",
        "faults",
        "bearing_wear",
    ] {
        assert!(t.header.iter().any(|h| h == c), "missing column {c}");
    }
    // Each fault's window, on the assets it physically reaches (docs/simulator.md).
    let ones = |c: &str| t.flags(c).iter().filter(|f| **f).count();
    assert_eq!(
        ones("fault:acme/plant1/utilities/compressor_house/gd1"),
        300
    );
    assert_eq!(
        ones("fault:acme/plant1/utilities/compressor_house/gd3"),
        300
    );
    assert_eq!(ones("fault:acme/plant1/utilities/water/valve1"), 600);
    // The bearing-wear fault ends at the last row (10 800 s), and the worn bearing it leaves stays labelled
    // (`bearing_degradation`, docs/simulator.md "Labels"): that row too.
    assert_eq!(ones(&format!("fault:{PUMP}")), 600 + 1800 + 1);
    assert_eq!(ones("fault:acme/plant1/utilities/water/tank1"), 600 + 900);
    assert_eq!(ones("fault"), 300 + 600 + 900 + 1800 + 1);
    assert_eq!(
        windows(&t.flags(&format!("fault:{PUMP}"))),
        vec![3000..3600, 9000..10_801]
    );
    assert_eq!(t.col("faults")[10_800], "pump1:bearing_degradation");
    assert_eq!(t.col("faults")[3000], "valve1:blocked_valve");
    assert_eq!(t.col("faults")[2999], "");
    // The ground truth of the bearing: wear only grows, 4000 times faster during the fault.
    let wear: Vec<f64> = t
        .col("bearing_wear")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(wear.windows(2).all(|w| w[1] >= w[0]));
    let normal = wear[8999] - wear[7199];
    let fault = wear[10_799] - wear[8999];
    assert!(fault > 20.0 * normal, "wear {normal} vs {fault}");
    // The clock starts at `--start` and advances by exactly the step.
    let ts = t.col("timestamp");
    assert_eq!(ts[0], "2026-01-15T06:00:00.000Z");
    assert_eq!(ts[3600], "2026-01-15T07:00:00.000Z");
}

#[test]
fn export_needs_a_duration_and_a_sane_step() {
    for (args, expect) in [
        (&["sim", "--export", "x.csv"][..], "--duration"),
        (&["sim", "--export", "x.csv", "--duration", "0"], "duration"),
        (
            &[
                "sim",
                "--export",
                "x.csv",
                "--duration",
                "60",
                "--step",
                "0",
            ],
            "step",
        ),
        (
            &[
                "sim",
                "--export",
                "x.csv",
                "--duration",
                "60",
                "--start",
                "noon",
            ],
            "not a time",
        ),
    ] {
        let o = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn demo_detectors_catch_every_fault_on_their_asset_and_stay_quiet_otherwise() {
    let dir = TempDir::new("sim-honesty");
    let config = millwright::config_registry()
        .load(&root().join("examples/plant.toml"))
        .expect("example config");
    let detectors = &config
        .section::<mw_analytics::config::DetectorsConfig>()
        .expect("detectors")
        .detectors;
    assert!(detectors.len() >= 3);
    // Four times of day: night, morning, afternoon (ambient rising to its peak), evening.
    for start in [
        "2026-01-15T00:00:00Z",
        "2026-01-15T06:00:00Z",
        "2026-01-15T12:00:00Z",
        "2026-01-15T18:00:00Z",
    ] {
        let sim_csv = export(&dir.path, start);
        check_detectors(&config, &sim_csv, &dir.path, start);
    }
}

fn check_detectors(config: &mw_config::Config, sim_csv: &Path, dir: &Path, start: &str) {
    let sim = Table::read(sim_csv);
    for det in &config
        .section::<mw_analytics::config::DetectorsConfig>()
        .expect("detectors")
        .detectors
    {
        let label = format!("fault:{}", det.asset);
        let out = dir.join("scores.csv");
        let mut cmd = Command::new(BIN);
        cmd.arg("backtest")
            .arg("--input")
            .arg(sim_csv)
            .arg("--output")
            .arg(&out)
            .args(["--detector", &det.kind.to_string(), "--labels", &label]);
        for tag in &det.tags {
            cmd.args(["--value-column", tag.as_str()]);
        }
        if let Some(w) = det.warmup {
            cmd.args(["--warmup", &w.to_string()]);
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "backtest for {}: {}",
            det.asset,
            String::from_utf8_lossy(&o.stderr)
        );
        let alarms = Table::read(&out).flags("is_anomaly");
        let truth = sim.flags(&label);
        let faults = windows(&truth);
        assert!(!faults.is_empty(), "the schedule must reach {}", det.asset);
        let warmup = match det.warmup {
            Some(mw_analytics::Length::Rows(n)) => n,
            _ => 400,
        };
        let mut allowed = vec![false; alarms.len()];
        for w in &faults {
            let at = (w.start..w.end).find(|&i| alarms[i]);
            let delay = at.map(|i| i - w.start);
            let end = (w.end..alarms.len()).find(|&i| !alarms[i]);
            println!(
                "start {start}, {}: fault rows {w:?} detected after {delay:?} rows, released at {end:?}",
                det.asset
            );
            assert!(
                delay.is_some_and(|d| d <= MAX_DELAY_ROWS),
                "start {start}, {}: fault at rows {w:?} not detected within {MAX_DELAY_ROWS} rows",
                det.asset
            );
            for a in allowed
                .iter_mut()
                .take((w.end + RECOVERY_ROWS).min(alarms.len()))
                .skip(w.start)
            {
                *a = true;
            }
        }
        let false_alarms: Vec<usize> = (warmup..alarms.len())
            .filter(|&i| alarms[i] && !allowed[i])
            .collect();
        let allowed_false = KNOWN_FALSE_ALARMS
            .iter()
            .find(|(a, s, _)| *a == det.asset && *s == start)
            .map_or(0, |k| k.2);
        println!(
            "start {start}, {}: {} false-alarm rows (allowed {allowed_false})",
            det.asset,
            false_alarms.len()
        );
        assert!(
            false_alarms.len() <= allowed_false,
            "start {start}, {}: {} alarm rows outside the faults and their recovery, first at {:?}",
            det.asset,
            false_alarms.len(),
            false_alarms.first()
        );
    }
}
