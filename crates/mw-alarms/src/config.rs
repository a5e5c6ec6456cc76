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
    /// The value rises faster than `per_s` units per second: the least-squares slope of the
    /// good samples of the last `window_ns` (at least 3 samples spanning half the window).
    RateOfRise { per_s: f64, window_ns: i64 },
    /// Detector fault: the value has not moved by more than `tolerance` for `after_ns`.
    Stuck { tolerance: f64, after_ns: i64 },
    /// Detector fault: the value is below `lo` or above `hi` (its valid span).
    OutOfRange { lo: f64, hi: f64 },
    /// Voting across detectors: at least `need` of `members` vote, a member voting when its
    /// last good value is ≥ `limit` (deadband applies) or when it is faulty — bad quality, no
    /// sample for `stale_ns`, or its `stuck` / `out_of_range` alarm condition active.
    Vote {
        members: Vec<TagPath>,
        need: usize,
        limit: f64,
        stale_ns: i64,
    },
}

/// The `kind` names, in the order the messages list them.
pub const KINDS: [&str; 16] = [
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
    "rate_of_rise",
    "stuck",
    "out_of_range",
    "vote",
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
            Condition::RateOfRise { per_s, .. } => (per_s * 60.0).to_string(),
            Condition::Stuck { after_ns, .. } => format!("{} s", *after_ns as f64 / 1e9),
            Condition::OutOfRange { lo, hi } => format!("{lo}..{hi}"),
            Condition::Vote { members, need, .. } => format!("{need}oo{}", members.len()),
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
/// Default rate-of-rise limit of the gas template, % LEL per minute (0 turns it off): a release
/// that would cross the danger limit from clean air within two minutes.
pub const GAS_RATE_OF_RISE_DEFAULT: f64 = 10.0;
/// Default window of a rate-of-rise slope, s.
pub const RATE_WINDOW_DEFAULT_S: i64 = 30;
/// Default of the gas template's stuck check, s (0 turns it off).
pub const GAS_STUCK_AFTER_DEFAULT_S: i64 = 3600;
/// Default valid span of a gas detector, % LEL: below -5 is a zero drift (calibration lost),
/// above 100 the reading is no longer meaningful.
pub const GAS_RANGE_DEFAULT: (f64, f64) = (-5.0, 100.0);
/// Default time without a sample after which a vote member counts as faulty, s.
pub const VOTE_STALE_DEFAULT_S: i64 = 10;

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
        "rate_of_rise",
        "rate_window_s",
        "stuck_after_s",
        "stuck_tolerance",
        "range",
        "tags",
        "vote",
    ],
};
const DELAY_RANGE: RangeInclusive<i128> = 0..=3_600_000;
const STALE_RANGE: RangeInclusive<i128> = 1..=86_400;
const STUCK_RANGE: RangeInclusive<i128> = 1..=604_800;
const WINDOW_RANGE: RangeInclusive<i128> = 2..=3_600;

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
        (None, "vote", _) => None,
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
    if kind == "vote" {
        let common = Common {
            priority,
            deadband,
            on_delay_ns,
            off_delay_ns,
            latching,
            message,
            area,
            id,
        };
        return vote(t, &label, cx, common).into_iter().collect();
    }
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
        let rise = cx
            .finite(t, "rate_of_rise", false)
            .map_or(GAS_RATE_OF_RISE_DEFAULT, |f| f.v);
        let window_s = cx
            .integer(t, "rate_window_s", false, WINDOW_RANGE)
            .map_or(RATE_WINDOW_DEFAULT_S, |f| f.v as i64);
        let stuck_s = cx
            .integer(t, "stuck_after_s", false, 0..=*STUCK_RANGE.end())
            .map_or(GAS_STUCK_AFTER_DEFAULT_S, |f| f.v as i64);
        let tolerance = nonneg(cx, t, "stuck_tolerance", &label).unwrap_or(0.0);
        let range = span(cx, t, &label).unwrap_or(GAS_RANGE_DEFAULT);
        if rise < 0.0 {
            cx.err(
                t.start(),
                format!(
                    "{label}: \"rate_of_rise\" must be ≥ 0 % LEL per minute (0: off), found {rise}"
                ),
            );
            return Vec::new();
        }
        let name = tag.as_str();
        let mut out = Vec::new();
        if rise > 0.0 {
            out.push(base(
                "rate_of_rise",
                Condition::RateOfRise {
                    per_s: rise / 60.0,
                    window_ns: window_s * 1_000_000_000,
                },
                Priority::High,
                format!(
                    "gas rising fast at {name}: {{value}} {{unit}} (limit {{limit}} per minute)"
                ),
            ));
        }
        if stuck_s > 0 {
            out.push(base(
                "stuck",
                Condition::Stuck {
                    tolerance,
                    after_ns: stuck_s * 1_000_000_000,
                },
                Priority::High,
                format!("gas detector {name} stuck at {{value}} {{unit}} for {{limit}}: detector fault, test it"),
            ));
        }
        out.push(base(
            "out_of_range",
            Condition::OutOfRange {
                lo: range.0,
                hi: range.1,
            },
            Priority::High,
            format!("gas detector {name} out of range: {{value}} {{unit}} (valid {{limit}}): detector fault"),
        ));
        for d in &mut out {
            // fault and trend alarms have no hysteresis of their own beyond the tolerance
            d.deadband = 0.0;
            d.on_delay_ns = 0;
            d.off_delay_ns = 0;
            d.latching = false;
        }
        let mut limits = vec![
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
        limits.append(&mut out);
        return limits;
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
        "rate_of_rise" => {
            let window_s = cx
                .integer(t, "rate_window_s", false, WINDOW_RANGE)
                .map_or(RATE_WINDOW_DEFAULT_S, |f| f.v as i64);
            limit(cx).map(|per_min| Condition::RateOfRise {
                per_s: per_min / 60.0,
                window_ns: window_s * 1_000_000_000,
            })
        }
        "stuck" => {
            let tolerance = nonneg(cx, t, "stuck_tolerance", &label).unwrap_or(0.0);
            match cx.integer(t, "stuck_after_s", false, STUCK_RANGE) {
                Some(f) => Some(Condition::Stuck {
                    tolerance,
                    after_ns: f.v as i64 * 1_000_000_000,
                }),
                None if t.contains_key("stuck_after_s") => None,
                None => {
                    cx.err(
                        t.start(),
                        format!("{label}: kind \"stuck\" needs \"stuck_after_s\" (seconds)"),
                    );
                    None
                }
            }
        }
        "out_of_range" => match span(cx, t, &label) {
            Some((lo, hi)) => Some(Condition::OutOfRange { lo, hi }),
            None if t.contains_key("range") => None,
            None => {
                cx.err(
                    t.start(),
                    format!("{label}: kind \"out_of_range\" needs \"range\" ([low, high] in the tag's unit)"),
                );
                None
            }
        },
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
        "stuck" | "out_of_range" => Priority::High,
        "bad_quality" | "stale" | "hi" | "lo" | "deviation" | "rul" | "rate_of_rise" => {
            Priority::Medium
        }
        _ => Priority::Low,
    });
    let message = message.unwrap_or_else(|| default_message(kind, tag.as_str()));
    let mut def = base(kind, condition, priority, message);
    if let Some(id) = id {
        def.id = id;
    }
    vec![def]
}

/// The keys every alarm kind shares, read before the kind's own.
struct Common {
    priority: Option<Priority>,
    deadband: f64,
    on_delay_ns: i64,
    off_delay_ns: i64,
    latching: bool,
    message: Option<String>,
    area: Option<String>,
    id: Option<String>,
}

/// `range = [low, high]`, low < high.
fn span(cx: &mut Cx<'_>, t: Table<'_, '_>, label: &str) -> Option<(f64, f64)> {
    let f = cx.array(t, "range", false, "array of two numbers [low, high]")?;
    let nums: Vec<f64> = f.v.iter().filter_map(|e| e.as_number()).collect();
    match nums[..] {
        [lo, hi] if f.v.len() == 2 && lo.is_finite() && hi.is_finite() && lo < hi => Some((lo, hi)),
        _ => {
            cx.err(
                f.span.start,
                format!("\"range\" in {label} must be two numbers [low, high] with low < high"),
            );
            None
        }
    }
}

/// A `kind = "vote"` entry: `tags` (the member detectors), `vote = "MooN"` (N = the number of
/// tags), `limit` (default: the gas danger limit when every member is in % LEL), `stale_after_s`.
fn vote(t: Table<'_, '_>, label: &str, cx: &mut Cx<'_>, c: Common) -> Option<AlarmDef> {
    let list = cx.array(t, "tags", true, "array of tag paths")?;
    let mut members: Vec<TagPath> = Vec::new();
    let mut ok = true;
    for (i, el) in list.v.iter().enumerate() {
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
        let f = Field {
            v: name,
            key: list.key.clone(),
            span: el.start()..el.start() + name.len(),
        };
        // a glob (`*`, `?`, `**`) names every configured tag it matches, in file order
        let found = if mw_model::TagPattern::is_glob(name) {
            match mw_model::TagPattern::new(name) {
                Ok(p) => {
                    let m = cx.tags_matching(&p);
                    if m.is_empty() {
                        cx.err(
                            el.start(),
                            format!("{name:?} in \"tags\" of {label} matches no configured tag"),
                        );
                        ok = false;
                    }
                    m
                }
                Err(e) => {
                    cx.err(
                        el.start(),
                        format!("invalid pattern {name:?} in \"tags\" of {label}: {e}"),
                    );
                    ok = false;
                    Vec::new()
                }
            }
        } else {
            let p = input_tag(&f, label, cx);
            ok &= p.is_some();
            p.into_iter().collect()
        };
        for p in found {
            if members.contains(&p) {
                cx.err(
                    el.start(),
                    format!("duplicate tag {:?} in \"tags\" of {label}", p.as_str()),
                );
                ok = false;
            } else {
                members.push(p);
            }
        }
    }
    if ok && members.len() < 2 {
        cx.err(
            list.span.start,
            format!(
                "\"tags\" in {label} lists {} tag(s); a vote needs at least 2",
                members.len()
            ),
        );
        ok = false;
    }
    let n = members.len();
    let need = match cx.string(t, "vote", true) {
        Some(f) => {
            let parsed =
                f.v.split_once("oo")
                    .and_then(|(m, k)| Some((m.parse::<usize>().ok()?, k.parse::<usize>().ok()?)));
            match parsed {
                Some((m, k)) if k == n && (1..=k).contains(&m) => Some(m),
                Some((_, k)) if k != n => {
                    if ok {
                        cx.err(
                            f.span.start,
                            format!(
                                "\"vote\" {:?} in {label} is out of {k}, but \"tags\" lists {n} tag(s)",
                                f.v
                            ),
                        );
                    }
                    None
                }
                _ => {
                    cx.err(
                        f.span.start,
                        format!(
                            "\"vote\" {:?} in {label} is not M-out-of-N (expected e.g. \"2oo{n}\", 1 ≤ M ≤ {n})",
                            f.v
                        ),
                    );
                    None
                }
            }
        }
        None => None,
    };
    let all_lel = !members.is_empty()
        && members
            .iter()
            .all(|m| cx.tag_def(m).and_then(|d| d.unit.as_deref()) == Some("%{LEL}"));
    let limit = match cx.finite(t, "limit", false) {
        Some(f) => Some(f.v),
        None if t.contains_key("limit") => None,
        None if all_lel => Some(GAS_DANGER_DEFAULT),
        None => {
            cx.err(
                t.start(),
                format!(
                    "{label}: kind \"vote\" needs \"limit\" (the members are not all in % LEL)"
                ),
            );
            None
        }
    };
    let stale_s = match cx.integer(t, "stale_after_s", false, STALE_RANGE) {
        Some(f) => f.v as i64,
        None if t.contains_key("stale_after_s") => return None,
        None => VOTE_STALE_DEFAULT_S,
    };
    let (need, limit) = (need?, limit?);
    if !ok {
        return None;
    }
    // the area: given, or the parent shared by every member's asset
    let area = c.area.unwrap_or_else(|| {
        let first = parent(members[0].asset()).to_owned();
        if members.iter().all(|m| parent(m.asset()) == first) {
            first
        } else {
            members[0].asset().to_owned()
        }
    });
    let unit = cx
        .tag_def(&members[0])
        .and_then(|d| d.unit.clone())
        .unwrap_or_default();
    let rule = format!("{need}oo{n}");
    Some(AlarmDef {
        id: c.id.unwrap_or_else(|| format!("{area}:vote")),
        tag: members[0].clone(),
        kind: "vote",
        condition: Condition::Vote {
            members,
            need,
            limit,
            stale_ns: stale_s * 1_000_000_000,
        },
        priority: c.priority.unwrap_or(Priority::Critical),
        deadband: c.deadband,
        on_delay_ns: c.on_delay_ns,
        off_delay_ns: c.off_delay_ns,
        latching: c.latching,
        message: c.message.unwrap_or_else(|| {
            format!(
                "EVACUATE {area}: {{value}} of {n} detectors at or above {limit} {unit} or faulty ({rule})"
            )
        }),
        // the value is a count of detectors
        unit: String::new(),
        asset: area.clone(),
        area,
        suppress: None,
    })
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
        "rate_of_rise" => {
            format!("{tag} rising fast: {{value}} {{unit}} (limit {{limit}} per minute)")
        }
        "stuck" => format!("{tag} stuck at {{value}} {{unit}} for {{limit}}: input fault"),
        "out_of_range" => {
            format!("{tag} out of range: {{value}} {{unit}} (valid {{limit}}): input fault")
        }
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
