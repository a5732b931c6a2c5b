//! Encoding of openraft's types for storage and the wire: a format version byte, then bincode.
//! The version byte lets a later release change the encoding and still read old data.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

const FORMAT_V1: u8 = 1;

/// Encodes `value`.
pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut out = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(io::Error::other)?;
    Ok(out)
}

/// Decodes what [`encode`] wrote.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            decode_bounded(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        Some((version, _)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown encoding version {version}"),
        )),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "empty record")),
    }
}

/// Decodes `body` with bincode allowed to claim at most 64 times the input's size (at least
/// 1 MiB): a length prefix in hostile or corrupt bytes (a declared byte string of 2^60) is refused
/// instead of allocated. The factor leaves room for containers whose in-memory size exceeds
/// their encoding (varints, small entries); the limit is a type parameter, so the bound is chosen
/// from power-of-two buckets.
fn decode_bounded<T: DeserializeOwned>(body: &[u8]) -> Result<T, bincode::error::DecodeError> {
    let allowed = body.len().max(1).next_power_of_two().saturating_mul(64);
    macro_rules! within {
        ($($bits:literal)*) => {
            $(
                if allowed <= 1usize << $bits {
                    let config = bincode::config::standard().with_limit::<{ 1usize << $bits }>();
                    return bincode::serde::decode_from_slice(body, config).map(|(value, _)| value);
                }
            )*
        };
    }
    within!(20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36);
    Err(bincode::error::DecodeError::LimitExceeded)
}

/// Turns any error into an `io::Error`, the error type of openraft's storage traits.
pub fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_beyond_the_input_is_refused_not_allocated() {
        // The format byte, then a byte string declaring 2^60 bytes (bincode's varint: 0xFD + u64).
        let mut hostile = vec![FORMAT_V1, 0xFD];
        hostile.extend_from_slice(&(1u64 << 60).to_le_bytes());
        hostile.extend_from_slice(&[0; 8]);
        let error = decode::<serde_bytes::ByteBuf>(&hostile).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        // A vector of 2^40 entries, the same way.
        let mut hostile = vec![FORMAT_V1, 0xFD];
        hostile.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode::<Vec<u64>>(&hostile).is_err());
    }

    #[test]
    fn real_values_round_trip() {
        let bytes = serde_bytes::ByteBuf::from(vec![7u8; 3 << 20]);
        assert_eq!(
            decode::<serde_bytes::ByteBuf>(&encode(&bytes).unwrap()).unwrap(),
            bytes
        );
        let numbers: Vec<u64> = (0..100_000).collect();
        assert_eq!(
            decode::<Vec<u64>>(&encode(&numbers).unwrap()).unwrap(),
            numbers
        );
        assert!(decode::<u64>(&[]).is_err());
        assert!(decode::<u64>(&[9, 1]).is_err());
    }
}
