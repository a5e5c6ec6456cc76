//! The validated configuration: plain values, every default already applied.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use mw_analytics::DetectorKind;
use mw_model::{AssetKind, AssetTree, DataType, TagDef, TagPath};

/// A whole, validated configuration file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub site: SiteConfig,
    pub http: HttpConfig,
    pub pipeline: PipelineConfig,
    pub assets: Vec<AssetConfig>,
    pub devices: Vec<DeviceConfig>,
    pub detectors: Vec<DetectorConfig>,
    pub rul: Vec<RulConfig>,
}

impl Config {
    /// The asset tree: declared assets, every device tag (a tag under an undeclared asset
    /// creates that asset), then the tags the analytics publish: each detector's score and flag
    /// and each RUL estimate's three tags (see [`Config::published_tags`]). A validated config
    /// adds without error; on a hand-built `Config`, entries the tree refuses (bad or duplicate
    /// paths) are skipped.
    pub fn asset_tree(&self) -> AssetTree {
        let mut tree = AssetTree::new();
        for a in &self.assets {
            let _ = tree.add_asset(&a.path, a.kind.clone(), &a.description);
        }
        for tag in self.devices.iter().flat_map(|d| &d.tags) {
            let _ = tree.add_tag(tag.def.clone());
        }
        for def in self.published_tags() {
            let _ = tree.add_tag(def);
        }
        tree
    }

    /// Definitions of the tags published by the analytics, in file order: for each
    /// `[[detectors]]` entry its score (`f64`, unit `1`) and flag (`bool`), then for each
    /// `[[rul]]` entry its estimate and lower and upper bounds (`f64`, unit `h`).
    pub fn published_tags(&self) -> Vec<TagDef> {
        let mut out = Vec::new();
        for d in &self.detectors {
            let n = d.tags.len();
            let plural = if n == 1 { "" } else { "s" };
            let mut score = TagDef::new(d.score_tag.clone(), DataType::F64);
            score.unit = Some("1".to_owned());
            score.description = format!(
                "anomaly score 0..1 ({} detector over {n} tag{plural})",
                d.kind
            );
            out.push(score);
            let mut flag = TagDef::new(d.flag_tag.clone(), DataType::Bool);
            flag.description = format!("anomalous ({} detector)", d.kind);
            out.push(flag);
        }
        for r in &self.rul {
            let unit = self
                .tags()
                .find(|t| t.def.path == r.tag)
                .and_then(|t| t.def.unit.as_deref())
                .map_or(String::new(), |u| format!(" {u}"));
            let direction = if r.decreasing { "falls to" } else { "reaches" };
            let what = format!("{} {direction} {}{unit}", r.tag.name(), r.threshold);
            let hours = |path: &TagPath, description: String| {
                let mut def = TagDef::new(path.clone(), DataType::F64);
                def.unit = Some("h".to_owned());
                def.description = description;
                def
            };
            out.push(hours(
                &r.rul_tag,
                format!(
                    "remaining useful life: hours until {what} (trend over {} samples)",
                    r.window
                ),
            ));
            out.push(hours(
                &r.lower_tag,
                format!("remaining useful life, lower bound: hours until {what}"),
            ));
            out.push(hours(
                &r.upper_tag,
                format!("remaining useful life, upper bound: hours until {what}"),
            ));
        }
        out
    }

    /// Every Modbus tag of every device, in file order.
    pub fn tags(&self) -> impl Iterator<Item = &ModbusTag> {
        self.devices.iter().flat_map(|d| &d.tags)
    }
}

/// `[site]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteConfig {
    pub name: String,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            name: "Millwright".to_owned(),
        }
    }
}

/// `[http]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    pub address: SocketAddr,
    pub auth: HttpAuth,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            auth: HttpAuth::None,
        }
    }
}

/// HTTP authentication. Only `none` exists so far; it must be spelled out to bind a
/// non-loopback address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpAuth {
    #[default]
    None,
}

/// `[pipeline]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub bus_capacity: usize,
    pub sink_capacity: usize,
    pub overload: OverloadPolicy,
    pub live_window: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            bus_capacity: 1024,
            sink_capacity: 1024,
            overload: OverloadPolicy::Block,
            live_window: 600,
        }
    }
}

/// What the fan-out does when a sink's queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OverloadPolicy {
    /// Wait: backpressure reaches the sources.
    #[default]
    Block,
    /// Drop the batch for that sink and count it.
    DropNewest,
}

impl OverloadPolicy {
    pub const ALL: [OverloadPolicy; 2] = [OverloadPolicy::Block, OverloadPolicy::DropNewest];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            OverloadPolicy::Block => "block",
            OverloadPolicy::DropNewest => "drop_newest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for OverloadPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `[[assets]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetConfig {
    pub path: String,
    pub kind: AssetKind,
    pub description: String,
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
    /// Warm-up in samples; `None`: the detector's own default.
    pub warmup: Option<usize>,
    /// `ASSET/NAME_score` (default `ASSET/anomaly_score`): f64 in [0, 1], unit `1`.
    pub score_tag: TagPath,
    /// `ASSET/NAME` (default `ASSET/anomalous`): bool.
    pub flag_tag: TagPath,
}

/// `mad`, `ewma`, `cusum` and `seasonal` watch exactly one tag; `auto` and `pca` any number.
pub(crate) fn is_univariate(kind: DetectorKind) -> bool {
    matches!(
        kind,
        DetectorKind::Mad | DetectorKind::Ewma | DetectorKind::Cusum | DetectorKind::Seasonal
    )
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
    /// `ASSET/rul`: the estimate in hours (ASSET is the tag's asset).
    pub rul_tag: TagPath,
    /// `ASSET/rul_lower`, hours.
    pub lower_tag: TagPath,
    /// `ASSET/rul_upper`, hours.
    pub upper_tag: TagPath,
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
pub(crate) const MODBUS_TYPES: [DataType; 6] = [
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
        for p in OverloadPolicy::ALL {
            assert_eq!(OverloadPolicy::parse(p.name()), Some(p));
        }
        assert_eq!(RegisterTable::parse("holding_register"), None);
    }

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

    #[test]
    fn defaults_match_docs() {
        let c = Config::default();
        assert_eq!(c.site.name, "Millwright");
        assert_eq!(c.http.address.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.pipeline,
            PipelineConfig {
                bus_capacity: 1024,
                sink_capacity: 1024,
                overload: OverloadPolicy::Block,
                live_window: 600
            }
        );
        assert!(c.detectors.is_empty() && c.rul.is_empty());
    }
}
