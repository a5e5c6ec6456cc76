//! Timestamp formats the backtest recognises, detected from the first data row.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Unit of a numeric epoch timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Seconds (magnitude below 10¹¹, i.e. before the year 5138).
    Seconds,
    /// Milliseconds (below 10¹⁴).
    Millis,
    /// Microseconds (below 10¹⁷).
    Micros,
    /// Nanoseconds.
    Nanos,
}

/// A detected timestamp format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampFormat {
    /// RFC 3339, e.g. `2020-03-09T10:14:33.5+01:00` or `…Z`.
    Rfc3339,
    /// `YYYY-MM-DD HH:MM:SS` with optional fractional seconds (a `T` separator is accepted
    /// too), without an offset: taken as UTC.
    NaiveDateTime,
    /// A number of seconds/milliseconds/… since the Unix epoch; the unit is decided by the
    /// magnitude of the first value (seconds may have a fraction).
    Epoch(EpochUnit),
}

impl fmt::Display for TimestampFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampFormat::Rfc3339 => "RFC 3339",
            TimestampFormat::NaiveDateTime => "YYYY-MM-DD HH:MM:SS (UTC)",
            TimestampFormat::Epoch(EpochUnit::Seconds) => "epoch seconds",
            TimestampFormat::Epoch(EpochUnit::Millis) => "epoch milliseconds",
            TimestampFormat::Epoch(EpochUnit::Micros) => "epoch microseconds",
            TimestampFormat::Epoch(EpochUnit::Nanos) => "epoch nanoseconds",
        })
    }
}

impl TimestampFormat {
    /// Detects the format of one timestamp cell.
    pub fn detect(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(v) = s.parse::<f64>() {
            if !v.is_finite() {
                return None;
            }
            let a = v.abs();
            let unit = if a < 1e11 {
                EpochUnit::Seconds
            } else if a < 1e14 {
                EpochUnit::Millis
            } else if a < 1e17 {
                EpochUnit::Micros
            } else {
                EpochUnit::Nanos
            };
            return Some(TimestampFormat::Epoch(unit));
        }
        if parse_naive(s).is_some() {
            return Some(TimestampFormat::NaiveDateTime);
        }
        if OffsetDateTime::parse(s, &Rfc3339).is_ok() {
            return Some(TimestampFormat::Rfc3339);
        }
        None
    }

    /// Whether `s` looks like a calendar date-time (used to find an unnamed timestamp column).
    pub(crate) fn is_date_like(s: &str) -> bool {
        matches!(
            Self::detect(s),
            Some(TimestampFormat::Rfc3339 | TimestampFormat::NaiveDateTime)
        )
    }

    /// Parses `s` in this format to nanoseconds since the Unix epoch.
    pub fn parse_ns(self, s: &str) -> Option<i64> {
        let s = s.trim();
        match self {
            TimestampFormat::Rfc3339 => {
                let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
                i64::try_from(t.unix_timestamp_nanos()).ok()
            }
            TimestampFormat::NaiveDateTime => parse_naive(s),
            TimestampFormat::Epoch(unit) => parse_epoch(s, unit),
        }
    }
}

fn parse_epoch(s: &str, unit: EpochUnit) -> Option<i64> {
    let factor: i64 = match unit {
        EpochUnit::Seconds => 1_000_000_000,
        EpochUnit::Millis => 1_000_000,
        EpochUnit::Micros => 1_000,
        EpochUnit::Nanos => 1,
    };
    if let Ok(i) = s.parse::<i64>() {
        return i.checked_mul(factor);
    }
    let v = s.parse::<f64>().ok()?;
    let ns = (v * factor as f64).round();
    // Exclusive bound: i64::MAX as f64 rounds up to 2⁶³.
    (ns.is_finite() && ns >= i64::MIN as f64 && ns < i64::MAX as f64).then_some(ns as i64)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.fraction]`, no offset, as UTC nanoseconds.
fn parse_naive(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    let month = Month::try_from(u8::try_from(digits(&b[5..7])?).ok()?).ok()?;
    let day = u8::try_from(digits(&b[8..10])?).ok()?;
    let hour = u8::try_from(digits(&b[11..13])?).ok()?;
    let minute = u8::try_from(digits(&b[14..16])?).ok()?;
    let second = u8::try_from(digits(&b[17..19])?).ok()?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 => {
            digits(frac)? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    i64::try_from(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp_nanos(),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_and_parses_each_format() {
        let f = TimestampFormat::detect("2020-03-09 10:14:33").unwrap();
        assert_eq!(f, TimestampFormat::NaiveDateTime);
        assert_eq!(
            f.parse_ns("2020-03-09 10:14:33"),
            Some(1_583_748_873_000_000_000)
        );
        assert_eq!(
            f.parse_ns("2020-03-09T10:14:33.25"),
            Some(1_583_748_873_250_000_000)
        );
        assert_eq!(f.parse_ns("2020-02-30 10:14:33"), None);

        let f = TimestampFormat::detect("2020-03-09T10:14:33+01:00").unwrap();
        assert_eq!(f, TimestampFormat::Rfc3339);
        assert_eq!(
            f.parse_ns("2020-03-09T11:14:33.5+01:00"),
            Some(1_583_748_873_500_000_000)
        );

        let f = TimestampFormat::detect("1583748873").unwrap();
        assert_eq!(f, TimestampFormat::Epoch(EpochUnit::Seconds));
        assert_eq!(f.parse_ns("1583748873.5"), Some(1_583_748_873_500_000_000));
        let f = TimestampFormat::detect("1583748873000").unwrap();
        assert_eq!(f, TimestampFormat::Epoch(EpochUnit::Millis));
        assert_eq!(f.parse_ns("1583748873001"), Some(1_583_748_873_001_000_000));
        assert_eq!(TimestampFormat::detect("hello"), None);
        assert_eq!(TimestampFormat::detect("NaN"), None);
    }

    #[test]
    fn huge_epochs_do_not_overflow() {
        assert_eq!(
            TimestampFormat::Epoch(EpochUnit::Seconds).parse_ns("99999999999999999999"),
            None
        );
        assert_eq!(
            TimestampFormat::Epoch(EpochUnit::Seconds).parse_ns("1e300"),
            None
        );
    }
}
