//! The typed payload layer over the generated protobuf structs: [`decode`] and [`encode`].
//!
//! Encoding rules (Sparkplug 3.0, "Payload Metric value"): Int8/16/32 and UInt8/16/32 travel in
//! `int_value`, signed values as two's complement of their own width (Int8 -1 is 255); Int64,
//! UInt64 and DateTime (ms since the epoch) in `long_value`; arrays in `bytes_value`, little
//! endian (BooleanArray: a 4-byte little-endian count then the bits, most significant bit first;
//! StringArray: NUL-terminated UTF-8 strings). Decoding accepts a sign-extended 32-bit form of the
//! small signed types too (what some peers send).

use prost::Message;

use crate::DataType;
use crate::pb::payload as pbp;

/// What [`decode_with`] accepts. Memory used by a decoded payload is bounded by a small
/// multiple of `max_bytes` (each protobuf message costs at least one input byte per field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted payload, in bytes.
    pub max_bytes: usize,
    /// Most metrics in one payload (counting template members).
    pub max_metrics: usize,
    /// Deepest nesting of templates in templates.
    pub max_template_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 * 1024 * 1024,
            max_metrics: 100_000,
            max_template_depth: 8,
        }
    }
}

/// A payload that could not be decoded; `at` names the metric (`metrics[3] "Motor/Speed"`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("payload is not a valid Sparkplug B protobuf: {0}")]
    Protobuf(String),
    #[error("payload has more than {max} metrics")]
    TooManyMetrics { max: usize },
    #[error("{at}: templates nested deeper than {max}")]
    TooDeep { at: String, max: usize },
    #[error("{at}: unknown data type code {code}")]
    UnknownDataType { at: String, code: u32 },
    #[error("{at}: data type {datatype:?} cannot be carried in the {field} field")]
    WrongField {
        at: String,
        datatype: DataType,
        field: &'static str,
    },
    #[error("{at}: value {value} out of range for {datatype:?}")]
    OutOfRange {
        at: String,
        datatype: DataType,
        value: u64,
    },
    #[error("{at}: {datatype:?} array of {len} bytes is not a whole number of elements")]
    BadArrayLength {
        at: String,
        datatype: DataType,
        len: usize,
    },
    #[error("{at}: boolean array claims {count} values but carries {len} bytes")]
    BadBooleanArray { at: String, count: u64, len: usize },
    #[error("{at}: string array is not NUL-terminated UTF-8")]
    BadStringArray { at: String },
    #[error("{at}: data set has {columns} columns but {types} types")]
    DataSetShape {
        at: String,
        columns: usize,
        types: usize,
    },
    #[error("{at}: data set row {row} has {len} values, expected {columns}")]
    DataSetRow {
        at: String,
        row: usize,
        len: usize,
        columns: usize,
    },
    #[error("{at}: metric has no data type and none is known from the birth certificate")]
    NoDataType { at: String },
}

/// A typed value that cannot be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("{at}: value of {value:?} does not match data type {datatype:?}")]
    Mismatch {
        at: String,
        datatype: DataType,
        value: String,
    },
}

/// A decoded Sparkplug B payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// ms since the Unix epoch.
    pub timestamp: Option<u64>,
    pub metrics: Vec<Metric>,
    /// 0–255 message sequence number (absent in NDEATH and commands).
    pub seq: Option<u64>,
    pub uuid: Option<String>,
    pub body: Option<Vec<u8>>,
}

/// One metric. `value == None` means null (`is_null`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: Option<String>,
    pub alias: Option<u64>,
    pub timestamp: Option<u64>,
    pub datatype: DataType,
    pub is_historical: bool,
    pub is_transient: bool,
    pub metadata: Option<pbp::MetaData>,
    pub properties: Option<pbp::PropertySet>,
    pub value: Option<MetricValue>,
}

impl Metric {
    /// A named metric with a value (its data type is the value's).
    pub fn new(name: impl Into<String>, value: MetricValue) -> Metric {
        Metric {
            name: Some(name.into()),
            alias: None,
            timestamp: None,
            datatype: value.datatype(),
            is_historical: false,
            is_transient: false,
            metadata: None,
            properties: None,
            value: Some(value),
        }
    }
}

/// A metric value, one variant per Sparkplug data type (PropertySet values travel only as
/// properties, so they have no variant here).
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    UInt8(u8),
    UInt16(u16),
    UInt32(u32),
    UInt64(u64),
    Float(f32),
    Double(f64),
    Boolean(bool),
    String(String),
    /// ms since the Unix epoch.
    DateTime(u64),
    Text(String),
    Uuid(String),
    DataSet(DataSet),
    Bytes(Vec<u8>),
    File(Vec<u8>),
    Template(Template),
    Int8Array(Vec<i8>),
    Int16Array(Vec<i16>),
    Int32Array(Vec<i32>),
    Int64Array(Vec<i64>),
    UInt8Array(Vec<u8>),
    UInt16Array(Vec<u16>),
    UInt32Array(Vec<u32>),
    UInt64Array(Vec<u64>),
    FloatArray(Vec<f32>),
    DoubleArray(Vec<f64>),
    BooleanArray(Vec<bool>),
    StringArray(Vec<String>),
    DateTimeArray(Vec<u64>),
}

/// A Sparkplug DataSet: typed columns and rows of scalar values (`None` = null cell).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataSet {
    pub columns: Vec<String>,
    pub types: Vec<DataType>,
    pub rows: Vec<Vec<Option<MetricValue>>>,
}

/// A Sparkplug Template (a definition in an NBIRTH, or an instance referring to one).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    pub version: Option<String>,
    pub template_ref: Option<String>,
    pub is_definition: bool,
    pub metrics: Vec<Metric>,
    pub parameters: Vec<Parameter>,
}

/// A template parameter (scalar value).
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: Option<String>,
    pub datatype: DataType,
    pub value: Option<MetricValue>,
}

impl MetricValue {
    /// The data type this value is carried as.
    pub fn datatype(&self) -> DataType {
        use MetricValue as V;
        match self {
            V::Int8(_) => DataType::Int8,
            V::Int16(_) => DataType::Int16,
            V::Int32(_) => DataType::Int32,
            V::Int64(_) => DataType::Int64,
            V::UInt8(_) => DataType::UInt8,
            V::UInt16(_) => DataType::UInt16,
            V::UInt32(_) => DataType::UInt32,
            V::UInt64(_) => DataType::UInt64,
            V::Float(_) => DataType::Float,
            V::Double(_) => DataType::Double,
            V::Boolean(_) => DataType::Boolean,
            V::String(_) => DataType::String,
            V::DateTime(_) => DataType::DateTime,
            V::Text(_) => DataType::Text,
            V::Uuid(_) => DataType::Uuid,
            V::DataSet(_) => DataType::DataSet,
            V::Bytes(_) => DataType::Bytes,
            V::File(_) => DataType::File,
            V::Template(_) => DataType::Template,
            V::Int8Array(_) => DataType::Int8Array,
            V::Int16Array(_) => DataType::Int16Array,
            V::Int32Array(_) => DataType::Int32Array,
            V::Int64Array(_) => DataType::Int64Array,
            V::UInt8Array(_) => DataType::UInt8Array,
            V::UInt16Array(_) => DataType::UInt16Array,
            V::UInt32Array(_) => DataType::UInt32Array,
            V::UInt64Array(_) => DataType::UInt64Array,
            V::FloatArray(_) => DataType::FloatArray,
            V::DoubleArray(_) => DataType::DoubleArray,
            V::BooleanArray(_) => DataType::BooleanArray,
            V::StringArray(_) => DataType::StringArray,
            V::DateTimeArray(_) => DataType::DateTimeArray,
        }
    }

    /// The model value of a scalar (integers up to 64 bits signed as `I64`, `UInt64` as `U64`,
    /// DateTime as `I64` ms, strings, text and UUIDs as `Str`); `None` for arrays, bytes, files,
    /// data sets and templates (or a string longer than the model allows).
    pub fn to_model(&self) -> Option<mw_model::Value> {
        use MetricValue as V;
        use mw_model::Value as M;
        Some(match self {
            V::Int8(v) => M::I64(i64::from(*v)),
            V::Int16(v) => M::I64(i64::from(*v)),
            V::Int32(v) => M::I64(i64::from(*v)),
            V::Int64(v) => M::I64(*v),
            V::UInt8(v) => M::I64(i64::from(*v)),
            V::UInt16(v) => M::I64(i64::from(*v)),
            V::UInt32(v) => M::I64(i64::from(*v)),
            V::UInt64(v) => M::U64(*v),
            V::Float(v) => M::F32(*v),
            V::Double(v) => M::F64(*v),
            V::Boolean(v) => M::Bool(*v),
            V::DateTime(v) => M::I64(i64::try_from(*v).ok()?),
            V::String(s) | V::Text(s) | V::Uuid(s) => M::string(s),
            _ => return None,
        })
    }

    /// The Sparkplug value of a model value: Bool → Boolean, I64 → Int64, U64 → UInt64,
    /// F32 → Float, F64 → Double, Str → String.
    pub fn from_model(v: &mw_model::Value) -> MetricValue {
        use mw_model::Value as M;
        match v {
            M::Bool(b) => MetricValue::Boolean(*b),
            M::I64(i) => MetricValue::Int64(*i),
            M::U64(u) => MetricValue::UInt64(*u),
            M::F32(f) => MetricValue::Float(*f),
            M::F64(f) => MetricValue::Double(*f),
            M::Str(s) => MetricValue::String(s.clone()),
        }
    }
}

/// Decodes a payload with the default [`Limits`].
pub fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
    decode_with(bytes, &Limits::default())
}

/// Decodes a payload; never panics, refuses anything over `limits`.
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Payload, DecodeError> {
    decode_inner(bytes, limits, None)
}

/// Decodes a DATA or CMD payload whose metrics may omit their data type (the specification says
/// they SHOULD NOT carry one: the birth certificate declared it): a top-level metric without a
/// data type takes the one `birth_type(name, alias)` returns; when that is `None` too, the
/// metric is refused with [`DecodeError::NoDataType`] (a null without a type decodes as
/// [`DataType::Unknown`]). Otherwise as [`decode_with`].
pub fn decode_in_session(
    bytes: &[u8],
    limits: &Limits,
    birth_type: BirthType<'_>,
) -> Result<Payload, DecodeError> {
    decode_inner(bytes, limits, Some(birth_type))
}

/// What [`decode_in_session`] asks for a metric without a data type: its birth's, by name or
/// alias.
pub type BirthType<'a> = &'a dyn Fn(Option<&str>, Option<u64>) -> Option<DataType>;

fn decode_inner(
    bytes: &[u8],
    limits: &Limits,
    birth_type: Option<BirthType<'_>>,
) -> Result<Payload, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let raw =
        crate::pb::Payload::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let mut cx = Cx {
        limits,
        metrics: 0,
        birth_type,
    };
    let metrics = cx.metrics(raw.metrics, "metrics", 0)?;
    Ok(Payload {
        timestamp: raw.timestamp,
        metrics,
        seq: raw.seq,
        uuid: raw.uuid,
        body: raw.body,
    })
}

struct Cx<'a> {
    limits: &'a Limits,
    birth_type: Option<BirthType<'a>>,
    metrics: usize,
}

fn at_of(prefix: &str, i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{prefix}[{i}] {n:?}"),
        None => format!("{prefix}[{i}]"),
    }
}

impl Cx<'_> {
    fn metrics(
        &mut self,
        raw: Vec<pbp::Metric>,
        prefix: &str,
        depth: usize,
    ) -> Result<Vec<Metric>, DecodeError> {
        self.metrics = self.metrics.saturating_add(raw.len());
        if self.metrics > self.limits.max_metrics {
            return Err(DecodeError::TooManyMetrics {
                max: self.limits.max_metrics,
            });
        }
        let mut out = Vec::with_capacity(raw.len());
        for (i, m) in raw.into_iter().enumerate() {
            let at = at_of(prefix, i, m.name.as_deref());
            out.push(self.metric(m, &at, depth)?);
        }
        Ok(out)
    }

    fn metric(&mut self, m: pbp::Metric, at: &str, depth: usize) -> Result<Metric, DecodeError> {
        let code = m.datatype.unwrap_or(0);
        let mut datatype =
            DataType::from_code(code).ok_or_else(|| DecodeError::UnknownDataType {
                at: at.to_owned(),
                code,
            })?;
        if datatype == DataType::Unknown
            && depth == 0
            && let Some(birth_type) = self.birth_type
        {
            match birth_type(m.name.as_deref(), m.alias) {
                Some(t) => datatype = t,
                None if m.value.is_some() => {
                    return Err(DecodeError::NoDataType { at: at.to_owned() });
                }
                None => {}
            }
        }
        let value = if m.is_null == Some(true) {
            None
        } else {
            match m.value {
                None => None,
                Some(v) => Some(self.metric_value(datatype, v, at, depth)?),
            }
        };
        Ok(Metric {
            name: m.name,
            alias: m.alias,
            timestamp: m.timestamp,
            datatype,
            is_historical: m.is_historical.unwrap_or(false),
            is_transient: m.is_transient.unwrap_or(false),
            metadata: m.metadata,
            properties: m.properties,
            value,
        })
    }

    fn metric_value(
        &mut self,
        t: DataType,
        v: pbp::metric::Value,
        at: &str,
        depth: usize,
    ) -> Result<MetricValue, DecodeError> {
        use pbp::metric::Value as W;
        let wrong = |field| DecodeError::WrongField {
            at: at.to_owned(),
            datatype: t,
            field,
        };
        Ok(match v {
            W::IntValue(i) => scalar(t, Wire::Int(i), at)?,
            W::LongValue(i) => scalar(t, Wire::Long(i), at)?,
            W::FloatValue(f) => scalar(t, Wire::Float(f), at)?,
            W::DoubleValue(f) => scalar(t, Wire::Double(f), at)?,
            W::BooleanValue(b) => scalar(t, Wire::Bool(b), at)?,
            W::StringValue(s) => scalar(t, Wire::Str(s), at)?,
            W::BytesValue(b) => bytes_value(t, b, at)?,
            W::DatasetValue(d) => {
                if t != DataType::DataSet {
                    return Err(wrong("dataset_value"));
                }
                MetricValue::DataSet(dataset(d, at)?)
            }
            W::TemplateValue(tv) => {
                if t != DataType::Template {
                    return Err(wrong("template_value"));
                }
                MetricValue::Template(self.template(tv, at, depth + 1)?)
            }
            W::ExtensionValue(_) => return Err(wrong("extension_value")),
        })
    }

    fn template(
        &mut self,
        t: pbp::Template,
        at: &str,
        depth: usize,
    ) -> Result<Template, DecodeError> {
        if depth > self.limits.max_template_depth {
            return Err(DecodeError::TooDeep {
                at: at.to_owned(),
                max: self.limits.max_template_depth,
            });
        }
        let metrics = self.metrics(t.metrics, &format!("{at}.template.metrics"), depth)?;
        let mut parameters = Vec::with_capacity(t.parameters.len());
        for (i, p) in t.parameters.into_iter().enumerate() {
            let pat = at_of(&format!("{at}.template.parameters"), i, p.name.as_deref());
            let code = p.r#type.unwrap_or(0);
            let datatype =
                DataType::from_code(code).ok_or_else(|| DecodeError::UnknownDataType {
                    at: pat.clone(),
                    code,
                })?;
            use pbp::template::parameter::Value as P;
            let value = match p.value {
                None => None,
                Some(P::IntValue(i)) => Some(scalar(datatype, Wire::Int(i), &pat)?),
                Some(P::LongValue(i)) => Some(scalar(datatype, Wire::Long(i), &pat)?),
                Some(P::FloatValue(f)) => Some(scalar(datatype, Wire::Float(f), &pat)?),
                Some(P::DoubleValue(f)) => Some(scalar(datatype, Wire::Double(f), &pat)?),
                Some(P::BooleanValue(b)) => Some(scalar(datatype, Wire::Bool(b), &pat)?),
                Some(P::StringValue(s)) => Some(scalar(datatype, Wire::Str(s), &pat)?),
                Some(P::ExtensionValue(_)) => {
                    return Err(DecodeError::WrongField {
                        at: pat,
                        datatype,
                        field: "extension_value",
                    });
                }
            };
            parameters.push(Parameter {
                name: p.name,
                datatype,
                value,
            });
        }
        Ok(Template {
            version: t.version,
            template_ref: t.template_ref,
            is_definition: t.is_definition.unwrap_or(false),
            metrics,
            parameters,
        })
    }
}

enum Wire {
    Int(u32),
    Long(u64),
    Float(f32),
    Double(f64),
    Bool(bool),
    Str(String),
}

impl Wire {
    fn field(&self) -> &'static str {
        match self {
            Wire::Int(_) => "int_value",
            Wire::Long(_) => "long_value",
            Wire::Float(_) => "float_value",
            Wire::Double(_) => "double_value",
            Wire::Bool(_) => "boolean_value",
            Wire::Str(_) => "string_value",
        }
    }
}

/// A small signed integer from `int_value`: its own width's two's complement, or the
/// sign-extended 32-bit form.
fn small_signed(v: u32, bits: u32, t: DataType, at: &str) -> Result<i64, DecodeError> {
    let full = v as i32 as i64; // sign-extended 32-bit form
    let min = -(1i64 << (bits - 1));
    let max = (1i64 << (bits - 1)) - 1;
    if (min..=max).contains(&full) {
        return Ok(full);
    }
    if bits < 32 && u64::from(v) < (1u64 << bits) {
        let x = i64::from(v);
        return Ok(if x > max { x - (1i64 << bits) } else { x });
    }
    Err(DecodeError::OutOfRange {
        at: at.to_owned(),
        datatype: t,
        value: u64::from(v),
    })
}

fn scalar(t: DataType, w: Wire, at: &str) -> Result<MetricValue, DecodeError> {
    use MetricValue as V;
    let range = |value: u64| DecodeError::OutOfRange {
        at: at.to_owned(),
        datatype: t,
        value,
    };
    Ok(match (t, w) {
        (DataType::Int8, Wire::Int(v)) => V::Int8(small_signed(v, 8, t, at)? as i8),
        (DataType::Int16, Wire::Int(v)) => V::Int16(small_signed(v, 16, t, at)? as i16),
        (DataType::Int32, Wire::Int(v)) => V::Int32(v as i32),
        (DataType::UInt8, Wire::Int(v)) => V::UInt8(u8::try_from(v).map_err(|_| range(v.into()))?),
        (DataType::UInt16, Wire::Int(v)) => {
            V::UInt16(u16::try_from(v).map_err(|_| range(v.into()))?)
        }
        (DataType::UInt32, Wire::Int(v)) => V::UInt32(v),
        // Some peers put 32-bit types in long_value.
        (DataType::Int32, Wire::Long(v)) => {
            V::Int32(i32::try_from(v as i64).map_err(|_| range(v))?)
        }
        (DataType::UInt32, Wire::Long(v)) => V::UInt32(u32::try_from(v).map_err(|_| range(v))?),
        (DataType::Int64, Wire::Long(v)) => V::Int64(v as i64),
        (DataType::UInt64, Wire::Long(v)) => V::UInt64(v),
        (DataType::DateTime, Wire::Long(v)) => V::DateTime(v),
        (DataType::Float, Wire::Float(v)) => V::Float(v),
        (DataType::Double, Wire::Double(v)) => V::Double(v),
        (DataType::Boolean, Wire::Bool(v)) => V::Boolean(v),
        (DataType::String, Wire::Str(s)) => V::String(s),
        (DataType::Text, Wire::Str(s)) => V::Text(s),
        (DataType::Uuid, Wire::Str(s)) => V::Uuid(s),
        (t, w) => {
            return Err(DecodeError::WrongField {
                at: at.to_owned(),
                datatype: t,
                field: w.field(),
            });
        }
    })
}

fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

fn bytes_value(t: DataType, b: Vec<u8>, at: &str) -> Result<MetricValue, DecodeError> {
    use MetricValue as V;
    if let Some(size) = t.array_element_size()
        && !b.len().is_multiple_of(size)
    {
        return Err(DecodeError::BadArrayLength {
            at: at.to_owned(),
            datatype: t,
            len: b.len(),
        });
    }
    Ok(match t {
        DataType::Bytes => V::Bytes(b),
        DataType::File => V::File(b),
        DataType::Int8Array => V::Int8Array(b.iter().map(|x| *x as i8).collect()),
        DataType::UInt8Array => V::UInt8Array(b),
        DataType::Int16Array => V::Int16Array(chunks::<2>(&b).map(i16::from_le_bytes).collect()),
        DataType::UInt16Array => V::UInt16Array(chunks::<2>(&b).map(u16::from_le_bytes).collect()),
        DataType::Int32Array => V::Int32Array(chunks::<4>(&b).map(i32::from_le_bytes).collect()),
        DataType::UInt32Array => V::UInt32Array(chunks::<4>(&b).map(u32::from_le_bytes).collect()),
        DataType::Int64Array => V::Int64Array(chunks::<8>(&b).map(i64::from_le_bytes).collect()),
        DataType::UInt64Array => V::UInt64Array(chunks::<8>(&b).map(u64::from_le_bytes).collect()),
        DataType::FloatArray => V::FloatArray(chunks::<4>(&b).map(f32::from_le_bytes).collect()),
        DataType::DoubleArray => V::DoubleArray(chunks::<8>(&b).map(f64::from_le_bytes).collect()),
        DataType::DateTimeArray => {
            V::DateTimeArray(chunks::<8>(&b).map(u64::from_le_bytes).collect())
        }
        DataType::BooleanArray => {
            let bad = |count| DecodeError::BadBooleanArray {
                at: at.to_owned(),
                count,
                len: b.len(),
            };
            let head: [u8; 4] = b.get(..4).and_then(|h| h.try_into().ok()).ok_or(bad(0))?;
            let count = u64::from(u32::from_le_bytes(head));
            let bits = &b[4..];
            if count > bits.len() as u64 * 8 || bits.len() as u64 > count.div_ceil(8) {
                return Err(bad(count));
            }
            V::BooleanArray(
                (0..count as usize)
                    .map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
                    .collect(),
            )
        }
        DataType::StringArray => {
            let bad = || DecodeError::BadStringArray { at: at.to_owned() };
            if b.is_empty() {
                V::StringArray(Vec::new())
            } else {
                let body = b.strip_suffix(&[0]).ok_or_else(bad)?;
                let mut out = Vec::new();
                for part in body.split(|c| *c == 0) {
                    out.push(String::from_utf8(part.to_vec()).map_err(|_| bad())?);
                }
                V::StringArray(out)
            }
        }
        t => {
            return Err(DecodeError::WrongField {
                at: at.to_owned(),
                datatype: t,
                field: "bytes_value",
            });
        }
    })
}

fn dataset(d: pbp::DataSet, at: &str) -> Result<DataSet, DecodeError> {
    let mut types = Vec::with_capacity(d.types.len());
    for (i, code) in d.types.iter().enumerate() {
        types.push(
            DataType::from_code(*code).ok_or_else(|| DecodeError::UnknownDataType {
                at: format!("{at}.dataset.types[{i}]"),
                code: *code,
            })?,
        );
    }
    let columns = d.columns;
    let declared = d.num_of_columns.unwrap_or(columns.len() as u64);
    if columns.len() != types.len() || declared != columns.len() as u64 {
        return Err(DecodeError::DataSetShape {
            at: at.to_owned(),
            columns: columns.len(),
            types: types.len(),
        });
    }
    let mut rows = Vec::with_capacity(d.rows.len());
    for (r, row) in d.rows.into_iter().enumerate() {
        if row.elements.len() != types.len() {
            return Err(DecodeError::DataSetRow {
                at: at.to_owned(),
                row: r,
                len: row.elements.len(),
                columns: types.len(),
            });
        }
        let mut cells = Vec::with_capacity(types.len());
        for (c, (cell, t)) in row.elements.into_iter().zip(&types).enumerate() {
            let cat = format!("{at}.dataset.rows[{r}][{c}]");
            use pbp::data_set::data_set_value::Value as D;
            cells.push(match cell.value {
                None => None,
                Some(D::IntValue(v)) => Some(scalar(*t, Wire::Int(v), &cat)?),
                Some(D::LongValue(v)) => Some(scalar(*t, Wire::Long(v), &cat)?),
                Some(D::FloatValue(v)) => Some(scalar(*t, Wire::Float(v), &cat)?),
                Some(D::DoubleValue(v)) => Some(scalar(*t, Wire::Double(v), &cat)?),
                Some(D::BooleanValue(v)) => Some(scalar(*t, Wire::Bool(v), &cat)?),
                Some(D::StringValue(v)) => Some(scalar(*t, Wire::Str(v), &cat)?),
                Some(D::ExtensionValue(_)) => {
                    return Err(DecodeError::WrongField {
                        at: cat,
                        datatype: *t,
                        field: "extension_value",
                    });
                }
            });
        }
        rows.push(cells);
    }
    Ok(DataSet {
        columns,
        types,
        rows,
    })
}

// ---------------------------------------------------------------------------------------------
// encoding

/// A scalar in its wire field.
enum Out {
    Int(u32),
    Long(u64),
    Float(f32),
    Double(f64),
    Bool(bool),
    Str(String),
}

fn scalar_out(v: &MetricValue) -> Option<Out> {
    use MetricValue as V;
    Some(match v {
        V::Int8(x) => Out::Int(u32::from(*x as u8)),
        V::Int16(x) => Out::Int(u32::from(*x as u16)),
        V::Int32(x) => Out::Int(*x as u32),
        V::Int64(x) => Out::Long(*x as u64),
        V::UInt8(x) => Out::Int(u32::from(*x)),
        V::UInt16(x) => Out::Int(u32::from(*x)),
        V::UInt32(x) => Out::Int(*x),
        V::UInt64(x) | V::DateTime(x) => Out::Long(*x),
        V::Float(x) => Out::Float(*x),
        V::Double(x) => Out::Double(*x),
        V::Boolean(x) => Out::Bool(*x),
        V::String(s) | V::Text(s) | V::Uuid(s) => Out::Str(s.clone()),
        _ => return None,
    })
}

fn le<T, const N: usize>(v: &[T], f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(f).collect()
}

fn bytes_out(v: &MetricValue) -> Option<Vec<u8>> {
    use MetricValue as V;
    Some(match v {
        V::Bytes(b) | V::File(b) | V::UInt8Array(b) => b.clone(),
        V::Int8Array(a) => a.iter().map(|x| *x as u8).collect(),
        V::Int16Array(a) => le(a, |x| x.to_le_bytes()),
        V::UInt16Array(a) => le(a, |x| x.to_le_bytes()),
        V::Int32Array(a) => le(a, |x| x.to_le_bytes()),
        V::UInt32Array(a) => le(a, |x| x.to_le_bytes()),
        V::Int64Array(a) => le(a, |x| x.to_le_bytes()),
        V::UInt64Array(a) | V::DateTimeArray(a) => le(a, |x| x.to_le_bytes()),
        V::FloatArray(a) => le(a, |x| x.to_le_bytes()),
        V::DoubleArray(a) => le(a, |x| x.to_le_bytes()),
        V::BooleanArray(a) => {
            let mut out = (a.len() as u32).to_le_bytes().to_vec();
            let mut bits = vec![0u8; a.len().div_ceil(8)];
            for (i, b) in a.iter().enumerate() {
                if *b {
                    bits[i / 8] |= 0x80 >> (i % 8);
                }
            }
            out.extend(bits);
            out
        }
        V::StringArray(a) => {
            let mut out = Vec::new();
            for s in a {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            out
        }
        _ => return None,
    })
}

fn mismatch(at: &str, datatype: DataType, value: &MetricValue) -> EncodeError {
    EncodeError::Mismatch {
        at: at.to_owned(),
        datatype,
        value: format!("{:?}", value.datatype()),
    }
}

fn metric_out(m: &Metric, at: &str) -> Result<pbp::Metric, EncodeError> {
    use pbp::metric::Value as W;
    let value = match &m.value {
        None => None,
        Some(v) => {
            if v.datatype() != m.datatype {
                return Err(mismatch(at, m.datatype, v));
            }
            Some(match v {
                MetricValue::DataSet(d) => W::DatasetValue(dataset_out(d, at)?),
                MetricValue::Template(t) => W::TemplateValue(template_out(t, at)?),
                v => match (scalar_out(v), bytes_out(v)) {
                    (Some(Out::Int(x)), _) => W::IntValue(x),
                    (Some(Out::Long(x)), _) => W::LongValue(x),
                    (Some(Out::Float(x)), _) => W::FloatValue(x),
                    (Some(Out::Double(x)), _) => W::DoubleValue(x),
                    (Some(Out::Bool(x)), _) => W::BooleanValue(x),
                    (Some(Out::Str(x)), _) => W::StringValue(x),
                    (None, Some(b)) => W::BytesValue(b),
                    (None, None) => return Err(mismatch(at, m.datatype, v)),
                },
            })
        }
    };
    Ok(pbp::Metric {
        name: m.name.clone(),
        alias: m.alias,
        timestamp: m.timestamp,
        datatype: Some(m.datatype.code()),
        is_historical: m.is_historical.then_some(true),
        is_transient: m.is_transient.then_some(true),
        is_null: m.value.is_none().then_some(true),
        metadata: m.metadata.clone(),
        properties: m.properties.clone(),
        value,
    })
}

fn dataset_out(d: &DataSet, at: &str) -> Result<pbp::DataSet, EncodeError> {
    use pbp::data_set::data_set_value::Value as D;
    let mut rows = Vec::with_capacity(d.rows.len());
    for (r, row) in d.rows.iter().enumerate() {
        let mut elements = Vec::with_capacity(row.len());
        for (c, cell) in row.iter().enumerate() {
            let value = match cell {
                None => None,
                Some(v) => {
                    let t = d.types.get(c).copied().unwrap_or(DataType::Unknown);
                    let cat = format!("{at}.dataset.rows[{r}][{c}]");
                    if v.datatype() != t {
                        return Err(mismatch(&cat, t, v));
                    }
                    Some(match scalar_out(v) {
                        Some(Out::Int(x)) => D::IntValue(x),
                        Some(Out::Long(x)) => D::LongValue(x),
                        Some(Out::Float(x)) => D::FloatValue(x),
                        Some(Out::Double(x)) => D::DoubleValue(x),
                        Some(Out::Bool(x)) => D::BooleanValue(x),
                        Some(Out::Str(x)) => D::StringValue(x),
                        None => return Err(mismatch(&cat, t, v)),
                    })
                }
            };
            elements.push(pbp::data_set::DataSetValue { value });
        }
        rows.push(pbp::data_set::Row { elements });
    }
    Ok(pbp::DataSet {
        num_of_columns: Some(d.columns.len() as u64),
        columns: d.columns.clone(),
        types: d.types.iter().map(|t| t.code()).collect(),
        rows,
    })
}

fn template_out(t: &Template, at: &str) -> Result<pbp::Template, EncodeError> {
    use pbp::template::parameter::Value as P;
    let mut metrics = Vec::with_capacity(t.metrics.len());
    for (i, m) in t.metrics.iter().enumerate() {
        metrics.push(metric_out(
            m,
            &at_of(&format!("{at}.template.metrics"), i, m.name.as_deref()),
        )?);
    }
    let mut parameters = Vec::with_capacity(t.parameters.len());
    for (i, p) in t.parameters.iter().enumerate() {
        let pat = at_of(&format!("{at}.template.parameters"), i, p.name.as_deref());
        let value = match &p.value {
            None => None,
            Some(v) => {
                if v.datatype() != p.datatype {
                    return Err(mismatch(&pat, p.datatype, v));
                }
                Some(match scalar_out(v) {
                    Some(Out::Int(x)) => P::IntValue(x),
                    Some(Out::Long(x)) => P::LongValue(x),
                    Some(Out::Float(x)) => P::FloatValue(x),
                    Some(Out::Double(x)) => P::DoubleValue(x),
                    Some(Out::Bool(x)) => P::BooleanValue(x),
                    Some(Out::Str(x)) => P::StringValue(x),
                    None => return Err(mismatch(&pat, p.datatype, v)),
                })
            }
        };
        parameters.push(pbp::template::Parameter {
            name: p.name.clone(),
            r#type: Some(p.datatype.code()),
            value,
        });
    }
    Ok(pbp::Template {
        version: t.version.clone(),
        metrics,
        parameters,
        template_ref: t.template_ref.clone(),
        is_definition: Some(t.is_definition),
    })
}

/// Encodes a payload. Fails only when a value does not match its metric's data type.
pub fn encode(p: &Payload) -> Result<Vec<u8>, EncodeError> {
    let mut metrics = Vec::with_capacity(p.metrics.len());
    for (i, m) in p.metrics.iter().enumerate() {
        metrics.push(metric_out(m, &at_of("metrics", i, m.name.as_deref()))?);
    }
    let raw = crate::pb::Payload {
        timestamp: p.timestamp,
        metrics,
        seq: p.seq,
        uuid: p.uuid.clone(),
        body: p.body.clone(),
    };
    Ok(raw.encode_to_vec())
}
