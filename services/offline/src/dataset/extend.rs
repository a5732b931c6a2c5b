//! Extending an index with rows exported since it was built: the new rows are sorted on their
//! own and merged into the sorted arrays in one pass, so a snapshot taken while events stream
//! in pays for what is new, not for reloading and re-sorting the whole view.

use arrow_array::{Array, ArrayRef, RecordBatch};

use super::{sorted_columns, Ordered, ViewData};

/// Where a merged row comes from: 0 the existing index, 1 the new rows (`interleave`'s array).
type Origin = (usize, usize);

impl ViewData {
    /// This index with the rows of `chunks` added: the same as indexing every row at once.
    /// `None` when a value column's type differs between the two (the caller indexes again).
    pub fn extend(&self, chunks: &[RecordBatch]) -> Result<Option<Self>, String> {
        let mut ids = self.ids.clone();
        let added = Ordered::of(chunks, &mut ids)?;
        ids.seal();

        let total = self.len() + added.rows.len();
        let mut ranges = Vec::with_capacity(ids.len());
        let mut event_micros = Vec::with_capacity(total);
        let mut sequence = Vec::with_capacity(total);
        let mut origins: Vec<Origin> = Vec::with_capacity(total);
        for id in 0..ids.len() {
            let start = event_micros.len() as u32;
            let (mut old, old_end) = self
                .ranges
                .get(id)
                .map_or((0, 0), |&(s, e)| (s as usize, e as usize));
            let std::ops::Range {
                start: mut new,
                end: new_end,
            } = added.entity(id);
            // Both runs are sorted by (event time, sequence): merge them.
            while old < old_end || new < new_end {
                let take_old = new == new_end
                    || (old < old_end
                        && (self.event_micros[old], self.sequence[old])
                            <= (added.event_micros[new], added.sequence[new]));
                if take_old {
                    event_micros.push(self.event_micros[old]);
                    sequence.push(self.sequence[old]);
                    origins.push((0, old));
                    old += 1;
                } else {
                    event_micros.push(added.event_micros[new]);
                    sequence.push(added.sequence[new]);
                    origins.push((1, added.rows[new] as usize));
                    new += 1;
                }
            }
            ranges.push((start, event_micros.len() as u32));
        }

        // The new rows' columns in arrival order, then every column merged.
        let mut fresh = sorted_columns(chunks.to_vec(), None)?;
        let mut columns = std::collections::HashMap::new();
        let names: Vec<String> = self
            .columns
            .keys()
            .chain(fresh.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for name in names {
            let old = self.columns.get(&name).cloned();
            let new = fresh.remove(&name);
            let data_type = match (&old, &new) {
                (Some(o), Some(n)) if o.data_type() != n.data_type() => return Ok(None),
                (Some(a), _) | (None, Some(a)) => a.data_type().clone(),
                (None, None) => continue,
            };
            let old = old.unwrap_or_else(|| arrow_array::new_null_array(&data_type, self.len()));
            let new =
                new.unwrap_or_else(|| arrow_array::new_null_array(&data_type, added.rows.len()));
            let merged: ArrayRef =
                arrow_select::interleave::interleave(&[old.as_ref(), new.as_ref()], &origins)
                    .map_err(|e| format!("column {name:?}: {e}"))?;
            columns.insert(name, merged);
        }
        Ok(Some(Self {
            ids,
            ranges,
            event_micros,
            sequence,
            columns,
        }))
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::ops::Range;

    use quiver_core::{Scalar, ValueType};
    use quiver_lake::event_file::{Column, EventRows};

    use super::*;

    /// Rows of `entities` entities (keys of one and of twenty bytes), times out of order.
    pub(in crate::dataset) fn chunk(
        first_index: u64,
        rows: usize,
        seed: u64,
        with_note: bool,
    ) -> RecordBatch {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        let mut events = EventRows::default();
        let mut amounts = Vec::new();
        let mut notes = Vec::new();
        for i in 0..rows {
            let entity = next() % 7;
            events.log_index.push(first_index + i as u64 / 3);
            events.row.push((i % 3) as u32);
            events.event_micros.push((next() % 50) as i64);
            events.ingested_micros.push(0);
            events.entity.push(if entity == 6 {
                vec![6; 20]
            } else {
                vec![entity as u8]
            });
            amounts.push((next() % 4 != 0).then(|| Scalar::Float64(next() as f64)));
            notes.push(Some(Scalar::String(format!("n{i}"))));
        }
        events.columns.push(Column {
            name: "amount".into(),
            value_type: ValueType::Float64,
            values: amounts,
        });
        if with_note {
            events.columns.push(Column {
                name: "note".into(),
                value_type: ValueType::String,
                values: notes,
            });
        }
        events.to_batch().unwrap()
    }

    fn same(a: &ViewData, b: &ViewData) {
        assert_eq!(a.len(), b.len());
        for key in [
            vec![0u8],
            vec![1],
            vec![2],
            vec![3],
            vec![4],
            vec![5],
            vec![6; 20],
        ] {
            let (ra, rb) = (a.entity(&key), b.entity(&key));
            assert_eq!(ra.clone().map(|r| r.len()), rb.clone().map(|r| r.len()));
            let (Some(ra), Some(rb)) = (ra, rb) else {
                continue;
            };
            for (pa, pb) in ra.zip(rb) {
                assert_eq!(a.event_micros(pa), b.event_micros(pb));
                assert_eq!(a.sequence(pa), b.sequence(pb));
                for name in ["amount", "note"] {
                    assert_eq!(
                        a.value(&a.column(name), pa),
                        b.value(&b.column(name), pb),
                        "{name}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_batch_lookup_finds_what_one_lookup_per_key_finds() {
        let old = vec![chunk(1, 300, 1, true)];
        let extended = ViewData::index(old.clone())
            .unwrap()
            .extend(&[chunk(200, 120, 3, false)])
            .unwrap()
            .unwrap();
        for data in [ViewData::index(old).unwrap(), extended] {
            // Every key several times, a missing short and a missing long key, in any order.
            let mut keys: Vec<Vec<u8>> = vec![vec![9], vec![7; 20]];
            for round in 0..3u8 {
                keys.extend((0..6u8).map(|k| vec![(k + round) % 6]));
                keys.push(vec![6; 20]);
            }
            let located: Vec<(usize, Range<usize>)> = data
                .locate(
                    keys.iter()
                        .enumerate()
                        .map(|(row, k)| (row as u32, k.as_slice())),
                )
                .collect();
            let mut expected: Vec<(usize, Range<usize>)> = keys
                .iter()
                .enumerate()
                .filter_map(|(row, k)| Some((row, data.entity(k)?)))
                .collect();
            assert_eq!(located.len(), expected.len());
            // In memory order: by where each entity's rows start, then by entity row.
            expected.sort_by_key(|(row, range)| (range.start, *row));
            assert_eq!(located, expected);
        }
    }

    #[test]
    fn an_index_extended_without_new_short_keys_still_finds_every_entity() {
        let old = vec![chunk(1, 300, 1, true)];
        let fresh = ViewData::index(old).unwrap();
        // Keys 0-5 (short) and [6; 20] (long) all occur in 300 rows.
        let keys: Vec<Vec<u8>> = (0..6u8).map(|k| vec![k]).chain([vec![6; 20]]).collect();
        let found = |data: &ViewData| {
            data.locate(
                keys.iter()
                    .enumerate()
                    .map(|(row, k)| (row as u32, k.as_slice())),
            )
            .count()
        };
        assert_eq!(found(&fresh), keys.len());
        // No rows at all, then rows of the long key only: the sorted short keys must survive.
        let empty = fresh.extend(&[]).unwrap().unwrap();
        assert_eq!(found(&empty), keys.len());
        let long_only = chunk(400, 300, 1, true);
        let long_rows: Vec<u32> = (0..long_only.num_rows() as u32)
            .filter(|&i| {
                long_only
                    .column_by_name(quiver_lake::event_file::ENTITY)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow_array::BinaryArray>()
                    .unwrap()
                    .value(i as usize)
                    .len()
                    == 20
            })
            .collect();
        let long_only = arrow_select::take::take_record_batch(
            &long_only,
            &arrow_array::UInt32Array::from(long_rows),
        )
        .unwrap();
        let extended = empty.extend(&[long_only]).unwrap().unwrap();
        assert_eq!(found(&extended), keys.len());
    }

    #[test]
    fn a_few_keys_among_many_entities_are_searched_for() {
        let mut ids = crate::dataset::EntityIds::default();
        for k in 0..1000u32 {
            ids.id_or_insert(&(k * 2).to_be_bytes());
        }
        ids.seal();
        // 3 keys against 1,000 entities: binary searches, not a walk.
        let keys: Vec<[u8; 4]> = [1998u32, 7, 0].map(u32::to_be_bytes).to_vec();
        let found = ids.locate(keys.iter().enumerate().map(|(row, k)| (row as u32, &k[..])));
        let mut expected: Vec<u64> = keys
            .iter()
            .enumerate()
            .filter_map(|(row, k)| Some(u64::from(ids.get(k)?) << 32 | row as u64))
            .collect();
        expected.sort_unstable();
        assert_eq!(found, expected);
        assert_eq!(found.len(), 2, "7 is odd: not an entity");
    }

    #[test]
    fn an_extended_index_equals_one_built_from_every_row() {
        let old = vec![chunk(1, 300, 1, true), chunk(101, 90, 2, true)];
        // New rows: a new entity, earlier event times than some old rows, a column the old
        // rows did not have and one the new rows lack.
        let new = vec![chunk(200, 120, 3, false), chunk(240, 60, 4, true)];
        let all: Vec<RecordBatch> = old.iter().chain(&new).cloned().collect();
        let whole = ViewData::index(all).unwrap();
        let extended = ViewData::index(old).unwrap().extend(&new).unwrap().unwrap();
        same(&whole, &extended);
        // Extending an empty index is indexing.
        let from_empty = ViewData::index(Vec::new())
            .unwrap()
            .extend(&new)
            .unwrap()
            .unwrap();
        same(&ViewData::index(new).unwrap(), &from_empty);
    }
}
