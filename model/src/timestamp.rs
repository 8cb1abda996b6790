//! UTC timestamps with microsecond precision, as muninn stores them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SubsecRound, TimeZone, Utc};
use std::fmt;

/// A point in time, UTC, truncated to microseconds (muninn's precision).
pub type Timestamp = DateTime<Utc>;

/// A text that is not one of the accepted timestamp forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError {
    text: String,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid datetime: {} (expected 'YYYY-MM-DD(THH:MM:SS(.ffffff))', naive UTC, or RFC 3339 with 'Z' or an offset)",
            self.text
        )
    }
}

impl std::error::Error for TimestampError {}

/// Parses the forms muninn accepts (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS`,
/// `YYYY-MM-DDTHH:MM:SS.ffffff`, naive and so UTC), muninn's own storage form
/// (a space instead of `T`), and RFC 3339 with `Z` or an offset, which remote
/// catalogues send. Digits past the microsecond are dropped, as muninn keeps
/// no more.
pub fn parse_timestamp(text: &str) -> Result<Timestamp, TimestampError> {
    let trimmed = text.trim();
    if let Some(parsed) = parse_common(trimmed.as_bytes()) {
        return Ok(parsed);
    }
    let error = || TimestampError {
        text: text.to_string(),
    };
    if trimmed.len() == 10 {
        let date = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").map_err(|_| error())?;
        return Ok(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).ok_or_else(error)?));
    }
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(truncate_to_micros(with_offset.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(truncate_to_micros(Utc.from_utc_datetime(&naive)));
        }
    }
    Err(error())
}

/// The forms nearly every timestamp comes in, read without chrono's format
/// machinery (which dominated look-ups): `YYYY-MM-DD`, then `T`, `t` or a
/// space and `HH:MM:SS`, an optional fraction, and an optional `Z`, `z` or
/// `±HH:MM`. `None` for anything else, which the general parser then tries.
fn parse_common(bytes: &[u8]) -> Option<Timestamp> {
    fn number(bytes: &[u8]) -> Option<u32> {
        bytes.iter().try_fold(0u32, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    }
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(&bytes[0..4])?).ok()?,
        number(&bytes[5..7])?,
        number(&bytes[8..10])?,
    )?;
    if bytes.len() == 10 {
        return Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?));
    }
    if bytes.len() < 19
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (hour, minute, second) = (
        number(&bytes[11..13])?,
        number(&bytes[14..16])?,
        number(&bytes[17..19])?,
    );
    let mut rest = &bytes[19..];
    let mut micros = 0u32;
    if let Some((b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let kept = &fraction[..digits.min(6)];
        micros = number(kept)? * 10u32.pow(6 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = i64::from(number(&[*h1, *h2])?);
            let minutes = i64::from(number(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    // A leap second (60) goes to the general parser.
    let time = chrono::NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    let local = Utc.from_utc_datetime(&date.and_time(time));
    Some(local - chrono::Duration::seconds(offset_seconds))
}

/// Parses strict RFC 3339 (a `T`, and `Z` or an offset): the form that marks
/// a text in a JSON document as a point in time rather than a label.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| truncate_to_micros(t.with_timezone(&Utc)))
}

/// Formats a timestamp as muninn's SQLite backend stores it:
/// `YYYY-MM-DD HH:MM:SS`, with `.ffffff` only when there are microseconds
/// (Python's `datetime.isoformat(" ")`).
pub fn format_timestamp(timestamp: &Timestamp) -> String {
    use chrono::{Datelike, Timelike};
    // Written out by hand, digit by digit: this runs for every timestamp of
    // every product, and `format!` costs several times more.
    let micros = timestamp.timestamp_subsec_micros();
    let (date, time) = (timestamp.date_naive(), timestamp.time());
    let year = date.year();
    if !(0..=9999).contains(&year) {
        // Not storable (see `check_storable_timestamp`), shown as it is.
        let mut text = format!(
            "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            date.month(),
            date.day(),
            time.hour(),
            time.minute(),
            time.second()
        );
        if micros != 0 {
            text.push_str(&format!(".{micros:06}"));
        }
        return text;
    }
    let mut text = String::with_capacity(26);
    push_digits(&mut text, year as u32, 4);
    text.push('-');
    push_digits(&mut text, date.month(), 2);
    text.push('-');
    push_digits(&mut text, date.day(), 2);
    text.push(' ');
    push_digits(&mut text, time.hour(), 2);
    text.push(':');
    push_digits(&mut text, time.minute(), 2);
    text.push(':');
    // A leap second (chrono's second 59 with 1,000,000+ µs) keeps its
    // microseconds past a million, as `format!` wrote it.
    push_digits(&mut text, time.second(), 2);
    if micros != 0 {
        text.push('.');
        push_digits(&mut text, micros, 6);
    }
    text
}

/// `value` in decimal, zero-padded to at least `width` digits.
fn push_digits(text: &mut String, value: u32, width: u32) {
    let mut digits = 1;
    while digits < 10 && value >= 10u32.pow(digits) {
        digits += 1;
    }
    for position in (0..digits.max(width)).rev() {
        let digit = (value / 10u32.pow(position)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

/// The years a timestamp the catalogue stores may lie in: what its text
/// form (`YYYY-MM-DD ...`, four digits) reads back as, and what Python
/// muninn's `datetime` can hold. A time outside them would be written as
/// `10000-01-01 ...` or `0000-...`, which neither muninn nor muninn-sync
/// reads back, so every later look-up of the product would fail.
pub const STORABLE_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Whether the catalogue can store `timestamp` and read it back: its year
/// (UTC) in [`STORABLE_YEARS`]. The error shows the time and the range.
pub fn check_storable_timestamp(timestamp: &Timestamp) -> Result<(), String> {
    use chrono::Datelike;
    if STORABLE_YEARS.contains(&timestamp.year()) {
        return Ok(());
    }
    Err(format!(
        "{} (UTC) lies outside the years {} to {} that the catalogue (and Python muninn) can read back",
        format_timestamp(timestamp),
        STORABLE_YEARS.start(),
        STORABLE_YEARS.end()
    ))
}

/// Drops the digits past the microsecond.
pub fn truncate_to_micros(timestamp: Timestamp) -> Timestamp {
    timestamp.trunc_subsecs(6)
}

/// Microseconds since 1970-01-01T00:00:00Z: how timestamps cross the plugin ABI.
pub fn to_micros(timestamp: &Timestamp) -> i64 {
    timestamp.timestamp_micros()
}

/// The inverse of [`to_micros`]; `None` outside chrono's range.
pub fn from_micros(micros: i64) -> Option<Timestamp> {
    DateTime::from_timestamp_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn ts(text: &str) -> String {
        format_timestamp(&parse_timestamp(text).unwrap())
    }

    #[test]
    fn accepts_muninn_forms_and_rfc3339() {
        assert_eq!(ts("2024-01-01"), "2024-01-01 00:00:00");
        assert_eq!(ts("2024-02-01T12:00:00"), "2024-02-01 12:00:00");
        assert_eq!(ts("2024-02-01T12:00:00.5"), "2024-02-01 12:00:00.500000");
        assert_eq!(
            ts("2024-02-01T12:00:00.123456"),
            "2024-02-01 12:00:00.123456"
        );
        assert_eq!(
            ts("2024-02-01 12:00:00.123456"),
            "2024-02-01 12:00:00.123456"
        );
        assert_eq!(ts("2024-02-01T12:00:00Z"), "2024-02-01 12:00:00");
        assert_eq!(ts("2024-02-01T13:30:00+01:30"), "2024-02-01 12:00:00");
        assert_eq!(
            ts("2024-02-01T12:00:00.123456789Z"),
            "2024-02-01 12:00:00.123456"
        );
    }

    #[test]
    fn formatting_by_hand_agrees_with_chrono() {
        let mut time = chrono::DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let step = chrono::Duration::microseconds(86_399_999_937 * 7 + 13);
        while time.year() < 9999 {
            let expected = match time.timestamp_subsec_micros() {
                0 => time.format("%Y-%m-%d %H:%M:%S").to_string(),
                _ => time.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            };
            assert_eq!(format_timestamp(&time), expected);
            time += step;
        }
        let far = chrono::DateTime::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(format_timestamp(&far), "10000-01-01 00:00:00");
    }

    #[test]
    fn the_fast_path_agrees_with_chrono() {
        for text in [
            "2024-02-01T12:00:00Z",
            "2024-02-01 12:00:00.5",
            "2024-02-01t12:00:00.1234567z",
            "2024-02-01T13:30:00+01:30",
            "2024-02-01T10:30:00.000001-01:30",
            "1999-12-31T23:59:59.999999",
        ] {
            let fast = parse_common(text.as_bytes()).unwrap();
            let general = match DateTime::parse_from_rfc3339(text) {
                Ok(t) => truncate_to_micros(t.with_timezone(&Utc)),
                Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                    .map(|n| truncate_to_micros(Utc.from_utc_datetime(&n)))
                    .unwrap(),
            };
            assert_eq!(fast, general, "{text}");
        }
        for text in [
            "2024-02-30",
            "2024-02-01T24:00:00",
            "2024-02-01T12:00",
            "2024-02-01T12:00:00.",
            "2024-02-01T12:00:00+1:00",
        ] {
            assert_eq!(parse_common(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn refuses_other_text_with_the_expected_forms() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-01-01T25:00:00",
            "01/02/2024",
        ] {
            let message = parse_timestamp(bad).unwrap_err().to_string();
            assert!(message.contains("YYYY-MM-DD"), "{message}");
        }
    }

    #[test]
    fn leap_seconds_and_early_years_format_like_python() {
        assert_eq!(
            ts("0900-01-02T03:04:05.000007Z"),
            "0900-01-02 03:04:05.000007"
        );
    }

    #[test]
    fn only_years_1_to_9999_are_storable() {
        let t = |text: &str| parse_timestamp(text).unwrap();
        assert!(check_storable_timestamp(&t("0001-01-01T00:00:00Z")).is_ok());
        assert!(check_storable_timestamp(&t("9999-12-31T23:59:59.999999Z")).is_ok());
        // Valid times whose UTC lies past either end.
        let late = check_storable_timestamp(&t("9999-12-31T23:59:59-01:00")).unwrap_err();
        assert!(late.contains("10000-01-01 00:59:59"), "{late}");
        assert!(late.contains("1 to 9999"), "{late}");
        assert!(check_storable_timestamp(&t("0001-01-01T00:30:00+01:00")).is_err());
        assert!(check_storable_timestamp(&t("0000-06-01")).is_err());
        let negative = from_micros(-70_000_000_000_000_000).unwrap();
        assert!(check_storable_timestamp(&negative).is_err());
    }

    #[test]
    fn micros_round_trip() {
        let t = parse_timestamp("2024-02-01T12:00:00.000001Z").unwrap();
        assert_eq!(from_micros(to_micros(&t)), Some(t));
    }
}
