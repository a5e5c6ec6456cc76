//! InfluxDB line protocol for Millwright: a parser (zero-copy where no escape was used), the
//! mapping of points to Millwright samples, and a writer whose output the parser reads back to the
//! same samples.
//!
//! * [`parse`] parses a whole batch; a malformed batch is rejected whole with the first error,
//!   which names its line and column (1-based, in characters) and what was expected.
//! * [`parse_line`] is the core, used by [`Reader`] to stream a file of any size from a `BufRead`.
//! * [`to_samples`] maps a point to one sample per field, path
//!   `measurement/<tag values in order of their keys>/field`.
//! * [`write_sample`] writes one sample as one line (export format, see its docs).
//!
//! This crate does no I/O of its own (the reader takes any `BufRead`), keeps no state and never
//! panics on any input.

mod error;
mod map;
mod parse;
mod write;

pub use error::{LineError, PrecisionError, ReadError, WriteError};
pub use map::{point_samples, to_samples};
pub use parse::{Field, FieldValue, Point, Precision, Reader, Tag, parse, parse_line};
pub use write::{write_sample, write_value_line};
