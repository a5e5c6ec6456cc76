//! The `[[alarms]]` section: alarm definitions per tag, or per asset from a template
//! (`template = "gas_detector"`), registered with `mw-config` as a [`Section`] of the `Derived`
//! phase (alarms refer to tags the sources define and to what analytics publish). Every key and
//! default is in `docs/config.md`; messages name the file (through the diagnostics), the alarm
//! and the field, and unknown keys get a did-you-mean.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use mw_config::{Cx, EntryKeys, Field, Item, Phase, Section, SectionValue, Table};
use mw_model::TagPath;

/// The checked `[[alarms]]` section, templates expanded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlarmsConfig {
    pub alarms: Vec<AlarmDef>,
}

/// Alarm priority, most urgent first (so `Ord` sorts critical first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Critical,
    High,
    Medium,
    Low,
}

impl Priority {
    pub const ALL: [(&'static str, Priority); 4] = [
        ("critical", Priority::Critical),
        ("high", Priority::High),
        ("medium", Priority::Medium),
        ("low", Priority::Low),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

/// What makes an alarm active.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Value above the limit (`hi`, `hihi`).
    High(f64),
    /// Value below the limit (`lo`, `lolo`).
    Low(f64),
    /// |d value / dt| above the limit, in units per second.
    Rate(f64),
    /// |value − setpoint| above the limit.
    Deviation { setpoint: TagPath, limit: f64 },
    /// The value equals this state (bools as 0/1).
    Discrete(f64),
    /// The input's quality is not good.
    BadQuality,
    /// No sample for this many ns.
    Stale(i64),
    /// `ASSET/anomaly_score` ≥ 0.5 or `ASSET/anomalous` true (the input tag says which).
    Anomaly,
    /// `ASSET/rul` below this many hours.
    RulBelow(f64),
}

/// The `kind` names, in the order the messages list them.
pub const KINDS: [&str; 12] = [
    "hi",
    "hihi",
    "lo",
    "lolo",
    "rate",
    "deviation",
    "discrete",
    "bad_quality",
    "stale",
    "anomaly",
    "rul",
    "gas",
];

/// Suppression by design: the alarm is suppressed while `tag` equals `value` (bools as 0/1).
#[derive(Clone, Debug, PartialEq)]
pub struct Suppression {
    pub tag: TagPath,
    pub value: f64,
}

/// One alarm, as the engine runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmDef {
    /// Unique id (`TAG:KIND` unless `id` is given).
    pub id: String,
    /// The input tag.
    pub tag: TagPath,
    pub kind: &'static str,
    pub condition: Condition,
    pub priority: Priority,
    /// Hysteresis in the tag's unit (default 0).
    pub deadband: f64,
    pub on_delay_ns: i64,
    pub off_delay_ns: i64,
    pub latching: bool,
    /// With `{value}`, `{unit}`, `{limit}` placeholders.
    pub message: String,
    pub unit: String,
    /// Operator area for routing and KPIs (default: the asset's parent path).
    pub area: String,
    /// Full asset path (default: the tag's asset).
    pub asset: String,
    pub suppress: Option<Suppression>,
}

impl AlarmDef {
    /// The limit, for `{limit}` (empty for kinds without one).
    pub fn limit_text(&self) -> String {
        match &self.condition {
            Condition::High(l)
            | Condition::Low(l)
            | Condition::Rate(l)
            | Condition::RulBelow(l) => l.to_string(),
            Condition::Deviation { limit, .. } => limit.to_string(),
            Condition::Discrete(s) => s.to_string(),
            Condition::Stale(ns) => format!("{} s", *ns as f64 / 1e9),
            Condition::Anomaly => "0.5".into(),
            Condition::BadQuality => String::new(),
        }
    }

    /// The message with `{value}`, `{unit}` and `{limit}` substituted (`unknown` when there is
    /// no usable value, e.g. a bad sample).
    pub fn render(&self, value: Option<f64>) -> String {
        let v = value.map_or_else(|| "unknown".to_owned(), |v| format!("{v}"));
        self.message
            .replace("{value}", &v)
            .replace("{unit}", &self.unit)
            .replace("{limit}", &self.limit_text())
    }
}

/// Default % LEL thresholds of the gas-detector template.
pub const GAS_WARNING_DEFAULT: f64 = 10.0;
pub const GAS_DANGER_DEFAULT: f64 = 20.0;

/// The `[[alarms]]` section checker.
pub struct AlarmsSection;

impl Section for AlarmsSection {
    fn key(&self) -> &'static str {
        "alarms"
    }

    fn phase(&self) -> Phase {
        Phase::Derived
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = AlarmsConfig::default();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for item in cx.array_of_tables(root, "alarms", "alarms") {
            for def in alarm(item, cx) {
                if let Some(&first) = ids.get(&def.id) {
                    let line = cx.line(first);
                    cx.err(
                        item.start,
                        format!(
                            "alarm {:?} is defined twice (first at line {line}); give one an \"id\"",
                            def.id
                        ),
                    );
                    continue;
                }
                ids.insert(def.id.clone(), item.start);
                out.alarms.push(def);
            }
        }
        Box::new(out)
    }
}

const ENTRY: EntryKeys = EntryKeys {
    id: "tag",
    required: &["kind"],
    allowed: &[
        "tag",
        "asset",
        "kind",
        "id",
        "limit",
        "setpoint",
        "state",
        "stale_after_s",
        "priority",
        "deadband",
        "on_delay_ms",
        "off_delay_ms",
        "latching",
        "message",
        "area",
        "suppress_tag",
        "suppress_value",
        "warning",
        "danger",
    ],
};
const DELAY_RANGE: RangeInclusive<i128> = 0..=3_600_000;
const STALE_RANGE: RangeInclusive<i128> = 1..=86_400;

fn alarm(item: Item<'_, '_>, cx: &mut Cx<'_>) -> Vec<AlarmDef> {
    let anon = format!("[[alarms]] entry #{}", item.index);
    let (tag_field, label) =
        cx.entry_head(item.table(&anon), &ENTRY, |t| format!("alarm on {t:?}"));
    let t = item.table(&label);
    let kinds: Vec<(&str, &'static str)> = KINDS.iter().map(|k| (*k, *k)).collect();
    let Some(kind) = cx.choice(t, "kind", "alarm kind", &kinds) else {
        return Vec::new();
    };
    let kind = kind.v;
    let asset_field = cx.string(t, "asset", false);

    // The input tag: given, or derived from `asset` for the analytics hooks.
    let tag = match (&tag_field, kind, &asset_field) {
        (Some(f), _, _) => input_tag(f, &label, cx),
        (None, "anomaly", Some(a)) => asset_tag(a, "anomaly_score", cx),
        (None, "rul", Some(a)) => asset_tag(a, "rul", cx),
        (None, "anomaly" | "rul", None) => {
            cx.err(
                t.start(),
                format!(
                    "{label} needs \"tag\" or \"asset\" (the asset whose analytics it watches)"
                ),
            );
            None
        }
        (None, _, _) => {
            cx.err(t.start(), format!("missing key \"tag\" in {label}"));
            None
        }
    };

    let priority = cx
        .choice(t, "priority", "alarm priority", &Priority::ALL)
        .map(|f| f.v);
    let deadband = nonneg(cx, t, "deadband", &label).unwrap_or(0.0);
    let ms = |cx: &mut Cx<'_>, key| {
        cx.integer(t, key, false, DELAY_RANGE)
            .map_or(0, |f| f.v as i64 * 1_000_000)
    };
    let on_delay_ns = ms(cx, "on_delay_ms");
    let off_delay_ns = ms(cx, "off_delay_ms");
    let latching = cx.boolean(t, "latching", false).is_some_and(|f| f.v);
    let message = cx.string(t, "message", false).map(|f| f.v.to_owned());
    let area = cx.string(t, "area", false).map(|f| f.v.to_owned());
    let id = cx.string(t, "id", false).map(|f| f.v.to_owned());
    let suppress = match cx.string(t, "suppress_tag", false) {
        Some(f) => {
            let tag = input_tag(&f, &label, cx);
            let value = cx.finite(t, "suppress_value", false).map_or(0.0, |f| f.v);
            tag.map(|tag| Suppression { tag, value })
        }
        None => None,
    };

    let limit = |cx: &mut Cx<'_>| -> Option<f64> {
        let f = cx.finite(t, "limit", false);
        if f.is_none() && !t.contains_key("limit") {
            cx.err(
                t.start(),
                format!("{label}: kind {kind:?} needs \"limit\" (a number in the tag's unit)"),
            );
        }
        f.map(|f| f.v)
    };
    let Some(tag) = tag else {
        return Vec::new();
    };
    let unit = cx
        .tag_def(&tag)
        .and_then(|d| d.unit.clone())
        .unwrap_or_default();
    let asset = asset_field
        .as_ref()
        .map_or_else(|| tag.asset().to_owned(), |a| a.v.to_owned());
    let area = area.unwrap_or_else(|| parent(&asset).to_owned());
    let base =
        |kind: &'static str, condition: Condition, priority: Priority, message: String| AlarmDef {
            id: format!("{}:{kind}", tag.as_str()),
            tag: tag.clone(),
            kind,
            condition,
            priority,
            deadband,
            on_delay_ns,
            off_delay_ns,
            latching,
            message,
            unit: unit.clone(),
            area: area.clone(),
            asset: asset.clone(),
            suppress: suppress.clone(),
        };

    if kind == "gas" {
        let warning = cx
            .finite(t, "warning", false)
            .map_or(GAS_WARNING_DEFAULT, |f| f.v);
        let danger = cx
            .finite(t, "danger", false)
            .map_or(GAS_DANGER_DEFAULT, |f| f.v);
        if warning >= danger {
            cx.err(
                t.start(),
                format!(
                    "{label}: \"warning\" ({warning}) must be below \"danger\" ({danger}) % LEL"
                ),
            );
            return Vec::new();
        }
        let name = tag.as_str();
        return vec![
            base(
                "hi",
                Condition::High(warning),
                priority.unwrap_or(Priority::High),
                message.clone().unwrap_or_else(|| {
                    format!("gas warning at {name}: {{value}} {{unit}} (limit {{limit}})")
                }),
            ),
            base(
                "hihi",
                Condition::High(danger),
                Priority::Critical,
                message.unwrap_or_else(|| {
                    format!("GAS DANGER at {name}: {{value}} {{unit}} (limit {{limit}}), evacuate")
                }),
            ),
        ];
    }

    let condition = match kind {
        "hi" | "hihi" => limit(cx).map(Condition::High),
        "lo" | "lolo" => limit(cx).map(Condition::Low),
        "rate" => limit(cx).map(Condition::Rate),
        "rul" => limit(cx).map(Condition::RulBelow),
        "deviation" => {
            let l = limit(cx);
            let sp = match cx.string(t, "setpoint", false) {
                Some(f) => input_tag(&f, &label, cx),
                None => {
                    cx.err(
                        t.start(),
                        format!("{label}: kind \"deviation\" needs \"setpoint\" (a tag)"),
                    );
                    None
                }
            };
            match (l, sp) {
                (Some(limit), Some(setpoint)) => Some(Condition::Deviation { setpoint, limit }),
                _ => None,
            }
        }
        "discrete" => match cx.boolean(t, "state", false) {
            Some(b) => Some(Condition::Discrete(if b.v { 1.0 } else { 0.0 })),
            None if t.contains_key("state") => cx
                .finite(t, "state", false)
                .map(|f| Condition::Discrete(f.v)),
            None => Some(Condition::Discrete(1.0)),
        },
        "bad_quality" => Some(Condition::BadQuality),
        "stale" => match cx.integer(t, "stale_after_s", false, STALE_RANGE) {
            Some(f) => Some(Condition::Stale(f.v as i64 * 1_000_000_000)),
            None if t.contains_key("stale_after_s") => None,
            None => {
                cx.err(
                    t.start(),
                    format!("{label}: kind \"stale\" needs \"stale_after_s\" (seconds)"),
                );
                None
            }
        },
        _ => {
            // "anomaly"
            Some(Condition::Anomaly)
        }
    };
    let Some(condition) = condition else {
        return Vec::new();
    };
    let priority = priority.unwrap_or(match kind {
        "hihi" | "lolo" => Priority::High,
        "bad_quality" | "stale" | "hi" | "lo" | "deviation" | "rul" => Priority::Medium,
        _ => Priority::Low,
    });
    let message = message.unwrap_or_else(|| default_message(kind, tag.as_str()));
    let mut def = base(kind, condition, priority, message);
    if let Some(id) = id {
        def.id = id;
    }
    vec![def]
}

fn default_message(kind: &str, tag: &str) -> String {
    match kind {
        "hi" | "hihi" => format!("{tag} high: {{value}} {{unit}} > {{limit}}"),
        "lo" | "lolo" => format!("{tag} low: {{value}} {{unit}} < {{limit}}"),
        "rate" => format!("{tag} changes fast: {{value}} {{unit}}/s (limit {{limit}})"),
        "deviation" => format!("{tag} deviates from its setpoint by {{value}} {{unit}}"),
        "discrete" => format!("{tag} in alarm state {{value}}"),
        "bad_quality" => format!("{tag}: input failed (bad quality), value unknown"),
        "stale" => format!("{tag}: no data for {{limit}}, value unknown"),
        "anomaly" => format!("{tag}: anomaly detected (score {{value}})"),
        _ => format!("{tag}: remaining useful life {{value}} h < {{limit}} h"),
    }
}

/// The parent of an asset path (its area), or the path itself at the top.
fn parent(asset: &str) -> &str {
    asset.rsplit_once('/').map_or(asset, |(p, _)| p)
}

fn nonneg(cx: &mut Cx<'_>, t: Table<'_, '_>, key: &str, label: &str) -> Option<f64> {
    let f = cx.finite(t, key, false)?;
    if f.v < 0.0 {
        cx.err(
            f.span.start,
            format!("{key:?} in {label} must be ≥ 0, found {}", f.v),
        );
        return None;
    }
    Some(f.v)
}

/// A configured tag named by `f`.
fn input_tag(f: &Field<&str>, label: &str, cx: &mut Cx<'_>) -> Option<TagPath> {
    let p = match TagPath::new(f.v) {
        Ok(p) => p,
        Err(e) => {
            cx.err(
                f.span.start,
                format!("invalid tag path {:?} in {label}: {e}", f.v),
            );
            return None;
        }
    };
    if !cx.tag_known(&p) {
        let hint = similar_tag(cx, &p)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        cx.err(
            f.span.start,
            format!(
                "unknown tag {:?} in {label}: no source defines it{hint}",
                f.v
            ),
        );
        return None;
    }
    Some(p)
}

/// `ASSET/NAME` for an analytics hook (published by the analytics, so not checked as defined).
fn asset_tag(a: &Field<&str>, name: &str, cx: &mut Cx<'_>) -> Option<TagPath> {
    if !cx.valid_asset_path(a) {
        return None;
    }
    if !cx.asset_known(a.v) {
        cx.err(
            a.span.start,
            format!(
                "unknown asset {:?}: it is not declared in [[assets]] and no configured tag is directly under it",
                a.v
            ),
        );
        return None;
    }
    TagPath::new(&format!("{}/{name}", a.v)).ok()
}

/// A tag of the same asset whose name is close to `p`'s (edit distance ≤ 2).
fn similar_tag(cx: &Cx<'_>, p: &TagPath) -> Option<String> {
    cx.tags_of(p.asset())
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| edit_distance(t.name(), p.name()) <= 2)
        .map(|t| t.as_str().to_owned())
        .next()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
