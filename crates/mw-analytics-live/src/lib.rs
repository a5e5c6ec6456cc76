//! Live analytics on the bus: streaming anomaly detectors per asset (mw-analytics) and
//! remaining-useful-life trend estimates (mw-pdm), configured by `[[detectors]]` and `[[rul]]`
//! (sections owned by `mw_analytics::config`). [`AnalyticsComponent`] registers those sections
//! and builds the processor; [`Control`] is the run-time handle to list the detectors and ask
//! them to learn again.
//!
//! Runs as a bus processor, so its outputs are ordinary samples of ordinary tags that every sink
//! (live store, later historian and alarms) sees without knowing where they came from:
//! * `ASSET/anomaly_score` (0..1, 0.5 = threshold) and `ASSET/anomalous` per detector, emitted once
//!   per batch that carries any of the detector's input tags; a detector sees the latest value of
//!   each of its inputs (NaN = missing while an input is bad or has no data yet). During warm-up
//!   the outputs have quality `uncertain` ("warming up").
//! * `ASSET/rul`, `rul_lower`, `rul_upper` in hours, from the trend of one health indicator
//!   ([`mw_pdm::LiveRul`]: a finite estimate only while the trend rises significantly, capped at a
//!   horizon, with a bounded rate of change), once the trend window holds 30 samples. "Beyond the
//!   horizon" is published as `rul` = the horizon in hours (quality `good`, so a `rul` alarm
//!   clears) with `rul_upper` without a value, quality `uncertain` "beyond the horizon"; an
//!   unbounded upper limit of a finite estimate is no value, `uncertain` "trend cannot rule out no
//!   failure".
//!
//! Memory is bounded by the detectors' own windows (docs/analytics.md) and the RUL window.
//! Metrics: `mw_anomalous{component="analytics",instance=ASSET}` (0/1),
//! `mw_anomaly_onsets_total{…}` (normal → anomalous transitions) and
//! `mw_detector_relearns_total{…}` (fresh warm-ups asked for through the API).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mw_analytics::config::{
    DetectorConfig, DetectorsConfig, DetectorsSection, RulConfig, RulSection, RulsConfig,
};
use mw_analytics::{Detector, DetectorKind};
use mw_bus::{Batch, BuildError, Component, Parts, Processor};
use mw_config::{Config, Section};
use mw_model::{Quality, Sample, TagPath, Value};
use mw_pdm::{LiveOptions, LiveRul, RulState, TrendKind, TrendRul};

/// The live-analytics component: the `[[detectors]]` and `[[rul]]` sections, and one bus
/// processor for all of them (none when neither is configured). Provides an `Arc<Control>`
/// when detectors are configured.
pub struct AnalyticsComponent;

impl Component for AnalyticsComponent {
    fn name(&self) -> &'static str {
        "analytics"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(DetectorsSection), Box::new(RulSection)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let detectors = cfg
            .section::<DetectorsConfig>()
            .map_or(&[][..], |d| &d.detectors);
        let rul = cfg.section::<RulsConfig>().map_or(&[][..], |r| &r.rul);
        let la = LiveAnalytics::new(detectors, rul);
        if let Some(c) = la.control() {
            parts.provide(c);
        }
        if !la.is_empty() {
            parts.add_processor(Box::new(la));
        }
        Ok(())
    }
}

/// One live anomaly detector, as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorInfo {
    pub asset: String,
    pub kind: String,
    /// Full paths of the input tags.
    pub inputs: Vec<String>,
    pub score_tag: String,
    pub flag_tag: String,
}

struct DetectorSlot {
    /// `mw_anomalous{component="analytics",instance=ASSET}`: 1 while the detector flags its asset.
    flag_gauge: metrics::Gauge,
    /// `mw_anomaly_onsets_total{…}`: transitions from normal to anomalous.
    onsets: metrics::Counter,
    was_anomalous: bool,
    relearns: metrics::Counter,
    score_tag: TagPath,
    flag_tag: TagPath,
    kind: DetectorKind,
    warmup: Option<usize>,
    detector: Box<dyn Detector>,
    latest: Vec<f64>,
}

/// The handle the HTTP API uses to list the detectors and ask for a fresh warm-up: one flag
/// per detector (so requests never queue up), plus one "any request" flag that the processor
/// checks with every batch (the per-detector flags are read only when it is set).
pub struct Control {
    info: Vec<DetectorInfo>,
    relearn: Vec<AtomicBool>,
    pending: AtomicBool,
}

impl Control {
    /// The live detectors.
    pub fn list(&self) -> Vec<DetectorInfo> {
        self.info.clone()
    }

    /// Asks every detector of `asset` (full path) to forget what it learnt and warm up again on
    /// the data from now on; takes effect with the next batch of inputs. Returns how many
    /// detectors were asked.
    pub fn relearn(&self, asset: &str) -> usize {
        let mut n = 0;
        for (i, d) in self.info.iter().enumerate() {
            if d.asset == asset {
                self.relearn[i].store(true, Ordering::Relaxed);
                n += 1;
            }
        }
        if n > 0 {
            self.pending.store(true, Ordering::Release);
        }
        n
    }
}

struct RulSlot {
    rul_tag: TagPath,
    lower_tag: TagPath,
    upper_tag: TagPath,
    live: LiveRul,
}

/// The reason of `rul_upper` (no value) while the estimate is beyond the horizon.
pub const BEYOND_HORIZON: &str = "beyond the horizon";
/// The reason of `rul_upper` (no value) while a finite estimate cannot rule out "never".
pub const UNBOUNDED: &str = "trend cannot rule out no failure";

/// The bus processor.
#[derive(Default)]
pub struct LiveAnalytics {
    detectors: Vec<DetectorSlot>,
    /// input tag → (detector slot, variable index)
    inputs: HashMap<TagPath, Vec<(usize, usize)>>,
    rul: Vec<RulSlot>,
    /// health-indicator tag → RUL slots fed by it
    rul_inputs: HashMap<TagPath, Vec<usize>>,
    control: Option<Arc<Control>>,
}

impl LiveAnalytics {
    pub fn new(detectors: &[DetectorConfig], rul: &[RulConfig]) -> LiveAnalytics {
        let mut la = LiveAnalytics::default();
        for d in detectors {
            let kind: DetectorKind = d.kind;
            let slot = la.detectors.len();
            for (i, t) in d.tags.iter().enumerate() {
                la.inputs.entry(t.clone()).or_default().push((slot, i));
            }
            let instance = d.score_tag.asset().to_owned();
            la.detectors.push(DetectorSlot {
                flag_gauge: metrics::gauge!("mw_anomalous", "component" => "analytics", "instance" => instance.clone()),
                onsets: metrics::counter!("mw_anomaly_onsets_total", "component" => "analytics", "instance" => instance.clone()),
                relearns: metrics::counter!("mw_detector_relearns_total", "component" => "analytics", "instance" => instance),
                was_anomalous: false,
                score_tag: d.score_tag.clone(),
                flag_tag: d.flag_tag.clone(),
                kind,
                warmup: d.warmup,
                detector: mw_analytics::build(kind, d.tags.len(), d.warmup),
                latest: vec![f64::NAN; d.tags.len()],
            });
        }
        if !detectors.is_empty() {
            la.control = Some(Arc::new(Control {
                info: detectors
                    .iter()
                    .map(|d| DetectorInfo {
                        asset: d.asset.clone(),
                        kind: d.kind.to_string(),
                        inputs: d.tags.iter().map(|t| t.as_str().to_owned()).collect(),
                        score_tag: d.score_tag.as_str().to_owned(),
                        flag_tag: d.flag_tag.as_str().to_owned(),
                    })
                    .collect(),
                relearn: detectors.iter().map(|_| AtomicBool::new(false)).collect(),
                pending: AtomicBool::new(false),
            }));
        }
        for r in rul {
            // Band: each side a one-sided 95 % bound (5…95 %) under the fit's assumptions.
            let mut trend = TrendRul::new(r.threshold, r.window).with_z(1.645);
            // With a healthy level the degradation on top of it is taken as exponential (wear accelerates);
            // letting the fit choose between a line and an exponential sample by sample makes the band jump
            // whenever the choice flips.
            if let Some(b) = r.baseline {
                trend = trend.with_baseline(b).only(TrendKind::Exponential);
            }
            if r.decreasing {
                trend = trend.decreasing();
            }
            la.rul_inputs
                .entry(r.tag.clone())
                .or_default()
                .push(la.rul.len());
            la.rul.push(RulSlot {
                rul_tag: r.rul_tag.clone(),
                lower_tag: r.lower_tag.clone(),
                upper_tag: r.upper_tag.clone(),
                live: LiveRul::new(
                    trend,
                    LiveOptions {
                        horizon: r.horizon_days * 86_400.0,
                        significance: r.significance,
                        smoothing: r.smoothing,
                        ..LiveOptions::default()
                    },
                ),
            });
        }
        la
    }

    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty() && self.rul.is_empty()
    }

    /// The API's handle on the detectors (`None` without detectors).
    pub fn control(&self) -> Option<Arc<Control>> {
        self.control.clone()
    }

    /// Replaces every detector whose re-learning was asked for by a fresh one (warming up).
    fn apply_relearn_requests(&mut self) {
        let Some(ctl) = &self.control else { return };
        if !ctl.pending.swap(false, Ordering::Acquire) {
            return;
        }
        for (flag, d) in ctl.relearn.iter().zip(&mut self.detectors) {
            if flag.swap(false, Ordering::Relaxed) {
                tracing::info!(detector = %d.score_tag, "detector re-learning: warming up again");
                d.detector = mw_analytics::build(d.kind, d.latest.len(), d.warmup);
                d.relearns.increment(1);
            }
        }
    }
}

fn derived(tag: &TagPath, value: Value, quality: Quality, ts: i64, now: i64) -> Sample {
    Sample {
        tag: tag.clone(),
        value,
        quality,
        source_ts: ts,
        receive_ts: now,
    }
}

impl Processor for LiveAnalytics {
    fn process(&mut self, batch: &mut Batch) {
        if self.is_empty() {
            return;
        }
        self.apply_relearn_requests();
        let now = mw_model::now_ns();
        let mut touched: Vec<Option<i64>> = vec![None; self.detectors.len()];
        let mut out = Vec::new();
        for s in &batch.samples {
            let v = if s.quality.is_good() {
                s.value.as_f64().unwrap_or(f64::NAN)
            } else {
                f64::NAN
            };
            if let Some(targets) = self.inputs.get(&s.tag) {
                for &(slot, i) in targets {
                    self.detectors[slot].latest[i] = v;
                    let t = touched[slot].get_or_insert(s.source_ts);
                    *t = (*t).max(s.source_ts);
                }
            }
            for &slot in self
                .rul_inputs
                .get(&s.tag)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let r = &mut self.rul[slot];
                if !v.is_finite() {
                    continue;
                }
                let Some(p) = r.live.update(s.source_ts as f64 / 1e9, v) else {
                    continue;
                };
                let hours = |x: f64| x / 3600.0;
                out.push(derived(
                    &r.rul_tag,
                    Value::F64(hours(p.rul)),
                    Quality::Good,
                    s.source_ts,
                    now,
                ));
                out.push(derived(
                    &r.lower_tag,
                    Value::F64(hours(p.lower)),
                    Quality::Good,
                    s.source_ts,
                    now,
                ));
                let (value, quality) = match p.state {
                    RulState::Beyond => (f64::NAN, Quality::Uncertain(BEYOND_HORIZON.into())),
                    RulState::Estimate if !p.upper.is_finite() => {
                        (f64::NAN, Quality::Uncertain(UNBOUNDED.into()))
                    }
                    RulState::Estimate => (hours(p.upper), Quality::Good),
                };
                out.push(derived(
                    &r.upper_tag,
                    Value::F64(value),
                    quality,
                    s.source_ts,
                    now,
                ));
            }
        }
        for (slot, ts) in touched.into_iter().enumerate() {
            let Some(ts) = ts else { continue };
            let d = &mut self.detectors[slot];
            if d.latest.iter().all(|v| v.is_nan()) {
                continue;
            }
            let o = d.detector.update(ts, &d.latest);
            if o.anomalous && !d.was_anomalous {
                d.onsets.increment(1);
            }
            d.was_anomalous = o.anomalous;
            d.flag_gauge.set(if o.anomalous { 1.0 } else { 0.0 });
            let q = if o.warming_up {
                Quality::Uncertain("warming up".into())
            } else {
                Quality::Good
            };
            out.push(derived(
                &d.score_tag,
                Value::F64(o.score),
                q.clone(),
                ts,
                now,
            ));
            out.push(derived(&d.flag_tag, Value::Bool(o.anomalous), q, ts, now));
        }
        batch.samples.extend(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[[devices]]
name = "d"
endpoint = "127.0.0.1:1"
[[devices.tags]]
path = "a/p/x"
table = "holding"
address = 0
type = "f32"
[[devices.tags]]
path = "a/p/y"
table = "holding"
address = 2
type = "f32"
[[devices.tags]]
path = "a/p/z"
table = "holding"
address = 4
type = "f32"
[[detectors]]
asset = "a/p"
tags = ["x", "z"]
warmup = 50
[[rul]]
tag = "a/p/y"
threshold = 10.0
window = 50
"#;

    fn parse(src: &str) -> Config {
        mw_bus::config_registry(&[&mw_modbus::ModbusComponent, &AnalyticsComponent])
            .parse(src, "t.toml")
            .unwrap()
    }

    fn build(cfg: &Config) -> LiveAnalytics {
        LiveAnalytics::new(
            &cfg.section::<DetectorsConfig>().unwrap().detectors,
            &cfg.section::<RulsConfig>().unwrap().rul,
        )
    }

    fn run(la: &mut LiveAnalytics, samples: Vec<Sample>) -> Vec<Sample> {
        let mut b = Batch::from_samples(samples);
        la.process(&mut b);
        b.samples
    }

    fn sample(tag: &str, v: f64, ts_s: i64) -> Sample {
        Sample::good(
            TagPath::new(tag).unwrap(),
            Value::F64(v),
            ts_s * 1_000_000_000,
        )
    }

    #[test]
    fn detector_flags_a_shift_and_rul_tracks_a_trend() {
        let cfg = parse(CFG);
        let mut la = build(&cfg);
        let mut noise = 0x1234_5678u64;
        let mut rnd = move || {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            (noise % 1000) as f64 / 1000.0 - 0.5
        };
        let mut flags = Vec::new();
        let mut last_rul = None;
        for t in 0..400i64 {
            let x = if t >= 300 { 20.0 } else { 1.0 } + rnd() * 0.2;
            let y = 1.0 + t as f64 * 0.01 + rnd() * 0.02; // reaches 10 at t = 900 s
            let z = 5.0 + rnd() * 0.2;
            let out = run(
                &mut la,
                vec![
                    sample("a/p/x", x, t),
                    sample("a/p/y", y, t),
                    sample("a/p/z", z, t),
                ],
            );
            let get = |name: &str| out.iter().find(|s| s.tag.as_str() == name).cloned();
            let flag = get("a/p/anomalous").expect("a flag every batch");
            let score = get("a/p/anomaly_score").unwrap().value.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score));
            if t < 50 {
                assert_eq!(flag.quality.status(), "uncertain", "warming up at t={t}");
            }
            flags.push(flag.value == Value::Bool(true));
            if let Some(r) = get("a/p/rul") {
                last_rul = r.value.as_f64();
            }
        }
        let early: Vec<usize> = (60..300).filter(|&i| flags[i]).collect();
        assert!(
            early.is_empty(),
            "no alarm before the shift: {} at {:?}",
            early.len(),
            &early[..early.len().min(12)]
        );
        let first = flags[300..]
            .iter()
            .position(|f| *f)
            .expect("shift detected");
        assert!(first < 10, "detected {first} samples after the shift");
        let rul_h = last_rul.expect("RUL published");
        let truth_h = (900.0 - 399.0) / 3600.0;
        assert!(
            (rul_h - truth_h).abs() < 0.25 * truth_h,
            "rul {rul_h} h vs truth {truth_h} h"
        );
    }

    #[test]
    fn bad_inputs_are_missing_not_zero() {
        let cfg = parse(CFG);
        let mut la = build(&cfg);
        let mut s = sample("a/p/x", 0.0, 1);
        s.quality = Quality::Bad("timeout".into());
        let out = run(&mut la, vec![s]);
        assert_eq!(out.len(), 1, "all inputs missing: no detector output");
        let out = run(&mut la, vec![sample("a/p/z", 1.0, 2)]);
        assert!(out.iter().any(|s| s.tag.as_str() == "a/p/anomaly_score"));
        let other = run(&mut la, vec![sample("b/q/z", 1.0, 3)]);
        assert_eq!(other.len(), 1, "unrelated tags pass untouched");
    }

    #[test]
    fn relearn_restarts_the_warm_up_of_that_asset_only() {
        let cfg = parse(CFG);
        let mut la = build(&cfg);
        let ctl = la.control().expect("a control with detectors");
        assert_eq!(ctl.list()[0].inputs, vec!["a/p/x", "a/p/z"]);
        let quality = |la: &mut LiveAnalytics, t: i64| {
            let wiggle = (t % 3) as f64 * 0.1;
            let out = run(
                la,
                vec![
                    sample("a/p/x", 1.0 + wiggle, t),
                    sample("a/p/z", 5.0 - wiggle * (t % 2) as f64, t),
                ],
            );
            let s = out
                .iter()
                .find(|s| s.tag.as_str() == "a/p/anomaly_score")
                .cloned();
            s.unwrap().quality.status()
        };
        for t in 0..60 {
            quality(&mut la, t);
        }
        assert_eq!(quality(&mut la, 60), "good", "warmed up after 50 samples");
        assert_eq!(ctl.relearn("b/q"), 0, "no detector there");
        assert_eq!(quality(&mut la, 61), "good");
        assert_eq!(ctl.relearn("a/p"), 1);
        for t in 62..110 {
            assert_eq!(quality(&mut la, t), "uncertain", "warming up again at {t}");
        }
        for t in 110..113 {
            quality(&mut la, t);
        }
        assert_eq!(quality(&mut la, 113), "good", "and warmed up once more");
        assert!(
            LiveAnalytics::new(&[], &cfg.section::<RulsConfig>().unwrap().rul)
                .control()
                .is_none()
        );
    }
}
