//! The offline export (`millwright sim --export`): a simulation run as one CSV table of readings
//! and ground truth, written to any `impl Write`.

use std::fmt::Write as _;
use std::io::{self, Write};

use thiserror::Error;

use crate::fault::{FaultId, FaultRecord};
use crate::{DegradationRecord, Plant};

/// Why an export stopped.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("bad export step {step_s} s: must be finite and > 0")]
    BadStep { step_s: f64 },
    #[error("bad export duration {duration_s} s: must be finite and >= 0")]
    BadDuration { duration_s: f64 },
    /// The writer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Rows of an export of `duration_s` seconds at one row per `step_s` (the first row is the
/// plant as it is, before any step).
pub fn export_rows(duration_s: f64, step_s: f64) -> u64 {
    (duration_s / step_s).floor() as u64 + 1
}

/// Simulates `duration_s` seconds from the plant's current state and writes one CSV row per
/// `step_s` to `w` (pass a buffered writer): `timestamp` (RFC 3339, the simulator's clock), every
/// point by tag path (empty while it has dropped out), then the ground truth: `fault` (1 while any
/// fault is active), `fault:ASSET` for every asset with points (1 while a fault that changes this
/// asset's readings is active, see [`FaultRecord::affected_assets`]), `faults` (the active faults
/// as `asset:kind`, `+`-separated) and `bearing_wear` (0…1).
///
/// `progress(done, total)` is called every 1000 rows and once at the end with `done == total`.
/// Returns the number of rows written. The plant is left at the end of the run (for its labels).
pub fn export_csv(
    plant: &mut Plant,
    duration_s: f64,
    step_s: f64,
    mut w: impl Write,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ExportError> {
    if !(step_s.is_finite() && step_s > 0.0) {
        return Err(ExportError::BadStep { step_s });
    }
    if !(duration_s.is_finite() && duration_s >= 0.0) {
        return Err(ExportError::BadDuration { duration_s });
    }
    let points = plant.points();
    let mut header = vec!["timestamp".to_owned()];
    header.extend(points.iter().map(|p| p.path()));
    let mut assets: Vec<&'static str> = points.iter().map(|p| p.asset).collect();
    assets.sort_unstable();
    assets.dedup();
    header.push("fault".into());
    header.extend(assets.iter().map(|a| format!("fault:{a}")));
    header.extend(["faults", "bearing_wear"].map(String::from));
    writeln!(w, "{}", header.join(","))?;
    let rows = export_rows(duration_s, step_s);
    let mut line = String::new();
    // The ground-truth cells change only when a fault starts or ends.
    let mut truth_of: Option<(Vec<FaultId>, bool)> = None;
    let mut truth = String::new();
    for i in 0..rows {
        if i > 0 {
            plant.step(step_s);
        }
        line.clear();
        line.push_str(&mw_model::format_rfc3339_ns(plant.now_ns()));
        for p in plant.points() {
            line.push(',');
            if let Some(v) = p.value {
                let _ = write!(line, "{v}");
            }
        }
        let active = plant.active_faults();
        let degraded = plant.degradation();
        let ids = (
            active.iter().map(|f| f.id).collect::<Vec<FaultId>>(),
            degraded.is_some(),
        );
        if truth_of.as_ref() != Some(&ids) {
            truth = truth_cells(&active, degraded.as_ref(), &assets);
            truth_of = Some(ids);
        }
        let _ = write!(line, "{truth},{:.6}", plant.bearing_wear());
        writeln!(w, "{line}")?;
        if i % 1000 == 0 {
            progress(i, rows);
        }
    }
    progress(rows, rows);
    w.flush()?;
    Ok(rows)
}

/// `,fault,fault:ASSET…,faults` of one exported row, for these active faults and the bearing's degradation.
fn truth_cells(
    active: &[FaultRecord],
    degraded: Option<&DegradationRecord>,
    assets: &[&'static str],
) -> String {
    let any = !active.is_empty() || degraded.is_some();
    let mut s = String::from(if any { ",1" } else { ",0" });
    for a in assets {
        let hit = active.iter().any(|f| f.affected_assets().contains(a))
            || degraded.is_some_and(|d| d.affected_assets().contains(a));
        s.push_str(if hit { ",1" } else { ",0" });
    }
    let mut names: Vec<String> = active
        .iter()
        .map(|f| {
            let short = f.asset.rsplit('/').next().unwrap_or(&f.asset);
            format!("{short}:{}", f.kind)
        })
        .collect();
    if let Some(d) = degraded {
        let short = d.asset.rsplit('/').next().unwrap_or(d.asset);
        names.push(format!("{short}:{}", d.kind));
    }
    s.push(',');
    s.push_str(&names.join("+"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultKind, ScheduledFault, SimConfig};

    fn plant() -> Plant {
        Plant::new(SimConfig {
            seed: 7,
            start_epoch_ns: 1_700_000_000_000_000_000,
            random_faults: None,
            schedule: vec![ScheduledFault {
                start_s: 10.0,
                asset: "valve1".into(),
                kind: FaultKind::BlockedValve,
                duration_s: 20.0,
                point: None,
            }],
        })
    }

    #[test]
    fn rows_carry_readings_and_per_asset_truth() {
        let mut p = plant();
        let mut out = Vec::new();
        let mut calls = Vec::new();
        let rows = export_csv(&mut p, 60.0, 5.0, &mut out, |d, t| calls.push((d, t))).unwrap();
        assert_eq!(rows, 13);
        assert_eq!(calls, vec![(0, 13), (13, 13)]);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 14, "header + rows");
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header[0], "timestamp");
        assert_eq!(header[header.len() - 2..], ["faults", "bearing_wear"]);
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let cell = |row: usize, name: &str| lines[row + 1].split(',').nth(col(name)).unwrap();
        assert_eq!(cell(0, "timestamp"), "2023-11-14T22:13:20.000Z");
        assert_eq!(cell(1, "timestamp"), "2023-11-14T22:13:25.000Z");
        // the fault is active from 10 s to 30 s: rows 2…5
        let valve: Vec<&str> = (0..13)
            .map(|r| cell(r, "fault:acme/plant1/utilities/water/valve1"))
            .collect();
        assert_eq!(
            valve,
            [
                "0", "0", "1", "1", "1", "1", "0", "0", "0", "0", "0", "0", "0"
            ]
        );
        assert_eq!(cell(3, "faults"), "valve1:blocked_valve");
        assert_eq!(
            cell(3, "fault:acme/plant1/utilities/compressor_house/gd1"),
            "0"
        );
        assert_eq!(cell(6, "faults"), "");
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.split(',').count() == header.len())
        );
        assert_eq!(p.time_s(), 60.0, "the plant is left at the end of the run");
    }

    #[test]
    fn same_plant_same_bytes_and_bad_steps_are_refused() {
        let run = || {
            let mut out = Vec::new();
            export_csv(&mut plant(), 30.0, 0.5, &mut out, |_, _| {}).unwrap();
            out
        };
        assert_eq!(run(), run());
        for step in [0.0, -1.0, f64::NAN] {
            let err = export_csv(&mut plant(), 30.0, step, Vec::new(), |_, _| {}).unwrap_err();
            assert!(matches!(err, ExportError::BadStep { .. }), "{err}");
        }
        let err = export_csv(&mut plant(), f64::INFINITY, 1.0, Vec::new(), |_, _| {}).unwrap_err();
        assert!(matches!(err, ExportError::BadDuration { .. }), "{err}");
    }
}
