//! Batches whose rows carry their position in the producer's input (Kafka offsets). The
//! producer's stored sequence is then the next position to apply, and a batch that straddles it
//! (two consumers briefly owned one partition and cut it at different offsets) is applied only
//! from there on: its already-applied prefix is dropped, so no message is applied twice and no
//! new one is lost. A batch wholly at or below the stored sequence is a duplicate as usual.

use std::collections::HashMap;
use std::io;

use quiver_proto::online::EventBatch;

use super::StateMachine;

impl StateMachine {
    /// Drops from `events` what its producer has applied already (reading through this apply
    /// batch's `overlay`); true when something was dropped. Batches without positions, of
    /// another epoch, or wholly applied are left to the producer table's usual decision.
    pub(super) fn trim_applied_positions(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        events: &mut EventBatch,
    ) -> io::Result<bool> {
        if events.offsets.is_empty() && events.rejected.is_empty() {
            return Ok(false);
        }
        if events.offsets.len() != events.rows.len() {
            // Malformed; `apply_event_batch` skips it the same way everywhere.
            return Ok(false);
        }
        let Some(stored) = self.producer_through(overlay, &events.producer_id)? else {
            return Ok(false);
        };
        if stored.epoch != events.epoch || events.sequence <= stored.sequence {
            return Ok(false);
        }
        Ok(trim_below(events, stored.sequence))
    }
}

/// Removes the rows and rejected messages of `events` at positions below `next`, keeping every
/// per-row column (times, keys, positions, transform outputs, exclusions) aligned; true when
/// something was removed.
pub fn trim_below(events: &mut EventBatch, next: u64) -> bool {
    let rejected = events.rejected.len();
    events.rejected.retain(|r| r.offset >= next);
    let keep: Vec<bool> = events.offsets.iter().map(|&o| o >= next).collect();
    if keep.iter().all(|k| *k) {
        return events.rejected.len() != rejected;
    }
    // Where each kept row goes.
    let mut moved = Vec::with_capacity(keep.len());
    let mut kept = 0u32;
    for &k in &keep {
        moved.push(k.then_some(kept));
        kept += u32::from(k);
    }
    fn retain<T>(values: &mut Vec<T>, keep: &[bool]) {
        if values.len() == keep.len() {
            let mut i = 0;
            values.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
    }
    retain(&mut events.rows, &keep);
    retain(&mut events.event_micros, &keep);
    retain(&mut events.entity_keys, &keep);
    retain(&mut events.offsets, &keep);
    for view in &mut events.views {
        for column in &mut view.derived {
            retain(&mut column.values, &keep);
        }
        view.excluded
            .retain_mut(|e| match moved.get(e.row as usize).copied().flatten() {
                Some(row) => {
                    e.row = row;
                    true
                }
                None => false,
            });
    }
    true
}

#[cfg(test)]
mod tests {
    use quiver_proto::ingest::Row;
    use quiver_proto::online::{DerivedColumn, Exclusion, RejectedMessage, ViewEvents};
    use quiver_proto::types::value::Kind;
    use quiver_proto::types::Value;

    use super::*;

    fn int(v: i64) -> Value {
        Value {
            kind: Some(Kind::Int64Value(v)),
        }
    }

    /// Offsets 10..15 with offset 12 a rejected message and row 3 (offset 14) excluded.
    fn batch() -> EventBatch {
        let offsets = [10u64, 11, 13, 14, 15];
        EventBatch {
            sequence: 16,
            rows: offsets
                .iter()
                .map(|&o| Row {
                    values: vec![int(o as i64)],
                })
                .collect(),
            event_micros: offsets.iter().map(|&o| o as i64).collect(),
            entity_keys: offsets.iter().map(|&o| vec![o as u8]).collect(),
            offsets: offsets.to_vec(),
            rejected: vec![RejectedMessage {
                offset: 12,
                reason: "not JSON".into(),
                payload: b"x".to_vec(),
            }],
            views: vec![ViewEvents {
                derived: vec![DerivedColumn {
                    name: "d".into(),
                    values: offsets.iter().map(|&o| int(-(o as i64))).collect(),
                    recompute: None,
                }],
                excluded: vec![Exclusion {
                    row: 3,
                    reason: "zscore".into(),
                }],
                ..ViewEvents::default()
            }],
            ..EventBatch::default()
        }
    }

    #[test]
    fn the_applied_prefix_is_dropped_and_the_rest_stays_aligned() {
        let mut events = batch();
        assert!(trim_below(&mut events, 13));
        assert_eq!(events.offsets, [13, 14, 15]);
        assert_eq!(events.event_micros, [13, 14, 15]);
        assert_eq!(events.entity_keys, [vec![13], vec![14], vec![15]]);
        assert_eq!(events.rows[0].values[0], int(13));
        assert_eq!(
            events.views[0].derived[0].values,
            [int(-13), int(-14), int(-15)]
        );
        // The exclusion of offset 14 follows its row.
        assert_eq!(events.views[0].excluded[0].row, 1);
        assert!(events.rejected.is_empty(), "offset 12 was applied");
    }

    #[test]
    fn nothing_applied_changes_nothing() {
        let mut events = batch();
        assert!(!trim_below(&mut events, 10));
        assert_eq!(events, batch());
        // Only the rejected message at 12 is below 13 when rows start at 13.
        let mut events = batch();
        events.offsets = vec![13, 14, 15, 16, 17];
        assert!(trim_below(&mut events, 13));
        assert_eq!(events.rows.len(), 5);
        assert!(events.rejected.is_empty());
    }

    #[test]
    fn an_excluded_row_that_was_applied_goes_with_it() {
        let mut events = batch();
        assert!(trim_below(&mut events, 15));
        assert_eq!(events.offsets, [15]);
        assert!(events.views[0].excluded.is_empty());
    }
}
