//! Reading windowed aggregates: merge the tiles a window covers at `as_of` (see
//! `quiver_core::tiling` for the rule) and take lifetime aggregates from the running record.

use quiver_core::aggregate::{Partial, TileRecord};
use quiver_core::tiling::{self, AggregateSpec, Layout};

use crate::error::OnlineStoreError;
use crate::keys;
use crate::sealed_tiles::{Entry, Recent, Sealing};
use crate::store_reader::StoreReader;

/// One aggregate's value as read: the merged partial and the latest event time in it
/// (`i64::MIN` when it covers no event).
#[derive(Debug, Clone)]
pub struct ReadAggregate {
    /// The merged partial.
    pub partial: Partial,
    /// The latest event time merged in.
    pub max_event_micros: i64,
}

/// The aggregates of one view version (or of its statistics) a read merges.
#[derive(Clone, Copy)]
pub struct ViewTiles<'a> {
    /// The version's `Tiles` prefix.
    pub prefix: &'a [u8],
    /// The aggregates.
    pub specs: &'a [AggregateSpec],
    /// How they are laid out in tiles and the running record.
    pub layout: &'a Layout,
}

/// The aggregates of `view` for one entity at `as_of`: windowed ones from its tiles, lifetime
/// ones from `running`. With `sealing`, a read near the present takes its windows' sealed tiles
/// merged from the cache (and keeps them there), and reads only the tiles that can still change,
/// or none when the entity's write counter says nothing was folded into it since they were
/// cached too.
pub fn read_entity(
    store: &StoreReader<'_>,
    view: ViewTiles<'_>,
    entity: &[u8],
    as_of_micros: i64,
    running: Option<&TileRecord>,
    sealing: Option<Sealing<'_>>,
) -> Result<Vec<ReadAggregate>, OnlineStoreError> {
    let ViewTiles {
        prefix: tiles_prefix,
        specs,
        layout,
    } = view;
    let empty = |s: &AggregateSpec| ReadAggregate {
        partial: Partial::empty(s.aggregation, s.column.is_some(), Some(s.value_type)),
        max_event_micros: i64::MIN,
    };
    let mut out: Vec<ReadAggregate> = specs.iter().map(empty).collect();
    if let Some(running) = running {
        for (position, member) in layout.running.iter().enumerate() {
            if let (Some(slot), Some(partial)) =
                (out.get_mut(*member), running.partials.get(position))
            {
                slot.partial.merge(partial);
                slot.max_event_micros = running.max_event_micros;
            }
        }
    }
    for family in &layout.families {
        let ranges: Vec<(i64, i64)> = family
            .members
            .iter()
            .map(|m| tiling::covering(specs[*m].window, family.tile_micros, as_of_micros))
            .collect();
        let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
        let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
        let empties =
            || -> Vec<ReadAggregate> { family.members.iter().map(|m| empty(&specs[*m])).collect() };
        // Per member: its sealed tiles merged (from the cache, or read now), and the rest.
        let (mut sealed, mut recent) = (empties(), empties());
        let mut start = lo;
        // Buckets before `split` are sealed: merged into `sealed` and kept as a new entry.
        let mut split = None;
        // Where what is read now is kept: (key, sealing, head, sealed until).
        let mut keep = None;
        // Whether the tiles after the sealed ones came from the cache too.
        let mut recent_cached = false;
        // Only a read whose newest tile is still open (one near the present) uses the cache: a
        // read of the past would replace the entry the present's reads share.
        let sealing = sealing
            .map(|s| (s, s.seal_micros.div_euclid(family.tile_micros)))
            .filter(|(_, seal)| *seal > lo && *seal <= hi);
        if let Some((sealing, seal)) = sealing {
            let head = tiling::bucket(as_of_micros, family.tile_micros);
            let key = cache_key(tiles_prefix, family.tile_micros, entity);
            match sealing.cache.get(&key, sealing.generation, head) {
                Some(entry) if entry.windows.len() == family.members.len() => {
                    start = entry.sealed_until;
                    sealed = entry.windows;
                    // Nothing folded into the entity since the entry's recent tiles were read
                    // (its running record, and so `last` below, is unchanged too).
                    match entry.recent.filter(|r| {
                        Some(r.entity_stamp) == sealing.entity_stamp
                            && r.windows.len() == family.members.len()
                    }) {
                        Some(cached) => {
                            recent = cached.windows;
                            recent_cached = true;
                        }
                        // Read now, and kept for the next read if this one took a counter.
                        None => keep = sealing.entity_stamp.map(|_| (key, sealing, head, start)),
                    }
                    sealing.cache.count_open(recent_cached);
                }
                _ => {
                    split = Some(seal);
                    keep = Some((key, sealing, head, seal));
                }
            }
        }
        // No tile after the entity's latest event (its running record's) holds anything: a
        // read of an entity quiet since its windows' sealed tiles reads no tile at all.
        let last = running.map_or(hi, |r| {
            hi.min(tiling::bucket(r.max_event_micros, family.tile_micros))
        });
        let epochs =
            tiling::epoch(start, family.epoch_tiles)..=tiling::epoch(last, family.epoch_tiles);
        for epoch in epochs.filter(|_| start <= last && !recent_cached) {
            let prefix = keys::tile_epoch_prefix(tiles_prefix, family.tile_micros, epoch);
            store.for_each_tile(&prefix, entity, (start, last), |bucket, record| {
                let into = if split.is_some_and(|seal| bucket < seal) {
                    &mut sealed
                } else {
                    &mut recent
                };
                for (position, (slot, (from, to))) in into.iter_mut().zip(&ranges).enumerate() {
                    if bucket < *from || bucket > *to {
                        continue;
                    }
                    if let Some(partial) = record.partials.get(position) {
                        slot.partial.merge(partial);
                        slot.max_event_micros = slot.max_event_micros.max(record.max_event_micros);
                    }
                }
            })?;
        }
        if let Some((key, sealing, head, sealed_until)) = keep {
            sealing.cache.put(
                &key,
                Entry {
                    generation: sealing.generation,
                    head,
                    sealed_until,
                    windows: sealed.clone(),
                    recent: sealing.entity_stamp.map(|entity_stamp| Recent {
                        entity_stamp,
                        windows: recent.clone(),
                    }),
                },
            );
        }
        for ((member, sealed), recent) in family.members.iter().zip(sealed).zip(recent) {
            if let Some(slot) = out.get_mut(*member) {
                slot.partial.merge(&sealed.partial);
                slot.partial.merge(&recent.partial);
                slot.max_event_micros = sealed.max_event_micros.max(recent.max_event_micros);
            }
        }
    }
    Ok(out)
}

/// The cache key of one entity's family of tiles in one view version.
fn cache_key(tiles_prefix: &[u8], tile_micros: i64, entity: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + tiles_prefix.len() + 8 + entity.len());
    key.extend_from_slice(&(tiles_prefix.len() as u32).to_be_bytes());
    key.extend_from_slice(tiles_prefix);
    key.extend_from_slice(&tile_micros.to_be_bytes());
    key.extend_from_slice(entity);
    key
}
