use std::borrow::Cow;
use std::io::BufRead;

use crate::error::{LineError, PrecisionError, ReadError};

/// Unit of the timestamps in a batch (`precision` of `/write` and `/api/v2/write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// The `precision` query parameter: `ns`, `us`, `ms`, `s` (InfluxDB 2.x) or `n`, `u`, `ms`,
    /// `s`, `m`, `h` (InfluxDB 1.x).
    pub fn from_query(s: &str) -> Result<Precision, PrecisionError> {
        Ok(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µ" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return Err(PrecisionError(s.to_owned())),
        })
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Precision::Nanoseconds => "ns",
            Precision::Microseconds => "us",
            Precision::Milliseconds => "ms",
            Precision::Seconds => "s",
            Precision::Minutes => "m",
            Precision::Hours => "h",
        }
    }
}

/// One tag of a point; `value_column` is where its value starts (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Tag<'a> {
    pub key: Cow<'a, str>,
    pub value: Cow<'a, str>,
    pub value_column: usize,
}

/// A field value, typed as line protocol types it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Integer(i64),
    Unsigned(u64),
    String(Cow<'a, str>),
    Boolean(bool),
}

/// One field of a point; `column` is where its key starts (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'a> {
    pub key: Cow<'a, str>,
    pub value: FieldValue<'a>,
    pub column: usize,
}

/// One parsed line. Names borrow from the input unless they contained an escape.
/// Tags are sorted by key; fields keep their order (a repeated field key is kept twice, so the
/// later one wins downstream).
#[derive(Debug, Clone, PartialEq)]
pub struct Point<'a> {
    /// 1-based line number in the batch or stream.
    pub line: usize,
    pub measurement: Cow<'a, str>,
    /// Column (1-based) where the measurement starts.
    pub column: usize,
    pub tags: Vec<Tag<'a>>,
    pub fields: Vec<Field<'a>>,
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
}

/// Parses a whole batch. Blank lines, lines of only whitespace and comment lines (`#` as the
/// first non-blank character) are skipped; `\n` and `\r\n` line ends are accepted. Lines without
/// a timestamp get `default_ts_ns`. The first malformed line rejects the batch.
pub fn parse(
    body: &str,
    precision: Precision,
    default_ts_ns: i64,
) -> Result<Vec<Point<'_>>, LineError> {
    let mut points = Vec::new();
    for (i, line) in body.split('\n').enumerate() {
        if let Some(p) = parse_line(line, i + 1, precision, default_ts_ns)? {
            points.push(p);
        }
    }
    Ok(points)
}

/// Streams points from a reader, line by line, with a bounded buffer per line.
/// Each item owns its data (`Point<'static>`).
pub struct Reader<R> {
    inner: R,
    buf: String,
    line: usize,
    precision: Precision,
    default_ts_ns: i64,
    max_line: usize,
}

impl<R: BufRead> Reader<R> {
    /// Lines longer than `max_line` bytes are an error (memory stays bounded).
    pub fn new(inner: R, precision: Precision, default_ts_ns: i64, max_line: usize) -> Self {
        Reader {
            inner,
            buf: String::new(),
            line: 0,
            precision,
            default_ts_ns,
            max_line,
        }
    }

    /// Lines read so far.
    pub fn line(&self) -> usize {
        self.line
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Point<'static>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            let limit = (self.max_line as u64).saturating_add(2);
            let n = match std::io::Read::take(&mut self.inner, limit).read_line(&mut self.buf) {
                Ok(n) => n,
                Err(source) => {
                    return Some(Err(ReadError::Io {
                        line: self.line,
                        source,
                    }));
                }
            };
            if n == 0 {
                return None;
            }
            let text = self.buf.strip_suffix('\n').unwrap_or(&self.buf);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.len() > self.max_line {
                return Some(Err(ReadError::Line(LineError {
                    line: self.line,
                    column: 1,
                    message: format!("line is longer than {} bytes", self.max_line),
                })));
            }
            match parse_line(text, self.line, self.precision, self.default_ts_ns) {
                Ok(None) => continue,
                Ok(Some(p)) => return Some(Ok(p.into_owned())),
                Err(e) => return Some(Err(ReadError::Line(e))),
            }
        }
    }
}

impl Point<'_> {
    /// A copy that owns all its strings.
    pub fn into_owned(self) -> Point<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Point {
            line: self.line,
            measurement: own(self.measurement),
            column: self.column,
            tags: self
                .tags
                .into_iter()
                .map(|t| Tag {
                    key: own(t.key),
                    value: own(t.value),
                    value_column: t.value_column,
                })
                .collect(),
            fields: self
                .fields
                .into_iter()
                .map(|f| Field {
                    key: own(f.key),
                    value: match f.value {
                        FieldValue::String(s) => FieldValue::String(own(s)),
                        FieldValue::Float(v) => FieldValue::Float(v),
                        FieldValue::Integer(v) => FieldValue::Integer(v),
                        FieldValue::Unsigned(v) => FieldValue::Unsigned(v),
                        FieldValue::Boolean(v) => FieldValue::Boolean(v),
                    },
                    column: f.column,
                })
                .collect(),
            timestamp_ns: self.timestamp_ns,
        }
    }
}

/// Which element a name is: decides its delimiters and escapable characters.
#[derive(Clone, Copy, PartialEq)]
enum Elem {
    /// Ends at `,` or space; `\,` `\ ` `\\` are escapes.
    Measurement,
    /// Ends at `,` `=` or space; `\,` `\=` `\ ` `\\` are escapes.
    Key,
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn err_at(&self, pos: usize, message: String) -> LineError {
        let pos = pos.min(self.s.len());
        // every position we report is at an ASCII delimiter or a char start
        let column = self.s.get(..pos).map_or(pos, |p| p.chars().count()) + 1;
        LineError {
            line: self.line,
            column,
            message,
        }
    }

    fn column(&self, pos: usize) -> usize {
        self.s.get(..pos).map_or(pos, |p| p.chars().count()) + 1
    }

    /// Scans a name (measurement, tag key/value, field key) up to its first unescaped delimiter.
    fn name(&mut self, elem: Elem) -> Cow<'a, str> {
        let start = self.pos;
        let mut escaped = false;
        while let Some(c) = self.peek() {
            match c {
                b',' | b' ' => break,
                b'=' if elem == Elem::Key => break,
                b'\\' => {
                    if let Some(&n) = self.b.get(self.pos + 1)
                        && is_escapable(elem, n)
                    {
                        escaped = true;
                        self.pos += 2;
                        continue;
                    }
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        let raw = &self.s[start..self.pos];
        if escaped {
            Cow::Owned(unescape(raw, |n| is_escapable(elem, n)))
        } else {
            Cow::Borrowed(raw)
        }
    }
}

fn is_escapable(elem: Elem, n: u8) -> bool {
    match elem {
        Elem::Measurement => matches!(n, b',' | b' ' | b'\\'),
        Elem::Key => matches!(n, b',' | b' ' | b'=' | b'\\'),
    }
}

fn unescape(raw: &str, escapable: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && n.is_ascii()
            && escapable(n as u8)
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Parses one line (without its `\n`; a trailing `\r` is dropped). `Ok(None)` for a blank or
/// comment line.
pub fn parse_line(
    line: &str,
    line_no: usize,
    precision: Precision,
    default_ts_ns: i64,
) -> Result<Option<Point<'_>>, LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut c = Cursor {
        s: line,
        b: line.as_bytes(),
        pos: 0,
        line: line_no,
    };
    while matches!(c.peek(), Some(b' ' | b'\t')) {
        c.pos += 1;
    }
    match c.peek() {
        None => return Ok(None),
        Some(b'#') => return Ok(None),
        _ => {}
    }

    // measurement
    let m_start = c.pos;
    let measurement = c.name(Elem::Measurement);
    if measurement.is_empty() {
        return Err(c.err_at(m_start, "expected measurement name".into()));
    }

    // tag set
    let mut tags: Vec<Tag<'_>> = Vec::new();
    while c.peek() == Some(b',') {
        c.pos += 1;
        let k_start = c.pos;
        let key = c.name(Elem::Key);
        if key.is_empty() {
            return Err(c.err_at(k_start, "expected tag key after ','".into()));
        }
        if c.peek() != Some(b'=') {
            return Err(c.err_at(c.pos, format!("expected '=' after tag key {}", quote(&key))));
        }
        c.pos += 1;
        let v_start = c.pos;
        let value = c.name(Elem::Key);
        if value.is_empty() {
            return Err(c.err_at(
                v_start,
                format!(
                    "expected a value for tag {} (tag values cannot be empty)",
                    quote(&key)
                ),
            ));
        }
        if c.peek() == Some(b'=') {
            return Err(c.err_at(
                c.pos,
                format!(
                    "unescaped '=' in value of tag {}: expected ',' or ' ' (escape it as \\=)",
                    quote(&key)
                ),
            ));
        }
        tags.push(Tag {
            key,
            value,
            value_column: c.column(v_start),
        });
    }
    if c.peek() != Some(b' ') {
        return Err(c.err_at(
            c.pos,
            "expected ' ' and a field set after the measurement and tags".into(),
        ));
    }
    while c.peek() == Some(b' ') {
        c.pos += 1;
    }

    // field set
    let mut fields = Vec::new();
    loop {
        let k_start = c.pos;
        let key = c.name(Elem::Key);
        if key.is_empty() {
            return Err(c.err_at(k_start, "expected field key".into()));
        }
        if c.peek() != Some(b'=') {
            return Err(c.err_at(
                c.pos,
                format!("expected '=' after field key {}", quote(&key)),
            ));
        }
        c.pos += 1;
        let value = field_value(&mut c, &key)?;
        fields.push(Field {
            key,
            value,
            column: c.column(k_start),
        });
        match c.peek() {
            Some(b',') => c.pos += 1,
            Some(b' ') | None => break,
            Some(_) => {
                return Err(c.err_at(
                    c.pos,
                    "expected ',', ' ' or end of line after field value".into(),
                ));
            }
        }
    }

    // timestamp
    while matches!(c.peek(), Some(b' ' | b'\t')) {
        c.pos += 1;
    }
    let timestamp_ns = if c.peek().is_none() {
        default_ts_ns
    } else {
        let t_start = c.pos;
        while matches!(c.peek(), Some(ch) if ch != b' ' && ch != b'\t') {
            c.pos += 1;
        }
        let tok = &line[t_start..c.pos];
        let digits = tok.strip_prefix('-').unwrap_or(tok);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(c.err_at(
                t_start,
                format!("expected an integer timestamp, found {}", quote(tok)),
            ));
        }
        let raw: i64 = tok.parse().map_err(|_| {
            c.err_at(
                t_start,
                format!("timestamp {tok} is out of range for a 64-bit integer"),
            )
        })?;
        let ts = raw.checked_mul(precision.nanos()).ok_or_else(|| {
            c.err_at(
                t_start,
                format!(
                    "timestamp {tok} at precision {} overflows 64-bit nanoseconds",
                    precision.name()
                ),
            )
        })?;
        while matches!(c.peek(), Some(b' ' | b'\t')) {
            c.pos += 1;
        }
        if c.peek().is_some() {
            return Err(c.err_at(c.pos, "expected end of line after timestamp".into()));
        }
        ts
    };

    tags.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(w) = tags.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(LineError {
            line: line_no,
            column: w[1].value_column,
            message: format!("duplicate tag key {}", quote(&w[1].key)),
        });
    }

    Ok(Some(Point {
        line: line_no,
        measurement,
        column: c.column(m_start),
        tags,
        fields,
        timestamp_ns,
    }))
}

fn field_value<'a>(c: &mut Cursor<'a>, key: &str) -> Result<FieldValue<'a>, LineError> {
    let start = c.pos;
    if c.peek() == Some(b'"') {
        c.pos += 1;
        let s_start = c.pos;
        let mut escaped = false;
        loop {
            match c.peek() {
                None => {
                    return Err(c.err_at(
                        start,
                        format!(
                            "unterminated string value of field {}: expected a closing '\"'",
                            quote(key)
                        ),
                    ));
                }
                Some(b'"') => break,
                Some(b'\\') if matches!(c.b.get(c.pos + 1), Some(b'"' | b'\\')) => {
                    escaped = true;
                    c.pos += 2;
                }
                Some(_) => c.pos += 1,
            }
        }
        let raw = &c.s[s_start..c.pos];
        c.pos += 1; // closing quote
        let v = if escaped {
            Cow::Owned(unescape(raw, |n| matches!(n, b'"' | b'\\')))
        } else {
            Cow::Borrowed(raw)
        };
        return Ok(FieldValue::String(v));
    }
    while matches!(c.peek(), Some(ch) if ch != b',' && ch != b' ') {
        c.pos += 1;
    }
    let tok = &c.s[start..c.pos];
    if tok.is_empty() {
        return Err(c.err_at(start, format!("expected a value for field {}", quote(key))));
    }
    match tok {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Boolean(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Boolean(false)),
        _ => {}
    }
    let invalid = || {
        c.err_at(
            start,
            format!(
                "invalid value {} for field {}: expected a float (1.5), an integer (1i), an unsigned integer (1u), a quoted string or a boolean (true/false)",
                quote(tok),
                quote(key)
            ),
        )
    };
    let is_int = |d: &str| {
        let d = d.strip_prefix('-').unwrap_or(d);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
    };
    if let Some(d) = tok.strip_suffix('i') {
        if !is_int(d) {
            return Err(invalid());
        }
        return d.parse().map(FieldValue::Integer).map_err(|_| {
            c.err_at(
                start,
                format!(
                    "integer {tok} of field {} is out of range for i64",
                    quote(key)
                ),
            )
        });
    }
    if let Some(d) = tok.strip_suffix('u') {
        if d.starts_with('-') || !is_int(d) {
            return Err(invalid());
        }
        return d.parse().map(FieldValue::Unsigned).map_err(|_| {
            c.err_at(
                start,
                format!(
                    "unsigned integer {tok} of field {} is out of range for u64",
                    quote(key)
                ),
            )
        });
    }
    // float: digits, one '.', exponent; no inf/NaN (InfluxDB rejects them)
    let b = tok.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut mantissa_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return Err(invalid());
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'-' | b'+') {
            i += 1;
        }
        let e_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e_start {
            return Err(invalid());
        }
    }
    if i != b.len() {
        return Err(invalid());
    }
    let v: f64 = tok.parse().map_err(|_| invalid())?;
    if !v.is_finite() {
        return Err(c.err_at(
            start,
            format!(
                "float {tok} of field {} is out of range for f64",
                quote(key)
            ),
        ));
    }
    Ok(FieldValue::Float(v))
}
