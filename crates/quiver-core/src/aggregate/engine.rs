//! The tile aggregation engine: folds a micro-batch of events of one view into one record per
//! (entity, family, bucket) plus one running record per entity, so a hot key costs a few
//! merges per batch instead of one write per event.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::partial::{FloatSums, Stamp};
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
    /// An empty aggregator for a view whose aggregates are `specs`, laid out as `layout`
    /// (floats added exactly).
    pub fn new(specs: &[AggregateSpec], layout: &Layout) -> Self {
        Self::with_float_sums(specs, layout, FloatSums::Exact)
    }

    /// An empty aggregator whose records add floats as `sums` say.
    pub fn with_float_sums(specs: &[AggregateSpec], layout: &Layout, sums: FloatSums) -> Self {
        Self {
            empty_tiles: layout
                .families
                .iter()
                .map(|f| TileRecord::empty_with(specs, &f.members, sums))
                .collect(),
            empty_running: TileRecord::empty_with(specs, &layout.running, sums),
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

/// A fast non-keyed hash for entity keys (short byte strings from our own encoder): FxHash's
/// shape with a folded multiply per word.
#[derive(Default)]
pub struct FxHasher(u64);

/// Builds [`FxHasher`]s, for maps keyed by entity keys.
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

impl FxHasher {
    /// Mixes one word in: a folded multiply (the 128-bit product's halves XORed), so every input
    /// bit reaches every output bit. FxHash's plain multiply-rotate only carries bits upwards,
    /// and encoded int64 keys differ in their last bytes: 100k such keys collided into about
    /// 4,000 distinct hashes (perf: memcmp of colliding keys was a third of a snapshot's time,
    /// and it slowed the tile engine's per-entity map the same way).
    fn mix(&mut self, word: u64) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let product = u128::from(self.0 ^ word) * u128::from(K);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn finish(&self) -> u64 {
        // One more round so the last word's bits spread too.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
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

#[cfg(test)]
mod hasher_tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::FxBuildHasher;

    /// Encoded int64 keys differ only in their last bytes; a hash table indexes buckets by the
    /// low bits of the hash, so those must spread (they did not before the final mix).
    #[test]
    fn sequential_int_keys_spread_over_buckets() {
        let build = FxBuildHasher::default();
        let buckets: HashSet<u64> = (0..100_000i64)
            .map(|i| {
                let mut key = vec![b'i'];
                key.extend_from_slice(&((i as u64) ^ (1 << 63)).to_be_bytes());
                build.hash_one(&key) & ((1 << 17) - 1)
            })
            .collect();
        // Random hashing of 100k keys into 131,072 buckets fills about 71,000.
        assert!(buckets.len() > 65_000, "{} distinct buckets", buckets.len());
    }
}
