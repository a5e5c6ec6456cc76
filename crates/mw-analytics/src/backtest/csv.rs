//! What the backtest adds to the `csv` crate: delimiter detection from the header line and
//! the one check `csv` does not make (a quoted field still open at the end of the input).

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

/// Passes bytes through and counts the `"` among them. In RFC 4180 every quoted field has an
/// even number of quotes, so an odd count at the end means a quoted field was never closed
/// (the `csv` crate then silently ends the field at the end of the input).
pub(crate) struct QuoteCounter<R> {
    inner: R,
    quotes: u64,
}

impl<R> QuoteCounter<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, quotes: 0 }
    }

    /// Whether the bytes read so far leave a quote open.
    pub(crate) fn quote_open(&self) -> bool {
        self.quotes % 2 == 1
    }
}

impl<R: Read> Read for QuoteCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.quotes += buf[..n].iter().filter(|&&b| b == b'"').count() as u64;
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
    fn quote_counter_sees_an_open_quote() {
        let mut r = QuoteCounter::new(&b"a,\"b\"\"c\"\n1,\"x"[..]);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        assert!(r.quote_open());
        let mut r = QuoteCounter::new(&b"a,\"b\"\n"[..]);
        r.read_to_end(&mut sink).unwrap();
        assert!(!r.quote_open());
    }
}
