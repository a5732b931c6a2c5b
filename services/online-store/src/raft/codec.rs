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

    /// Raft messages arrive from the network: mutated AppendEntries and Vote requests (and
    /// their answers) must decode or be refused, never panic or allocate what they do not hold.
    #[test]
    fn fuzz_mutated_raft_messages_decode_or_are_refused() {
        use openraft::entry::RaftEntry;
        use openraft::raft::{AppendEntriesRequest, VoteRequest, VoteResponse};
        use quiver_core::mutation::{self, mutate, Rng};

        use crate::raft::types::{Entry, Vote};
        use crate::raft::{Command, TypeConfig};

        let log_id = |index| openraft::testing::log_id::<TypeConfig>(3, 1, index);
        let append = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(9)),
            entries: vec![
                Entry::new_blank(log_id(10)),
                Entry::new_normal(
                    log_id(11),
                    Command {
                        write: vec![0xC1, 10, 4, 8, 1, 16, 2],
                    },
                ),
                openraft::testing::membership_ent::<TypeConfig>(3, 1, 12, vec![[1, 2, 3].into()]),
            ],
            leader_commit: Some(log_id(10)),
        };
        let vote = VoteRequest::<TypeConfig> {
            vote: Vote::new(4, 2),
            last_log_id: Some(log_id(12)),
            leadership_transfer: false,
        };
        let answer = VoteResponse::<TypeConfig>::new(Vote::new(4, 2), Some(log_id(12)), true);
        let valid = [
            encode(&append).unwrap(),
            encode(&vote).unwrap(),
            encode(&answer).unwrap(),
        ];
        let mut rng = Rng::from_env(0x0DDB_A11C_AFE5_EED5);
        let mut decoded = 0;
        for _ in 0..mutation::cases(20_000) {
            let which = rng.below(valid.len());
            let bytes = mutate(&mut rng, valid[which].clone());
            decoded += usize::from(match which {
                0 => decode::<AppendEntriesRequest<TypeConfig>>(&bytes).is_ok(),
                1 => decode::<VoteRequest<TypeConfig>>(&bytes).is_ok(),
                _ => decode::<VoteResponse<TypeConfig>>(&bytes).is_ok(),
            });
        }
        assert!(decoded > 0, "some mutations still decode");
    }
}
