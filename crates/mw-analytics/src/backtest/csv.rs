//! A small streaming CSV reader and writer (RFC 4180 quoting, `,` or `;`).

use std::io::{self, BufRead, Write};

/// Why a record could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The record starting on this line is not valid UTF-8.
    Encoding {
        line: u64,
    },
    /// A quoted field starting on this line is still open at the end of the input.
    UnterminatedQuote {
        line: u64,
    },
}

/// Reads one record at a time; only the current record is held in memory.
pub(crate) struct CsvReader<R> {
    inner: R,
    delim: u8,
    /// Physical lines consumed so far.
    line: u64,
    bytes: Vec<u8>,
    at_start: bool,
}

impl<R: BufRead> CsvReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            delim: b',',
            line: 0,
            bytes: Vec::new(),
            at_start: true,
        }
    }

    pub(crate) fn set_delimiter(&mut self, delim: u8) {
        self.delim = delim;
    }

    /// Reads one physical line (without the line ending) into `self.bytes`, appending.
    /// Returns `false` at end of input.
    fn read_line(&mut self) -> Result<bool, ReadError> {
        let start = self.bytes.len();
        let n = self
            .inner
            .read_until(b'\n', &mut self.bytes)
            .map_err(ReadError::Io)?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.bytes.last() == Some(&b'\n') {
            self.bytes.pop();
            if self.bytes.last() == Some(&b'\r') {
                self.bytes.pop();
            }
        }
        if self.at_start {
            self.at_start = false;
            if self.bytes[start..].starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.bytes.drain(start..start + 3);
            }
        }
        Ok(true)
    }

    /// Reads the next non-blank record as raw text (quotes kept, line breaks inside
    /// quotes kept as `\n`). Returns its first line number (1-based); `None` at the end.
    pub(crate) fn next_raw(&mut self) -> Result<Option<(u64, &str)>, ReadError> {
        loop {
            self.bytes.clear();
            if !self.read_line()? {
                return Ok(None);
            }
            let first_line = self.line;
            // Continue reading lines while a quote is open.
            while quote_open(&self.bytes) {
                self.bytes.push(b'\n');
                if !self.read_line()? {
                    return Err(ReadError::UnterminatedQuote { line: first_line });
                }
            }
            if self.bytes.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let text = std::str::from_utf8(&self.bytes)
                .map_err(|_| ReadError::Encoding { line: first_line })?;
            return Ok(Some((first_line, text)));
        }
    }

    /// Reads the next non-blank record into `fields`. Returns its first line number.
    pub(crate) fn next_record(
        &mut self,
        fields: &mut Vec<String>,
    ) -> Result<Option<u64>, ReadError> {
        let delim = self.delim;
        match self.next_raw()? {
            Some((line, text)) => {
                split_record(text, delim, fields);
                Ok(Some(line))
            }
            None => Ok(None),
        }
    }
}

/// Whether a quote is still open at the end of `bytes` (quotes toggle; `""` toggles twice).
fn quote_open(bytes: &[u8]) -> bool {
    bytes.iter().filter(|&&b| b == b'"').count() % 2 == 1
}

/// Splits one record into unquoted fields.
pub(crate) fn split_record(text: &str, delim: u8, fields: &mut Vec<String>) {
    fields.clear();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let delim = char::from(delim);
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == delim {
            fields.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    fields.push(cur);
}

/// Counts `,` and `;` outside quotes in a header line; picks the more frequent.
pub(crate) fn detect_delimiter(header: &str) -> Option<u8> {
    let (mut commas, mut semis, mut in_quotes) = (0usize, 0usize, false);
    for c in header.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => commas += 1,
            ';' if !in_quotes => semis += 1,
            _ => {}
        }
    }
    match (commas, semis) {
        (0, 0) => None,
        (c, s) if s > c => Some(b';'),
        _ => Some(b','),
    }
}

/// Writes one field, quoting it when it contains the delimiter, a quote or a line break.
pub(crate) fn write_field(out: &mut impl Write, field: &str) -> io::Result<()> {
    if field.contains([',', '"', '\n', '\r']) {
        out.write_all(b"\"")?;
        out.write_all(field.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(field.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &str, delim: u8) -> Vec<(u64, Vec<String>)> {
        let mut r = CsvReader::new(input.as_bytes());
        r.set_delimiter(delim);
        let mut out = Vec::new();
        let mut f = Vec::new();
        while let Some(line) = r.next_record(&mut f).unwrap() {
            out.push((line, f.clone()));
        }
        out
    }

    #[test]
    fn quoted_fields_blank_lines_and_crlf() {
        let got = records(
            "\u{feff}a;b\r\n\r\n1;\"x;\"\"y\"\"\"\n\"multi\nline\";2\n",
            b';',
        );
        assert_eq!(got[0], (1, vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(got[1], (3, vec!["1".to_owned(), "x;\"y\"".to_owned()]));
        assert_eq!(got[2], (4, vec!["multi\nline".to_owned(), "2".to_owned()]));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let mut r = CsvReader::new("a,b\n\"oops,1\n".as_bytes());
        let mut f = Vec::new();
        assert!(r.next_record(&mut f).unwrap().is_some());
        assert!(matches!(
            r.next_record(&mut f),
            Err(ReadError::UnterminatedQuote { line: 2 })
        ));
    }

    #[test]
    fn delimiter_detection() {
        assert_eq!(detect_delimiter("datetime;a;b"), Some(b';'));
        assert_eq!(detect_delimiter("t,a,\"b;c\""), Some(b','));
        assert_eq!(detect_delimiter("single"), None);
    }
}
