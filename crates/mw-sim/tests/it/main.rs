//! Integration tests of the simulator's public API (one test binary; modules by topic).

mod determinism;
mod docs_and_example;
mod faults;
mod labels;
mod physics;
mod registers;

use mw_sim::{FaultId, FaultKind, FaultRequest, Plant, SimConfig};

pub fn plant(seed: u64) -> Plant {
    Plant::new(SimConfig {
        seed,
        ..SimConfig::default()
    })
}

/// The current reading of `asset_short/name` (e.g. `pump1/flow`), `None` during dropout.
pub fn reading(p: &Plant, short: &str) -> Option<f64> {
    let (asset, name) = short.rsplit_once('/').expect("asset/name");
    let hits: Vec<_> = p
        .points()
        .into_iter()
        .filter(|r| r.name == name && (r.asset == asset || r.asset.ends_with(&format!("/{asset}"))))
        .collect();
    assert_eq!(hits.len(), 1, "no unique point {short}");
    hits[0].value
}

/// Like [`reading`] but the point must have a value.
pub fn val(p: &Plant, short: &str) -> f64 {
    reading(p, short).unwrap_or_else(|| panic!("{short} has no data"))
}

/// Steps `secs` in steps of `dt` and returns the mean reading of `short` over those steps.
pub fn mean_over(p: &mut Plant, short: &str, secs: f64, dt: f64) -> f64 {
    let n = (secs / dt).round() as usize;
    let mut sum = 0.0;
    for _ in 0..n {
        p.step(dt);
        sum += val(p, short);
    }
    sum / n as f64
}

pub fn inject(
    p: &mut Plant,
    asset: &str,
    kind: FaultKind,
    duration_s: f64,
    point: Option<&str>,
) -> FaultId {
    p.inject(FaultRequest {
        asset: asset.into(),
        kind,
        duration_s,
        point: point.map(str::to_string),
    })
    .unwrap_or_else(|e| panic!("inject {kind} on {asset}: {e}"))
}
