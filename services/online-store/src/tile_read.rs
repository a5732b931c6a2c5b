//! Reading windowed aggregates: merge the tiles a window covers at `as_of` (see
//! `quiver_core::tiling` for the rule) and take lifetime aggregates from the running record.

use quiver_core::aggregate::{Partial, TileRecord};
use quiver_core::tiling::{self, AggregateSpec, Layout};
use rocksdb::{IteratorMode, ReadOptions, DB};

use crate::error::OnlineStoreError;
use crate::keys;

/// One aggregate's value as read: the merged partial and the latest event time in it
/// (`i64::MIN` when it covers no event).
#[derive(Debug, Clone)]
pub struct ReadAggregate {
    /// The merged partial.
    pub partial: Partial,
    /// The latest event time merged in.
    pub max_event_micros: i64,
}

fn internal(e: impl std::fmt::Display) -> OnlineStoreError {
    OnlineStoreError::Internal(format!("tile read failed: {e}"))
}

/// The aggregates `specs` (laid out as `layout`) of one entity at `as_of`: windowed ones from
/// the tiles under `tiles_prefix` (a `Tiles` view prefix), lifetime ones from `running`.
pub fn read_entity(
    db: &DB,
    tiles_prefix: &[u8],
    specs: &[AggregateSpec],
    layout: &Layout,
    entity: &[u8],
    as_of_micros: i64,
    running: Option<&TileRecord>,
) -> Result<Vec<ReadAggregate>, OnlineStoreError> {
    let cf = db
        .cf_handle(keys::CF_SM_DATA)
        .ok_or_else(|| internal("column family sm_data is missing"))?;
    let mut out: Vec<ReadAggregate> = specs
        .iter()
        .map(|s| ReadAggregate {
            partial: Partial::empty(s.aggregation, s.column.is_some(), Some(s.value_type)),
            max_event_micros: i64::MIN,
        })
        .collect();
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
        for epoch in tiling::epoch(lo, family.epoch_tiles)..=tiling::epoch(hi, family.epoch_tiles) {
            let prefix = keys::tile_epoch_prefix(tiles_prefix, family.tile_micros, epoch);
            let mut options = ReadOptions::default();
            // Every key of the range shares the seek key's prefix (entity in this tile size
            // and epoch): the prefix bloom filter may skip files without it.
            options.set_prefix_same_as_start(true);
            options.set_iterate_lower_bound(keys::tile_key(&prefix, entity, lo));
            options.set_iterate_upper_bound(keys::tile_key(&prefix, entity, hi.saturating_add(1)));
            for item in db.iterator_cf_opt(cf, options, IteratorMode::Start) {
                let (key, value) = item.map_err(internal)?;
                let Some(bucket) = key
                    .len()
                    .checked_sub(8)
                    .and_then(|at| key[at..].try_into().ok())
                    .map(keys::from_ordered_i64)
                else {
                    continue;
                };
                // A record that does not decode is skipped (it would be on every replica).
                let Ok(record) = TileRecord::decode(&value) else {
                    tracing::error!("a stored tile does not decode; skipped");
                    continue;
                };
                for (position, (member, (from, to))) in
                    family.members.iter().zip(&ranges).enumerate()
                {
                    if bucket < *from || bucket > *to {
                        continue;
                    }
                    if let (Some(slot), Some(partial)) =
                        (out.get_mut(*member), record.partials.get(position))
                    {
                        slot.partial.merge(partial);
                        slot.max_event_micros = slot.max_event_micros.max(record.max_event_micros);
                    }
                }
            }
        }
    }
    Ok(out)
}
