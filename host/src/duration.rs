//! Durations as operators write them: `90`, `90s`, `15m`, `2h`, `1d`, `0.5s`.

use std::time::Duration;

/// Parses a duration: a non-negative number (seconds, fractions allowed)
/// with an optional unit `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, unit) = match trimmed.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => trimmed.split_at(at),
        None => (trimmed, "s"),
    };
    let seconds_per_unit = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(invalid(text)),
    };
    let value: f64 = number.trim().parse().map_err(|_| invalid(text))?;
    if !value.is_finite() || value < 0.0 {
        return Err(invalid(text));
    }
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| invalid(text))
}

fn invalid(text: &str) -> String {
    format!("invalid duration \"{text}\": expected a number of seconds or a number with s, m, h or d (90, 90s, 15m, 2h, 1d)")
}

/// The shortest of the forms above that says `duration` exactly enough for
/// a message.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    for (unit, size) in [("d", 86400.0), ("h", 3600.0), ("m", 60.0)] {
        if seconds >= size && (seconds % size) == 0.0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_forms_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("5 weeks").unwrap_err().contains("5 weeks"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_print_in_their_largest_whole_unit() {
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }
}
