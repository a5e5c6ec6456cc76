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
    AssetConfig, Config, DeviceConfig, HttpConfig, MODBUS_TYPES, ModbusTag, OverloadPolicy,
    PipelineConfig, RegisterTable, SiteConfig, WordOrder, register_count,
};

type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["site", "http", "pipeline", "assets", "devices"];
const SITE_KEYS: &[&str] = &["name"];
const HTTP_KEYS: &[&str] = &["address", "auth"];
const PIPELINE_KEYS: &[&str] = &["bus_capacity", "sink_capacity", "overload", "live_window"];
const ASSET_KEYS: &[&str] = &["path", "kind", "description"];
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
const SCALE_KEYS: &[&str] = &["raw", "eu", "clamp"];
const DEADBAND_KEYS: &[&str] = &["absolute", "percent"];

const CAPACITY_RANGE: RangeInclusive<i128> = 1..=1_048_576;
const LIVE_WINDOW_RANGE: RangeInclusive<i128> = 1..=100_000;
const UNIT_ID_RANGE: RangeInclusive<i128> = 0..=255;
const POLL_INTERVAL_RANGE: RangeInclusive<i128> = 10..=86_400_000;
const TIMEOUT_RANGE: RangeInclusive<i128> = 10..=600_000;
const BACKOFF_MAX_RANGE: RangeInclusive<i128> = 100..=u64::MAX as i128;
const ADDRESS_RANGE: RangeInclusive<i128> = 0..=65_535;

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
}

impl<'s> Checker<'s> {
    fn new(src: &'s str) -> Self {
        Checker {
            lines: LineIndex::new(src),
            diags: Vec::new(),
            asset_paths: HashMap::new(),
            device_names: HashMap::new(),
            tag_paths: HashMap::new(),
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
        let (k, v) = self.entry(t, key, required)?;
        match as_number(v.get_ref()) {
            Some(x) => Some(Field {
                v: x,
                key: k.span(),
                span: v.span(),
            }),
            None => {
                self.wrong_type(&format!("{key:?}"), t.name, "number", v);
                None
            }
        }
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

    // ---- sections --------------------------------------------------------------------------

    fn root(&mut self, root: &DeTable<'_>) -> Config {
        let t = Tbl {
            t: root,
            start: 0,
            name: "the top level",
        };
        self.unknown_keys(t, TOP_KEYS);
        let mut config = Config::default();
        if let Some(f) = self.table(t, "site", false) {
            config.site = self.site(Tbl {
                t: f.v,
                start: f.span.start,
                name: "[site]",
            });
        }
        if let Some(f) = self.table(t, "http", false) {
            config.http = self.http(Tbl {
                t: f.v,
                start: f.span.start,
                name: "[http]",
            });
        }
        if let Some(f) = self.table(t, "pipeline", false) {
            config.pipeline = self.pipeline(Tbl {
                t: f.v,
                start: f.span.start,
                name: "[pipeline]",
            });
        }
        for (i, tbl, start) in self.array_of_tables(t, "assets", "assets") {
            config.assets.push(self.asset(i, tbl, start));
        }
        for (i, tbl, start) in self.array_of_tables(t, "devices", "devices") {
            config.devices.push(self.device(i, tbl, start));
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
        let path = self.string(
            Tbl {
                t: table,
                start,
                name: &anon,
            },
            "path",
            false,
        );
        let name = match &path {
            Some(p) => format!("asset {:?}", p.v),
            None => anon.clone(),
        };
        let t = Tbl {
            t: table,
            start,
            name: &name,
        };
        self.require(t, &["path"]);
        self.unknown_keys(t, ASSET_KEYS);
        let mut asset = AssetConfig {
            path: String::new(),
            kind: mw_model::AssetKind::Other("asset".to_owned()),
            description: String::new(),
        };
        if let Some(p) = path {
            // The model owns the path rules; a scratch tree applies them.
            match AssetTree::new().add_asset(p.v, asset.kind.clone(), "") {
                Err(AssetTreeError::BadPath { source, .. }) => {
                    self.err(
                        p.span.start,
                        format!(
                            "invalid asset path {:?}: {}",
                            p.v,
                            asset_path_error(&source)
                        ),
                    );
                }
                _ => match self.asset_paths.entry(p.v.to_owned()) {
                    Entry::Occupied(first) => {
                        let line = self.lines.line(*first.get());
                        self.err(
                            p.span.start,
                            format!(
                                "duplicate asset path {:?} (first defined at line {line})",
                                p.v
                            ),
                        );
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(p.span.start);
                    }
                },
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
        let name_field = self.string(
            Tbl {
                t: table,
                start,
                name: &anon,
            },
            "name",
            false,
        );
        let label = match &name_field {
            Some(n) => format!("device {:?}", n.v),
            None => anon.clone(),
        };
        let t = Tbl {
            t: table,
            start,
            name: &label,
        };
        self.require(t, &["name", "endpoint"]);
        self.unknown_keys(t, DEVICE_KEYS);
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
                match self.device_names.entry(n.v.to_owned()) {
                    Entry::Occupied(first) => {
                        let line = self.lines.line(*first.get());
                        self.err(
                            n.span.start,
                            format!(
                                "duplicate device name {:?} (first defined at line {line})",
                                n.v
                            ),
                        );
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(n.span.start);
                    }
                }
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
        let orders = WordOrder::ALL.map(|w| (w.name(), w));
        if let Some(f) = self.choice(t, "word_order", "word_order", &orders) {
            dev.word_order = f.v;
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
        let path_field = self.string(
            Tbl {
                t: table,
                start,
                name: &anon,
            },
            "path",
            false,
        );
        let label = match &path_field {
            Some(p) if TagPath::new(p.v).is_ok() => format!("tag {}", p.v),
            Some(p) => format!("tag {:?}", p.v),
            None => anon.clone(),
        };
        let t = Tbl {
            t: table,
            start,
            name: &label,
        };
        self.require(t, &["path", "table", "address", "type"]);
        self.unknown_keys(t, TAG_KEYS);

        let mut path = None;
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

        let orders = WordOrder::ALL.map(|w| (w.name(), w));
        let word_order = self
            .choice(t, "word_order", "word_order", &orders)
            .map_or(device_order, |f| f.v);

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
        let t = Tbl {
            t: f.v,
            start: f.span.start,
            name: &name,
        };
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
        let t = Tbl {
            t: f.v,
            start: f.span.start,
            name: &name,
        };
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
        if !v.v.is_finite() {
            self.err(
                v.span.start,
                format!("{kind:?} in {name} must be a finite number, found {}", v.v),
            );
            return None;
        }
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
