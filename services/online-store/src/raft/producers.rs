//! Idempotent producers: (epoch, sequence) per producer id, so a retried batch is applied once,
//! a producer that starts its sequence again announces it with a higher epoch (which resets
//! it), and a stale incarnation with a lower epoch is fenced. At most [`MAX_PRODUCERS`] are
//! remembered per group: the least recently written is forgotten first (an activity index keyed
//! by log index), so the state of long-gone producers is bounded.

use std::collections::HashMap;
use std::io;

use prost::Message;
use quiver_proto::online::{ProducerState, SourceClock};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use super::codec::io_err;
use super::StateMachine;
use crate::keys::{self, Space};

/// Producers remembered per group (a handful in unit tests, which exercise forgetting).
#[cfg(not(test))]
pub const MAX_PRODUCERS: u64 = 100_000;
/// Producers remembered per group (a handful in unit tests, which exercise forgetting).
#[cfg(test)]
pub const MAX_PRODUCERS: u64 = 8;

/// The first byte of a stored `ProducerState` (older versions stored a bare BE u64 sequence,
/// whose first byte is 0 for any sequence below 2^56).
const STATE_FORMAT: u8 = 0xF1;

/// What the producer table says about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequencing {
    /// A new batch: apply it. `reset`: its epoch is new (the producer starts a new stream).
    Fresh {
        /// The epoch changed.
        reset: bool,
    },
    /// Applied before: nothing changes.
    Duplicate {
        /// The stored epoch.
        epoch: u64,
        /// The stored sequence.
        sequence: u64,
    },
    /// A lower epoch than one that has written: nothing changes.
    Fenced {
        /// The stored epoch.
        epoch: u64,
        /// The stored sequence.
        sequence: u64,
    },
}

fn decode_state(bytes: &[u8]) -> Option<ProducerState> {
    match bytes {
        [] => None, // deleted in this apply batch
        [STATE_FORMAT, rest @ ..] => ProducerState::decode(rest).ok(),
        legacy if legacy.len() == 8 => Some(ProducerState {
            epoch: 0,
            sequence: u64::from_be_bytes(legacy.try_into().ok()?),
            last_index: 0,
            input_end: 0,
        }),
        _ => None,
    }
}

fn encode_state(state: &ProducerState) -> Vec<u8> {
    let mut bytes = vec![STATE_FORMAT];
    state.encode(&mut bytes).ok();
    bytes
}

impl StateMachine {
    /// Decides what to do with `producer`'s batch `(epoch, sequence)` of entry `log_index`
    /// and records a fresh one (with `input_end`, the end of the producer's input as it
    /// reported it). An empty producer id is never deduplicated.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sequence_batch(
        &self,
        producer: &str,
        epoch: u64,
        sequence: u64,
        input_end: u64,
        log_index: u64,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<Sequencing> {
        if producer.is_empty() {
            return Ok(Sequencing::Fresh { reset: false });
        }
        let key = keys::producer_key(self.group(), producer);
        let stored = self
            .read_through(overlay, &key)?
            .and_then(|v| decode_state(&v));
        let reset = match &stored {
            Some(s) if epoch < s.epoch => {
                return Ok(Sequencing::Fenced {
                    epoch: s.epoch,
                    sequence: s.sequence,
                })
            }
            Some(s) if epoch == s.epoch && sequence <= s.sequence => {
                return Ok(Sequencing::Duplicate {
                    epoch: s.epoch,
                    sequence: s.sequence,
                })
            }
            Some(s) => epoch > s.epoch,
            None => false,
        };
        let data = self.cf(keys::CF_SM_DATA)?;
        match &stored {
            Some(s) => batch.delete_cf(
                data,
                keys::producer_activity_key(self.group(), s.last_index, producer),
            ),
            None => {
                self.add_to_producer_count(1, batch, overlay)?;
            }
        }
        batch.put_cf(
            data,
            keys::producer_activity_key(self.group(), log_index, producer),
            [],
        );
        let state = ProducerState {
            epoch,
            sequence,
            last_index: log_index,
            input_end,
        };
        self.put_through(batch, overlay, key, encode_state(&state))?;
        if stored.is_none() {
            self.forget_oldest_producers(batch, overlay)?;
        }
        Ok(Sequencing::Fresh { reset })
    }

    /// `producer`'s stored state, reading through this apply batch's `overlay`.
    pub(super) fn producer_through(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        producer: &str,
    ) -> io::Result<Option<ProducerState>> {
        let key = keys::producer_key(self.group(), producer);
        Ok(self
            .read_through(overlay, &key)?
            .and_then(|v| decode_state(&v)))
    }

    /// Every stored producer whose id starts with `prefix`, by id (applied state, for readers).
    pub fn producers_with_prefix(&self, prefix: &str) -> io::Result<Vec<(String, ProducerState)>> {
        let space = keys::space_prefix(self.group(), Space::Producers);
        let lower = keys::producer_key(self.group(), prefix);
        let mut upper = space.clone();
        if let Some(last) = upper.last_mut() {
            *last += 1;
        }
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(lower.clone());
        options.set_iterate_upper_bound(upper);
        let mut found = Vec::new();
        for item in
            self.db()
                .iterator_cf_opt(self.cf(keys::CF_SM_DATA)?, options, IteratorMode::Start)
        {
            let (key, value) = item.map_err(io_err)?;
            if !key.starts_with(&lower) {
                break;
            }
            let (Ok(id), Some(state)) = (
                std::str::from_utf8(&key[space.len()..]),
                decode_state(&value),
            ) else {
                continue;
            };
            found.push((id.to_string(), state));
        }
        Ok(found)
    }

    /// `project`'s `source`: its watermark and producer clock (applied state, for readers).
    pub fn source_progress(
        &self,
        project: &str,
        source: &str,
    ) -> io::Result<(Option<i64>, SourceClock)> {
        let data = self.cf(keys::CF_SM_DATA)?;
        let watermark = self
            .db()
            .get_cf(data, keys::watermark_key(self.group(), project, source))
            .map_err(io_err)?
            .and_then(|v| v.as_slice().try_into().ok().map(keys::from_ordered_i64));
        let clock = self
            .db()
            .get_cf(data, keys::source_clock_key(self.group(), project, source))
            .map_err(io_err)?
            .and_then(|v| SourceClock::decode(v.as_slice()).ok())
            .unwrap_or_default();
        Ok((watermark, clock))
    }

    fn add_to_producer_count(
        &self,
        delta: i64,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<u64> {
        let key = keys::producer_count_key(self.group());
        let count = self
            .read_through(overlay, &key)?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0)
            .saturating_add_signed(delta);
        self.put_through(batch, overlay, key, count.to_be_bytes().to_vec())?;
        Ok(count)
    }

    /// Forgets the least recently written producers beyond [`MAX_PRODUCERS`]. The oldest index
    /// entries are always in the database (only the newest are in this apply batch), and an
    /// entry whose producer has written since is stale and skipped, so every replica forgets the
    /// same producers however its applies were batched.
    fn forget_oldest_producers(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<()> {
        let count_key = keys::producer_count_key(self.group());
        let count = self
            .read_through(overlay, &count_key)?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        if count <= MAX_PRODUCERS {
            return Ok(());
        }
        let mut excess = count - MAX_PRODUCERS;
        let data = self.cf(keys::CF_SM_DATA)?;
        let prefix = keys::space_prefix(self.group(), Space::ProducerActivity);
        let mut end = prefix.clone();
        if let Some(space) = end.last_mut() {
            *space += 1;
        }
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(prefix.clone());
        options.set_iterate_upper_bound(end);
        let mut forgotten = Vec::new();
        for item in self
            .db()
            .iterator_cf_opt(data, options, IteratorMode::Start)
        {
            if excess == 0 {
                break;
            }
            let (key, _) = item.map_err(io_err)?;
            let Some((index, producer)) = keys::parse_producer_activity(&key[prefix.len()..])
            else {
                continue;
            };
            let producer_key = keys::producer_key(self.group(), &producer);
            let current = self
                .read_through(overlay, &producer_key)?
                .and_then(|v| decode_state(&v));
            if current.is_none_or(|s| s.last_index != index) {
                continue;
            }
            forgotten.push((key.to_vec(), producer_key));
            excess -= 1;
        }
        let gone = forgotten.len() as i64;
        for (activity_key, producer_key) in forgotten {
            batch.delete_cf(data, activity_key);
            batch.delete_cf(data, &producer_key);
            // An empty overlay value reads as "deleted in this batch".
            overlay.insert(producer_key, Vec::new());
        }
        self.add_to_producer_count(-gone, batch, overlay)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms() {
        let state = ProducerState {
            epoch: 3,
            sequence: 42,
            last_index: 7,
            input_end: 50,
        };
        assert_eq!(decode_state(&encode_state(&state)), Some(state));
        // The bare sequence an older version stored.
        assert_eq!(
            decode_state(&9u64.to_be_bytes()),
            Some(ProducerState {
                epoch: 0,
                sequence: 9,
                last_index: 0,
                input_end: 0,
            })
        );
        assert_eq!(decode_state(&[]), None);
        // A default state encodes to the format byte alone, still not 8 bytes.
        assert_eq!(
            decode_state(&encode_state(&ProducerState::default())),
            Some(ProducerState::default())
        );
    }
}
