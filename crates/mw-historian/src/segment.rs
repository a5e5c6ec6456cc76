//! Immutable segment files: compressed per-series blocks and an index of their aggregates.
//!
//! # Format
//! `MWSEG\x02\0\0` (8 bytes), then frames in the WAL's framing (`len: u32`, `crc: u32` CRC32C,
//! payload; see [`crate::wal::encode`]), then a 16-byte footer: the index frame's offset
//! (`u64` LE) and `MWSEGEND`.
//! - Block frame: `1: u8`, `tag_len: u16`, tag, one [`crate::block`] block.
//! - Index frame (last): `2: u8`, `count: u32`, then per block: `tag_len: u16`, tag,
//!   `offset: u64`, `len: u32` (the whole frame), and its [`BlockStats`] (`count: u32`,
//!   `good_count: u32`, `t_min: i64`, `t_max: i64`, then `min`, `max`, `sum`, `first`, `last` as
//!   `f64`).
//!
//! Version 2 (this build writes it) computes the index's [`BlockStats`] over good points only;
//! version 1 (`MWSEG\x01\0\0`, otherwise identical) counted uncertain points too. Both are read;
//! [`Segment::stats_good_only`] tells them apart, and queries answer from the stats of version 2
//! files only (they decode the blocks of version 1 files).
//!
//! Names are `SSSSSSSSSSSSSSSSSSSS-GGGG.seg` for a flush of the head (any times) and
//! `SSSSSSSSSSSSSSSSSSSS-GGGG_pT.seg` for a compacted file of the time partition starting at `T`
//! (ns, signed; every point of the file lies in that partition): `S` the write-ahead-log segment
//! the file's data was checkpointed from (every WAL segment numbered lower is in this or an
//! older segment file) and `G` the compaction generation. For one tag and timestamp, the file
//! that sorts later by (S, G) holds the later write.
//!
//! A file is written whole and synced before anything depends on it. One without a valid footer
//! is a flush that a crash cut short ([`SegmentError::Incomplete`]); a block whose CRC fails is
//! reported on read ([`SegmentError::Corrupt`]) and the file's other blocks stay readable.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use mw_model::TagPath;

use crate::block::{self, BlockStats, Points};
use crate::record::{Reader, RecordError, put_str};
use crate::storage::Storage;
use crate::wal;

const MAGIC: &[u8; 8] = b"MWSEG\x02\0\0";
const MAGIC_V1: &[u8; 8] = b"MWSEG\x01\0\0";
const FOOTER_MAGIC: &[u8; 8] = b"MWSEGEND";
const FOOTER: u64 = 16;
const KIND_BLOCK: u8 = 1;
const KIND_INDEX: u8 = 2;
/// Bytes of one index entry besides its tag.
const ENTRY_FIXED: usize = 2 + 8 + 4 + 4 + 4 + 8 + 8 + 5 * 8;

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("segment {} is incomplete ({why}): a flush cut short", path.display())]
    Incomplete { path: PathBuf, why: String },
    #[error("segment {} is damaged at byte {at}: {why}", path.display())]
    Corrupt { path: PathBuf, at: u64, why: String },
}

/// Where one block is, and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockRef {
    pub offset: u64,
    pub len: u32,
    pub stats: BlockStats,
}

/// An open segment file: its name's numbers and its index (blocks are read on demand).
#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    pub seq: u64,
    pub generation: u32,
    pub bytes: u64,
    pub points: u64,
    /// Time range of every point in the file (ns).
    pub t_min: i64,
    pub t_max: i64,
    /// The time partition (its start, ns) a compacted file holds; `None` for a flush.
    pub partition: Option<i64>,
    /// The index's stats count good points only (version 2); false for version 1 files.
    pub stats_good_only: bool,
    /// Blocks per tag, in time order.
    pub series: BTreeMap<TagPath, Vec<BlockRef>>,
}

/// The file name of segment (`seq`, `generation`), of partition `partition` if any.
pub fn file_name(seq: u64, generation: u32, partition: Option<i64>) -> String {
    match partition {
        None => format!("{seq:020}-{generation:04}.seg"),
        Some(t) => format!("{seq:020}-{generation:04}_p{t}.seg"),
    }
}

/// (`seq`, `generation`, partition) from a segment file name.
pub fn parse_name(path: &Path) -> Option<(u64, u32, Option<i64>)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".seg")?;
    let (name, partition) = match name.split_once("_p") {
        Some((n, t)) => (n, Some(t.parse().ok()?)),
        None => (name, None),
    };
    let (s, g) = name.split_once('-')?;
    Some((s.parse().ok()?, g.parse().ok()?, partition))
}

fn put_stats(out: &mut Vec<u8>, s: &BlockStats) {
    out.extend_from_slice(&s.count.to_le_bytes());
    out.extend_from_slice(&s.good_count.to_le_bytes());
    out.extend_from_slice(&s.t_min.to_le_bytes());
    out.extend_from_slice(&s.t_max.to_le_bytes());
    for f in [s.min, s.max, s.sum, s.first, s.last] {
        out.extend_from_slice(&f.to_bits().to_le_bytes());
    }
}

/// Writes segment (`seq`, `generation`, `partition`) into `dir` from blocks grouped by tag (each
/// tag's blocks in time order) with the value codecs `only` allows, syncs the file and the
/// directory, and returns it open.
pub fn write(
    storage: &dyn Storage,
    dir: &Path,
    id: (u64, u32, Option<i64>),
    series: &[(TagPath, Vec<Points>)],
    only: block::Only,
) -> Result<Segment, SegmentError> {
    let mut w = Writer::create(storage, dir, id)?.codecs(only);
    let path = w.path.clone();
    let done = (|| {
        for (tag, blocks) in series {
            for pts in blocks {
                w.add(tag, pts)?;
            }
        }
        w.finish()
    })();
    if done.is_err() {
        let _ = storage.remove(&path); // best effort: without a footer it is removed at open anyway
    }
    done
}

/// Bytes a [`Writer`] gathers before appending them to the file.
const WRITE_CHUNK: usize = 1 << 20;

/// A segment file written block by block (blocks of one tag in time order, tags in any order),
/// so a compaction holds one tag's points at a time. Nothing depends on the file before
/// [`Writer::finish`] has written its index and footer and synced it: a file cut short has no
/// footer and is removed at open.
pub struct Writer<'a> {
    storage: &'a dyn Storage,
    dir: PathBuf,
    path: PathBuf,
    id: (u64, u32, Option<i64>),
    file: Box<dyn crate::storage::StorageFile>,
    /// Bytes appended to the file so far.
    written: u64,
    buf: Vec<u8>,
    payload: Vec<u8>,
    index: BTreeMap<TagPath, Vec<BlockRef>>,
    t_min: i64,
    t_max: i64,
    points: u64,
    only: block::Only,
}

impl<'a> Writer<'a> {
    /// Encodes with the value codecs `only` allows (default: every candidate).
    pub fn codecs(mut self, only: block::Only) -> Self {
        self.only = only;
        self
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts segment `id` (`seq`, `generation`, partition) in `dir`, replacing a leftover of
    /// the same name (a write a crash cut short).
    pub fn create(
        storage: &'a dyn Storage,
        dir: &Path,
        id: (u64, u32, Option<i64>),
    ) -> Result<Writer<'a>, SegmentError> {
        let path = dir.join(file_name(id.0, id.1, id.2));
        let io = |source| SegmentError::Io {
            path: path.clone(),
            source,
        };
        storage.create_dir_all(dir).map_err(io)?;
        if storage.file_len(&path).is_ok() {
            storage.remove(&path).map_err(io)?;
        }
        let file = storage.open_append(&path).map_err(io)?;
        Ok(Writer {
            storage,
            dir: dir.to_path_buf(),
            path,
            id,
            file,
            written: 0,
            buf: MAGIC.to_vec(),
            payload: Vec::new(),
            index: BTreeMap::new(),
            t_min: i64::MAX,
            t_max: i64::MIN,
            points: 0,
            only: block::Only::Best,
        })
    }

    fn io(&self, source: io::Error) -> SegmentError {
        SegmentError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one block of `tag` (skipped when empty).
    pub fn add(&mut self, tag: &TagPath, pts: &Points) -> Result<(), SegmentError> {
        if pts.ts.is_empty() {
            return Ok(());
        }
        self.payload.clear();
        self.payload.push(KIND_BLOCK);
        put_str(&mut self.payload, tag.as_str());
        let offset = self.written + self.buf.len() as u64;
        let stats = block::encode(pts, &mut self.payload).map_err(|e| SegmentError::Corrupt {
            path: self.path.clone(),
            at: offset,
            why: format!("cannot encode a block of {tag}: {e}"),
        })?;
        wal::encode(&self.payload, &mut self.buf);
        self.t_min = self.t_min.min(stats.t_min);
        self.t_max = self.t_max.max(stats.t_max);
        self.points += u64::from(stats.count);
        let len = (self.written + self.buf.len() as u64 - offset) as u32;
        self.index
            .entry(tag.clone())
            .or_default()
            .push(BlockRef { offset, len, stats });
        if self.buf.len() >= WRITE_CHUNK {
            self.file.append(&self.buf).map_err(|e| self.io(e))?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Points added so far.
    pub fn points(&self) -> u64 {
        self.points
    }

    /// Writes the index and footer, syncs the file and the directory; returns the file open.
    pub fn finish(mut self) -> Result<Segment, SegmentError> {
        let index_at = self.written + self.buf.len() as u64;
        self.payload.clear();
        self.payload.push(KIND_INDEX);
        let n: usize = self.index.values().map(Vec::len).sum();
        self.payload.extend_from_slice(&(n as u32).to_le_bytes());
        for (tag, refs) in &self.index {
            for r in refs {
                put_str(&mut self.payload, tag.as_str());
                self.payload.extend_from_slice(&r.offset.to_le_bytes());
                self.payload.extend_from_slice(&r.len.to_le_bytes());
                put_stats(&mut self.payload, &r.stats);
            }
        }
        wal::encode(&self.payload, &mut self.buf);
        self.buf.extend_from_slice(&index_at.to_le_bytes());
        self.buf.extend_from_slice(FOOTER_MAGIC);
        self.file.append(&self.buf).map_err(|e| self.io(e))?;
        self.written += self.buf.len() as u64;
        self.file.sync().map_err(|e| self.io(e))?;
        self.storage.sync_dir(&self.dir).map_err(|e| self.io(e))?;
        let (seq, generation, partition) = self.id;
        Ok(Segment {
            path: self.path,
            seq,
            generation,
            bytes: self.written,
            points: self.points,
            t_min: self.t_min,
            t_max: self.t_max,
            partition,
            stats_good_only: true,
            series: self.index,
        })
    }
}

/// The one frame's payload in `buf`, checked.
fn frame(buf: &[u8]) -> Result<&[u8], String> {
    match wal::decode(buf) {
        (frames, None) if frames.len() == 1 => Ok(frames[0]),
        (_, Some(d)) => Err(d.reason.to_string()),
        _ => Err("not exactly one frame".into()),
    }
}

impl Segment {
    /// Opens a segment file by its index.
    pub fn open(storage: &dyn Storage, path: &Path) -> Result<Segment, SegmentError> {
        let io = |source| SegmentError::Io {
            path: path.to_path_buf(),
            source,
        };
        let incomplete = |why: &str| SegmentError::Incomplete {
            path: path.to_path_buf(),
            why: why.into(),
        };
        let corrupt = |at: u64, why: String| SegmentError::Corrupt {
            path: path.to_path_buf(),
            at,
            why,
        };
        let (seq, generation, partition) =
            parse_name(path).ok_or_else(|| incomplete("not a segment file name"))?;
        let bytes = storage.file_len(path).map_err(io)?;
        if bytes < MAGIC.len() as u64 + FOOTER {
            return Err(incomplete("shorter than header and footer"));
        }
        let head = storage.read_range(path, 0, MAGIC.len()).map_err(io)?;
        let stats_good_only = if head == MAGIC {
            true
        } else if head == MAGIC_V1 {
            false
        } else {
            return Err(corrupt(0, "not a Millwright segment (bad magic)".into()));
        };
        let foot = storage
            .read_range(path, bytes - FOOTER, FOOTER as usize)
            .map_err(io)?;
        if &foot[8..] != FOOTER_MAGIC {
            return Err(incomplete("no footer"));
        }
        let index_at = u64::from_le_bytes(foot[..8].try_into().unwrap_or_default());
        if index_at < MAGIC.len() as u64 || index_at > bytes - FOOTER {
            return Err(corrupt(
                bytes - FOOTER,
                format!("index offset {index_at} outside the file"),
            ));
        }
        let raw = storage
            .read_range(path, index_at, (bytes - FOOTER - index_at) as usize)
            .map_err(io)?;
        let payload = frame(&raw).map_err(|why| corrupt(index_at, format!("index: {why}")))?;
        // offsets in messages are file offsets (the frame header is 8 bytes)
        let at = |r: &Reader| index_at + 8 + r.at as u64;
        let short =
            |e: RecordError| corrupt(index_at + 8 + e.at as u64, format!("index: {}", e.what));
        let mut r = Reader::new(payload);
        if r.u8("index kind").map_err(short)? != KIND_INDEX {
            return Err(corrupt(at(&r), "index frame has the wrong kind".into()));
        }
        let n = r.u32("index entry count").map_err(short)? as usize;
        if n > payload.len() / ENTRY_FIXED {
            return Err(corrupt(
                at(&r),
                "index entry count beyond its length".into(),
            ));
        }
        let mut series: BTreeMap<TagPath, Vec<BlockRef>> = BTreeMap::new();
        let (mut t_min, mut t_max, mut points) = (i64::MAX, i64::MIN, 0u64);
        for _ in 0..n {
            let tag = r.tag("index entry tag").map_err(short)?;
            let entry = (|| {
                Ok::<_, RecordError>(BlockRef {
                    offset: r.u64("block offset")?,
                    len: r.u32("block length")?,
                    stats: BlockStats {
                        count: r.u32("block count")?,
                        good_count: r.u32("block good count")?,
                        t_min: r.u64("block t_min")? as i64,
                        t_max: r.u64("block t_max")? as i64,
                        min: r.f64("block min")?,
                        max: r.f64("block max")?,
                        sum: r.f64("block sum")?,
                        first: r.f64("block first")?,
                        last: r.f64("block last")?,
                    },
                })
            })()
            .map_err(short)?;
            if entry.offset < MAGIC.len() as u64
                || entry.offset.saturating_add(u64::from(entry.len)) > index_at
            {
                return Err(corrupt(
                    at(&r),
                    "block outside the file's block area".into(),
                ));
            }
            t_min = t_min.min(entry.stats.t_min);
            t_max = t_max.max(entry.stats.t_max);
            points += u64::from(entry.stats.count);
            series.entry(tag).or_default().push(entry);
        }
        Ok(Segment {
            path: path.to_path_buf(),
            seq,
            generation,
            bytes,
            points,
            t_min,
            t_max,
            partition,
            stats_good_only,
            series,
        })
    }

    /// Reads and decodes one block of `tag`.
    pub fn read_block(
        &self,
        storage: &dyn Storage,
        tag: &TagPath,
        r: &BlockRef,
    ) -> Result<Points, SegmentError> {
        let corrupt = |why: String| SegmentError::Corrupt {
            path: self.path.clone(),
            at: r.offset,
            why,
        };
        let raw = storage
            .read_range(&self.path, r.offset, r.len as usize)
            .map_err(|source| SegmentError::Io {
                path: self.path.clone(),
                source,
            })?;
        let payload = frame(&raw).map_err(|why| corrupt(format!("block of {tag}: {why}")))?;
        let mut r = Reader::new(payload);
        let head = r
            .u8("block kind")
            .and_then(|k| Ok((k, r.tag("block tag")?)));
        match head {
            Ok((KIND_BLOCK, t)) if &t == tag => {}
            Ok((KIND_BLOCK, t)) => {
                return Err(corrupt(format!("block holds {t}, the index says {tag}")));
            }
            Ok(_) => return Err(corrupt("block frame has the wrong kind".into())),
            Err(e) => return Err(corrupt(format!("block frame: {}", e.what))),
        }
        block::decode(&payload[r.at..]).map_err(|e| corrupt(format!("block of {tag}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Column;
    use crate::storage::MemStorage;
    use mw_model::Quality;

    fn pts(ts: &[i64], v: &[f64]) -> Points {
        Points {
            ts: ts.to_vec(),
            values: Column::F64(v.to_vec()),
            quality: vec![Quality::Good; ts.len()],
        }
    }

    fn tag(s: &str) -> TagPath {
        TagPath::new(s).unwrap()
    }

    fn sample_segment(disk: &MemStorage) -> Segment {
        let series = vec![
            (
                tag("a/x"),
                vec![
                    pts(&[1, 2, 3], &[1.0, 2.0, 3.0]),
                    pts(&[10, 11], &[5.0, 6.0]),
                ],
            ),
            (tag("a/y"), vec![pts(&[4], &[-1.5])]),
        ];
        write(
            disk,
            Path::new("/h/seg"),
            (7, 0, None),
            &series,
            block::Only::Best,
        )
        .unwrap()
    }

    #[test]
    fn writes_opens_and_reads_back() {
        let disk = MemStorage::new();
        let w = sample_segment(&disk);
        assert_eq!((w.points, w.t_min, w.t_max), (6, 1, 11));
        let s = Segment::open(&disk, &w.path).unwrap();
        assert_eq!(s.series, w.series);
        assert_eq!((s.seq, s.generation, s.points), (7, 0, 6));
        let x = &s.series[&tag("a/x")];
        assert_eq!(x[1].stats.sum, 11.0);
        let back = s.read_block(&disk, &tag("a/x"), &x[1]).unwrap();
        assert_eq!(back.ts, vec![10, 11]);
        assert!(matches!(back.values, Column::F64(ref v) if v == &[5.0, 6.0]));
        assert_eq!(
            parse_name(&w.path),
            Some((7, 0, None)),
            "{}",
            w.path.display()
        );
        let p = Path::new(&file_name(3, 2, Some(-86_400))).to_path_buf();
        assert_eq!(p.to_str(), Some("00000000000000000003-0002_p-86400.seg"));
        assert_eq!(parse_name(&p), Some((3, 2, Some(-86_400))));
        assert_eq!(
            parse_name(Path::new("00000000000000000003-0002_px.seg")),
            None
        );
    }

    #[test]
    fn a_cut_file_is_incomplete_and_a_flipped_byte_spoils_only_its_block() {
        let disk = MemStorage::new();
        let w = sample_segment(&disk);
        let x = w.series[&tag("a/x")].clone();
        // a flipped byte inside the first block of a/x
        disk.corrupt(&w.path, (x[0].offset + 12) as usize);
        let s = Segment::open(&disk, &w.path).unwrap();
        let e = s.read_block(&disk, &tag("a/x"), &x[0]).unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        assert!(s.read_block(&disk, &tag("a/x"), &x[1]).is_ok());
        let y = &s.series[&tag("a/y")][0];
        assert!(s.read_block(&disk, &tag("a/y"), y).is_ok());
        // cut anywhere before the footer's end: incomplete, never a panic
        let full = disk.content(&w.path).unwrap();
        for cut in [0, 5, 30, full.len() - 1] {
            let p = Path::new("/h/cut").join(file_name(1, cut as u32, None));
            disk.create_dir_all(Path::new("/h/cut")).unwrap();
            let mut f = disk.open_append(&p).unwrap();
            f.append(&full[..cut]).unwrap();
            assert!(
                matches!(
                    Segment::open(&disk, &p),
                    Err(SegmentError::Incomplete { .. }) | Err(SegmentError::Corrupt { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn open_never_panics_on_damaged_indexes() {
        let disk = MemStorage::new();
        let w = sample_segment(&disk);
        let full = disk.content(&w.path).unwrap();
        for i in 0..full.len() {
            let p = Path::new("/h/flip").join(file_name(i as u64, 0, Some(5)));
            disk.create_dir_all(Path::new("/h/flip")).unwrap();
            let mut bytes = full.clone();
            bytes[i] ^= 0x5a;
            disk.open_append(&p).unwrap().append(&bytes).unwrap();
            if let Ok(s) = Segment::open(&disk, &p) {
                for (t, refs) in &s.series {
                    for r in refs {
                        let _ = s.read_block(&disk, t, r);
                    }
                }
            }
        }
    }
}
