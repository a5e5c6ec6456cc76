//! What the backtest adds to the `csv` crate: delimiter detection from the header line and
//! the one check `csv` does not make (a quoted field still open at the end of the input).

use std::collections::VecDeque;
use std::io::{self, Read};

/// Counts `,`, `;` and tabs outside quotes in a header line and picks the most frequent
/// (ties: `,` before `;` before tab). `None` when there is none.
pub(crate) fn detect_delimiter(header: &str) -> Option<u8> {
    let (mut commas, mut semis, mut tabs, mut in_quotes) = (0usize, 0usize, 0usize, false);
    for c in header.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => commas += 1,
            ';' if !in_quotes => semis += 1,
            '\t' if !in_quotes => tabs += 1,
            _ => {}
        }
    }
    let best = commas.max(semis).max(tabs);
    if best == 0 {
        None
    } else if commas == best {
        Some(b',')
    } else if semis == best {
        Some(b';')
    } else {
        Some(b'\t')
    }
}

/// Passes bytes through to the `csv` reader and keeps what it does not tell:
///
/// * the number of `"` seen. In RFC 4180 every quoted field has an even number of quotes, so
///   an odd count at the end means a quoted field was never closed (`csv` then silently ends
///   the field at the end of the input);
/// * the line of a record. `csv`'s own record position is where it started looking, before
///   the blank lines it skips, so the tracker keeps the offsets of the line breaks not yet
///   passed (at most a read buffer's worth) and counts them.
pub(crate) struct Tracker<R> {
    inner: R,
    offset: u64,
    quotes: u64,
    /// Offsets of `\n` (true) and `\r` (false) bytes at or after the last record's start.
    breaks: VecDeque<(u64, bool)>,
    /// `\n` bytes before the last record's start.
    lines_before: u64,
}

impl<R> Tracker<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            quotes: 0,
            breaks: VecDeque::new(),
            lines_before: 0,
        }
    }

    /// Whether the bytes read so far leave a quote open.
    pub(crate) fn quote_open(&self) -> bool {
        self.quotes % 2 == 1
    }

    /// The 1-based line of the record `csv` reports at byte `start` (its `position().byte()`):
    /// the line of its first byte after any blank lines. Records must be asked in order.
    pub(crate) fn line_at(&mut self, start: u64) -> u64 {
        while let Some(&(o, lf)) = self.breaks.front() {
            if o >= start {
                break;
            }
            self.breaks.pop_front();
            self.lines_before += u64::from(lf);
        }
        let mut cursor = start;
        while let Some(&(o, lf)) = self.breaks.front() {
            if o != cursor {
                break;
            }
            self.breaks.pop_front();
            self.lines_before += u64::from(lf);
            cursor += 1;
        }
        self.lines_before + 1
    }
}

impl<R: Read> Read for Tracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            match b {
                b'"' => self.quotes += 1,
                b'\n' => self.breaks.push_back((self.offset + i as u64, true)),
                b'\r' => self.breaks.push_back((self.offset + i as u64, false)),
                _ => {}
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_detection() {
        assert_eq!(detect_delimiter("datetime;a;b"), Some(b';'));
        assert_eq!(detect_delimiter("t,a,\"b;c\""), Some(b','));
        assert_eq!(detect_delimiter("t\ta\tb,c"), Some(b'\t'));
        assert_eq!(detect_delimiter("t,a;b"), Some(b','));
        assert_eq!(detect_delimiter("single"), None);
    }

    #[test]
    fn tracker_sees_an_open_quote() {
        let mut r = Tracker::new(&b"a,\"b\"\"c\"\n1,\"x"[..]);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        assert!(r.quote_open());
        let mut r = Tracker::new(&b"a,\"b\"\n"[..]);
        r.read_to_end(&mut sink).unwrap();
        assert!(!r.quote_open());
    }

    #[test]
    fn record_lines_count_the_blank_lines_csv_skips() {
        for (input, want) in [
            ("a,b\n\n\n1,2\n\"x\ny\",3\n  \n4,5", vec![1, 4, 5, 7, 8]),
            ("a,b\r\n\r\n1,2\r\n\r\n\r\n3,4\r\n", vec![1, 3, 6]),
            ("\n\na,b\n1,2\n", vec![3, 4]),
        ] {
            let mut r = ::csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .buffer_capacity(3)
                .from_reader(Tracker::new(input.as_bytes()));
            let mut rec = ::csv::ByteRecord::new();
            let mut got = Vec::new();
            while r.read_byte_record(&mut rec).unwrap() {
                let start = rec.position().map_or(0, |p| p.byte());
                got.push(r.get_mut().line_at(start));
            }
            assert_eq!(got, want, "{input:?}");
        }
    }
}
