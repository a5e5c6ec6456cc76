//! Millwright's core data model: tag paths, values, quality, samples, tag definitions,
//! engineering units, the asset tree, glob patterns over tag paths, and the events that travel
//! beside samples.
//!
//! This crate is pure: no I/O, no global state, no async. Every type is a plain value that
//! can be compared, cloned and serialized without a registry.

mod asset;
mod event;
mod path;
mod pattern;
mod sample;
mod tagdef;
mod time;
mod units;

pub use asset::{Asset, AssetKind, AssetTree, AssetTreeError};
pub use event::{Event, EventKind};
pub use path::{MAX_PATH_LEN, MAX_SEGMENT_LEN, MAX_SEGMENTS, PathError, TagPath};
pub use pattern::{MAX_PATTERN_LEN, PatternError, TagPattern};
pub use sample::{MAX_STRING_LEN, Quality, Sample, Value};
pub use tagdef::{DataType, Deadband, DeadbandFilter, Scaling, ScalingError, TagDef};
pub use time::{format_rfc3339_ns, now_ns, parse_rfc3339_ns};
pub use units::{UNITS, Unit, unit_info};
