//! The tile aggregation engine: folds a micro-batch of events of one view into one record per
//! (entity, family, bucket) plus one running record per entity, so a hot key costs a few
//! merges per batch instead of one write per event.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::partial::Stamp;
use super::record::TileRecord;
use crate::scalar::Scalar;
use crate::tiling::{bucket, AggregateSpec, Layout};

/// What one batch did to one entity: its touched tiles and running record.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EntityTiles {
    /// (family index, bucket, record) per touched tile.
    pub tiles: Vec<(usize, i64, TileRecord)>,
    /// The running record: lifetime aggregates and the latest event time.
    pub running: Option<TileRecord>,
}

/// Accumulates events of one view version.
pub struct TileAggregator {
    layout: Layout,
    /// An empty record per family, and for the running record: cloned for each new key.
    empty_tiles: Vec<TileRecord>,
    empty_running: TileRecord,
    entities: HashMap<Vec<u8>, EntityTiles, BuildHasherDefault<FxHasher>>,
}

impl TileAggregator {
    /// An empty aggregator for a view whose aggregates are `specs`, laid out as `layout`.
    pub fn new(specs: &[AggregateSpec], layout: &Layout) -> Self {
        Self {
            empty_tiles: layout
                .families
                .iter()
                .map(|f| TileRecord::empty(specs, &f.members))
                .collect(),
            empty_running: TileRecord::empty(specs, &layout.running),
            layout: layout.clone(),
            entities: HashMap::with_capacity_and_hasher(1_024, BuildHasherDefault::default()),
        }
    }

    /// The layout records are folded by.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Adds one event of `entity` at `stamp`; `inputs[i]` is the value of spec `i`'s column
    /// (`None`: null, or no column).
    pub fn add(&mut self, entity: &[u8], stamp: Stamp, inputs: &[Option<&Scalar>]) {
        let families = self.layout.families.len();
        let tiles = match self.entities.get_mut(entity) {
            Some(tiles) => tiles,
            None => self
                .entities
                .entry(entity.to_vec())
                .or_insert_with(|| EntityTiles {
                    tiles: Vec::with_capacity(families),
                    running: None,
                }),
        };
        for (family_index, family) in self.layout.families.iter().enumerate() {
            let b = bucket(stamp.event_micros, family.tile_micros);
            let position = tiles
                .tiles
                .iter()
                .position(|(f, tb, _)| *f == family_index && *tb == b);
            let record = match position {
                Some(p) => &mut tiles.tiles[p].2,
                None => {
                    tiles
                        .tiles
                        .push((family_index, b, self.empty_tiles[family_index].clone()));
                    let last = tiles.tiles.len() - 1;
                    &mut tiles.tiles[last].2
                }
            };
            record.add(&family.members, stamp, inputs);
        }
        // Every entity gets a running record, even without lifetime aggregates: its latest
        // event time says the entity exists (and how old it is, for the TTL).
        let record = tiles
            .running
            .get_or_insert_with(|| self.empty_running.clone());
        record.add(&self.layout.running, stamp, inputs);
    }

    /// The touched entities and their records.
    pub fn finish(self) -> impl Iterator<Item = (Vec<u8>, EntityTiles)> {
        self.entities.into_iter()
    }
}

/// FxHash (rustc's hasher): entity keys are short byte strings from our own encoder, so a
/// fast non-keyed hash is enough here.
#[derive(Default)]
pub struct FxHasher(u64);

/// Builds [`FxHasher`]s, for maps keyed by entity keys.
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::aggregate::Partial;
    use crate::definitions::{Aggregation, Window};
    use crate::tiling::layout;
    use crate::ValueType;

    #[test]
    fn events_fold_into_their_event_time_tiles_and_the_running_record() {
        let specs = vec![
            AggregateSpec {
                aggregation: Aggregation::Count,
                column: None,
                window: Window::Sliding(Duration::from_secs(3600)),
                value_type: ValueType::Int64,
            },
            AggregateSpec {
                aggregation: Aggregation::Sum,
                column: Some("x".into()),
                window: Window::Lifetime,
                value_type: ValueType::Int64,
            },
        ];
        let layout = layout(&specs);
        let mut engine = TileAggregator::new(&specs, &layout);
        let minute = 60_000_000;
        let values = [Scalar::Int64(2), Scalar::Int64(3), Scalar::Int64(4)];
        for (i, (entity, at)) in [(b"a", 0), (b"a", minute + 1), (b"a", 5), (b"b", 7)]
            .into_iter()
            .enumerate()
        {
            let stamp = Stamp {
                event_micros: at,
                sequence: i as u64,
            };
            let v = &values[i % 3];
            engine.add(entity, stamp, &[None, Some(v)]);
        }
        let mut out: Vec<_> = engine.finish().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let a = &out[0].1;
        assert_eq!(a.tiles.len(), 2, "buckets 0 and 1");
        assert_eq!(a.tiles[0].2.partials, vec![Partial::CountRows(2)]);
        assert_eq!(a.tiles[0].2.max_event_micros, 5);
        assert_eq!(a.tiles[1].1, 1);
        let running = a.running.as_ref().unwrap();
        assert_eq!(running.partials, vec![Partial::SumInt(2 + 3 + 4)]);
        assert_eq!(running.max_event_micros, minute + 1);
        assert_eq!(out[1].1.tiles[0].2.partials, vec![Partial::CountRows(1)]);
    }
}
