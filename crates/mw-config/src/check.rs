//! The checker: walks the spanned TOML tree against the schema of `docs/config.md`, builds the
//! [`Config`] and collects every problem with its byte offset. It never stops at the first
//! error: a bad value is reported and replaced by its default so the walk can go on.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use mw_model::{
    AssetTree, AssetTreeError, DataType, Deadband, PathError, Scaling, TagDef, TagPath, UNITS,
    unit_info,
};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::diagnostic::{Diagnostic, LineIndex};
use crate::types::{
    AssetConfig, Config, DetectorConfig, DetectorKind, DeviceConfig, HttpConfig, MODBUS_TYPES,
    ModbusTag, OverloadPolicy, PipelineConfig, RegisterTable, RulConfig, SiteConfig, WordOrder,
    is_univariate, register_count,
};

type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &[
    "site",
    "http",
    "pipeline",
    "assets",
    "devices",
    "detectors",
    "rul",
];
const SITE_KEYS: &[&str] = &["name"];
const HTTP_KEYS: &[&str] = &["address", "auth"];
const PIPELINE_KEYS: &[&str] = &["bus_capacity", "sink_capacity", "overload", "live_window"];
const ASSET_KEYS: &[&str] = &["path", "kind", "description"];
const ASSET_ENTRY: EntryKeys = EntryKeys {
    id: "path",
    required: &["path"],
    allowed: ASSET_KEYS,
};
const DEVICE_KEYS: &[&str] = &[
    "name",
    "kind",
    "endpoint",
    "unit_id",
    "poll_interval_ms",
    "timeout_ms",
    "backoff_max_ms",
    "word_order",
    "tags",
];
const DEVICE_ENTRY: EntryKeys = EntryKeys {
    id: "name",
    required: &["name", "endpoint"],
    allowed: DEVICE_KEYS,
};
const TAG_KEYS: &[&str] = &[
    "path",
    "table",
    "address",
    "type",
    "word_order",
    "unit",
    "scale",
    "deadband",
    "description",
];
const TAG_ENTRY: EntryKeys = EntryKeys {
    id: "path",
    required: &["path", "table", "address", "type"],
    allowed: TAG_KEYS,
};
const SCALE_KEYS: &[&str] = &["raw", "eu", "clamp"];
const DEADBAND_KEYS: &[&str] = &["absolute", "percent"];
const DETECTOR_KEYS: &[&str] = &["asset", "tags", "kind", "warmup", "name"];
const DETECTOR_ENTRY: EntryKeys = EntryKeys {
    id: "asset",
    required: &["asset"],
    allowed: DETECTOR_KEYS,
};
const RUL_KEYS: &[&str] = &["tag", "threshold", "window", "baseline", "decreasing"];
const RUL_ENTRY: EntryKeys = EntryKeys {
    id: "tag",
    required: &["tag", "threshold"],
    allowed: RUL_KEYS,
};

const CAPACITY_RANGE: RangeInclusive<i128> = 1..=1_048_576;
const LIVE_WINDOW_RANGE: RangeInclusive<i128> = 1..=100_000;
const UNIT_ID_RANGE: RangeInclusive<i128> = 0..=255;
const POLL_INTERVAL_RANGE: RangeInclusive<i128> = 10..=86_400_000;
const TIMEOUT_RANGE: RangeInclusive<i128> = 10..=600_000;
const BACKOFF_MAX_RANGE: RangeInclusive<i128> = 100..=u64::MAX as i128;
const ADDRESS_RANGE: RangeInclusive<i128> = 0..=65_535;
const WARMUP_RANGE: RangeInclusive<i128> = 10..=1_000_000;
const RUL_WINDOW_RANGE: RangeInclusive<i128> = 10..=100_000;
const RUL_WINDOW_DEFAULT: usize = 600;
/// A detector's `name` when none is given: it publishes `ASSET/anomaly_score` and `ASSET/anomalous`.
const DETECTOR_SCORE_DEFAULT: &str = "anomaly_score";
const DETECTOR_FLAG_DEFAULT: &str = "anomalous";

/// Parses and checks `src`; the config is meaningful only if the diagnostics are empty.
pub(crate) fn check(src: &str) -> (Config, Vec<Diagnostic>) {
    let mut c = Checker::new(src);
    let (root, errors) = DeTable::parse_recoverable(src);
    // The parser does not report errors in source order; the earliest one is the one to fix
    // first, and the others are often its consequences.
    let first = errors
        .iter()
        .min_by_key(|e| e.span().map_or(0, |s| s.start));
    let config = match first {
        None => c.root(root.get_ref()),
        Some(e) => {
            let at = e.span().map_or(0, |s| s.start);
            let mut msg = e.message().trim().replace('\n', " ");
            if msg == "duplicate key"
                && let Some(key) = e.span().and_then(|s| src.get(s))
            {
                msg = if key.starts_with(['"', '\'']) {
                    format!("duplicate key {key}")
                } else {
                    format!("duplicate key {key:?}")
                };
            }
            c.err(at, format!("TOML syntax error: {msg}"));
            Config::default()
        }
    };
    (config, c.finish())
}

/// A table being checked, with what to call it in messages (`[http]`, `device "d1"`, …).
#[derive(Clone, Copy)]
struct Tbl<'a, 'i> {
    t: &'a DeTable<'i>,
    /// Where "missing key" errors point: the header or the opening brace.
    start: usize,
    name: &'a str,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn new(t: &'a DeTable<'i>, start: usize, name: &'a str) -> Self {
        Tbl { t, start, name }
    }
}

/// The keys of one kind of `[[…]]` entry: the string key the entry is named after in messages,
/// the keys it requires and those it allows.
struct EntryKeys {
    id: &'static str,
    required: &'static [&'static str],
    allowed: &'static [&'static str],
}

/// A checked value with the spans of its key and value.
struct Field<T> {
    v: T,
    key: Range<usize>,
    span: Range<usize>,
}

/// One tag's register range, for the overlap check.
struct RegUse {
    table: RegisterTable,
    start: u32,
    /// Exclusive.
    end: u32,
    label: String,
    at: usize,
}

struct Checker<'s> {
    lines: LineIndex<'s>,
    /// (byte offset, message)
    diags: Vec<(usize, String)>,
    asset_paths: HashMap<String, usize>,
    device_names: HashMap<String, usize>,
    /// First definition of each tag path: offset and the device it is in.
    tag_paths: HashMap<TagPath, (usize, String)>,
    /// Data type of each tag path in `tag_paths` whose type is valid.
    tag_types: HashMap<TagPath, DataType>,
    /// Tags published by `[[detectors]]` and `[[rul]]` entries: offset, the publisher and
    /// whether it is a `[[rul]]` entry.
    published: HashMap<TagPath, (usize, String, bool)>,
}

impl<'s> Checker<'s> {
    fn new(src: &'s str) -> Self {
        Checker {
            lines: LineIndex::new(src),
            diags: Vec::new(),
            asset_paths: HashMap::new(),
            device_names: HashMap::new(),
            tag_paths: HashMap::new(),
            tag_types: HashMap::new(),
            published: HashMap::new(),
        }
    }

    fn err(&mut self, at: usize, msg: impl Into<String>) {
        self.diags.push((at, msg.into()));
    }

    /// Diagnostics in source order (stable for equal positions).
    fn finish(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|(at, _)| *at);
        self.diags
            .into_iter()
            .map(|(at, message)| {
                let (line, col) = self.lines.line_col(at);
                Diagnostic { line, col, message }
            })
            .collect()
    }

    // ---- generic helpers -------------------------------------------------------------------

    fn unknown_keys(&mut self, t: Tbl<'_, '_>, allowed: &[&str]) {
        for key in t.t.keys() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let msg = format!(
                    "unknown key {:?} in {} (allowed: {})",
                    key.get_ref(),
                    t.name,
                    allowed.join(", ")
                );
                self.err(key.span().start, msg);
            }
        }
    }

    fn entry<'a, 'i>(
        &mut self,
        t: Tbl<'a, 'i>,
        key: &str,
        required: bool,
    ) -> Option<(&'a Spanned<DeString<'i>>, &'a Value<'i>)> {
        let kv = t.t.get_key_value(key);
        if kv.is_none() && required {
            self.err(
                t.start,
                format!("missing required key {key:?} in {}", t.name),
            );
        }
        kv
    }

    /// Reports each missing required key (in the order given) at the table's start.
    fn require(&mut self, t: Tbl<'_, '_>, keys: &[&str]) {
        for key in keys {
            if !t.t.contains_key(*key) {
                self.err(
                    t.start,
                    format!("missing required key {key:?} in {}", t.name),
                );
            }
        }
    }

    fn wrong_type(&mut self, what: &str, name: &str, expected: &str, v: &Value<'_>) {
        let found = v.get_ref().type_str();
        self.err(
            v.span().start,
            format!("wrong type for {what} in {name}: expected {expected}, found {found}"),
        );
    }

    fn typed<'a, 'i, T>(
        &mut self,
        t: Tbl<'a, 'i>,
        key: &str,
        required: bool,
        expected: &str,
        get: impl FnOnce(&'a DeValue<'i>) -> Option<T>,
    ) -> Option<Field<T>> {
        let (k, v) = self.entry(t, key, required)?;
        match get(v.get_ref()) {
            Some(x) => Some(Field {
                v: x,
                key: k.span(),
                span: v.span(),
            }),
            None => {
                self.wrong_type(&format!("{key:?}"), t.name, expected, v);
                None
            }
        }
    }

    fn string<'a>(&mut self, t: Tbl<'a, '_>, key: &str, required: bool) -> Option<Field<&'a str>> {
        self.typed(t, key, required, "string", |v| v.as_str())
    }

    fn boolean(&mut self, t: Tbl<'_, '_>, key: &str, required: bool) -> Option<Field<bool>> {
        self.typed(t, key, required, "boolean", |v| v.as_bool())
    }

    fn table<'a, 'i>(
        &mut self,
        t: Tbl<'a, 'i>,
        key: &str,
        required: bool,
    ) -> Option<Field<&'a DeTable<'i>>> {
        self.typed(t, key, required, "table", |v| v.as_table())
    }

    /// An integer within `range`; out-of-range values are reported and dropped.
    fn integer(
        &mut self,
        t: Tbl<'_, '_>,
        key: &str,
        required: bool,
        range: RangeInclusive<i128>,
    ) -> Option<Field<i128>> {
        let f = self.typed(t, key, required, "integer", |v| v.as_integer())?;
        let n = i128::from_str_radix(f.v.as_str(), f.v.radix()).ok();
        match n {
            Some(n) if range.contains(&n) => Some(Field {
                v: n,
                key: f.key,
                span: f.span,
            }),
            _ => {
                let msg = format!(
                    "{key:?} in {} is {}, out of range (expected {})",
                    t.name,
                    f.v,
                    range_text(&range)
                );
                self.err(f.span.start, msg);
                None
            }
        }
    }

    /// An integer or float.
    fn number(&mut self, t: Tbl<'_, '_>, key: &str, required: bool) -> Option<Field<f64>> {
        self.typed(t, key, required, "number", as_number)
    }

    /// `[LO, HI]`: an array of exactly two numbers.
    fn pair(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<(f64, f64)> {
        let f = self.typed(t, key, true, "array [LO, HI]", |v| v.as_array())?;
        if f.v.len() != 2 {
            let msg = format!(
                "{key:?} in {} must be [LO, HI] (2 numbers), found {} element(s)",
                t.name,
                f.v.len()
            );
            self.err(f.span.start, msg);
            return None;
        }
        let mut out = [0.0; 2];
        let mut ok = true;
        for (i, el) in f.v.iter().enumerate() {
            match as_number(el.get_ref()) {
                Some(x) => out[i] = x,
                None => {
                    self.wrong_type(
                        &format!("element {} of {key:?}", i + 1),
                        t.name,
                        "number",
                        el,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some((out[0], out[1]))
    }

    /// An array of tables; elements that are not tables are reported and skipped. Yields
    /// (1-based index, table, start offset).
    fn array_of_tables<'a, 'i>(
        &mut self,
        t: Tbl<'a, 'i>,
        key: &str,
        header: &str,
    ) -> Vec<(usize, &'a DeTable<'i>, usize)> {
        let expected = format!("array of tables ([[{header}]])");
        let Some(f) = self.typed(t, key, false, &expected, |v| v.as_array()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, el) in f.v.iter().enumerate() {
            match el.get_ref().as_table() {
                Some(tbl) => out.push((i + 1, tbl, el.span().start)),
                None => self.wrong_type(
                    &format!("element {} of {key:?}", i + 1),
                    t.name,
                    "table",
                    el,
                ),
            }
        }
        out
    }

    /// A string that must be one of `names`.
    fn choice<T: Copy>(
        &mut self,
        t: Tbl<'_, '_>,
        key: &str,
        what: &str,
        names: &[(&str, T)],
    ) -> Option<Field<T>> {
        let f = self.string(t, key, false)?;
        match names.iter().find(|(n, _)| *n == f.v) {
            Some((_, v)) => Some(Field {
                v: *v,
                key: f.key,
                span: f.span,
            }),
            None => {
                let expected: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                let msg = format!(
                    "unknown {what} {:?} in {} (expected one of: {})",
                    f.v,
                    t.name,
                    expected.join(", ")
                );
                self.err(f.span.start, msg);
                None
            }
        }
    }

    /// Starts on a `[[…]]` entry: reads its `keys.id` string (a wrong type is reported under
    /// `anon.name`), names the entry `label(id)` (`anon.name` when there is no id), and reports
    /// its missing required and unknown keys under that name. Returns the id and the name.
    fn entry_head<'a>(
        &mut self,
        anon: Tbl<'a, '_>,
        keys: &EntryKeys,
        label: impl FnOnce(&str) -> String,
    ) -> (Option<Field<&'a str>>, String) {
        let id = self.string(anon, keys.id, false);
        let name = id
            .as_ref()
            .map_or_else(|| anon.name.to_owned(), |f| label(f.v));
        let t = Tbl {
            name: &name,
            ..anon
        };
        self.require(t, keys.required);
        self.unknown_keys(t, keys.allowed);
        (id, name)
    }

    /// Records the first definition of the name in `f` in the map `defined` picks; a later one
    /// is reported as a duplicate `what`.
    fn define_once(
        &mut self,
        what: &str,
        f: &Field<&str>,
        defined: fn(&mut Self) -> &mut HashMap<String, usize>,
    ) {
        match defined(self).get(f.v) {
            Some(&first) => {
                let line = self.lines.line(first);
                self.err(
                    f.span.start,
                    format!("duplicate {what} {:?} (first defined at line {line})", f.v),
                );
            }
            None => {
                defined(self).insert(f.v.to_owned(), f.span.start);
            }
        }
    }

    /// Reports `f` unless it is a valid asset path. The model owns the path rules; a scratch
    /// tree applies them.
    fn valid_asset_path(&mut self, f: &Field<&str>) -> bool {
        let Err(AssetTreeError::BadPath { source, .. }) =
            AssetTree::new().add_asset(f.v, mw_model::AssetKind::Area, "")
        else {
            return true;
        };
        let msg = format!(
            "invalid asset path {:?}: {}",
            f.v,
            asset_path_error(&source)
        );
        self.err(f.span.start, msg);
        false
    }

    /// The optional `word_order` key.
    fn word_order(&mut self, t: Tbl<'_, '_>) -> Option<WordOrder> {
        let orders = WordOrder::ALL.map(|w| (w.name(), w));
        self.choice(t, "word_order", "word_order", &orders)
            .map(|f| f.v)
    }

    /// Reports a NaN or infinite `f`, the value of `key` in `name`, and drops it.
    fn finite_value(&mut self, f: Field<f64>, key: &str, name: &str) -> Option<Field<f64>> {
        if !f.v.is_finite() {
            self.err(
                f.span.start,
                format!("{key:?} in {name} must be a finite number, found {}", f.v),
            );
            return None;
        }
        Some(f)
    }

    // ---- sections --------------------------------------------------------------------------

    fn root(&mut self, root: &DeTable<'_>) -> Config {
        let t = Tbl::new(root, 0, "the top level");
        self.unknown_keys(t, TOP_KEYS);
        let mut config = Config::default();
        if let Some(f) = self.table(t, "site", false) {
            config.site = self.site(Tbl::new(f.v, f.span.start, "[site]"));
        }
        if let Some(f) = self.table(t, "http", false) {
            config.http = self.http(Tbl::new(f.v, f.span.start, "[http]"));
        }
        if let Some(f) = self.table(t, "pipeline", false) {
            config.pipeline = self.pipeline(Tbl::new(f.v, f.span.start, "[pipeline]"));
        }
        for (i, tbl, start) in self.array_of_tables(t, "assets", "assets") {
            config.assets.push(self.asset(i, tbl, start));
        }
        for (i, tbl, start) in self.array_of_tables(t, "devices", "devices") {
            config.devices.push(self.device(i, tbl, start));
        }
        // The analytics refer to the tags above. They are checked in file order, so that an
        // output clash is reported at the later of the two entries.
        let mut analytics: Vec<(usize, bool, usize, &DeTable<'_>)> = Vec::new();
        for (i, tbl, start) in self.array_of_tables(t, "detectors", "detectors") {
            analytics.push((start, true, i, tbl));
        }
        for (i, tbl, start) in self.array_of_tables(t, "rul", "rul") {
            analytics.push((start, false, i, tbl));
        }
        analytics.sort_by_key(|(start, ..)| *start);
        for (start, is_detector, i, tbl) in analytics {
            if is_detector {
                if let Some(d) = self.detector(i, tbl, start) {
                    config.detectors.push(d);
                }
            } else if let Some(r) = self.rul(i, tbl, start) {
                config.rul.push(r);
            }
        }
        config
    }

    fn site(&mut self, t: Tbl<'_, '_>) -> SiteConfig {
        self.unknown_keys(t, SITE_KEYS);
        let mut site = SiteConfig::default();
        if let Some(f) = self.string(t, "name", false) {
            site.name = f.v.to_owned();
        }
        site
    }

    fn http(&mut self, t: Tbl<'_, '_>) -> HttpConfig {
        self.unknown_keys(t, HTTP_KEYS);
        let mut http = HttpConfig::default();
        let auth_set = t.t.contains_key("auth");
        if let Some(f) = self.string(t, "auth", false)
            && f.v != "none"
        {
            self.err(
                f.span.start,
                format!("unknown auth {:?} in [http] (expected: \"none\")", f.v),
            );
        }
        if let Some(f) = self.string(t, "address", false) {
            match f.v.parse::<SocketAddr>() {
                Ok(addr) => {
                    if !addr.ip().is_loopback() && !auth_set {
                        let msg = format!(
                            "http address {addr} is not a loopback address and the HTTP API has no \
                             authentication yet; set auth = \"none\" in [http] to serve it on this network anyway"
                        );
                        self.err(f.span.start, msg);
                    }
                    http.address = addr;
                }
                Err(_) => {
                    let msg = format!(
                        "invalid http address {:?}: expected IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" \
                         (host names are not accepted)",
                        f.v
                    );
                    self.err(f.span.start, msg);
                }
            }
        }
        http
    }

    fn pipeline(&mut self, t: Tbl<'_, '_>) -> PipelineConfig {
        self.unknown_keys(t, PIPELINE_KEYS);
        let mut p = PipelineConfig::default();
        if let Some(f) = self.integer(t, "bus_capacity", false, CAPACITY_RANGE) {
            p.bus_capacity = f.v as usize;
        }
        if let Some(f) = self.integer(t, "sink_capacity", false, CAPACITY_RANGE) {
            p.sink_capacity = f.v as usize;
        }
        let policies = OverloadPolicy::ALL.map(|p| (p.name(), p));
        if let Some(f) = self.choice(t, "overload", "overload policy", &policies) {
            p.overload = f.v;
        }
        if let Some(f) = self.integer(t, "live_window", false, LIVE_WINDOW_RANGE) {
            p.live_window = f.v as usize;
        }
        p
    }

    fn asset(&mut self, index: usize, table: &DeTable<'_>, start: usize) -> AssetConfig {
        let anon = format!("[[assets]] entry #{index}");
        let (path, name) = self.entry_head(Tbl::new(table, start, &anon), &ASSET_ENTRY, |p| {
            format!("asset {p:?}")
        });
        let t = Tbl::new(table, start, &name);
        let mut asset = AssetConfig {
            path: String::new(),
            kind: mw_model::AssetKind::Other("asset".to_owned()),
            description: String::new(),
        };
        if let Some(p) = path {
            if self.valid_asset_path(&p) {
                self.define_once("asset path", &p, |c| &mut c.asset_paths);
            }
            asset.path = p.v.to_owned();
        }
        if let Some(f) = self.string(t, "kind", false) {
            asset.kind = mw_model::AssetKind::parse(f.v);
        }
        if let Some(f) = self.string(t, "description", false) {
            asset.description = f.v.to_owned();
        }
        asset
    }

    fn device(&mut self, index: usize, table: &DeTable<'_>, start: usize) -> DeviceConfig {
        let anon = format!("[[devices]] entry #{index}");
        let (name_field, label) =
            self.entry_head(Tbl::new(table, start, &anon), &DEVICE_ENTRY, |n| {
                format!("device {n:?}")
            });
        let t = Tbl::new(table, start, &label);
        let mut dev = DeviceConfig {
            name: String::new(),
            endpoint: String::new(),
            unit_id: 1,
            poll_interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(1000),
            backoff_max: Duration::from_millis(30_000),
            word_order: WordOrder::Abcd,
            tags: Vec::new(),
        };
        if let Some(n) = name_field {
            if let Err(why) = check_device_name(n.v) {
                self.err(
                    n.span.start,
                    format!("invalid device name {:?}: {why}", n.v),
                );
            } else {
                self.define_once("device name", &n, |c| &mut c.device_names);
            }
            dev.name = n.v.to_owned();
        }
        self.choice(t, "kind", "device kind", &[("modbus_tcp", ())]);
        if let Some(f) = self.string(t, "endpoint", false) {
            if let Err(why) = check_endpoint(f.v) {
                let msg = format!(
                    "invalid endpoint {:?} for {label}: {why} (expected HOST:PORT with a port in 1..=65535, \
                     e.g. \"192.168.1.10:502\")",
                    f.v
                );
                self.err(f.span.start, msg);
            }
            dev.endpoint = f.v.to_owned();
        }
        if let Some(f) = self.integer(t, "unit_id", false, UNIT_ID_RANGE) {
            dev.unit_id = f.v as u8;
        }
        if let Some(f) = self.integer(t, "poll_interval_ms", false, POLL_INTERVAL_RANGE) {
            dev.poll_interval = Duration::from_millis(f.v as u64);
        }
        if let Some(f) = self.integer(t, "timeout_ms", false, TIMEOUT_RANGE) {
            dev.timeout = Duration::from_millis(f.v as u64);
        }
        if let Some(f) = self.integer(t, "backoff_max_ms", false, BACKOFF_MAX_RANGE) {
            dev.backoff_max = Duration::from_millis(f.v as u64);
        }
        if let Some(order) = self.word_order(t) {
            dev.word_order = order;
        }
        let mut regs = Vec::new();
        for (i, tbl, start) in self.array_of_tables(t, "tags", "devices.tags") {
            if let Some(tag) = self.tag(&label, dev.word_order, i, tbl, start, &mut regs) {
                dev.tags.push(tag);
            }
        }
        self.overlaps(&label, regs);
        dev
    }

    fn tag(
        &mut self,
        device: &str,
        device_order: WordOrder,
        index: usize,
        table: &DeTable<'_>,
        start: usize,
        regs: &mut Vec<RegUse>,
    ) -> Option<ModbusTag> {
        let anon = format!("tag #{index} of {device}");
        let (path_field, label) = self.entry_head(Tbl::new(table, start, &anon), &TAG_ENTRY, |p| {
            path_label("tag", p)
        });
        let t = Tbl::new(table, start, &label);

        let mut path = None;
        let path_at = path_field.as_ref().map_or(usize::MAX, |p| p.span.start);
        if let Some(p) = path_field {
            match TagPath::new(p.v) {
                Ok(tp) => {
                    match self.tag_paths.entry(tp.clone()) {
                        Entry::Occupied(first) => {
                            let (at, first_device) = first.get();
                            let line = self.lines.line(*at);
                            let msg = format!(
                                "duplicate tag path {tp} (first defined at line {line}, in {first_device})"
                            );
                            self.err(p.span.start, msg);
                        }
                        Entry::Vacant(slot) => {
                            slot.insert((p.span.start, device.to_owned()));
                        }
                    }
                    path = Some(tp);
                }
                Err(e) => self.err(p.span.start, format!("invalid tag path {:?}: {e}", p.v)),
            }
        }

        let data_type = self.string(t, "type", false).and_then(|f| {
            let modbus = MODBUS_TYPES.map(DataType::name).join(", ");
            match DataType::parse(f.v) {
                Some(dt) if MODBUS_TYPES.contains(&dt) => Some(Field { v: dt, key: f.key, span: f.span }),
                Some(_) => {
                    let msg = format!("data type {:?} is not supported for Modbus {label} (expected one of: {modbus})", f.v);
                    self.err(f.span.start, msg);
                    None
                }
                None => {
                    self.err(f.span.start, format!("unknown data type {:?} for {label} (expected one of: {modbus})", f.v));
                    None
                }
            }
        });

        if let (Some(tp), Some(dt)) = (&path, &data_type)
            && self.tag_paths.get(tp).is_some_and(|(at, _)| *at == path_at)
        {
            self.tag_types.insert(tp.clone(), dt.v);
        }

        let tables = RegisterTable::ALL.map(|rt| (rt.name(), rt));
        let reg_table = self.choice(t, "table", "register table", &tables);

        // bool lives in bit tables, numbers in register tables
        let mut fits = true;
        if let (Some(dt), Some(rt)) = (&data_type, &reg_table) {
            let bit_type = dt.v == DataType::Bool;
            if bit_type && !rt.v.is_bit_table() {
                fits = false;
                let msg = format!(
                    "{label} has type bool, but table {:?} holds 16-bit registers (bool needs table \"coil\" or \"discrete\")",
                    rt.v.name()
                );
                self.err(dt.span.start, msg);
            } else if !bit_type && rt.v.is_bit_table() {
                fits = false;
                let msg = format!(
                    "{label} has type {}, but table {:?} holds single bits (use type \"bool\", or table \"holding\" or \"input\")",
                    dt.v,
                    rt.v.name()
                );
                self.err(dt.span.start, msg);
            }
        }

        let address = self.integer(t, "address", false, ADDRESS_RANGE).and_then(|f| {
            let count = data_type.as_ref().map_or(1, |dt| register_count(dt.v));
            let end = f.v + i128::from(count);
            if end > 65_536 {
                let table_name = reg_table.as_ref().map_or(String::new(), |rt| format!("{} ", rt.v.name()));
                let msg = format!(
                    "{label} at address {} needs {count} registers, which runs past the last {table_name}address 65535",
                    f.v
                );
                self.err(f.span.start, msg);
                return None;
            }
            Some(Field { v: f.v as u16, key: f.key, span: f.span })
        });

        if let (Some(dt), Some(rt), Some(addr), true) = (&data_type, &reg_table, &address, fits) {
            let start = u32::from(addr.v);
            regs.push(RegUse {
                table: rt.v,
                start,
                end: start + u32::from(register_count(dt.v)),
                label: label.clone(),
                at: addr.span.start,
            });
        }

        let word_order = self.word_order(t).unwrap_or(device_order);

        let unit = self.string(t, "unit", false).and_then(|f| {
            if unit_info(f.v).is_some() {
                return Some(f.v.to_owned());
            }
            let hint = match suggest_unit(f.v) {
                Some(code) => format!("; did you mean {code:?}?"),
                None => String::new(),
            };
            let msg = format!(
                "unknown unit {:?} for {label}{hint} (units are case-sensitive UCUM codes; \
                 `millwright check --list-units` lists them)",
                f.v
            );
            self.err(f.span.start, msg);
            None
        });

        let scaling = self.scale(t, &label, data_type.as_ref().map(|f| f.v));
        let deadband = self.deadband(t, &label, t.t.contains_key("scale"));

        let description = self
            .string(t, "description", false)
            .map_or_else(String::new, |f| f.v.to_owned());

        let def = TagDef {
            path: path?,
            data_type: data_type?.v,
            unit,
            scaling,
            deadband,
            description,
        };
        Some(ModbusTag {
            def,
            table: reg_table?.v,
            address: address?.v,
            word_order,
        })
    }

    fn scale(
        &mut self,
        tag: Tbl<'_, '_>,
        label: &str,
        data_type: Option<DataType>,
    ) -> Option<Scaling> {
        let f = self.table(tag, "scale", false)?;
        let name = format!("scale of {label}");
        let t = Tbl::new(f.v, f.span.start, &name);
        self.unknown_keys(t, SCALE_KEYS);
        let raw = self.pair(t, "raw");
        let eu = self.pair(t, "eu");
        let clamp = self.boolean(t, "clamp", false).is_some_and(|c| c.v);
        if data_type == Some(DataType::Bool) {
            self.err(
                f.key.start,
                format!("{label} has type bool, which cannot be scaled; remove scale"),
            );
            return None;
        }
        match Scaling::new(raw?, eu?, clamp) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(f.key.start, format!("invalid scale for {label}: {e}"));
                None
            }
        }
    }

    fn deadband(&mut self, tag: Tbl<'_, '_>, label: &str, has_scale: bool) -> Option<Deadband> {
        let f = self.table(tag, "deadband", false)?;
        let name = format!("deadband of {label}");
        let t = Tbl::new(f.v, f.span.start, &name);
        self.unknown_keys(t, DEADBAND_KEYS);
        let absolute = self.number(t, "absolute", false);
        let percent = self.number(t, "percent", false);
        let (kind, v) = match (absolute, percent) {
            (Some(_), Some(_)) => {
                self.err(
                    f.span.start,
                    format!("{name} sets both \"absolute\" and \"percent\"; choose one"),
                );
                return None;
            }
            (None, None) => {
                // a mistyped or misspelt key has been reported already
                if t.t.is_empty() {
                    self.err(
                        f.span.start,
                        format!(
                            "{name} needs \"absolute\" or \"percent\", e.g. {{ absolute = 0.5 }}"
                        ),
                    );
                }
                return None;
            }
            (Some(a), None) => ("absolute", a),
            (None, Some(p)) => ("percent", p),
        };
        let v = self.finite_value(v, kind, &name)?;
        if v.v < 0.0 {
            self.err(
                v.span.start,
                format!("{kind:?} in {name} is {}, it must not be negative", v.v),
            );
            return None;
        }
        if kind == "percent" {
            if !has_scale {
                let msg = format!(
                    "deadband \"percent\" of {label} needs scale (it is a percentage of the engineering span); \
                     add scale or use deadband = {{ absolute = … }}"
                );
                self.err(v.key.start, msg);
                return None;
            }
            return Some(Deadband::Percent(v.v));
        }
        Some(Deadband::Absolute(v.v))
    }

    // ---- analytics -------------------------------------------------------------------------

    fn detector(
        &mut self,
        index: usize,
        table: &DeTable<'_>,
        start: usize,
    ) -> Option<DetectorConfig> {
        let anon = format!("[[detectors]] entry #{index}");
        let (asset_field, label) =
            self.entry_head(Tbl::new(table, start, &anon), &DETECTOR_ENTRY, |a| {
                format!("detector on {a:?}")
            });
        let t = Tbl::new(table, start, &label);
        let asset = asset_field.and_then(|f| self.analytics_asset(f));

        let kinds = DetectorKind::ALL.map(|k| (k.as_str(), k));
        let kind = self.choice(t, "kind", "detector kind", &kinds);
        let warmup = self
            .integer(t, "warmup", false, WARMUP_RANGE)
            .map(|f| f.v as usize);
        let (tags, count) = self.detector_tags(t, &label, asset.as_ref());
        if let (Some(k), Some((n, from))) = (&kind, &count)
            && is_univariate(k.v)
            && *n != 1
        {
            let msg = format!(
                "detector kind {:?} watches exactly one tag, but {from}; use kind \"auto\" or \"pca\" \
                 for several tags, or one [[detectors]] entry per tag",
                k.v.as_str()
            );
            self.err(k.span.start, msg);
        }

        let name = self.string(t, "name", false);
        if let Some(n) = &name
            && (n.v.is_empty() || n.v.contains('/'))
        {
            let msg = format!(
                "\"name\" in {label} must be one tag-name segment (the detector publishes NAME_score \
                 and NAME under its asset), found {:?}",
                n.v
            );
            self.err(n.span.start, msg);
            return None;
        }
        let asset = asset?;
        let (score, flag) = match &name {
            Some(n) => (format!("{}_score", n.v), n.v.to_owned()),
            None if t.t.contains_key("name") => return None, // wrong type, reported
            None => (
                DETECTOR_SCORE_DEFAULT.to_owned(),
                DETECTOR_FLAG_DEFAULT.to_owned(),
            ),
        };
        let at = name.as_ref().map_or(asset.span.start, |n| n.span.start);
        let [score_tag, flag_tag] = self.outputs(asset.v, [score, flag], at, &label)?;
        self.claim(&[score_tag.clone(), flag_tag.clone()], at, &label, false);
        Some(DetectorConfig {
            asset: asset.v.to_owned(),
            tags: tags?,
            kind: kind.map_or(DetectorKind::default(), |k| k.v),
            warmup,
            score_tag,
            flag_tag,
        })
    }

    /// An analytics entry's asset: a valid asset path, declared in `[[assets]]` or with at least
    /// one configured tag directly under it.
    fn analytics_asset<'a>(&mut self, f: Field<&'a str>) -> Option<Field<&'a str>> {
        if !self.valid_asset_path(&f) {
            return None;
        }
        if !self.asset_paths.contains_key(f.v) && !self.tag_paths.keys().any(|p| p.asset() == f.v) {
            let msg = format!(
                "unknown asset {:?}: it is not declared in [[assets]] and no configured tag is directly under it",
                f.v
            );
            self.err(f.span.start, msg);
            return None;
        }
        Some(f)
    }

    /// The tags a detector watches (`None` if they could not all be resolved), and how many it
    /// was given with a phrase saying where they come from (for the univariate-kind check).
    fn detector_tags(
        &mut self,
        t: Tbl<'_, '_>,
        label: &str,
        asset: Option<&Field<&str>>,
    ) -> (Option<Vec<TagPath>>, Option<(usize, String)>) {
        if !t.t.contains_key("tags") {
            let Some(asset) = asset else {
                return (None, None);
            };
            let tags: Vec<TagPath> = self
                .tags_of(asset.v)
                .into_iter()
                .filter(|(_, dt)| dt.is_none_or(DataType::is_numeric))
                .map(|(p, _)| p)
                .collect();
            if tags.is_empty() {
                let msg = format!(
                    "{label} has nothing to watch: no numeric tag is configured directly under its asset"
                );
                self.err(asset.span.start, msg);
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
        let Some(f) = self.typed(t, "tags", false, "array of tag names", |v| v.as_array()) else {
            return (None, None);
        };
        if f.v.is_empty() {
            let msg = format!(
                "\"tags\" in {label} is empty; list tag names under the asset, or leave \"tags\" out \
                 to watch every numeric tag of the asset"
            );
            self.err(f.span.start, msg);
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
            let at = el.span().start;
            let Some(name) = el.get_ref().as_str() else {
                self.wrong_type(
                    &format!("element {} of \"tags\"", i + 1),
                    label,
                    "string",
                    el,
                );
                ok = false;
                continue;
            };
            if seen.contains(&name) {
                self.err(
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
            ok &= match self.detector_tag(asset.v, name, label) {
                Ok(p) => {
                    tags.push(p);
                    true
                }
                Err(msg) => {
                    self.err(at, msg);
                    false
                }
            };
        }
        (ok.then_some(tags), count)
    }

    /// One name of a detector's `tags`: a configured numeric tag directly under `asset`.
    fn detector_tag(&self, asset: &str, name: &str, label: &str) -> Result<TagPath, String> {
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
        if !self.tag_paths.contains_key(&path) {
            return Err(format!(
                "unknown tag {name:?} in \"tags\" of {label}: {path} is not a configured tag ({})",
                self.numeric_tags_hint(asset)
            ));
        }
        match self.tag_types.get(&path) {
            Some(dt) if !dt.is_numeric() => Err(format!(
                "tag {path} in \"tags\" of {label} has type {dt}; a detector needs numeric tags"
            )),
            _ => Ok(path),
        }
    }

    fn rul(&mut self, index: usize, table: &DeTable<'_>, start: usize) -> Option<RulConfig> {
        let anon = format!("[[rul]] entry #{index}");
        let (tag_field, label) = self.entry_head(Tbl::new(table, start, &anon), &RUL_ENTRY, |p| {
            path_label("rul for", p)
        });
        let t = Tbl::new(table, start, &label);
        let tag = tag_field.and_then(|f| self.rul_tag(f));
        let threshold = self.finite(t, "threshold", false);
        let window = self
            .integer(t, "window", false, RUL_WINDOW_RANGE)
            .map_or(RUL_WINDOW_DEFAULT, |f| f.v as usize);
        let baseline = self.finite(t, "baseline", false);
        let decreasing = self.boolean(t, "decreasing", false).is_some_and(|f| f.v);
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
                self.err(b.span.start, msg);
            }
        }

        let (field, tag) = tag?;
        let at = field.span.start;
        let names = ["rul", "rul_lower", "rul_upper"].map(str::to_owned);
        let [rul_tag, lower_tag, upper_tag] = self.outputs(tag.asset(), names, at, &label)?;
        self.claim(
            &[rul_tag.clone(), lower_tag.clone(), upper_tag.clone()],
            at,
            &label,
            true,
        );
        Some(RulConfig {
            tag,
            threshold: threshold?.v,
            window,
            baseline: baseline.map(|b| b.v),
            decreasing,
            rul_tag,
            lower_tag,
            upper_tag,
        })
    }

    /// The `tag` of a `[[rul]]` entry: a configured numeric tag.
    fn rul_tag<'a>(&mut self, f: Field<&'a str>) -> Option<(Field<&'a str>, TagPath)> {
        let path = match TagPath::new(f.v) {
            Ok(p) => p,
            Err(e) => {
                self.err(f.span.start, format!("invalid tag path {:?}: {e}", f.v));
                return None;
            }
        };
        if !self.tag_paths.contains_key(&path) {
            let msg = format!(
                "unknown tag {path} for [[rul]]: not a configured tag ({})",
                self.numeric_tags_hint(path.asset())
            );
            self.err(f.span.start, msg);
            return None;
        }
        if let Some(dt) = self.tag_types.get(&path)
            && !dt.is_numeric()
        {
            let msg = format!(
                "tag {path} for [[rul]] has type {dt}; a remaining-useful-life estimate needs a numeric tag"
            );
            self.err(f.span.start, msg);
            return None;
        }
        Some((f, path))
    }

    /// A finite number; NaN and infinities are reported and dropped.
    fn finite(&mut self, t: Tbl<'_, '_>, key: &str, required: bool) -> Option<Field<f64>> {
        let f = self.number(t, key, required)?;
        self.finite_value(f, key, t.name)
    }

    /// The paths `asset/NAME` an analytics entry publishes; the first invalid one is reported at
    /// `at`.
    fn outputs<const N: usize>(
        &mut self,
        asset: &str,
        names: [String; N],
        at: usize,
        label: &str,
    ) -> Option<[TagPath; N]> {
        let mut out = Vec::with_capacity(N);
        for name in names {
            let path = format!("{asset}/{name}");
            match TagPath::new(&path) {
                Ok(p) => out.push(p),
                Err(e) => {
                    self.err(at, format!("{label} cannot publish {path:?}: {e}"));
                    return None;
                }
            }
        }
        out.try_into().ok()
    }

    /// Registers the tags an analytics entry publishes. A path already defined by a device or
    /// published by an earlier entry is reported at `at`, one message per earlier owner.
    fn claim(&mut self, paths: &[TagPath], at: usize, label: &str, is_rul: bool) {
        // Earlier owners, each with the paths this entry shares with it: (owner, published by
        // a [[rul]] entry (None: a device tag), paths).
        let mut clashes: Vec<(String, Option<bool>, Vec<&str>)> = Vec::new();
        for p in paths {
            let (owner, by_rul) = if let Some((first, device)) = self.tag_paths.get(p) {
                let line = self.lines.line(*first);
                (format!("line {line}, in {device}"), None)
            } else if let Some((first, by, by_rul)) = self.published.get(p) {
                let line = self.lines.line(*first);
                (format!("{by} (line {line})"), Some(*by_rul))
            } else {
                self.published
                    .insert(p.clone(), (at, label.to_owned(), is_rul));
                continue;
            };
            match clashes.iter_mut().find(|(o, ..)| *o == owner) {
                Some((.., list)) => list.push(p.as_str()),
                None => clashes.push((owner, by_rul, vec![p.as_str()])),
            }
        }
        for (owner, by_rul, list) in clashes {
            let (s, it) = if list.len() == 1 {
                ("", "it")
            } else {
                ("s", "them")
            };
            let earlier = match by_rul {
                // one device tag per owner: the owner names its line
                None => format!("it is already defined as a device tag at {owner}"),
                Some(_) => format!("{owner} already publishes {it}"),
            };
            let hint = match (is_rul, by_rul) {
                (false, _) => "; set \"name\" to publish under other names",
                (true, Some(true)) => "; at most one [[rul]] entry per asset",
                (true, _) => "",
            };
            let msg = format!(
                "duplicate tag path{s} {}: {label} publishes {it}, but {earlier}{hint}",
                list.join(", ")
            );
            self.err(at, msg);
        }
    }

    /// Configured tags directly under `asset` in file order, with their data type when valid.
    fn tags_of(&self, asset: &str) -> Vec<(TagPath, Option<DataType>)> {
        let mut found: Vec<(usize, &TagPath)> = self
            .tag_paths
            .iter()
            .filter(|(p, _)| p.asset() == asset)
            .map(|(p, (at, _))| (*at, p))
            .collect();
        found.sort();
        found
            .into_iter()
            .map(|(_, p)| (p.clone(), self.tag_types.get(p).copied()))
            .collect()
    }

    /// Names the numeric tags of `asset`, for an unknown-tag message.
    fn numeric_tags_hint(&self, asset: &str) -> String {
        let tags = self.tags_of(asset);
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

    /// Reports every tag whose registers overlap those of an earlier tag (in address order) of
    /// the same device and table.
    fn overlaps(&mut self, device: &str, mut regs: Vec<RegUse>) {
        regs.sort_by_key(|r| (r.table, r.start, r.at));
        let mut widest: Option<usize> = None; // index of the tag reaching furthest so far
        for i in 0..regs.len() {
            match widest {
                Some(w) if regs[w].table == regs[i].table && regs[i].start < regs[w].end => {
                    // report at whichever of the two comes later in the file
                    let (first, second) = if regs[w].at <= regs[i].at {
                        (w, i)
                    } else {
                        (i, w)
                    };
                    let (a, b) = (&regs[first], &regs[second]);
                    let msg = format!(
                        "{} ({}) overlaps {} ({}, line {}) in {device}",
                        b.label,
                        range_desc(b),
                        a.label,
                        range_desc(a),
                        self.lines.line(a.at)
                    );
                    let at = b.at;
                    self.err(at, msg);
                    if regs[i].end > regs[w].end {
                        widest = Some(i);
                    }
                }
                _ => widest = Some(i),
            }
        }
    }
}

fn range_desc(r: &RegUse) -> String {
    let what = if r.table.is_bit_table() {
        ""
    } else {
        " register"
    };
    if r.end - r.start == 1 {
        format!("{}{what} {}", r.table, r.start)
    } else {
        format!("{}{what}s {}..={}", r.table, r.start, r.end - 1)
    }
}

/// `PREFIX PATH`, with the path quoted unless it is a valid tag path.
fn path_label(prefix: &str, path: &str) -> String {
    if TagPath::new(path).is_ok() {
        format!("{prefix} {path}")
    } else {
        format!("{prefix} {path:?}")
    }
}

fn as_number(v: &DeValue<'_>) -> Option<f64> {
    match v {
        DeValue::Integer(i) if i.radix() == 10 => i.as_str().parse::<f64>().ok(),
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        _ => None,
    }
}

fn range_text(r: &RangeInclusive<i128>) -> String {
    if *r.end() >= i128::from(u64::MAX) {
        format!("at least {}", r.start())
    } else {
        format!("{}..={}", r.start(), r.end())
    }
}

/// The model's path error, worded for an asset path (which may have a single segment).
fn asset_path_error(e: &PathError) -> String {
    match e {
        PathError::SegmentCount { count } => {
            format!(
                "asset path has {count} segments (at most {})",
                mw_model::MAX_SEGMENTS
            )
        }
        other => other.to_string().replace("tag path", "asset path"),
    }
}

fn check_device_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        Some(ch) => Err(format!(
            "invalid character {ch:?} (allowed: A-Z a-z 0-9 _ -)"
        )),
        None => Ok(()),
    }
}

/// `HOST:PORT`, where HOST is a host name, an IPv4 address or a bracketed IPv6 address.
fn check_endpoint(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("no \":PORT\"".to_owned());
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{v6:?} is not an IPv6 address"));
        }
    } else if host.contains(':') {
        return Err(
            "an IPv6 address must be written in brackets, e.g. \"[fd00::1]:502\"".to_owned(),
        );
    } else if let Some(ch) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("invalid character {ch:?} in the host"));
    }
    if port.is_empty() {
        return Err("the port is empty".to_owned());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number"));
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65_535).contains(&p) => Ok(()),
        _ => Err(format!("port {port} is out of range")),
    }
}

/// The known unit code a misspelt one most likely means, if the guess is unambiguous.
fn suggest_unit(s: &str) -> Option<&'static str> {
    let t = s.trim();
    if let Some(u) = unit_info(t) {
        return Some(u.code); // only whitespace was wrong
    }
    let lower = t.to_lowercase();
    let unique = |hits: Vec<&'static str>| -> Option<&'static str> {
        match hits.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    };
    let by_code = UNITS
        .iter()
        .filter(|u| u.code.to_lowercase() == lower)
        .map(|u| u.code)
        .collect();
    if let Some(code) = unique(by_code) {
        return Some(code);
    }
    let by_symbol = UNITS
        .iter()
        .filter(|u| !u.symbol.is_empty() && u.symbol.to_lowercase() == lower)
        .map(|u| u.code)
        .collect();
    if let Some(code) = unique(by_symbol) {
        return Some(code);
    }
    let alias = match lower.as_str() {
        "degc" | "deg c" | "°c" | "celsius" | "c" => Some("Cel"),
        "degf" | "deg f" | "°f" | "fahrenheit" => Some("[degF]"),
        "lel" | "%lel" | "% lel" => Some("%{LEL}"),
        "percent" => Some("%"),
        "m3/hr" | "m^3/h" => Some("m3/h"),
        "sec" | "secs" => Some("s"),
        "count" | "counts" => Some("{count}"),
        _ => None,
    };
    if alias.is_some() {
        return alias;
    }
    if t.chars().count() >= 3 {
        let close = UNITS
            .iter()
            .filter(|u| edit_distance(u.code, t) == 1)
            .map(|u| u.code)
            .collect();
        return unique(close);
    }
    None
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for ok in [
            "plc1:502",
            "192.168.1.10:502",
            "[fd00::1]:502",
            "plc-1.site.local:1",
            "h:65535",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        let bad = [
            ("plc1", "no \":PORT\""),
            (":502", "the host is empty"),
            ("plc1:0", "port 0 is out of range"),
            ("plc1:65536", "port 65536 is out of range"),
            ("plc1:", "the port is empty"),
            ("plc1:modbus", "port \"modbus\" is not a number"),
            ("plc1:+502", "port \"+502\" is not a number"),
            (
                "fd00::1:502",
                "an IPv6 address must be written in brackets, e.g. \"[fd00::1]:502\"",
            ),
            ("[zz]:502", "\"zz\" is not an IPv6 address"),
            ("plc 1:502", "invalid character ' ' in the host"),
        ];
        for (input, why) in bad {
            assert_eq!(check_endpoint(input), Err(why.to_owned()), "{input}");
        }
    }

    #[test]
    fn unit_suggestions() {
        assert_eq!(suggest_unit("cel"), Some("Cel"));
        assert_eq!(suggest_unit("CEL"), Some("Cel"));
        assert_eq!(suggest_unit("°C"), Some("Cel"));
        assert_eq!(suggest_unit("degC"), Some("Cel"));
        assert_eq!(suggest_unit("rpm"), Some("/min"));
        assert_eq!(suggest_unit("psi"), Some("[psi]"));
        assert_eq!(suggest_unit("kWh"), Some("kW.h"));
        assert_eq!(suggest_unit("l/min"), Some("L/min"));
        assert_eq!(suggest_unit(" bar"), Some("bar"));
        assert_eq!(suggest_unit("bars"), Some("bar"));
        assert_eq!(suggest_unit("furlong"), None);
        assert_eq!(suggest_unit("x"), None, "too short to guess");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("bar", "bars"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("°C", "°C"), 0);
    }

    #[test]
    fn device_names() {
        assert!(check_device_name("plc-1_a").is_ok());
        assert_eq!(check_device_name(""), Err("it is empty".to_owned()));
        assert!(check_device_name("plc 1").is_err());
    }

    #[test]
    fn asset_path_errors_say_asset() {
        assert_eq!(
            asset_path_error(&PathError::SegmentCount { count: 11 }),
            "asset path has 11 segments (at most 10)"
        );
        assert!(!asset_path_error(&PathError::EmptySegment { index: 1 }).contains("tag"));
    }
}
