//! Ground-truth label files: every fault that has started, as CSV and as JSON (format in docs/simulator.md).

use std::io::{self, Write};

use serde::Serialize;

use crate::DegradationRecord;
use crate::fault::FaultRecord;

/// The bearing's degradation as a label row: id 0, origin `natural`, from when the wear reached the threshold to
/// the time the file is written (`now`), active (it is permanent).
pub(crate) struct DegradationLabel {
    pub record: DegradationRecord,
    pub now_s: f64,
    pub now_ns: i64,
}

/// Header of the CSV label file.
pub const CSV_HEADER: &str =
    "id,kind,asset,point,origin,start_s,end_s,start_epoch_ns,end_epoch_ns,active";

/// Quotes a CSV field when it needs it (RFC 4180). Asset and point names never do, but the writer does not rely
/// on that.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(crate) fn write_csv(
    records: &[FaultRecord],
    degradation: Option<&DegradationLabel>,
    mut w: impl Write,
) -> io::Result<()> {
    writeln!(w, "{CSV_HEADER}")?;
    for r in records {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{}",
            r.id,
            r.kind,
            csv_field(&r.asset),
            csv_field(r.point.as_deref().unwrap_or("")),
            r.origin,
            r.start_s,
            r.end_s,
            r.start_ns,
            r.end_ns,
            r.active
        )?;
    }
    if let Some(d) = degradation {
        writeln!(
            w,
            "0,{},{},,natural,{},{},{},{},true",
            d.record.kind,
            csv_field(d.record.asset),
            d.record.start_s,
            d.now_s,
            d.record.start_ns,
            d.now_ns
        )?;
    }
    w.flush()
}

#[derive(Serialize)]
struct LabelFile<'a> {
    seed: u64,
    start_epoch_ns: i64,
    time_s: f64,
    faults: Vec<Label<'a>>,
}

#[derive(Serialize)]
struct Label<'a> {
    id: u64,
    kind: &'static str,
    asset: &'a str,
    point: Option<&'a str>,
    origin: &'static str,
    start_s: f64,
    end_s: f64,
    start_epoch_ns: i64,
    end_epoch_ns: i64,
    active: bool,
}

pub(crate) fn write_json(
    seed: u64,
    start_epoch_ns: i64,
    time_s: f64,
    records: &[FaultRecord],
    degradation: Option<&DegradationLabel>,
    mut w: impl Write,
) -> io::Result<()> {
    let mut file = LabelFile {
        seed,
        start_epoch_ns,
        time_s,
        faults: records
            .iter()
            .map(|r| Label {
                id: r.id.0,
                kind: r.kind.as_str(),
                asset: &r.asset,
                point: r.point.as_deref(),
                origin: r.origin.as_str(),
                start_s: r.start_s,
                end_s: r.end_s,
                start_epoch_ns: r.start_ns,
                end_epoch_ns: r.end_ns,
                active: r.active,
            })
            .collect(),
    };
    if let Some(d) = degradation {
        file.faults.push(Label {
            id: 0,
            kind: d.record.kind,
            asset: d.record.asset,
            point: None,
            origin: "natural",
            start_s: d.record.start_s,
            end_s: d.now_s,
            start_epoch_ns: d.record.start_ns,
            end_epoch_ns: d.now_ns,
            active: true,
        });
    }
    serde_json::to_writer_pretty(&mut w, &file).map_err(io::Error::other)?;
    writeln!(w)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a/b"), "a/b");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
