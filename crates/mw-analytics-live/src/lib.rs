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
//!   the outputs have quality `uncertain` ("warming up"); while an input has no usable value they
//!   are `uncertain` ("no data from NAME", the detector carrying its last value forward).
//! * `ASSET/anomaly_contributors` at each alarm onset: the inputs behind it, largest share first,
//!   as `PATH:SHARE` separated by spaces ([`Detector::contributors`]), the empty string from the
//!   detector's first output until its first onset; the latest onset and its
//!   contributors are also in [`DetectorInfo::state`], for the API.
//! * **Robust warm-up** ([`warmup`]): a detector is fitted only on a window of `warmup` rows that
//!   looks stable; while the window holds a level change or too many outliers (a fault during
//!   the warm-up) the warm-up does not finish and [`DetectorState::unstable`] says why. The
//!   state carries the warm-up countdown (rows, and seconds at the inputs' sampling interval).
//! * `ASSET/rul`, `rul_lower`, `rul_upper` in hours, from the trend of one health indicator
//!   ([`mw_pdm::LiveRul`]: a finite estimate only while the trend rises significantly, capped at a
//!   horizon, with a bounded rate of change), once the trend window holds 30 samples. "Beyond the
//!   horizon" is published as `rul` = the horizon in hours (quality `good`, so a `rul` alarm
//!   clears) with `rul_lower` and `rul_upper` without a value, quality `uncertain` "beyond the
//!   horizon"; an
//!   unbounded upper limit of a finite estimate is no value, `uncertain` "trend cannot rule out no
//!   failure".
//!
//! Memory is bounded by the detectors' own windows (docs/analytics.md) and the RUL window.
//! Metrics: `mw_anomalous{component="analytics",instance=ASSET}` (0/1),
//! `mw_anomaly_onsets_total{…}` (normal → anomalous transitions) and
//! `mw_detector_relearns_total{…}` (fresh warm-ups asked for through the API).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use mw_analytics::config::{
    DetectorConfig, DetectorsConfig, DetectorsSection, RulConfig, RulSection, RulsConfig,
};
use mw_analytics::{Detector, DetectorKind};
use mw_bus::{Batch, BuildError, Component, Parts, Processor};
use mw_config::{Config, Section};
use mw_model::{Quality, Sample, TagPath, Value};
use mw_pdm::{LiveOptions, LiveRul, RulState, TrendKind, TrendRul};

mod warmup;
use warmup::WarmupGate;

/// How many contributing inputs an alarm onset names.
pub const TOP_CONTRIBUTORS: usize = 3;

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
    pub contributors_tag: String,
    /// What it is doing now.
    pub state: DetectorState,
}

/// A live detector's current state, as the processor last left it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectorState {
    /// Still learning what normal looks like (outputs `uncertain`, never anomalous).
    pub warming_up: bool,
    /// Rows the warm-up window holds when full (the detector's warm-up length).
    pub warmup_rows: usize,
    /// Usable rows still needed at least before the warm-up can finish (0 once warmed up).
    pub warmup_rows_left: usize,
    /// `warmup_rows_left` at the inputs' recent interval between rows, in seconds (when known).
    pub warmup_seconds_left: Option<f64>,
    /// Why the warm-up has not finished although its window is full: the data is unstable.
    pub unstable: Option<String>,
    /// The latest score (`None` before the first row).
    pub score: Option<f64>,
    pub anomalous: bool,
    /// The latest alarm onset: its time (ns since the epoch, the row's source time).
    pub last_onset_ns: Option<i64>,
    /// The inputs (full tag paths) behind the latest onset, largest share first.
    pub contributors: Vec<(String, f64)>,
    /// Inputs without a usable value now (full tag paths).
    pub missing: Vec<String>,
}

struct DetectorSlot {
    /// `mw_anomalous{component="analytics",instance=ASSET}`: 1 while the detector flags its asset.
    flag_gauge: metrics::Gauge,
    /// `mw_anomaly_onsets_total{…}`: transitions from normal to anomalous.
    onsets: metrics::Counter,
    was_anomalous: bool,
    /// The contributors tag has a value (the empty string until the first onset, so that the
    /// asset does not show an input "without a value").
    contributors_said: bool,
    relearns: metrics::Counter,
    score_tag: TagPath,
    flag_tag: TagPath,
    contributors_tag: TagPath,
    inputs: Vec<TagPath>,
    kind: DetectorKind,
    /// Warm-up (rows or duration), gap factor and interval of the `[[detectors]]` entry.
    time: mw_analytics::TimeOptions,
    detector: Box<dyn Detector>,
    /// `Some` while warming up: the rows the detector will be fitted on once they are stable.
    gate: Option<WarmupGate>,
    /// Rows the detector still warms up after the gate handed it the window (a duration
    /// warm-up longer than the window the gate could size before the interval was known).
    after_gate: usize,
    latest: Vec<f64>,
    state: DetectorState,
}

impl DetectorSlot {
    /// A fresh detector behind a fresh warm-up gate.
    fn restart(&mut self) {
        self.detector = mw_analytics::build_timed(self.kind, self.latest.len(), &self.time);
        self.gate = Some(gate_for(&*self.detector, &self.time));
        self.after_gate = 0;
        self.was_anomalous = false;
        self.state.warming_up = true;
        self.state.anomalous = false;
        self.state.score = None;
        self.state.unstable = None;
        let need = self.gate.as_ref().map_or(0, WarmupGate::need);
        self.state.warmup_rows = need;
        self.state.warmup_rows_left = need;
        self.state.warmup_seconds_left = None;
    }

    /// One row of the latest inputs at `ts`: the detector's output, through the warm-up gate.
    fn step(&mut self, ts: i64) -> mw_analytics::Output {
        const WARMING: mw_analytics::Output = mw_analytics::Output {
            score: 0.0,
            anomalous: false,
            warming_up: true,
        };
        let Some(gate) = &mut self.gate else {
            let o = self.detector.update(ts, &self.latest);
            if o.warming_up {
                self.after_gate = self.after_gate.saturating_sub(1).max(1);
                self.state.warmup_rows_left = self.after_gate;
            } else {
                self.state.warmup_rows_left = 0;
            }
            return o;
        };
        let was_unstable = gate.unstable().is_some();
        let open = gate.push(ts, &self.latest);
        let (left, interval) = (gate.rows_left(), gate.interval_s());
        self.state.warmup_rows_left = left;
        self.state.warmup_seconds_left = interval.map(|s| s * left as f64);
        let name = |var: usize| self.inputs.get(var).map_or("?", |t| t.name());
        match gate.unstable() {
            Some(u) => {
                let why = u.describe(name(u.var));
                if !was_unstable {
                    tracing::warn!(detector = %self.score_tag, "warm-up not finished: {why}");
                }
                self.state.unstable = Some(why);
            }
            None => self.state.unstable = None,
        }
        if !open {
            return WARMING;
        }
        let rows = self.gate.take().expect("gate present").take();
        let mut out = WARMING;
        for (t, row) in &rows {
            out = self.detector.update(*t, row);
        }
        tracing::info!(detector = %self.score_tag, rows = rows.len(), "warm-up finished on a stable window");
        self.state.unstable = None;
        self.after_gate = if out.warming_up {
            self.detector.warmup().saturating_sub(rows.len()).max(1)
        } else {
            0
        };
        self.state.warmup_rows_left = self.after_gate;
        self.state.warmup_seconds_left = None;
        // the row just replayed was the latest; its output (warming up) stands for it
        out
    }
}

/// The handle the HTTP API uses to list the detectors and ask for a fresh warm-up: one flag
/// per detector (so requests never queue up), plus one "any request" flag that the processor
/// checks with every batch (the per-detector flags are read only when it is set).
pub struct Control {
    info: Vec<DetectorInfo>,
    /// Each detector's state, written by the processor after every batch it touched.
    state: Mutex<Vec<DetectorState>>,
    relearn: Vec<AtomicBool>,
    pending: AtomicBool,
}

impl Control {
    /// The live detectors, each with its current state.
    pub fn list(&self) -> Vec<DetectorInfo> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.info
            .iter()
            .zip(state.iter())
            .map(|(i, s)| DetectorInfo {
                state: s.clone(),
                ..i.clone()
            })
            .collect()
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
            let detector = mw_analytics::build_timed(kind, d.tags.len(), &d.time_options());
            let gate = gate_for(&*detector, &d.time_options());
            let state = DetectorState {
                warming_up: true,
                warmup_rows: gate.need(),
                warmup_rows_left: gate.need(),
                ..DetectorState::default()
            };
            la.detectors.push(DetectorSlot {
                flag_gauge: metrics::gauge!("mw_anomalous", "component" => "analytics", "instance" => instance.clone()),
                onsets: metrics::counter!("mw_anomaly_onsets_total", "component" => "analytics", "instance" => instance.clone()),
                relearns: metrics::counter!("mw_detector_relearns_total", "component" => "analytics", "instance" => instance),
                was_anomalous: false,
                contributors_said: false,
                score_tag: d.score_tag.clone(),
                flag_tag: d.flag_tag.clone(),
                contributors_tag: d.contributors_tag.clone(),
                inputs: d.tags.clone(),
                kind,
                time: d.time_options(),
                detector,
                gate: Some(gate),
                after_gate: 0,
                latest: vec![f64::NAN; d.tags.len()],
                state,
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
                        contributors_tag: d.contributors_tag.as_str().to_owned(),
                        state: DetectorState::default(),
                    })
                    .collect(),
                state: Mutex::new(la.detectors.iter().map(|d| d.state.clone()).collect()),
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
                d.restart();
                d.relearns.increment(1);
            }
        }
    }
}

/// The warm-up gate of a fresh detector: as many rows as its warm-up — a duration warm-up in
/// rows at the configured interval; without one, the detector's default until it knows its
/// interval (the rest of such a warm-up runs in the detector, unguarded).
fn gate_for(detector: &dyn Detector, time: &mw_analytics::TimeOptions) -> WarmupGate {
    let rows = time
        .warmup
        .and_then(|w| w.rows(time.interval_ns))
        .unwrap_or_else(|| detector.warmup())
        .clamp(mw_analytics::MIN_WARMUP, mw_analytics::MAX_WARMUP);
    WarmupGate::new(rows, detector.n_vars())
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
                // no significant trend: a lower bound from it would be a small number that means
                // nothing ("6 min" on a healthy pump), so there is none
                let (lower, lower_q) = match p.state {
                    RulState::Beyond => (f64::NAN, Quality::Uncertain(BEYOND_HORIZON.into())),
                    RulState::Estimate => (hours(p.lower), Quality::Good),
                };
                out.push(derived(
                    &r.lower_tag,
                    Value::F64(lower),
                    lower_q,
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
        let mut changed = false;
        for (slot, ts) in touched.into_iter().enumerate() {
            let Some(ts) = ts else { continue };
            let d = &mut self.detectors[slot];
            if d.latest.iter().all(|v| v.is_nan()) {
                continue;
            }
            changed = true;
            let o = d.step(ts);
            let onset = o.anomalous && !d.was_anomalous;
            if !d.contributors_said && !onset {
                // no onset yet: nobody to name
                out.push(derived(
                    &d.contributors_tag,
                    Value::string(""),
                    Quality::Good,
                    ts,
                    now,
                ));
            }
            d.contributors_said = true;
            if onset {
                d.onsets.increment(1);
                let named: Vec<(String, f64)> = d
                    .detector
                    .contributors(TOP_CONTRIBUTORS)
                    .into_iter()
                    .filter_map(|c| Some((d.inputs.get(c.var)?.as_str().to_owned(), c.share)))
                    .collect();
                let text = named
                    .iter()
                    .map(|(t, s)| format!("{t}:{s:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::info!(detector = %d.score_tag, contributors = %text, "anomaly onset");
                out.push(derived(
                    &d.contributors_tag,
                    Value::string(&text),
                    Quality::Good,
                    ts,
                    now,
                ));
                d.state.last_onset_ns = Some(ts);
                d.state.contributors = named;
            }
            d.was_anomalous = o.anomalous;
            d.flag_gauge.set(if o.anomalous { 1.0 } else { 0.0 });
            d.state.warming_up = o.warming_up;
            d.state.score = Some(o.score);
            d.state.anomalous = o.anomalous;
            d.state.missing.clear();
            for (t, v) in d.inputs.iter().zip(&d.latest) {
                if !v.is_finite() {
                    d.state.missing.push(t.as_str().to_owned());
                }
            }
            let q = if o.warming_up {
                Quality::Uncertain("warming up".into())
            } else if let Some(m) = d.state.missing.first() {
                let name = m.rsplit('/').next().unwrap_or(m);
                Quality::Uncertain(format!("no data from {name}"))
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
        if changed && let Some(ctl) = &self.control {
            let mut st = ctl.state.lock().unwrap_or_else(|e| e.into_inner());
            for (s, d) in st.iter_mut().zip(&self.detectors) {
                s.clone_from(&d.state);
            }
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
        let st = &la.control().unwrap().list()[0].state;
        assert!(!st.warming_up && st.warmup_rows_left == 0, "{st:?}");
        assert_eq!(
            st.last_onset_ns,
            Some((300 + first as i64) * 1_000_000_000),
            "the onset's time: {st:?}"
        );
        assert!(
            st.contributors
                .iter()
                .all(|(t, s)| (t == "a/p/x" || t == "a/p/z") && *s > 0.0 && *s <= 1.0),
            "contributors name inputs: {st:?}"
        );
        let rul_h = last_rul.expect("RUL published");
        let truth_h = (900.0 - 399.0) / 3600.0;
        assert!(
            (rul_h - truth_h).abs() < 0.25 * truth_h,
            "rul {rul_h} h vs truth {truth_h} h"
        );
    }

    #[test]
    fn a_fault_in_the_warm_up_keeps_it_waiting_and_onsets_publish_contributors() {
        let cfg = parse(&CFG.replace(
            "tags = [\"x\", \"z\"]\nwarmup = 50",
            "tags = [\"x\"]\nkind = \"mad\"\nwarmup = 64",
        ));
        let mut la = build(&cfg);
        let ctl = la.control().unwrap();
        let wiggle = |t: i64| ((t * 7919) % 101) as f64 / 101.0;
        let mut contributors = Vec::new();
        let mut opened = None;
        for t in 0..400i64 {
            // a step inside the warm-up (rows 20..40), then normal, then a spike at 300
            let x = wiggle(t)
                + if (20..40).contains(&t) { 30.0 } else { 0.0 }
                + if t == 300 { 50.0 } else { 0.0 };
            let out = run(&mut la, vec![sample("a/p/x", x, t)]);
            let st = &ctl.list()[0].state;
            if t == 70 {
                assert!(st.warming_up, "the step is in the window at {t}: {st:?}");
                let why = st.unstable.as_deref().unwrap_or_default();
                assert!(why.contains("x changed level"), "{st:?}");
                assert!(st.warmup_rows_left > 0 && st.warmup_seconds_left.is_some());
            }
            if opened.is_none() && !st.warming_up {
                opened = Some(t);
            }
            contributors.extend(
                out.into_iter()
                    .filter(|s| s.tag.as_str() == "a/p/anomaly_contributors")
                    .map(|s| (t, s.value)),
            );
        }
        let opened = opened.expect("warmed up once the step had left");
        assert!(
            opened >= 40 + 64,
            "warmed up at {opened}, with the step in its window"
        );
        assert!(opened < 200, "warmed up at {opened}");
        assert_eq!(
            contributors[0].1,
            Value::string(""),
            "empty until the first onset (the tag has a value from the first output)"
        );
        assert_eq!(
            contributors[1..],
            [(300, Value::string("a/p/x:1.00"))],
            "one onset, at the spike, naming x"
        );
        assert_eq!(ctl.list()[0].contributors_tag, "a/p/anomaly_contributors");
    }

    #[test]
    fn a_duration_warm_up_longer_than_the_gate_counts_down_in_the_detector() {
        // 600 s at a 1 s interval the gate does not know yet: it guards 400 rows, the
        // detector warms up on 200 more
        let cfg = parse(&CFG.replace(
            "tags = [\"x\", \"z\"]\nwarmup = 50",
            "tags = [\"x\"]\nkind = \"mad\"\nwarmup = \"600s\"",
        ));
        let mut la = build(&cfg);
        let ctl = la.control().unwrap();
        assert_eq!(ctl.list()[0].state.warmup_rows, 400);
        let wiggle = |t: i64| ((t * 7919) % 101) as f64 / 101.0;
        let mut done = None;
        for t in 0..700i64 {
            run(&mut la, vec![sample("a/p/x", wiggle(t), t)]);
            let st = &ctl.list()[0].state;
            if t == 449 {
                assert!(st.warming_up, "{st:?}");
                let left = st.warmup_rows_left;
                assert!((140..=160).contains(&left), "{left} rows left at {t}");
            }
            if done.is_none() && !st.warming_up {
                assert_eq!(st.warmup_rows_left, 0);
                done = Some(t);
            }
        }
        let done = done.expect("warmed up");
        assert!((595..=610).contains(&done), "warmed up at {done}");
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
