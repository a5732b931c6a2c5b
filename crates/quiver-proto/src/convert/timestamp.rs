//! `google.protobuf.Timestamp` <-> microseconds since the Unix epoch (how Quiver stores time).

/// Microseconds since the epoch, saturating far outside any real event time.
pub fn timestamp_to_micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.nanos / 1_000))
}

/// The timestamp of `micros` since the epoch (negative values are before 1970).
pub fn micros_to_timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // rem_euclid(1e6) * 1e3 < 1e9 always fits in i32.
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_before_the_epoch() {
        for micros in [0, 1, 1_700_000_000_123_456, -1, -1_500_000] {
            assert_eq!(timestamp_to_micros(&micros_to_timestamp(micros)), micros);
        }
        assert_eq!(
            micros_to_timestamp(-1),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }
}
