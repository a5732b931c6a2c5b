//! Reading a view version's column statistics (what its `standardize`/`zscore` transforms
//! compare with) at many times at once. A row is scored against the window ending with its own
//! tile, so a batch of history out of time order needs the windows ending at many tiles: one
//! scan of the tiles any of them covers serves them all, where a window read per time would
//! read each tile once per window holding it.

use std::collections::BTreeMap;

use quiver_core::aggregate::{Partial, TileRecord};
use quiver_core::tiling::{self, AggregateSpec};

use crate::error::OnlineStoreError;
use crate::keys;
use crate::store_reader::StoreReader;
use crate::tile_read::ViewTiles;

/// The aggregates of `view` (its statistics) for `entity` at each of `moments`: one partial per
/// spec, per moment, merged as a window read at that moment merges them (windowed ones from
/// the tiles, lifetime ones from `running`).
pub(crate) fn read_statistics_at(
    store: &StoreReader<'_>,
    view: ViewTiles<'_>,
    entity: &[u8],
    running: Option<&TileRecord>,
    moments: &[i64],
) -> Result<Vec<Vec<Partial>>, OnlineStoreError> {
    let ViewTiles {
        prefix,
        specs,
        layout,
    } = view;
    let empty =
        |s: &AggregateSpec| Partial::empty(s.aggregation, s.column.is_some(), Some(s.value_type));
    let mut out: Vec<Vec<Partial>> = moments
        .iter()
        .map(|_| specs.iter().map(empty).collect())
        .collect();
    for partials in &mut out {
        for (position, member) in layout.running.iter().enumerate() {
            if let (Some(slot), Some(partial)) = (
                partials.get_mut(*member),
                running.and_then(|r| r.partials.get(position)),
            ) {
                slot.merge(partial);
            }
        }
    }
    for family in &layout.families {
        // Per moment, per member: the buckets its window covers.
        let covered: Vec<Vec<(i64, i64)>> = moments
            .iter()
            .map(|m| {
                family
                    .members
                    .iter()
                    .map(|x| tiling::covering(specs[*x].window, family.tile_micros, *m))
                    .collect()
            })
            .collect();
        let mut tiles: BTreeMap<i64, TileRecord> = BTreeMap::new();
        for (lo, hi) in union(&covered) {
            let epochs =
                tiling::epoch(lo, family.epoch_tiles)..=tiling::epoch(hi, family.epoch_tiles);
            for epoch in epochs {
                let epoch_prefix = keys::tile_epoch_prefix(prefix, family.tile_micros, epoch);
                store.for_each_tile(&epoch_prefix, entity, (lo, hi), |bucket, record| {
                    tiles.insert(bucket, record);
                })?;
            }
        }
        for (partials, ranges) in out.iter_mut().zip(&covered) {
            for (position, (member, (from, to))) in family.members.iter().zip(ranges).enumerate() {
                let Some(slot) = partials.get_mut(*member) else {
                    continue;
                };
                for record in tiles.range(from..=to).map(|(_, r)| r) {
                    if let Some(partial) = record.partials.get(position) {
                        slot.merge(partial);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The bucket ranges `covered` holds, as few disjoint ranges in order.
fn union(covered: &[Vec<(i64, i64)>]) -> Vec<(i64, i64)> {
    let mut ranges: Vec<(i64, i64)> = covered.iter().flatten().copied().collect();
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use quiver_core::aggregate::{Partial, Stamp, TileRecord};
    use quiver_core::definitions::{Aggregation, Window};
    use quiver_core::tiling::{self, AggregateSpec};
    use quiver_core::{Scalar, ValueType};

    use super::{read_statistics_at, union};
    use crate::keys;
    use crate::store_reader::StoreReader;
    use crate::tile_read::{read_entity, ViewTiles};

    #[test]
    fn covered_ranges_are_read_once() {
        let covered = vec![vec![(10, 20)], vec![(15, 30), (40, 41)], vec![(31, 33)]];
        assert_eq!(union(&covered), vec![(10, 33), (40, 41)]);
        assert_eq!(union(&[]), Vec::<(i64, i64)>::new());
    }

    /// Read at many times at once, the statistics equal one window read per time: a daily and
    /// an hourly window (two tile sizes, tiles over several epochs) and a lifetime figure.
    #[test]
    fn many_times_read_at_once_equal_one_read_each() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open_db(dir.path(), 1 << 20).unwrap();
        let cf = db.cf_handle(keys::CF_SM_DATA).unwrap();
        let spec = |window| AggregateSpec {
            aggregation: Aggregation::Stddev,
            column: Some("x".into()),
            window,
            value_type: ValueType::Float64,
        };
        let specs = vec![
            spec(Window::Sliding(Duration::from_secs(86_400))),
            spec(Window::Sliding(Duration::from_secs(3_600))),
            spec(Window::Lifetime),
        ];
        let layout = tiling::layout(&specs);
        let prefix = keys::tiles_prefix(1, "p", "v", 1, true);
        let entity = keys::STATISTICS_ENTITY;
        let moments_of = |values: &[f64]| {
            let mut p = Partial::empty(Aggregation::Stddev, true, None);
            for (i, v) in values.iter().enumerate() {
                let stamp = Stamp {
                    event_micros: i as i64,
                    sequence: 0,
                };
                p.update(Some(&Scalar::Float64(*v)), stamp);
            }
            p
        };
        // Every third bucket of each family over three days holds a few values.
        for family in &layout.families {
            let buckets = 3 * 86_400_000_000 / family.tile_micros;
            for bucket in (0..buckets).step_by(3) {
                let x = bucket as f64;
                let record = TileRecord {
                    max_event_micros: bucket * family.tile_micros,
                    partials: family
                        .members
                        .iter()
                        .map(|_| moments_of(&[x, x * 0.5 + 1.0, (x * 7.0) % 13.0]))
                        .collect(),
                };
                let epoch = tiling::epoch(bucket, family.epoch_tiles);
                let key = keys::tile_key(
                    &keys::tile_epoch_prefix(&prefix, family.tile_micros, epoch),
                    entity,
                    bucket,
                );
                db.put_cf(cf, key, record.encode()).unwrap();
            }
        }
        // The running record's time is the latest event's (a window read stops there).
        let running = TileRecord {
            max_event_micros: 3 * 86_400_000_000,
            partials: vec![moments_of(&[1.0, 2.0, 4.0])],
        };
        let store = StoreReader::new(&db).unwrap();
        let view = ViewTiles {
            prefix: &prefix,
            specs: &specs,
            layout: &layout,
        };
        // Out of order, repeated, before the first tile and after the last.
        let hour = 3_600_000_000;
        let moments = [
            50 * hour + 17,
            3 * hour,
            -5 * hour,
            50 * hour,
            71 * hour + 59,
            90 * hour,
        ];
        let together = read_statistics_at(&store, view, entity, Some(&running), &moments).unwrap();
        for (moment, got) in moments.iter().zip(together) {
            let one: Vec<Partial> =
                read_entity(&store, view, entity, *moment, Some(&running), None)
                    .unwrap()
                    .into_iter()
                    .map(|r| r.partial)
                    .collect();
            assert_eq!(got, one, "at {moment}");
        }
    }
}
