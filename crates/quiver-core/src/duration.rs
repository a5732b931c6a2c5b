//! Durations as feature authors write them: `90s`, `15m`, `1h`, `7d`, `2w`.

use std::time::Duration;

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}; expected a whole number and a unit, like 90s, 15m, 1h, 7d or 2w")]
pub struct InvalidDuration(pub String);

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
    let invalid = || InvalidDuration(text.to_string());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| invalid())?;
    let (_, seconds) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(invalid)?;
    if unit == "ms" {
        return Ok(Duration::from_millis(amount));
    }
    amount
        .checked_mul(*seconds)
        .map(Duration::from_secs)
        .ok_or_else(invalid)
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
