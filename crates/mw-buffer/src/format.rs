//! The bytes on disk, as pure functions (no I/O): the record inside a frame, the ack ledger, and
//! the scan that splits a segment file into runs of valid records and damaged spans.
//!
//! A segment file is a run of frames in mw-storage's WAL framing ([`wal::encode`]: `len: u32
//! LE`, `crc: u32 LE` = CRC32C of the payload, payload). The payload of a buffer record is
//! `seq: u64 LE`, `ts: i64 LE`, then the caller's bytes. Within one segment the sequence numbers
//! are consecutive, starting at the number in the file name.

use mw_storage::wal;

/// A record's sequence number: monotonic, never reused, possibly with gaps (after a restart,
/// after dropped or quarantined records).
pub type Seq = u64;

/// Bytes of the frame header (length and CRC).
pub const FRAME_HEADER: usize = 8;
/// Bytes of the record header inside the frame (sequence number, timestamp).
pub const RECORD_HEADER: usize = 16;
/// Bytes on disk besides the payload, per record.
pub const OVERHEAD: usize = FRAME_HEADER + RECORD_HEADER;
/// Largest payload of one record (the WAL framing's limit less the record header).
pub const MAX_PAYLOAD: usize = wal::MAX_RECORD - RECORD_HEADER;

/// One buffered record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: Seq,
    /// Caller-defined; Millwright uses nanoseconds since the Unix epoch.
    pub ts: i64,
    pub payload: Vec<u8>,
}

/// Bytes one record with a payload of `len` bytes takes on disk.
pub fn framed_len(len: usize) -> u64 {
    (OVERHEAD + len) as u64
}

/// Appends one framed record to `out`.
pub fn encode_record(seq: Seq, ts: i64, payload: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(RECORD_HEADER + payload.len());
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&ts.to_le_bytes());
    body.extend_from_slice(payload);
    wal::encode(&body, out);
}

/// The record inside a frame's payload, if it is long enough to hold one.
pub fn decode_record(body: &[u8]) -> Option<(Seq, i64, &[u8])> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let ts = i64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
    Some((seq, ts, &body[16..]))
}

/// Decodes one frame at the start of `buf`: `(seq, ts, payload, frame length)`, or `None` if
/// it is short, too long, fails its CRC or holds no record.
pub fn frame_at(buf: &[u8]) -> Option<(Seq, i64, &[u8], usize)> {
    let head = buf.get(..FRAME_HEADER)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(RECORD_HEADER..=wal::MAX_RECORD).contains(&len) {
        return None;
    }
    let frame = buf.get(..FRAME_HEADER + len)?;
    // one frame through the shared decoder, so the CRC rule lives in one place
    let (records, damage) = wal::decode(frame);
    if damage.is_some() || records.len() != 1 {
        return None;
    }
    let (seq, ts, payload) = decode_record(records[0])?;
    Some((seq, ts, payload, FRAME_HEADER + len))
}

/// A run of valid records with consecutive sequence numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Byte offset of the run's first frame.
    pub start: u64,
    /// Byte offset just after its last frame.
    pub end: u64,
    pub first: Seq,
    pub count: u64,
}

impl Run {
    pub fn last(&self) -> Seq {
        self.first + self.count - 1
    }
}

/// Bytes between two runs (or after the last one) that are not valid records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    pub at: u64,
    pub len: u64,
    pub reason: &'static str,
}

/// What [`scan`] found in a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub runs: Vec<Run>,
    /// Damaged spans followed by a later run (resynchronised past them).
    pub holes: Vec<Damaged>,
    /// Damage at the end with no valid record after it.
    pub tail: Option<Damaged>,
}

/// Splits a segment named `first` into runs of valid records. A record is valid when its frame
/// passes the CRC and its sequence number continues the run (`first` for the first record).
/// Past damage the scan looks, byte by byte, for the next valid frame whose sequence number is
/// above every one seen and below `below` (the next segment's first); what it skipped is a hole.
/// Never panics; allocates nothing from a length field.
pub fn scan(buf: &[u8], first: Seq, below: Seq) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0usize;
    let mut next_expected = first;
    // the first run must start at the segment's own number
    let mut resynced = false;
    while pos < buf.len() {
        let mut run: Option<Run> = None;
        let mut reason = "";
        while pos < buf.len() {
            match frame_at(&buf[pos..]) {
                Some((seq, _, _, n))
                    if (seq == next_expected || (resynced && run.is_none()))
                        && seq < below
                        && seq >= next_expected =>
                {
                    let r = run.get_or_insert(Run {
                        start: pos as u64,
                        end: pos as u64,
                        first: seq,
                        count: 0,
                    });
                    r.count += 1;
                    r.end = (pos + n) as u64;
                    next_expected = seq + 1;
                    pos += n;
                }
                Some(_) => {
                    reason = "sequence number out of order";
                    break;
                }
                None => {
                    reason = damage_reason(&buf[pos..]);
                    break;
                }
            }
        }
        if let Some(r) = run {
            out.runs.push(r);
        }
        if pos >= buf.len() {
            break;
        }
        // damage at `pos`: look for the next valid frame after it
        let at = pos;
        let resync = (at + 1..buf.len()).find(|&p| {
            frame_at(&buf[p..]).is_some_and(|(seq, ..)| seq >= next_expected && seq < below)
        });
        match resync {
            Some(p) => {
                out.holes.push(Damaged {
                    at: at as u64,
                    len: (p - at) as u64,
                    reason,
                });
                pos = p;
                resynced = true;
            }
            None => {
                out.tail = Some(Damaged {
                    at: at as u64,
                    len: (buf.len() - at) as u64,
                    reason,
                });
                break;
            }
        }
    }
    out
}

fn damage_reason(buf: &[u8]) -> &'static str {
    match wal::decode(buf).1 {
        Some(d) if d.at == 0 => d.reason,
        // the frame itself is fine but holds no record
        _ => "frame too short for a record",
    }
}

/// How many frames appear to start in a torn tail (at least one if it has any byte).
pub fn frames_started(buf: &[u8]) -> u64 {
    let mut n = 0;
    let mut pos = 0usize;
    while pos < buf.len() {
        n += 1;
        let Some(head) = buf.get(pos..pos + FRAME_HEADER) else {
            break;
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > wal::MAX_RECORD {
            break;
        }
        pos += FRAME_HEADER + len;
    }
    n
}

const LEDGER_MAGIC: &[u8; 4] = b"MWBL";
const LEDGER_VERSION: u8 = 1;

/// The persisted ack ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Every record with a sequence number up to this one is acknowledged (or dropped).
    pub acked: Seq,
    /// No sequence number at or above this one was ever handed out.
    pub reserved: Seq,
}

impl Ledger {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(21);
        body.extend_from_slice(LEDGER_MAGIC);
        body.push(LEDGER_VERSION);
        body.extend_from_slice(&self.acked.to_le_bytes());
        body.extend_from_slice(&self.reserved.to_le_bytes());
        let mut out = Vec::new();
        wal::encode(&body, &mut out);
        out
    }

    /// `None` unless `buf` is exactly one valid ledger frame.
    pub fn decode(buf: &[u8]) -> Option<Ledger> {
        let (frames, damage) = wal::decode(buf);
        if damage.is_some() || frames.len() != 1 {
            return None;
        }
        let b = frames[0];
        if b.len() != 21 || &b[0..4] != LEDGER_MAGIC || b[4] != LEDGER_VERSION {
            return None;
        }
        Some(Ledger {
            acked: u64::from_le_bytes(b[5..13].try_into().ok()?),
            reserved: u64::from_le_bytes(b[13..21].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment(first: Seq, n: u64) -> (Vec<u8>, Vec<u64>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(buf.len() as u64);
            encode_record(
                first + i,
                i as i64 * 10,
                format!("payload {i}").as_bytes(),
                &mut buf,
            );
        }
        (buf, offsets)
    }

    #[test]
    fn record_round_trip() {
        let mut buf = Vec::new();
        encode_record(42, -7, b"hello", &mut buf);
        assert_eq!(buf.len() as u64, framed_len(5));
        assert_eq!(frame_at(&buf), Some((42, -7, &b"hello"[..], buf.len())));
    }

    #[test]
    fn clean_segment_is_one_run() {
        let (buf, _) = segment(100, 5);
        let s = scan(&buf, 100, u64::MAX);
        assert_eq!(s.runs.len(), 1);
        assert_eq!(
            (s.runs[0].first, s.runs[0].count, s.runs[0].end),
            (100, 5, buf.len() as u64)
        );
        assert!(s.holes.is_empty() && s.tail.is_none());
    }

    #[test]
    fn torn_tail_is_a_tail_not_a_hole() {
        let (buf, offsets) = segment(1, 4);
        let cut = &buf[..buf.len() - 3];
        let s = scan(cut, 1, u64::MAX);
        assert_eq!(s.runs[0].count, 3);
        let tail = s.tail.expect("tail");
        assert_eq!(tail.at, offsets[3]);
        assert_eq!(tail.len, cut.len() as u64 - offsets[3]);
        assert_eq!(frames_started(&cut[offsets[3] as usize..]), 1);
    }

    #[test]
    fn damage_in_the_middle_resyncs_to_the_next_record() {
        let (mut buf, offsets) = segment(10, 6);
        buf[offsets[2] as usize + 12] ^= 0xff; // payload byte of record 12
        let s = scan(&buf, 10, u64::MAX);
        assert_eq!(s.runs.len(), 2);
        assert_eq!((s.runs[0].first, s.runs[0].count), (10, 2));
        assert_eq!((s.runs[1].first, s.runs[1].count), (13, 3));
        assert_eq!(
            s.holes,
            vec![Damaged {
                at: offsets[2],
                len: offsets[3] - offsets[2],
                reason: "checksum mismatch"
            }]
        );
        assert!(s.tail.is_none());
    }

    #[test]
    fn a_first_record_with_the_wrong_number_is_damage() {
        let (buf, _) = segment(5, 2);
        let s = scan(&buf, 4, u64::MAX);
        assert!(s.runs.iter().all(|r| r.first >= 5));
        assert_eq!(s.holes.len() + usize::from(s.tail.is_some()), 1);
    }

    #[test]
    fn resync_stops_below_the_next_segment() {
        let (mut buf, offsets) = segment(1, 4);
        buf[offsets[1] as usize + 9] ^= 1;
        let s = scan(&buf, 1, 3);
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.tail.map(|t| t.at), Some(offsets[1]));
    }

    #[test]
    fn ledger_round_trip_and_rejects_damage() {
        let l = Ledger {
            acked: 17,
            reserved: 99,
        };
        let mut b = l.encode();
        assert_eq!(Ledger::decode(&b), Some(l));
        b[10] ^= 4;
        assert_eq!(Ledger::decode(&b), None);
        assert_eq!(Ledger::decode(&[]), None);
    }

    proptest! {
        #[test]
        fn scan_never_panics_and_runs_are_valid(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                                 edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
            let (mut buf, _) = segment(7, 8);
            buf.extend_from_slice(&bytes);
            for (at, b) in edits {
                let n = buf.len();
                buf[at % n] = b;
            }
            let s = scan(&buf, 7, u64::MAX);
            let mut covered = 0u64;
            let mut last = None;
            for r in &s.runs {
                prop_assert!(r.count > 0);
                prop_assert!(last.is_none_or(|l| r.first > l));
                last = Some(r.last());
                covered += r.end - r.start;
            }
            covered += s.holes.iter().map(|h| h.len).sum::<u64>();
            covered += s.tail.as_ref().map_or(0, |t| t.len);
            prop_assert_eq!(covered, buf.len() as u64);
            let _ = frames_started(&buf);
            let _ = Ledger::decode(&buf);
        }
    }
}
