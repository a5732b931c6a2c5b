//! `std::time::Duration` <-> `google.protobuf.Duration`.

use std::time::Duration;

use super::ConversionError;

/// Converts a duration for the wire (saturating at `i64::MAX` seconds, far beyond any window).
pub fn duration_to_pb(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // subsec_nanos() < 1e9 always fits in i32.
        nanos: d.subsec_nanos() as i32,
    }
}

/// Converts a wire duration; negative durations are rejected, naming `field`.
pub fn duration_from_pb(
    d: &prost_types::Duration,
    field: &str,
) -> Result<Duration, ConversionError> {
    let secs = u64::try_from(d.seconds)
        .map_err(|_| ConversionError::new(field, "must not be negative"))?;
    let nanos = u32::try_from(d.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| ConversionError::new(field, "nanos out of range"))?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let d = Duration::new(3_600, 5);
        assert_eq!(duration_from_pb(&duration_to_pb(d), "x"), Ok(d));
        let negative = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert!(duration_from_pb(&negative, "ttl")
            .unwrap_err()
            .to_string()
            .starts_with("ttl:"));
    }
}
