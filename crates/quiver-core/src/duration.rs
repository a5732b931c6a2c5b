//! Durations as feature authors write them: `90s`, `15m`, `1h`, `7d`, `2w`.

use std::time::Duration;

/// A duration string that does not parse, or is longer than anything Quiver keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDuration {
    /// Not `<digits><unit>`.
    #[error(
        "invalid duration {0:?}; expected a whole number and a unit, like 90s, 15m, 1h, 7d or 2w"
    )]
    Malformed(String),
    /// Longer than [`MAX_DURATION_DAYS`].
    #[error("duration {0:?} is longer than 100 years ({MAX_DURATION_DAYS}d)")]
    TooLong(String),
}

/// The longest duration accepted: a window, lateness, TTL or retention beyond a century is a
/// typo, and would overflow the arithmetic of times (and the wire's `Duration`) downstream.
pub const MAX_DURATION_DAYS: u64 = 36_500;

const UNITS: [(&str, u64); 6] = [
    ("ms", 0),
    ("s", 1),
    ("m", 60),
    ("h", 3_600),
    ("d", 86_400),
    ("w", 604_800),
];

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h`, `d` or `w`.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration::Malformed(text.to_string());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| invalid())?;
    let (_, seconds) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(invalid)?;
    let duration = if unit == "ms" {
        Duration::from_millis(amount)
    } else {
        amount
            .checked_mul(*seconds)
            .map(Duration::from_secs)
            .ok_or_else(|| InvalidDuration::TooLong(text.to_string()))?
    };
    if duration > Duration::from_secs(MAX_DURATION_DAYS * 86_400) {
        return Err(InvalidDuration::TooLong(text.to_string()));
    }
    Ok(duration)
}

/// Formats a duration in the largest unit up to days that divides it exactly (`7d`, not
/// `1w`: days are what authors write), the inverse of [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    if d.subsec_nanos() != 0 || d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (unit, size) = UNITS
        .iter()
        .rev()
        .find(|(unit, size)| *unit != "w" && *size > 0 && secs.is_multiple_of(*size))
        .copied()
        .unwrap_or(("s", 1));
    format!("{}{unit}", secs / size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn refuses_more_than_a_century() {
        assert_eq!(
            parse_duration("36500d"),
            Ok(Duration::from_secs(36_500 * 86_400))
        );
        for long in ["36501d", "9999999999999d", "18446744073709551615w"] {
            assert_eq!(
                parse_duration(long),
                Err(InvalidDuration::TooLong(long.into())),
                "{long}"
            );
        }
        assert_eq!(
            parse_duration("9999999999999d").unwrap_err().to_string(),
            "duration \"9999999999999d\" is longer than 100 years (36500d)"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "h",
            "1",
            "1.5h",
            "-1h",
            "1 h",
            "1y",
            "1hh",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn formats_in_largest_exact_unit() {
        for text in ["0s", "90s", "15m", "1h", "7d", "14d", "250ms", "25h"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
    }
}
