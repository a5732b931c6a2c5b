//! The point-in-time kernel: the features of one view version for entity rows `(key, t)`,
//! from the exported rows, folded by the same code the online store folds with.
//!
//! For a row at `t`, only rows with event time <= `t` exist. An entity with none is not found
//! (every feature of the view null). Lifetime features (and `first`/`last` without a window)
//! fold all of them, and are null when the latest is older than the view's TTL. A windowed
//! feature covers the tiles the online read covers at `t` (the rule in `tiling::covering`),
//! with the newest tile cut at `t`.
//!
//! The online store folds each Raft entry's rows of an entity into one record per tile (and
//! one running record), merges those records in log order, and a read merges the tiles of a
//! window in time order. Sums of floats depend on that grouping, so the kernel folds the same
//! way: per tile, rows grouped by log entry, in ingest order. That is what makes a snapshot
//! equal `GetFeatures` to the last bit wherever both answer.

use std::ops::Range;

use arrow_array::{new_null_array, ArrayRef, UInt32Array};
use arrow_select::take::take;
use quiver_core::aggregate::{Partial, Stamp, TileRecord};
use quiver_core::tiling::{self, AggregateSpec, Layout};
use quiver_core::{Aggregation, Scalar, ValueType, Window};
use quiver_lake::columns::{array_of, data_type, scalar_at};

use crate::dataset::{ColumnRef, ViewData};
use crate::snapshot::EntityKeys;

/// What one view version contributes to a snapshot.
pub struct ViewKernel {
    /// The view's feature aggregates (all of them: positions match the layout).
    specs: Vec<AggregateSpec>,
    layout: Layout,
    /// The features to compute (indexes into `specs`).
    requested: Vec<usize>,
    ttl_micros: Option<i64>,
}

impl ViewKernel {
    /// A kernel computing features `requested` of a view whose features are `specs`.
    pub fn new(specs: Vec<AggregateSpec>, requested: Vec<usize>, ttl_micros: Option<i64>) -> Self {
        Self {
            layout: tiling::layout(&specs),
            specs,
            requested,
            ttl_micros,
        }
    }

    /// The columns the view's features read (each once).
    pub fn input_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        for column in self.specs.iter().filter_map(|s| s.column.clone()) {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        columns
    }

    /// The requested features' values for each row (`entities.get(i)` at `times[i]`), one
    /// array per requested feature, typed as the feature. A row without a key (a null join key)
    /// finds nothing.
    pub fn compute(&self, data: &ViewData, entities: &EntityKeys, times: &[i64]) -> Vec<ArrayRef> {
        let inputs: Vec<Option<ColumnRef>> = self
            .specs
            .iter()
            .map(|s| s.column.as_deref().map(|c| data.column(c)))
            .collect();
        let rows = times.len();
        // Per requested feature: its values computed cell by cell, or `None` for a pick.
        let mut values: Vec<Option<Vec<Option<Scalar>>>> = self
            .requested
            .iter()
            .map(|&feature| self.pick(feature).is_none().then(|| vec![None; rows]))
            .collect();
        let computes = values.iter().any(Option::is_some);
        // The rows every `last` (and every `first`) takes its value from: one per entity row,
        // shared by all of them.
        let picked = |aggregation| {
            let any = self
                .requested
                .iter()
                .any(|&f| self.pick(f) == Some(aggregation));
            if any {
                vec![None; rows]
            } else {
                Vec::new()
            }
        };
        let (mut latest, mut earliest) = (picked(Aggregation::Last), picked(Aggregation::First));
        let mut scratch = Scratch::default();
        // Entity rows in the order their entities' data lies in memory; a row whose entity has
        // nothing (or no key) keeps its null cells.
        for (row, all) in data.locate(entities.keyed()) {
            let t = times[row];
            let until = all.start + data.event_times(all.clone()).partition_point(|&e| e <= t);
            let rows = all.start..until;
            if rows.is_empty() {
                continue;
            }
            // The latest (or earliest) by event time, then ingest order: the rows' sort order.
            if (!latest.is_empty() || !earliest.is_empty()) && self.live(data, &rows, t) {
                if let Some(cell) = latest.get_mut(row) {
                    *cell = u32::try_from(rows.end - 1).ok();
                }
                if let Some(cell) = earliest.get_mut(row) {
                    *cell = u32::try_from(rows.start).ok();
                }
            }
            if computes {
                scratch.reset();
                for (slot, &feature) in self.requested.iter().enumerate() {
                    if let Some(values) = &mut values[slot] {
                        values[row] =
                            self.feature(data, &inputs, feature, rows.clone(), t, &mut scratch);
                    }
                }
            }
        }
        let (latest, earliest) = (UInt32Array::from(latest), UInt32Array::from(earliest));
        values
            .into_iter()
            .zip(&self.requested)
            .map(|(values, &feature)| {
                let value_type = self.specs[feature].value_type;
                match (values, self.pick(feature)) {
                    (Some(values), _) => array_of(&values, value_type),
                    (None, Some(Aggregation::First)) => {
                        gather(inputs[feature].as_ref(), &earliest, value_type)
                    }
                    (None, _) => gather(inputs[feature].as_ref(), &latest, value_type),
                }
            })
            .collect()
    }

    /// `first` or `last` for a feature whose cell is one stored row's value (over all of
    /// history), gathered by position rather than computed.
    fn pick(&self, feature: usize) -> Option<Aggregation> {
        let spec = &self.specs[feature];
        (spec.window == Window::Lifetime
            && matches!(spec.aggregation, Aggregation::Last | Aggregation::First))
        .then_some(spec.aggregation)
    }

    /// Whether lifetime features answer at `t`, given the entity's rows up to `t`: not once
    /// the latest is older than the view's TTL.
    fn live(&self, data: &ViewData, rows: &Range<usize>, t: i64) -> bool {
        let latest = data.event_micros(rows.end - 1);
        self.ttl_micros
            .is_none_or(|ttl| t.saturating_sub(latest) <= ttl)
    }

    /// One feature at `t` that is not a pick, given the entity's rows up to `t` (non-empty).
    fn feature(
        &self,
        data: &ViewData,
        inputs: &[Option<ColumnRef>],
        feature: usize,
        rows: Range<usize>,
        t: i64,
        scratch: &mut Scratch,
    ) -> Option<Scalar> {
        let spec = &self.specs[feature];
        if spec.window == Window::Lifetime {
            if !self.live(data, &rows, t) {
                return None;
            }
            if scratch.running.is_none() {
                let positions: Vec<usize> = rows.collect();
                scratch.running = Some(fold_by_entry(
                    data,
                    &self.specs,
                    inputs,
                    &self.layout.running,
                    positions,
                ));
            }
            let running = scratch.running.as_ref()?;
            let position = self.layout.running.iter().position(|m| *m == feature)?;
            // A read merges the running partial into an empty one (as online).
            let mut merged = empty_partial(spec);
            merged.merge(running.partials.get(position)?);
            return merged.finish();
        }
        let (family_index, family) = self
            .layout
            .families
            .iter()
            .enumerate()
            .find(|(_, f)| f.members.contains(&feature))?;
        let (from, to) = tiling::covering(spec.window, family.tile_micros, t);
        if scratch.tiles.len() <= family_index {
            scratch.tiles.resize_with(family_index + 1, || None);
        }
        if scratch.tiles[family_index].is_none() {
            // Every tile any member of the family covers at `t`, folded once.
            let (lo, hi) = family
                .members
                .iter()
                .map(|m| tiling::covering(self.specs[*m].window, family.tile_micros, t))
                .fold((i64::MAX, i64::MIN), |(lo, hi), (f, to)| {
                    (lo.min(f), hi.max(to))
                });
            let start = lo.saturating_mul(family.tile_micros);
            let times = data.event_times(rows.clone());
            let first = rows.start + times.partition_point(|&e| e < start);
            let end = hi.saturating_add(1).saturating_mul(family.tile_micros);
            let last = rows.start + times.partition_point(|&e| e < end);
            let mut tiles: Vec<(i64, TileRecord)> = Vec::new();
            let mut position = first;
            while position < last {
                let bucket = tiling::bucket(data.event_micros(position), family.tile_micros);
                let tile_end = position
                    + data
                        .event_times(position..last)
                        .partition_point(|&e| tiling::bucket(e, family.tile_micros) == bucket);
                let record = fold_by_entry(
                    data,
                    &self.specs,
                    inputs,
                    &family.members,
                    (position..tile_end).collect(),
                );
                tiles.push((bucket, record));
                position = tile_end;
            }
            scratch.tiles[family_index] = Some(tiles);
        }
        let tiles = scratch.tiles[family_index].as_ref()?;
        let member = family.members.iter().position(|m| *m == feature)?;
        let mut merged = empty_partial(spec);
        for (bucket, record) in tiles {
            if (from..=to).contains(bucket) {
                if let Some(partial) = record.partials.get(member) {
                    merged.merge(partial);
                }
            }
        }
        merged.finish()
    }
}

/// The values of `column` at `positions` (null where none) as an array of `value_type`, in one
/// typed pass (`take`) instead of a `Scalar` per cell.
fn gather(column: Option<&ColumnRef>, positions: &UInt32Array, value_type: ValueType) -> ArrayRef {
    let Some(stored) = column.and_then(ColumnRef::array) else {
        return new_null_array(&data_type(value_type), positions.len());
    };
    match take(stored.as_ref(), positions, None) {
        Ok(taken) if taken.data_type() == &data_type(value_type) => taken,
        // Stored under another type (a fallback typed an all-null range): value by value, as
        // the cell-by-cell path converts.
        Ok(taken) => {
            let values: Vec<Option<Scalar>> = (0..taken.len())
                .map(|row| scalar_at(taken.as_ref(), row))
                .collect();
            array_of(&values, value_type)
        }
        Err(_) => {
            let values: Vec<Option<Scalar>> = positions
                .iter()
                .map(|i| i.and_then(|i| scalar_at(stored.as_ref(), i as usize)))
                .collect();
            array_of(&values, value_type)
        }
    }
}

/// Per entity row: what its features share (the running record, each family's tiles).
#[derive(Default)]
struct Scratch {
    running: Option<TileRecord>,
    tiles: Vec<Option<Vec<(i64, TileRecord)>>>,
}

impl Scratch {
    fn reset(&mut self) {
        self.running = None;
        self.tiles.iter_mut().for_each(|t| *t = None);
    }
}

/// The record of `members` over rows `positions`, folded as the online store does: rows of
/// one log entry into one record, entries merged in log order.
fn fold_by_entry(
    data: &ViewData,
    specs: &[AggregateSpec],
    inputs: &[Option<ColumnRef>],
    members: &[usize],
    mut positions: Vec<usize>,
) -> TileRecord {
    positions.sort_unstable_by_key(|p| data.sequence(*p));
    let mut merged: Option<TileRecord> = None;
    let mut entry: Option<(u64, TileRecord)> = None;
    let mut values: Vec<Option<Scalar>> = vec![None; specs.len()];
    for position in positions {
        let sequence = data.sequence(position);
        let log_index = sequence >> 32;
        if entry.as_ref().is_some_and(|(index, _)| *index != log_index) {
            if let Some((_, record)) = entry.take() {
                merge_into(&mut merged, record);
            }
        }
        let record = &mut entry
            .get_or_insert_with(|| (log_index, TileRecord::empty(specs, members)))
            .1;
        for m in members {
            values[*m] = inputs[*m].as_ref().and_then(|c| data.value(c, position));
        }
        let refs: Vec<Option<&Scalar>> = values.iter().map(Option::as_ref).collect();
        let stamp = Stamp {
            event_micros: data.event_micros(position),
            sequence,
        };
        record.add(members, stamp, &refs);
    }
    if let Some((_, record)) = entry {
        merge_into(&mut merged, record);
    }
    merged.unwrap_or_else(|| TileRecord::empty(specs, members))
}

/// `merge_stored`'s fold: the first record as it is, later ones merged into it.
fn merge_into(merged: &mut Option<TileRecord>, record: TileRecord) {
    match merged {
        Some(m) => m.merge(&record),
        None => *merged = Some(record),
    }
}

/// The partial a read starts from (as the online read does).
fn empty_partial(spec: &AggregateSpec) -> Partial {
    Partial::empty(
        spec.aggregation,
        spec.column.is_some(),
        Some(spec.value_type),
    )
}
