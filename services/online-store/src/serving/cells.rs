//! Reading a plan's views for the requested entities and turning what is stored into cells.
//!
//! Cell rules (the same as the offline path will use): no stored row -> `NOT_FOUND`; a row
//! older than the view's TTL at `as_of` (`as_of - event_time > ttl`) -> `OUTSIDE_TTL` with the
//! row's timestamp; a null value -> `NULL_VALUE`; otherwise `PRESENT`. The online store keeps
//! the latest row per entity, so a row newer than `as_of` cannot say what was true at `as_of`:
//! that cell is `INVALID` (point-in-time history is the offline store's job).

use quiver_core::tiling::{self};
use quiver_core::transform;
use quiver_core::{Aggregation, Feature, FeatureView, TransformOp, Window};
use quiver_proto::convert::{micros_to_timestamp, scalar_to_value};
use quiver_proto::online::StoredRow;
use quiver_proto::types::value::Kind;
use quiver_proto::types::{FieldStatus, Value};

use crate::entity_stamps::Slot;
use crate::error::OnlineStoreError;
use crate::sealed_tiles::{watermark_and_sealing, Sealing};
use crate::store_reader::StoreReader;
use crate::tile_read::{read_entity, ReadAggregate, ViewTiles};

use super::plan::ReadPlan;
use super::Serving;

/// What was read for one planned view, one element per requested entity: a streamed
/// entity's aggregates (from its running record and tiles), or a directly written row.
#[derive(Default)]
pub(super) struct ViewRows {
    pub(super) entities: Vec<Vec<u8>>,
    pub(super) keys: Vec<Vec<u8>>,
    pub(super) rows: Vec<Option<StoredRow>>,
    pub(super) streamed: Vec<Option<Streamed>>,
    /// The oldest instant a window may start at and still be answered (see
    /// `tiling::retention_start`); `None` before the source's first event.
    pub(super) horizon: Option<i64>,
}

/// A streamed entity's view at `as_of`.
pub(super) struct Streamed {
    /// The entity's latest event time (from its running record).
    pub(super) latest_micros: i64,
    /// One per feature.
    pub(super) features: Vec<ReadAggregate>,
}

impl Serving {
    /// Reads every planned view for every entity: the running record first (streamed
    /// entities), then a directly written row for the others.
    pub(super) fn read(
        &self,
        plan: &ReadPlan,
        reads: &mut [ViewRows],
        as_of_micros: i64,
    ) -> Result<(), OnlineStoreError> {
        let store = StoreReader::new(self.node.state.db())?;
        for (group, read) in plan.groups.iter().zip(reads.iter_mut()) {
            // Only windows reach back to the horizon: a view without any skips the read.
            let windowed = !group.aggregates.features.families.is_empty();
            let (watermark, sealing) = if windowed {
                watermark_and_sealing(
                    &self.node.state,
                    &store,
                    &self.sealed,
                    &group.watermark_key,
                    group.lateness_micros,
                )?
            } else {
                (None, None)
            };
            read.horizon = watermark.map(|w| {
                tiling::retention_start(
                    w,
                    group.lateness_micros,
                    group.aggregates.features.longest_micros,
                )
            });
            // A view whose rows were only ever written directly has no running records: its
            // reads skip a lookup that would miss for every entity.
            let streams = self
                .node
                .state
                .streamed_views()
                .has_records(&store, &group.running_prefix);
            // Each entity's write counter, before its running record and tiles are read.
            let stamps = self.node.state.entity_stamps();
            let entity_stamps: Vec<u64> = match sealing {
                Some(_) if streams => read
                    .entities
                    .iter()
                    .map(|entity| stamps.get(Slot::of(entity)))
                    .collect(),
                _ => Vec::new(),
            };
            let running = if streams {
                store.running_records(&group.running_prefix, &read.entities)?
            } else {
                vec![None; read.entities.len()]
            };
            let aggregates = &group.aggregates;
            let mut missing = Vec::new();
            read.streamed = Vec::with_capacity(read.entities.len());
            for (row, record) in running.into_iter().enumerate() {
                let Some(record) = record else {
                    missing.push(row);
                    read.streamed.push(None);
                    continue;
                };
                let features = read_entity(
                    &store,
                    ViewTiles {
                        prefix: &group.tiles_prefix,
                        specs: aggregates.feature_specs(),
                        layout: &aggregates.features,
                    },
                    &read.entities[row],
                    as_of_micros,
                    Some(&record),
                    sealing
                        .zip(entity_stamps.get(row))
                        .map(|(s, &stamp)| Sealing {
                            entity_stamp: Some(stamp),
                            ..s
                        }),
                )?;
                read.streamed.push(Some(Streamed {
                    latest_micros: record.max_event_micros,
                    features,
                }));
            }
            read.rows = vec![None; read.entities.len()];
            if missing.is_empty() {
                continue;
            }
            let rows = store.rows(missing.iter().map(|r| &read.keys[*r]))?;
            for (row, stored) in missing.into_iter().zip(rows) {
                read.rows[row] = stored;
            }
        }
        Ok(())
    }
}

pub(super) fn null() -> Value {
    Value { kind: None }
}

/// The transform a `first`/`last` feature applies to the value its record keeps: under
/// admission rules 5 the record of such a feature over a stateless transform's output keeps
/// the transform's input (a note, not its 64-float vector; `view_feed::leave_out_recomputable`).
pub(super) fn finishing(view: &FeatureView, feature: &Feature) -> Option<TransformOp> {
    if !matches!(feature.aggregation, Aggregation::First | Aggregation::Last) {
        return None;
    }
    let column = feature.column.as_deref()?;
    view.transforms
        .iter()
        .find(|t| t.name == column)
        .map(|t| t.op.clone())
        .filter(transform::is_recomputable)
}

/// `value` as the feature serves it: a kept input (text) goes through the transform; a value
/// kept before rules 5 (the output itself) is served as it is.
pub(super) fn finished(finish: Option<&TransformOp>, value: Value) -> Value {
    match (finish, &value.kind) {
        (Some(op), Some(Kind::StringValue(text))) => match transform::apply_stateless(op, text) {
            Some(output) => scalar_to_value(Some(output)),
            None => value,
        },
        _ => value,
    }
}

/// One cell of a streamed entity. Windowed features: the merged window, `PRESENT` (or
/// `NULL_VALUE` for an aggregate of no values), stamped with the latest event in the window.
/// Lifetime features (and `first`/`last` without a window) hold the running value, which cannot
/// answer for a time before the entity's latest event (`INVALID`; history is the offline
/// store's), and expires with the view's TTL (`OUTSIDE_TTL`, stamped with the latest event).
/// A window starting before `horizon` is `INVALID` too: its tiles may have been collected.
pub(super) fn streamed_cell(
    streamed: &Streamed,
    feature: usize,
    window: Window,
    ttl_micros: Option<i64>,
    horizon: Option<i64>,
    as_of_micros: i64,
    past_as_of: bool,
) -> (Value, FieldStatus, prost_types::Timestamp) {
    let Some(read) = streamed.features.get(feature) else {
        return (
            null(),
            FieldStatus::Invalid,
            prost_types::Timestamp::default(),
        );
    };
    let stamp = |micros: i64| {
        if micros == i64::MIN {
            prost_types::Timestamp::default()
        } else {
            micros_to_timestamp(micros)
        }
    };
    if let (Some(tile), Some(horizon)) = (tiling::tile_micros(window), horizon) {
        if tiling::window_start(window, tile, as_of_micros) < horizon {
            return (
                null(),
                FieldStatus::Invalid,
                prost_types::Timestamp::default(),
            );
        }
    }
    // A window whose newest tile holds events after `as_of` would leak them into a past
    // read: a tile cannot be cut at `as_of`. Such a read is `INVALID` (the offline snapshot
    // answers it exactly); reads at the present never see later events.
    if window != Window::Lifetime && past_as_of && read.max_event_micros > as_of_micros {
        return (null(), FieldStatus::Invalid, stamp(read.max_event_micros));
    }
    if window == Window::Lifetime {
        let latest = streamed.latest_micros;
        if as_of_micros < latest {
            return (null(), FieldStatus::Invalid, stamp(latest));
        }
        if ttl_micros.is_some_and(|ttl| as_of_micros.saturating_sub(latest) > ttl) {
            return (null(), FieldStatus::OutsideTtl, stamp(latest));
        }
    }
    match read.partial.finish() {
        Some(value) => (
            scalar_to_value(Some(value)),
            FieldStatus::Present,
            stamp(read.max_event_micros),
        ),
        None => (null(), FieldStatus::NullValue, stamp(read.max_event_micros)),
    }
}

#[cfg(test)]
mod tests {
    use quiver_core::{Scalar, Transform, ValueType};

    use super::*;

    fn view() -> FeatureView {
        let feature = |name: &str, column: &str, aggregation| Feature {
            name: name.into(),
            column: Some(column.into()),
            aggregation,
            window: Window::Lifetime,
            value_type: ValueType::Float32List,
            description: String::new(),
        };
        FeatureView {
            name: "v".into(),
            entity: "user".into(),
            source: "s".into(),
            ttl: None,
            transforms: vec![
                Transform {
                    name: "grams".into(),
                    input: "note".into(),
                    op: TransformOp::NgramHash { n: 3, buckets: 8 },
                },
                Transform {
                    name: "z".into(),
                    input: "amount".into(),
                    op: TransformOp::ZScore {
                        window: None,
                        exclude_above: None,
                    },
                },
            ],
            features: vec![
                feature("last_grams", "grams", Aggregation::Last),
                feature("count_grams", "grams", Aggregation::Count),
                feature("last_z", "z", Aggregation::Last),
                feature("last_note", "note", Aggregation::Last),
            ],
            description: String::new(),
        }
    }

    /// A `first`/`last` of a stateless transform's output serves the transform of the kept
    /// input, and a value kept as the output (before rules 5) as it is; nothing else changes.
    #[test]
    fn a_kept_input_is_served_through_its_transform() {
        let view = view();
        let finishes: Vec<Option<TransformOp>> =
            view.features.iter().map(|f| finishing(&view, f)).collect();
        let grams = TransformOp::NgramHash { n: 3, buckets: 8 };
        assert_eq!(finishes, [Some(grams.clone()), None, None, None]);
        let value = |s: Scalar| scalar_to_value(Some(s));
        let note = value(Scalar::String("coffee".into()));
        assert_eq!(
            finished(Some(&grams), note.clone()),
            value(Scalar::Float32List(transform::ngram_hash("coffee", 3, 8)))
        );
        let kept_output = value(Scalar::Float32List(vec![1.0; 8]));
        assert_eq!(finished(Some(&grams), kept_output.clone()), kept_output);
        assert_eq!(finished(None, note.clone()), note);
    }
}
