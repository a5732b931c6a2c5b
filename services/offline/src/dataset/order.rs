//! The index order of exported rows: by entity, then event time, then ingest order.
//!
//! Entity ids are dense, so rows are placed by a counting sort on the id, and each entity's
//! rows, which arrive in ingest order and so mostly in event-time order already, are sorted
//! only where they are not. Comparison-sorting a million (id, time, sequence, row) keys was
//! about a quarter of a cold snapshot's CPU (perf).

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::RecordBatch;
use quiver_lake::event_file::{ENTITY, EVENT_TIME};

use super::{column, sequences, EntityIds};

/// Rows of some record batches in index order.
pub(super) struct Ordered {
    /// Row numbers across the batches, in index order.
    pub rows: Vec<u32>,
    /// Per entity id: where its rows start in `rows` (one more entry than there are ids).
    pub starts: Vec<u32>,
    /// Event times, in index order.
    pub event_micros: Vec<i64>,
    /// Ingest order (`log index << 32 | row in entry`), in index order.
    pub sequence: Vec<u64>,
}

impl Ordered {
    /// Orders the rows of `chunks`, giving entities not in `ids` new ids.
    pub fn of(chunks: &[RecordBatch], ids: &mut EntityIds) -> Result<Self, String> {
        let total: usize = chunks.iter().map(RecordBatch::num_rows).sum();
        if u32::try_from(total).is_err() {
            return Err(format!("{total} rows are more than one index holds"));
        }
        let mut entity_of = Vec::with_capacity(total);
        let mut times = Vec::with_capacity(total);
        let mut sequence = Vec::with_capacity(total);
        for chunk in chunks {
            let entity = column(chunk, ENTITY)?
                .as_binary_opt::<i32>()
                .ok_or("bad _entity type")?;
            let event = column(chunk, EVENT_TIME)?
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or("bad _event_time type")?;
            entity_of.extend(
                entity
                    .iter()
                    .map(|key| ids.id_or_insert(key.unwrap_or(&[]))),
            );
            times.extend_from_slice(event.values());
            sequence.extend(sequences(chunk)?);
        }

        let entities = ids.len();
        let mut starts = vec![0u32; entities + 1];
        for &id in &entity_of {
            starts[id as usize + 1] += 1;
        }
        for id in 0..entities {
            starts[id + 1] += starts[id];
        }
        // Stable: each entity's rows keep their ingest order.
        let mut next = starts.clone();
        let mut rows = vec![0u32; total];
        for (row, &id) in entity_of.iter().enumerate() {
            let at = &mut next[id as usize];
            rows[*at as usize] = row as u32;
            *at += 1;
        }
        drop(entity_of);
        let mut ordered = Self {
            event_micros: rows.iter().map(|&r| times[r as usize]).collect(),
            sequence: rows.iter().map(|&r| sequence[r as usize]).collect(),
            rows,
            starts,
        };
        for id in 0..entities {
            ordered.sort_entity(ordered.entity(id));
        }
        Ok(ordered)
    }

    /// The rows of one entity, `range`, sorted by (event time, sequence) if they are not.
    fn sort_entity(&mut self, range: std::ops::Range<usize>) {
        let times = &self.event_micros[range.clone()];
        let sequence = &self.sequence[range.clone()];
        let sorted =
            (1..times.len()).all(|i| (times[i - 1], sequence[i - 1]) <= (times[i], sequence[i]));
        if sorted {
            return;
        }
        let mut keys: Vec<(i64, u64, u32)> = range
            .clone()
            .map(|i| (self.event_micros[i], self.sequence[i], self.rows[i]))
            .collect();
        keys.sort_unstable();
        for (i, (time, sequence, row)) in range.zip(keys) {
            self.event_micros[i] = time;
            self.sequence[i] = sequence;
            self.rows[i] = row;
        }
    }

    /// The range of entity `id`'s rows.
    pub fn entity(&self, id: usize) -> std::ops::Range<usize> {
        match (self.starts.get(id), self.starts.get(id + 1)) {
            (Some(&start), Some(&end)) => start as usize..end as usize,
            _ => 0..0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use arrow_array::cast::AsArray;

    use super::*;
    use crate::dataset::extend::tests::chunk;

    #[test]
    fn rows_come_in_the_order_a_full_sort_gives() {
        // Three chunks; times out of order within entities, keys short and long.
        let chunks = vec![
            chunk(1, 500, 11, true),
            chunk(400, 300, 12, false),
            chunk(900, 200, 13, true),
        ];
        let mut ids = EntityIds::default();
        let ordered = Ordered::of(&chunks, &mut ids).unwrap();
        // Brute force: every row's (entity id, time, sequence, row), sorted.
        let mut expected = Vec::new();
        let mut row = 0u32;
        for chunk in &chunks {
            let entity = chunk.column_by_name(ENTITY).unwrap().as_binary::<i32>();
            let time = chunk
                .column_by_name(EVENT_TIME)
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>();
            for (i, sequence) in sequences(chunk).unwrap().into_iter().enumerate() {
                let id = ids.get(entity.value(i)).unwrap();
                expected.push((id, time.value(i), sequence, row));
                row += 1;
            }
        }
        expected.sort_unstable();
        let got: Vec<(u32, i64, u64, u32)> = (0..ids.len())
            .flat_map(|id| ordered.entity(id).map(move |i| (id as u32, i)))
            .map(|(id, i)| {
                (
                    id,
                    ordered.event_micros[i],
                    ordered.sequence[i],
                    ordered.rows[i],
                )
            })
            .collect();
        assert_eq!(got, expected);
        assert!(expected
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[0].3 > w[1].3));
    }
}
