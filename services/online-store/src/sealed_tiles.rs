//! The merged **sealed** tiles of the windows a read covers, kept in memory per (view version,
//! entity, tile family), so a windowed read merges only the few tiles that can still change.
//!
//! A tile is sealed once it ends before the source watermark minus the allowed lateness: a
//! live row that lands in it would be late. Rows can still reach a sealed tile (a producer
//! joining behind the others, a history load, a backfill, a snapshot install), so the state
//! machine moves a **generation** after applying any such write (`StateMachine::tiles_generation`),
//! and an entry made under another generation is never used. A reader takes the generation
//! *before* it reads the watermark and the tiles, so a write it may have missed has moved the
//! generation past its entry.
//!
//! An entry holds, per window of the family, the merge of its sealed tiles for one read-time
//! tile (`head`): when the head moves the windows slide, and the entry is made again from the
//! tiles (partials cannot be un-merged).
//!
//! It also holds the merge of the tiles after the sealed ones, the ones live rows still change,
//! under the entity's write counter (`entity_stamps.rs`) taken before they were read: while no
//! batch has folded into the entity since, a read of it reads no tile at all. An entity read
//! more often than it is written (a model server asking for a user between the user's events)
//! is then one lookup of its running record.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::OnlineStoreError;
use crate::raft::state_machine::StateMachine;
use crate::store_reader::StoreReader;
use crate::tile_read::ReadAggregate;

/// Shards, so readers on different cores rarely wait for one another.
const SHARDS: usize = 16;

/// How a read may use the cache.
#[derive(Clone, Copy)]
pub struct Sealing<'a> {
    /// The node's cache.
    pub cache: &'a SealedTiles,
    /// The state machine's tiles generation, taken before the watermark and the tiles are read.
    pub generation: u64,
    /// The source watermark minus the allowed lateness: tiles ending by then are sealed.
    pub seal_micros: i64,
    /// The read entity's write counter (`entity_stamps.rs`), taken before its running record
    /// and tiles are read: only then are its open tiles cached too. [`watermark_and_sealing`]
    /// leaves it for the caller to set per entity.
    pub entity_stamp: Option<u64>,
}

/// The watermark of the source under `watermark_key` (whose definition allows `lateness`),
/// and how a windowed read of it may use `cache`: the generation is taken first, and tiles are
/// sealed behind the watermark minus the largest lateness a batch was applied with (or the
/// definition's, if larger).
pub fn watermark_and_sealing<'a>(
    state: &StateMachine,
    store: &StoreReader<'_>,
    cache: &'a SealedTiles,
    watermark_key: &[u8],
    lateness: i64,
) -> Result<(Option<i64>, Option<Sealing<'a>>), OnlineStoreError> {
    let generation = state.tiles_generation();
    let watermark = state.watermark(store, watermark_key)?;
    let lateness = state
        .lateness_applied(watermark_key)
        .unwrap_or(0)
        .max(lateness);
    let sealing = watermark.filter(|_| cache.is_on()).map(|w| Sealing {
        cache,
        generation,
        seal_micros: w.saturating_sub(lateness),
        entity_stamp: None,
    });
    Ok((watermark, sealing))
}

/// One family's sealed windows for one entity.
#[derive(Clone)]
pub struct Entry {
    /// The state machine's tiles generation the entry was read under.
    pub generation: u64,
    /// The bucket of the read time the windows were cut for.
    pub head: i64,
    /// Buckets before this one are merged in `windows`.
    pub sealed_until: i64,
    /// Per member of the family (in family order), its window's sealed tiles merged.
    pub windows: Vec<ReadAggregate>,
    /// The tiles from `sealed_until` on, merged the same way, if they were read.
    pub recent: Option<Recent>,
}

/// The merge of one entity's tiles after its sealed ones, as of a write counter.
#[derive(Clone)]
pub struct Recent {
    /// The entity's write counter taken before these tiles were read.
    pub entity_stamp: u64,
    /// Per member of the family, its window's tiles from `sealed_until` on, merged.
    pub windows: Vec<ReadAggregate>,
}

/// The cache of one node: at most `capacity` entries (a full shard is emptied: entries are
/// cheap to make again, and reads stay exact without them).
pub struct SealedTiles {
    shards: Vec<Mutex<HashMap<Vec<u8>, Entry>>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Of the hits, those whose open tiles came from the entry too, and those that read them.
    open_hits: AtomicU64,
    open_misses: AtomicU64,
}

impl SealedTiles {
    /// A cache of at most `capacity` entries; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: std::collections::hash_map::RandomState::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            open_hits: AtomicU64::new(0),
            open_misses: AtomicU64::new(0),
        }
    }

    /// Whether it keeps anything (a read through a cache that is off would only split its
    /// tiles for nothing).
    pub fn is_on(&self) -> bool {
        self.per_shard > 0
    }

    fn shard(&self, key: &[u8]) -> Option<&Mutex<HashMap<Vec<u8>, Entry>>> {
        if !self.is_on() {
            return None;
        }
        self.shards.get(self.hasher.hash_one(key) as usize % SHARDS)
    }

    /// The entry for `key` if it was made under `generation` for the read-time tile `head`.
    pub fn get(&self, key: &[u8], generation: u64, head: i64) -> Option<Entry> {
        let shard = self.shard(key)?.lock().ok()?;
        let found = shard
            .get(key)
            .filter(|e| e.generation == generation && e.head == head)
            .cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::metrics::count_sealed_tile_read(found.is_some());
        found
    }

    /// Lookups that found a usable entry, and those that did not, so far.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Counts a hit whose open tiles came from the entry too (`open_hit`) or were read.
    pub fn count_open(&self, open_hit: bool) {
        let counter = if open_hit {
            &self.open_hits
        } else {
            &self.open_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::metrics::count_open_tile_read(open_hit);
    }

    /// Hits whose open tiles came from the entry too, and hits that read them, so far.
    pub fn open_hits_and_misses(&self) -> (u64, u64) {
        (
            self.open_hits.load(Ordering::Relaxed),
            self.open_misses.load(Ordering::Relaxed),
        )
    }

    /// Keeps `entry` under `key`.
    pub fn put(&self, key: &[u8], entry: Entry) {
        let Some(shard) = self.shard(key) else {
            return;
        };
        let Ok(mut shard) = shard.lock() else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(key) {
            shard.clear();
        }
        shard.insert(key.to_vec(), entry);
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.len()))
            .sum()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::aggregate::Partial;
    use quiver_core::Aggregation;

    fn entry(generation: u64, head: i64) -> Entry {
        Entry {
            generation,
            head,
            sealed_until: head - 1,
            windows: vec![ReadAggregate {
                partial: Partial::empty(Aggregation::Count, false, None),
                max_event_micros: 7,
            }],
            recent: None,
        }
    }

    #[test]
    fn an_entry_serves_only_its_generation_and_head() {
        let cache = SealedTiles::new(100);
        cache.put(b"k", entry(3, 10));
        assert!(cache.get(b"k", 3, 10).is_some());
        assert!(
            cache.get(b"k", 4, 10).is_none(),
            "a write moved the generation"
        );
        assert!(cache.get(b"k", 3, 11).is_none(), "the windows slid");
        assert!(cache.get(b"other", 3, 10).is_none());
    }

    #[test]
    fn it_stays_within_its_capacity_and_can_be_off() {
        let cache = SealedTiles::new(32);
        for i in 0..1_000u32 {
            cache.put(&i.to_be_bytes(), entry(1, 1));
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        let off = SealedTiles::new(0);
        off.put(b"k", entry(1, 1));
        assert!(off.get(b"k", 1, 1).is_none());
        assert!(off.is_empty());
    }
}
