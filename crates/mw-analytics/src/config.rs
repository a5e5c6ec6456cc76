//! The `[[detectors]]` and `[[rul]]` sections: live anomaly detectors per asset and
//! remaining-useful-life estimates, their types and validation, registered with `mw-config` as
//! [`Section`]s of the `Derived` phase (they refer to tags the sources define and publish tags of
//! their own). Every key and default is in `docs/config.md`.

use std::ops::RangeInclusive;

use mw_config::{
    Claim, Cx, EntryKeys, Field, Item, Owner, Phase, Section, SectionValue, Table, path_label,
};
use mw_model::{DataType, TagDef, TagPath};

use crate::time::{DEFAULT_GAP_FACTOR, Length, MAX_GAP_FACTOR, MIN_GAP_FACTOR, parse_duration};
use crate::{DetectorKind, TimeOptions};

/// The checked `[[detectors]]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectorsConfig {
    pub detectors: Vec<DetectorConfig>,
}

/// The checked `[[rul]]` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RulsConfig {
    pub rul: Vec<RulConfig>,
}

/// One `[[detectors]]` entry: a streaming anomaly detector over numeric tags of one asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectorConfig {
    /// The asset path (declared in `[[assets]]` or the asset of a configured tag).
    pub asset: String,
    /// Full paths of the watched tags: those listed in `tags`, in that order, or else every
    /// numeric tag of the asset in file order. Never empty.
    pub tags: Vec<TagPath>,
    pub kind: DetectorKind,
    /// Warm-up in samples (`warmup = 400`) or as a duration (`warmup = "2h"`, converted with
    /// the typical interval); `None`: the detector's own default.
    pub warmup: Option<Length>,
    /// A step longer than this many typical intervals is a gap (default 10).
    pub gap_factor: u32,
    /// The typical interval (`interval = "1s"`), if given; learnt from the data otherwise.
    pub interval_ns: Option<i64>,
    /// `ASSET/NAME_score` (default `ASSET/anomaly_score`): f64 in [0, 1], unit `1`.
    pub score_tag: TagPath,
    /// `ASSET/NAME` (default `ASSET/anomalous`): bool.
    pub flag_tag: TagPath,
    /// `ASSET/NAME_contributors` (default `ASSET/anomaly_contributors`): string, the input tags
    /// that contributed most at the latest alarm onset with their shares
    /// (`PATH:0.62 PATH:0.21`), published at each onset.
    pub contributors_tag: TagPath,
}

/// One `[[rul]]` entry: remaining useful life by trend extrapolation of one health indicator.
#[derive(Clone, Debug, PartialEq)]
pub struct RulConfig {
    /// The indicator: a configured numeric tag.
    pub tag: TagPath,
    /// Failure threshold in the tag's unit (finite).
    pub threshold: f64,
    /// Samples in the trend window (10..=100000, default 600).
    pub window: usize,
    /// Healthy level of the indicator, if given (finite, on the healthy side of `threshold`).
    pub baseline: Option<f64>,
    /// The indicator falls toward the threshold (default: it rises).
    pub decreasing: bool,
    /// Longest RUL published as a number, days (0 < h ≤ 3650, default 30); beyond it `ASSET/rul` reads the
    /// horizon in hours and `ASSET/rul_upper` has no value, quality `uncertain` "beyond the horizon".
    pub horizon_days: f64,
    /// Standard errors the slope must be above 0 before a finite RUL is published (1..=20, default 6).
    pub significance: f64,
    /// Time constant of the published RUL following the trend's estimate, as a fraction of the window's time
    /// span (0..=10, default 0.25); it jumps only to stay inside the trend's band.
    pub smoothing: f64,
    /// `ASSET/rul`: the estimate in hours (ASSET is the tag's asset).
    pub rul_tag: TagPath,
    /// `ASSET/rul_lower`, hours.
    pub lower_tag: TagPath,
    /// `ASSET/rul_upper`, hours.
    pub upper_tag: TagPath,
}

impl DetectorConfig {
    /// The time options this entry asks for (see [`crate::build_timed`]).
    pub fn time_options(&self) -> TimeOptions {
        TimeOptions {
            warmup: self.warmup,
            gap_factor: self.gap_factor,
            interval_ns: self.interval_ns,
        }
    }
}

/// `mad`, `ewma`, `cusum` and `seasonal` watch exactly one tag; `auto` and `pca` any number.
pub fn is_univariate(kind: DetectorKind) -> bool {
    matches!(
        kind,
        DetectorKind::Mad | DetectorKind::Ewma | DetectorKind::Cusum | DetectorKind::Seasonal
    )
}

/// The `[[detectors]]` section checker.
pub struct DetectorsSection;

/// The `[[rul]]` section checker.
pub struct RulSection;

impl Section for DetectorsSection {
    fn key(&self) -> &'static str {
        "detectors"
    }

    fn phase(&self) -> Phase {
        Phase::Derived
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = DetectorsConfig::default();
        for item in cx.array_of_tables(root, "detectors", "detectors") {
            if let Some(d) = detector(item, cx) {
                out.detectors.push(d);
            }
        }
        Box::new(out)
    }
}

impl Section for RulSection {
    fn key(&self) -> &'static str {
        "rul"
    }

    fn phase(&self) -> Phase {
        Phase::Derived
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = RulsConfig::default();
        for item in cx.array_of_tables(root, "rul", "rul") {
            if let Some(r) = rul(item, cx) {
                out.rul.push(r);
            }
        }
        Box::new(out)
    }
}

const DETECTOR_ENTRY: EntryKeys = EntryKeys {
    id: "asset",
    required: &["asset"],
    allowed: &[
        "asset",
        "tags",
        "kind",
        "warmup",
        "name",
        "gap_factor",
        "interval",
    ],
};
const RUL_ENTRY: EntryKeys = EntryKeys {
    id: "tag",
    required: &["tag", "threshold"],
    allowed: &[
        "tag",
        "threshold",
        "window",
        "baseline",
        "decreasing",
        "horizon_days",
        "significance",
        "smoothing",
    ],
};
const WARMUP_RANGE: RangeInclusive<i128> = 10..=crate::MAX_WARMUP as i128;
const GAP_FACTOR_RANGE: RangeInclusive<i128> = MIN_GAP_FACTOR as i128..=MAX_GAP_FACTOR as i128;
/// Longest duration accepted for `warmup` and `interval`: a year.
const MAX_DURATION_NS: i64 = 366 * 86_400 * 1_000_000_000;
const RUL_WINDOW_RANGE: RangeInclusive<i128> = 10..=100_000;
const RUL_WINDOW_DEFAULT: usize = 600;
const RUL_HORIZON_DAYS_DEFAULT: f64 = 30.0;
const RUL_SIGNIFICANCE_DEFAULT: f64 = 6.0;
const RUL_SMOOTHING_DEFAULT: f64 = 0.25;
/// A detector's `name` when none is given: it publishes `ASSET/anomaly_score` and `ASSET/anomalous`.
const DETECTOR_SCORE_DEFAULT: &str = "anomaly_score";
const DETECTOR_FLAG_DEFAULT: &str = "anomalous";
const DETECTOR_CONTRIBUTORS_DEFAULT: &str = "anomaly_contributors";

fn detector(item: Item<'_, '_>, cx: &mut Cx<'_>) -> Option<DetectorConfig> {
    let anon = format!("[[detectors]] entry #{}", item.index);
    let (asset_field, label) = cx.entry_head(item.table(&anon), &DETECTOR_ENTRY, |a| {
        format!("detector on {a:?}")
    });
    let t = item.table(&label);
    let asset = asset_field.and_then(|f| analytics_asset(f, cx));

    let kinds = DetectorKind::ALL.map(|k| (k.as_str(), k));
    let kind = cx.choice(t, "kind", "detector kind", &kinds);
    let warmup = if t.is_string("warmup") {
        duration(t, "warmup", &label, cx).map(Length::Duration)
    } else {
        cx.integer(t, "warmup", false, WARMUP_RANGE)
            .map(|f| Length::Rows(f.v as usize))
    };
    let gap_factor = cx
        .integer(t, "gap_factor", false, GAP_FACTOR_RANGE)
        .map_or(DEFAULT_GAP_FACTOR, |f| f.v as u32);
    let interval_ns = duration(t, "interval", &label, cx);
    let (tags, count) = detector_tags(t, &label, asset.as_ref(), cx);
    if let (Some(k), Some((n, from))) = (&kind, &count)
        && is_univariate(k.v)
        && *n != 1
    {
        let msg = format!(
            "detector kind {:?} watches exactly one tag, but {from}; use kind \"auto\" or \"pca\" \
             for several tags, or one [[detectors]] entry per tag",
            k.v.as_str()
        );
        cx.err(k.span.start, msg);
    }

    let name = cx.string(t, "name", false);
    if let Some(n) = &name
        && (n.v.is_empty() || n.v.contains('/'))
    {
        let msg = format!(
            "\"name\" in {label} must be one tag-name segment (the detector publishes NAME_score \
             and NAME under its asset), found {:?}",
            n.v
        );
        cx.err(n.span.start, msg);
        return None;
    }
    let asset = asset?;
    let (score, flag, contributors) = match &name {
        Some(n) => (
            format!("{}_score", n.v),
            n.v.to_owned(),
            format!("{}_contributors", n.v),
        ),
        None if t.contains_key("name") => return None, // wrong type, reported
        None => (
            DETECTOR_SCORE_DEFAULT.to_owned(),
            DETECTOR_FLAG_DEFAULT.to_owned(),
            DETECTOR_CONTRIBUTORS_DEFAULT.to_owned(),
        ),
    };
    let at = name.as_ref().map_or(asset.span.start, |n| n.span.start);
    let [score_tag, flag_tag, contributors_tag] =
        cx.outputs(asset.v, [score, flag, contributors], at, &label)?;
    cx.claim(Claim {
        paths: vec![
            score_tag.clone(),
            flag_tag.clone(),
            contributors_tag.clone(),
        ],
        at,
        label: label.clone(),
        group: "detectors",
        hint: |_| "; set \"name\" to publish under other names",
    });
    let d = DetectorConfig {
        asset: asset.v.to_owned(),
        tags: tags?,
        kind: kind.map_or(DetectorKind::default(), |k| k.v),
        warmup,
        gap_factor,
        interval_ns,
        score_tag,
        flag_tag,
        contributors_tag,
    };
    for def in detector_outputs(&d) {
        cx.publish(def);
    }
    Some(d)
}

/// The duration `key` of a detector entry (`"2h"`), at most a year; reported otherwise.
fn duration(t: Table<'_, '_>, key: &str, label: &str, cx: &mut Cx<'_>) -> Option<i64> {
    let f = cx.string(t, key, false)?;
    match parse_duration(f.v) {
        Ok(v) if v <= MAX_DURATION_NS => Some(v),
        Ok(_) => {
            let msg = format!(
                "{key:?} in {label} is {:?}: at most a year (e.g. \"52w\")",
                f.v
            );
            cx.err(f.span.start, msg);
            None
        }
        Err(e) => {
            cx.err(f.span.start, format!("{key:?} in {label}: {e}"));
            None
        }
    }
}

/// The definitions of a detector's score (`f64`, unit `1`), flag (`bool`) and contributors
/// (`string`).
fn detector_outputs(d: &DetectorConfig) -> [TagDef; 3] {
    let n = d.tags.len();
    let plural = if n == 1 { "" } else { "s" };
    let mut score = TagDef::new(d.score_tag.clone(), DataType::F64);
    score.unit = Some("1".to_owned());
    score.description = format!(
        "anomaly score 0..1 ({} detector over {n} tag{plural})",
        d.kind
    );
    let mut flag = TagDef::new(d.flag_tag.clone(), DataType::Bool);
    flag.description = format!("anomalous ({} detector)", d.kind);
    let mut contributors = TagDef::new(d.contributors_tag.clone(), DataType::String);
    contributors.description =
        "input tags behind the latest alarm onset, with their shares (PATH:SHARE …)".to_owned();
    [score, flag, contributors]
}

/// The definitions of a RUL entry's estimate and bounds (`f64`, unit `h`); `unit` is the
/// indicator's unit.
fn rul_outputs(r: &RulConfig, unit: Option<&str>) -> [TagDef; 3] {
    let unit = unit.map_or(String::new(), |u| format!(" {u}"));
    let direction = if r.decreasing { "falls to" } else { "reaches" };
    let what = format!("{} {direction} {}{unit}", r.tag.name(), r.threshold);
    let hours = |path: &TagPath, description: String| {
        let mut def = TagDef::new(path.clone(), DataType::F64);
        def.unit = Some("h".to_owned());
        def.description = description;
        def
    };
    [
        hours(
            &r.rul_tag,
            format!(
                "remaining useful life: hours until {what} (trend over {} samples; {} h = beyond the \
                 {}-day horizon)",
                r.window,
                r.horizon_days * 24.0,
                r.horizon_days
            ),
        ),
        hours(
            &r.lower_tag,
            format!("remaining useful life, lower bound: hours until {what}"),
        ),
        hours(
            &r.upper_tag,
            format!("remaining useful life, upper bound: hours until {what}"),
        ),
    ]
}

/// An analytics entry's asset: a valid asset path, declared in `[[assets]]` or with at least one
/// configured tag directly under it.
fn analytics_asset<'a>(f: Field<&'a str>, cx: &mut Cx<'_>) -> Option<Field<&'a str>> {
    if !cx.valid_asset_path(&f) {
        return None;
    }
    if !cx.asset_known(f.v) {
        let msg = format!(
            "unknown asset {:?}: it is not declared in [[assets]] and no configured tag is directly under it",
            f.v
        );
        cx.err(f.span.start, msg);
        return None;
    }
    Some(f)
}

/// The tags a detector watches (`None` if they could not all be resolved), and how many it was
/// given with a phrase saying where they come from (for the univariate-kind check).
fn detector_tags(
    t: Table<'_, '_>,
    label: &str,
    asset: Option<&Field<&str>>,
    cx: &mut Cx<'_>,
) -> (Option<Vec<TagPath>>, Option<(usize, String)>) {
    if !t.contains_key("tags") {
        let Some(asset) = asset else {
            return (None, None);
        };
        let tags: Vec<TagPath> = cx
            .tags_of(asset.v)
            .into_iter()
            .filter(|(_, dt)| dt.is_none_or(DataType::is_numeric))
            .map(|(p, _)| p)
            .collect();
        if tags.is_empty() {
            let msg = format!(
                "{label} has nothing to watch: no numeric tag is configured directly under its asset"
            );
            cx.err(asset.span.start, msg);
            return (None, None);
        }
        let names: Vec<&str> = tags.iter().map(TagPath::name).collect();
        let from = format!(
            "{label} has no \"tags\" and its asset has {} numeric tags ({})",
            tags.len(),
            names.join(", ")
        );
        let n = tags.len();
        return (Some(tags), Some((n, from)));
    }
    let Some(f) = cx.array(t, "tags", false, "array of tag names") else {
        return (None, None);
    };
    if f.v.is_empty() {
        let msg = format!(
            "\"tags\" in {label} is empty; list tag names under the asset, or leave \"tags\" out \
             to watch every numeric tag of the asset"
        );
        cx.err(f.span.start, msg);
        return (None, None);
    }
    let count = Some((
        f.v.len(),
        format!("\"tags\" in {label} lists {}", f.v.len()),
    ));
    let mut tags = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut ok = true;
    for (i, el) in f.v.iter().enumerate() {
        let at = el.start();
        let Some(name) = el.as_str() else {
            cx.wrong_elem_type(
                &format!("element {} of \"tags\"", i + 1),
                label,
                "string",
                *el,
            );
            ok = false;
            continue;
        };
        if seen.contains(&name) {
            cx.err(
                at,
                format!("duplicate tag name {name:?} in \"tags\" of {label}"),
            );
            ok = false;
            continue;
        }
        seen.push(name);
        let Some(asset) = asset else {
            ok = false; // invalid or unknown asset, reported
            continue;
        };
        ok &= match detector_tag(asset.v, name, label, cx) {
            Ok(p) => {
                tags.push(p);
                true
            }
            Err(msg) => {
                cx.err(at, msg);
                false
            }
        };
    }
    (ok.then_some(tags), count)
}

/// One name of a detector's `tags`: a configured numeric tag directly under `asset`.
fn detector_tag(asset: &str, name: &str, label: &str, cx: &Cx<'_>) -> Result<TagPath, String> {
    if name.contains('/') {
        let hint = name
            .strip_prefix(asset)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.contains('/'))
            .map_or(String::new(), |rest| format!("; did you mean {rest:?}?"));
        return Err(format!(
            "tag name {name:?} in \"tags\" of {label} contains '/': list the names of tags \
             directly under the asset, e.g. \"flow\"{hint}"
        ));
    }
    let path = TagPath::new(&format!("{asset}/{name}"))
        .map_err(|e| format!("invalid tag name {name:?} in \"tags\" of {label}: {e}"))?;
    if !cx.tag_known(&path) {
        return Err(format!(
            "unknown tag {name:?} in \"tags\" of {label}: {path} is not a configured tag ({})",
            numeric_tags_hint(asset, cx)
        ));
    }
    match cx.tag_type(&path) {
        Some(dt) if !dt.is_numeric() => Err(format!(
            "tag {path} in \"tags\" of {label} has type {dt}; a detector needs numeric tags"
        )),
        _ => Ok(path),
    }
}

/// Names the numeric tags of `asset`, for an unknown-tag message.
fn numeric_tags_hint(asset: &str, cx: &Cx<'_>) -> String {
    let tags = cx.tags_of(asset);
    if tags.is_empty() {
        return format!("no tag is configured directly under {asset}");
    }
    let numeric: Vec<&str> = tags
        .iter()
        .filter(|(_, dt)| dt.is_none_or(DataType::is_numeric))
        .map(|(p, _)| p.name())
        .collect();
    if numeric.is_empty() {
        format!("{asset} has no numeric tags")
    } else {
        format!("numeric tags of {asset}: {}", numeric.join(", "))
    }
}

fn rul(item: Item<'_, '_>, cx: &mut Cx<'_>) -> Option<RulConfig> {
    let anon = format!("[[rul]] entry #{}", item.index);
    let (tag_field, label) =
        cx.entry_head(item.table(&anon), &RUL_ENTRY, |p| path_label("rul for", p));
    let t = item.table(&label);
    let tag = tag_field.and_then(|f| rul_tag(f, cx));
    let threshold = cx.finite(t, "threshold", false);
    let window = cx
        .integer(t, "window", false, RUL_WINDOW_RANGE)
        .map_or(RUL_WINDOW_DEFAULT, |f| f.v as usize);
    let baseline = cx.finite(t, "baseline", false);
    let decreasing = cx.boolean(t, "decreasing", false).is_some_and(|f| f.v);
    let mut bounded = |key: &str, ok: fn(f64) -> bool, expected: &str, default: f64| {
        let f = cx.finite(t, key, false)?;
        if ok(f.v) {
            Some(f.v)
        } else {
            cx.err(
                f.span.start,
                format!(
                    "{key:?} in {label} is {}, out of range (expected {expected})",
                    f.v
                ),
            );
            None
        }
        .or(Some(default))
    };
    let horizon_days = bounded(
        "horizon_days",
        |v| v > 0.0 && v <= 3650.0,
        "> 0 and <= 3650",
        RUL_HORIZON_DAYS_DEFAULT,
    );
    let significance = bounded(
        "significance",
        |v| (1.0..=20.0).contains(&v),
        "1..=20",
        RUL_SIGNIFICANCE_DEFAULT,
    );
    let smoothing = bounded(
        "smoothing",
        |v| (0.0..=10.0).contains(&v),
        "0..=10",
        RUL_SMOOTHING_DEFAULT,
    );
    if let (Some(th), Some(b)) = (&threshold, &baseline) {
        let msg = if decreasing && b.v <= th.v {
            Some(format!(
                "\"baseline\" in {label} is {}, not above \"threshold\" {}: with decreasing = true \
                 the indicator falls toward failure, so its healthy level is above the threshold",
                b.v, th.v
            ))
        } else if !decreasing && b.v >= th.v {
            Some(format!(
                "\"baseline\" in {label} is {}, not below \"threshold\" {}: the indicator rises \
                 toward failure, so its healthy level is below the threshold (set decreasing = true \
                 if it falls)",
                b.v, th.v
            ))
        } else {
            None
        };
        if let Some(msg) = msg {
            cx.err(b.span.start, msg);
        }
    }

    let (field, tag) = tag?;
    let at = field.span.start;
    let names = ["rul", "rul_lower", "rul_upper"].map(str::to_owned);
    let [rul_tag, lower_tag, upper_tag] = cx.outputs(tag.asset(), names, at, &label)?;
    cx.claim(Claim {
        paths: vec![rul_tag.clone(), lower_tag.clone(), upper_tag.clone()],
        at,
        label: label.clone(),
        group: "rul",
        hint: |earlier| match earlier {
            Owner::Published { group: "rul" } => "; at most one [[rul]] entry per asset",
            _ => "",
        },
    });
    let r = RulConfig {
        tag,
        threshold: threshold?.v,
        window,
        baseline: baseline.map(|b| b.v),
        decreasing,
        horizon_days: horizon_days.unwrap_or(RUL_HORIZON_DAYS_DEFAULT),
        significance: significance.unwrap_or(RUL_SIGNIFICANCE_DEFAULT),
        smoothing: smoothing.unwrap_or(RUL_SMOOTHING_DEFAULT),
        rul_tag,
        lower_tag,
        upper_tag,
    };
    let unit = cx.tag_def(&r.tag).and_then(|d| d.unit.clone());
    for def in rul_outputs(&r, unit.as_deref()) {
        cx.publish(def);
    }
    Some(r)
}

/// The `tag` of a `[[rul]]` entry: a configured numeric tag.
fn rul_tag<'a>(f: Field<&'a str>, cx: &mut Cx<'_>) -> Option<(Field<&'a str>, TagPath)> {
    let path = match TagPath::new(f.v) {
        Ok(p) => p,
        Err(e) => {
            cx.err(f.span.start, format!("invalid tag path {:?}: {e}", f.v));
            return None;
        }
    };
    if !cx.tag_known(&path) {
        let msg = format!(
            "unknown tag {path} for [[rul]]: not a configured tag ({})",
            numeric_tags_hint(path.asset(), cx)
        );
        cx.err(f.span.start, msg);
        return None;
    }
    if let Some(dt) = cx.tag_type(&path)
        && !dt.is_numeric()
    {
        let msg = format!(
            "tag {path} for [[rul]] has type {dt}; a remaining-useful-life estimate needs a numeric tag"
        );
        cx.err(f.span.start, msg);
        return None;
    }
    Some((f, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn univariate_kinds() {
        let uni: Vec<&str> = DetectorKind::ALL
            .into_iter()
            .filter(|&k| is_univariate(k))
            .map(DetectorKind::as_str)
            .collect();
        assert_eq!(uni, ["mad", "ewma", "cusum", "seasonal"]);
        assert_eq!(DetectorKind::default(), DetectorKind::Auto);
    }
}
