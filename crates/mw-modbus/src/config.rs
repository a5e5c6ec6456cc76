//! The `[[devices]]` section: Modbus TCP devices and their register maps — the types the poller
//! runs on and their validation, registered with `mw-config` as a [`Section`] (see
//! `docs/config.md` for every key and default).

use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use mw_config::{Cx, EntryKeys, Item, Section, SectionValue, Table, path_label};
use mw_model::{DataType, TagDef};

/// The checked `[[devices]]` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModbusConfig {
    pub devices: Vec<DeviceConfig>,
}

impl ModbusConfig {
    /// Every Modbus tag of every device, in file order.
    pub fn tags(&self) -> impl Iterator<Item = &ModbusTag> {
        self.devices.iter().flat_map(|d| &d.tags)
    }
}

/// One `[[devices]]` entry: a Modbus TCP device.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceConfig {
    pub name: String,
    /// `host:port` as written in the file (resolution happens at connect time).
    pub endpoint: String,
    pub unit_id: u8,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub backoff_max: Duration,
    pub word_order: WordOrder,
    pub tags: Vec<ModbusTag>,
}

/// One `[[devices.tags]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ModbusTag {
    /// `data_type` is one of bool, u16, i16, u32, i32, f32.
    pub def: TagDef,
    pub table: RegisterTable,
    /// 0-based protocol address of the first register/bit.
    pub address: u16,
    /// Effective word order (the tag's own, else the device's).
    pub word_order: WordOrder,
    /// `Some` when the tag accepts writes (`writable = true`; holding registers and coils only),
    /// with the limits a written value must keep.
    pub write: Option<WriteLimits>,
}

/// What a write to a tag may set, in engineering units (after scaling). A write outside the
/// limits is refused before anything is sent to the device.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WriteLimits {
    /// `write_min`: the lowest value a write may set.
    pub min: Option<f64>,
    /// `write_max`: the highest value a write may set.
    pub max: Option<f64>,
}

impl ModbusTag {
    /// Registers (or bits) the tag covers: 2 for 32-bit types, else 1.
    pub fn register_count(&self) -> u16 {
        register_count(self.def.data_type)
    }
}

pub(crate) fn register_count(t: DataType) -> u16 {
    match t {
        DataType::U32 | DataType::I32 | DataType::F32 => 2,
        _ => 1,
    }
}

/// The data types a Modbus tag may have.
pub const MODBUS_TYPES: [DataType; 6] = [
    DataType::Bool,
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::F32,
];

/// A Modbus data table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterTable {
    /// `coil`: read/write bits (fc 1).
    Coil,
    /// `discrete`: read-only bits (fc 2).
    DiscreteInput,
    /// `holding`: read/write 16-bit registers (fc 3).
    HoldingRegister,
    /// `input`: read-only 16-bit registers (fc 4).
    InputRegister,
}

impl RegisterTable {
    pub const ALL: [RegisterTable; 4] = [
        RegisterTable::HoldingRegister,
        RegisterTable::InputRegister,
        RegisterTable::Coil,
        RegisterTable::DiscreteInput,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            RegisterTable::Coil => "coil",
            RegisterTable::DiscreteInput => "discrete",
            RegisterTable::HoldingRegister => "holding",
            RegisterTable::InputRegister => "input",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Coils and discrete inputs hold bits; the others hold 16-bit registers.
    pub fn is_bit_table(self) -> bool {
        matches!(self, RegisterTable::Coil | RegisterTable::DiscreteInput)
    }
}

impl fmt::Display for RegisterTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Byte order of a 32-bit value over two registers, naming the bytes A (most significant) … D.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WordOrder {
    /// Big-endian, high word first.
    #[default]
    Abcd,
    /// Low word first.
    Cdab,
    /// Bytes swapped within each word.
    Badc,
    /// Little-endian.
    Dcba,
}

impl WordOrder {
    pub const ALL: [WordOrder; 4] = [
        WordOrder::Abcd,
        WordOrder::Cdab,
        WordOrder::Badc,
        WordOrder::Dcba,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            WordOrder::Abcd => "abcd",
            WordOrder::Cdab => "cdab",
            WordOrder::Badc => "badc",
            WordOrder::Dcba => "dcba",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == s)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---- checking ------------------------------------------------------------------------------

/// The `[[devices]]` section checker.
pub struct DevicesSection;

impl Section for DevicesSection {
    fn key(&self) -> &'static str {
        "devices"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut names = HashMap::new();
        let mut config = ModbusConfig::default();
        for item in cx.array_of_tables(root, "devices", "devices") {
            config.devices.push(device(item, cx, &mut names));
        }
        Box::new(config)
    }
}

const DEVICE_ENTRY: EntryKeys = EntryKeys {
    id: "name",
    required: &["name", "endpoint"],
    allowed: &[
        "name",
        "kind",
        "endpoint",
        "unit_id",
        "poll_interval_ms",
        "timeout_ms",
        "backoff_max_ms",
        "word_order",
        "tags",
    ],
};
const TAG_ENTRY: EntryKeys = EntryKeys {
    id: "path",
    required: &["path", "table", "address", "type"],
    allowed: &[
        "path",
        "table",
        "address",
        "type",
        "word_order",
        "unit",
        "scale",
        "deadband",
        "description",
        "writable",
        "write_min",
        "write_max",
    ],
};

const UNIT_ID_RANGE: RangeInclusive<i128> = 0..=255;
const POLL_INTERVAL_RANGE: RangeInclusive<i128> = 10..=86_400_000;
const TIMEOUT_RANGE: RangeInclusive<i128> = 10..=600_000;
const BACKOFF_MAX_RANGE: RangeInclusive<i128> = 100..=u64::MAX as i128;
const ADDRESS_RANGE: RangeInclusive<i128> = 0..=65_535;

/// One tag's register range, for the overlap check.
struct RegUse {
    table: RegisterTable,
    start: u32,
    /// Exclusive.
    end: u32,
    label: String,
    at: usize,
}

fn device(item: Item<'_, '_>, cx: &mut Cx<'_>, names: &mut HashMap<String, usize>) -> DeviceConfig {
    let anon = format!("[[devices]] entry #{}", item.index);
    let (name_field, label) = cx.entry_head(item.table(&anon), &DEVICE_ENTRY, |n| {
        format!("device {n:?}")
    });
    let t = item.table(&label);
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
            cx.err(
                n.span.start,
                format!("invalid device name {:?}: {why}", n.v),
            );
        } else {
            cx.define_once("device name", &n, names);
        }
        dev.name = n.v.to_owned();
    }
    cx.choice(t, "kind", "device kind", &[("modbus_tcp", ())]);
    if let Some(f) = cx.string(t, "endpoint", false) {
        if let Err(why) = check_endpoint(f.v) {
            let msg = format!(
                "invalid endpoint {:?} for {label}: {why} (expected HOST:PORT with a port in 1..=65535, \
                 e.g. \"192.168.1.10:502\")",
                f.v
            );
            cx.err(f.span.start, msg);
        }
        dev.endpoint = f.v.to_owned();
    }
    if let Some(f) = cx.integer(t, "unit_id", false, UNIT_ID_RANGE) {
        dev.unit_id = f.v as u8;
    }
    if let Some(f) = cx.integer(t, "poll_interval_ms", false, POLL_INTERVAL_RANGE) {
        dev.poll_interval = Duration::from_millis(f.v as u64);
    }
    if let Some(f) = cx.integer(t, "timeout_ms", false, TIMEOUT_RANGE) {
        dev.timeout = Duration::from_millis(f.v as u64);
    }
    if let Some(f) = cx.integer(t, "backoff_max_ms", false, BACKOFF_MAX_RANGE) {
        dev.backoff_max = Duration::from_millis(f.v as u64);
    }
    if let Some(order) = word_order(t, cx) {
        dev.word_order = order;
    }
    let mut regs = Vec::new();
    for item in cx.array_of_tables(t, "tags", "devices.tags") {
        if let Some(tag) = tag(&label, dev.word_order, item, cx, &mut regs) {
            dev.tags.push(tag);
        }
    }
    overlaps(&label, regs, cx);
    dev
}

/// The optional `word_order` key.
fn word_order(t: Table<'_, '_>, cx: &mut Cx<'_>) -> Option<WordOrder> {
    let orders = WordOrder::ALL.map(|w| (w.name(), w));
    cx.choice(t, "word_order", "word_order", &orders)
        .map(|f| f.v)
}

fn tag(
    device: &str,
    device_order: WordOrder,
    item: Item<'_, '_>,
    cx: &mut Cx<'_>,
    regs: &mut Vec<RegUse>,
) -> Option<ModbusTag> {
    let anon = format!("tag #{} of {device}", item.index);
    let (path_field, label) =
        cx.entry_head(item.table(&anon), &TAG_ENTRY, |p| path_label("tag", p));
    let t = item.table(&label);

    let defined = path_field
        .as_ref()
        .and_then(|p| cx.define_tag(p, device, "device tag"));

    let data_type = cx.string(t, "type", false).and_then(|f| {
        let modbus = MODBUS_TYPES.map(DataType::name).join(", ");
        match DataType::parse(f.v) {
            Some(dt) if MODBUS_TYPES.contains(&dt) => Some(f.map(|_| dt)),
            Some(_) => {
                let msg = format!(
                    "data type {:?} is not supported for Modbus {label} (expected one of: {modbus})",
                    f.v
                );
                cx.err(f.span.start, msg);
                None
            }
            None => {
                cx.err(
                    f.span.start,
                    format!("unknown data type {:?} for {label} (expected one of: {modbus})", f.v),
                );
                None
            }
        }
    });

    if let (Some((tp, true)), Some(dt)) = (&defined, &data_type) {
        cx.set_tag_type(tp, dt.v);
    }

    let tables = RegisterTable::ALL.map(|rt| (rt.name(), rt));
    let reg_table = cx.choice(t, "table", "register table", &tables);

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
            cx.err(dt.span.start, msg);
        } else if !bit_type && rt.v.is_bit_table() {
            fits = false;
            let msg = format!(
                "{label} has type {}, but table {:?} holds single bits (use type \"bool\", or table \"holding\" or \"input\")",
                dt.v,
                rt.v.name()
            );
            cx.err(dt.span.start, msg);
        }
    }

    let address = cx
        .integer(t, "address", false, ADDRESS_RANGE)
        .and_then(|f| {
            let count = data_type.as_ref().map_or(1, |dt| register_count(dt.v));
            let end = f.v + i128::from(count);
            if end > 65_536 {
                let table_name = reg_table
                    .as_ref()
                    .map_or(String::new(), |rt| format!("{} ", rt.v.name()));
                let msg = format!(
                    "{label} at address {} needs {count} registers, which runs past the last {table_name}address 65535",
                    f.v
                );
                cx.err(f.span.start, msg);
                return None;
            }
            Some(f.map(|v| v as u16))
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

    let word_order = word_order(t, cx).unwrap_or(device_order);
    let unit = cx.unit(t, &label);
    let scaling = cx.scale(t, &label, data_type.as_ref().map(|f| f.v));
    let deadband = cx.deadband(t, &label, t.contains_key("scale"));
    let description = cx
        .string(t, "description", false)
        .map_or_else(String::new, |f| f.v.to_owned());

    let write = write_limits(
        &label,
        t,
        cx,
        data_type.as_ref().map(|f| f.v),
        reg_table.as_ref().map(|f| f.v),
    );

    let def = TagDef {
        path: defined?.0,
        data_type: data_type?.v,
        unit,
        scaling,
        deadband,
        description,
    };
    let tag = ModbusTag {
        def,
        table: reg_table?.v,
        address: address?.v,
        word_order,
        write,
    };
    cx.add_tag(tag.def.clone());
    Some(tag)
}

/// The `writable`, `write_min` and `write_max` keys of a tag.
fn write_limits(
    label: &str,
    t: Table<'_, '_>,
    cx: &mut Cx<'_>,
    data_type: Option<DataType>,
    table: Option<RegisterTable>,
) -> Option<WriteLimits> {
    let writable = cx.boolean(t, "writable", false);
    let min = cx.finite(t, "write_min", false);
    let max = cx.finite(t, "write_max", false);
    let on = writable.as_ref().is_some_and(|f| f.v);
    if !on {
        for f in [&min, &max].into_iter().flatten() {
            cx.err(
                f.span.start,
                format!("{label} has a write limit but is not writable (add writable = true, or remove the limit)"),
            );
        }
        return None;
    }
    if let (Some(f), Some(rt)) = (&writable, table)
        && matches!(
            rt,
            RegisterTable::InputRegister | RegisterTable::DiscreteInput
        )
    {
        let msg = format!(
            "{label} cannot be writable: table {:?} is read-only in Modbus (only \"holding\" registers and \"coil\"s can be written)",
            rt.name()
        );
        cx.err(f.span.start, msg);
        return None;
    }
    if data_type == Some(DataType::Bool) {
        for f in [&min, &max].into_iter().flatten() {
            cx.err(
                f.span.start,
                format!("{label} is a bool: write_min and write_max do not apply"),
            );
        }
        return Some(WriteLimits::default());
    }
    if let (Some(lo), Some(hi)) = (&min, &max)
        && lo.v > hi.v
    {
        let msg = format!(
            "{label}: write_min {} is above write_max {} (no value could be written)",
            lo.v, hi.v
        );
        cx.err(hi.span.start, msg);
    }
    Some(WriteLimits {
        min: min.map(|f| f.v),
        max: max.map(|f| f.v),
    })
}

/// Reports every tag whose registers overlap those of an earlier tag (in address order) of the
/// same device and table.
fn overlaps(device: &str, mut regs: Vec<RegUse>, cx: &mut Cx<'_>) {
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
                    cx.line(a.at)
                );
                cx.err(b.at, msg);
                if regs[i].end > regs[w].end {
                    widest = Some(i);
                }
            }
            _ => widest = Some(i),
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

#[cfg(test)]
mod tests {
    use super::*;
    use mw_model::TagPath;

    #[test]
    fn register_count_by_type() {
        let mk = |t| ModbusTag {
            def: TagDef::new(TagPath::new("a/b").unwrap(), t),
            table: RegisterTable::HoldingRegister,
            address: 0,
            word_order: WordOrder::Abcd,
            write: None,
        };
        let counts: Vec<u16> = MODBUS_TYPES
            .iter()
            .map(|&t| mk(t).register_count())
            .collect();
        assert_eq!(counts, vec![1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn names_roundtrip() {
        for w in WordOrder::ALL {
            assert_eq!(WordOrder::parse(w.name()), Some(w));
        }
        for t in RegisterTable::ALL {
            assert_eq!(RegisterTable::parse(t.name()), Some(t));
        }
        assert_eq!(RegisterTable::parse("holding_register"), None);
    }

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
    fn device_names() {
        assert!(check_device_name("plc-1_a").is_ok());
        assert_eq!(check_device_name(""), Err("it is empty".to_owned()));
        assert!(check_device_name("plc 1").is_err());
    }
}
