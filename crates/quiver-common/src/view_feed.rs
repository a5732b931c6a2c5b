//! Turning a source's event batch into what each of its views needs: the transforms' output
//! columns, in order, and the rows a `zscore` excludes. Compute feeds live batches with it and
//! the online store's backfills feed history with it: one implementation, so a backfilled
//! version computes exactly what a live one does.

use quiver_core::aggregate::Partial;
use quiver_core::tiling::ViewAggregates;
use quiver_core::transform::{self, numeric};
use quiver_core::{FeatureView, Scalar, Transform, TransformOp, ValueType};
use quiver_proto::convert::{
    aggregate_spec_to_pb, scalar_to_value, transform_from_pb, transform_to_pb, value_to_scalar,
};
use quiver_proto::online::{DerivedColumn, EventBatch, Exclusion, ViewEvents};

pub use crate::view_statistics::Statistics;
use crate::view_statistics::StatisticsWindow;

/// The most times one statistics read asks for (the online store refuses more): a batch whose
/// rows span more tiles reads them in several requests.
pub const MAX_STATISTICS_TIMES: usize = 100_000;

/// A view version to feed.
pub struct PlannedView {
    /// The view.
    pub view: std::sync::Arc<FeatureView>,
    /// Its version.
    pub version: u32,
    /// What the store aggregates for it.
    pub aggregates: ViewAggregates,
}

impl PlannedView {
    /// Plans `view` at `version`.
    pub fn new(view: std::sync::Arc<FeatureView>, version: u32) -> Self {
        let aggregates = ViewAggregates::of_view(&view);
        Self {
            view,
            version,
            aggregates,
        }
    }

    /// The aggregates as carried on the wire (statistics named after their transform).
    pub fn aggregates_pb(&self) -> Vec<quiver_proto::registry::Feature> {
        let fc = self.aggregates.feature_count;
        let stateful: Vec<&str> = self
            .view
            .transforms
            .iter()
            .filter(|t| transform::is_stateful(&t.op))
            .map(|t| t.name.as_str())
            .collect();
        self.aggregates
            .specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let name = if i < fc {
                    self.view.features[i].name.clone()
                } else {
                    format!(
                        "statistics of {}",
                        stateful.get(i - fc).copied().unwrap_or("?")
                    )
                };
                aggregate_spec_to_pb(spec, &name)
            })
            .collect()
    }
}

impl PlannedView {
    /// The version's stateful transforms with their statistics' windows, in declared order
    /// (the order the store answers a statistics read in).
    fn stateful(&self) -> impl Iterator<Item = (&str, StatisticsWindow)> {
        self.view
            .transforms
            .iter()
            .filter_map(|t| StatisticsWindow::of(&t.op).map(|w| (t.name.as_str(), w)))
    }

    /// The instants whose stored statistics `rows` need and `statistics` does not hold yet:
    /// for each stateful transform over a window, one per tile the rows' event times fall in
    /// (a row reads the window ending with its own tile); one for lifetime statistics. Empty
    /// when the version has no stateful transform or nothing is missing.
    fn statistics_moments(&self, rows: &impl FeedRows, statistics: &Statistics) -> Vec<i64> {
        let mut moments = std::collections::BTreeSet::new();
        let mut lifetime = None;
        for (name, window) in self.stateful() {
            let mut previous = None;
            for row in 0..rows.len() {
                let event_micros = rows.event_micros(row);
                let key = window.key(event_micros);
                if previous == Some(key) || statistics.holds(name, key) {
                    previous = Some(key);
                    continue;
                }
                previous = Some(key);
                match window.moment(key) {
                    Some(moment) => {
                        moments.insert(moment);
                    }
                    None => {
                        lifetime = Some(event_micros);
                        break;
                    }
                }
            }
        }
        // Lifetime statistics come with any read.
        if let (Some(any), true) = (lifetime, moments.is_empty()) {
            moments.insert(any);
        }
        moments.into_iter().collect()
    }

    /// The reads of the stored statistics `rows` need and `statistics` does not hold yet (see
    /// [`Self::statistics_moments`]), at most [`MAX_STATISTICS_TIMES`] times each: every
    /// request reads the windows ending at each of its times, one record per time, in order
    /// (`as_of_micros`, then `more_as_of_micros`). Empty when nothing is missing. Compute sends
    /// them to the online store, a backfill reads them locally; both hand the answers to
    /// [`Self::add_statistics`].
    pub fn statistics_reads(
        &self,
        project: &str,
        rows: &impl FeedRows,
        statistics: &Statistics,
    ) -> Vec<quiver_proto::online::ReadAggregatesRequest> {
        let moments = self.statistics_moments(rows, statistics);
        let fc = self.aggregates.feature_count;
        moments
            .chunks(MAX_STATISTICS_TIMES)
            .filter_map(|times| {
                let (first, more) = times.split_first()?;
                Some(quiver_proto::online::ReadAggregatesRequest {
                    project: project.to_string(),
                    view: self.view.name.clone(),
                    version: self.version,
                    aggregates: self.aggregates_pb(),
                    feature_count: fc as u32,
                    read: (fc..self.aggregates.specs.len())
                        .map(|i| i as u32)
                        .collect(),
                    entity_key: Vec::new(),
                    as_of_micros: *first,
                    more_as_of_micros: more.to_vec(),
                })
            })
            .collect()
    }

    /// Adds to `statistics` what `read` (one of [`Self::statistics_reads`]) answered: one
    /// record's partials per time it asked for, in order, each one partial per stateful
    /// transform. An answer with another number of records is an error.
    pub fn add_statistics(
        &self,
        statistics: &mut Statistics,
        read: &quiver_proto::online::ReadAggregatesRequest,
        answered: Vec<Vec<Partial>>,
    ) -> Result<(), String> {
        let times = 1 + read.more_as_of_micros.len();
        if answered.len() != times {
            return Err(format!(
                "the online store answered {} statistics reads for {times} times",
                answered.len()
            ));
        }
        let moments =
            std::iter::once(read.as_of_micros).chain(read.more_as_of_micros.iter().copied());
        for (as_of_micros, partials) in moments.zip(answered) {
            for ((name, window), stored) in self.stateful().zip(partials) {
                statistics.insert(name, window, window.key(as_of_micros), stored);
            }
        }
        Ok(())
    }
}

/// Rows a view's transforms read: compute and backfills feed event batches, snapshots the
/// source log's Arrow columns.
pub trait FeedRows {
    /// The number of rows.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The position of the source column `name`, if the rows have it.
    fn column(&self, name: &str) -> Option<usize>;
    /// The value of source column `column` at `row`.
    fn value(&self, column: usize, row: usize) -> Option<Scalar>;
    /// The event time of `row`.
    fn event_micros(&self, row: usize) -> i64;
}

/// What a view's transforms made of some rows.
pub struct Derived {
    /// Each transform's output column, in declared order: (name, one value per row).
    pub columns: Vec<(String, Vec<Option<Scalar>>)>,
    /// The rows a `zscore` excluded, with why.
    pub excluded: Vec<(usize, String)>,
}

/// The type of a transform's output column.
pub fn output_type(op: &TransformOp) -> ValueType {
    match op {
        TransformOp::TokenCount => ValueType::Int64,
        TransformOp::NgramHash { .. } => ValueType::Float32List,
        TransformOp::Standardize { .. } | TransformOp::ZScore { .. } => ValueType::Float64,
    }
}

/// Runs `transforms` over `rows` in row order, marks anomalies, and advances `statistics` with
/// the rows kept (so later rows, and later calls, compare with them). The one implementation of
/// the transforms: live batches, backfills and snapshots all go through it.
pub fn derive(
    transforms: &[Transform],
    rows: &impl FeedRows,
    statistics: &mut Statistics,
) -> Derived {
    let count = rows.len();
    let mut columns: Vec<(String, Vec<Option<Scalar>>)> = Vec::with_capacity(transforms.len());
    let mut excluded: Vec<(usize, String)> = Vec::new();
    let mut is_excluded = vec![false; count];
    for transform in transforms {
        // An earlier transform's output shadows a source column of the same name.
        let input = match columns
            .iter()
            .position(|(name, _)| *name == transform.input)
        {
            Some(d) => Input::Derived(d),
            None => rows
                .column(&transform.input)
                .map_or(Input::Missing, Input::Source),
        };
        let value_at = |row: usize| -> Option<Scalar> {
            match input {
                Input::Missing => None,
                Input::Source(c) => rows.value(c, row),
                Input::Derived(d) => columns[d].1.get(row).cloned().flatten(),
            }
        };
        let mut values = Vec::with_capacity(count);
        match &transform.op {
            op @ (TransformOp::TokenCount | TransformOp::NgramHash { .. }) => {
                for row in 0..count {
                    values.push(match value_at(row) {
                        Some(Scalar::String(text)) => transform::apply_stateless(op, &text),
                        _ => None,
                    });
                }
            }
            TransformOp::Standardize { .. } | TransformOp::ZScore { .. } => {
                let window =
                    StatisticsWindow::of(&transform.op).unwrap_or(StatisticsWindow::Lifetime);
                let threshold = match transform.op {
                    TransformOp::ZScore { exclude_above, .. } => exclude_above,
                    _ => None,
                };
                let carried = statistics.of(&transform.name);
                for (row, excluded_row) in is_excluded.iter_mut().enumerate() {
                    let x = numeric(value_at(row).as_ref());
                    let event_micros = rows.event_micros(row);
                    let key = window.key(event_micros);
                    let stats = carried.at(window, key);
                    let score = x.and_then(|x| match transform.op {
                        TransformOp::ZScore { .. } => transform::zscore(x, stats),
                        _ => transform::standardize(x, stats),
                    });
                    if !*excluded_row && transform::is_anomalous(score, stats, threshold) {
                        *excluded_row = true;
                        excluded.push((
                            row,
                            format!(
                                "anomalous: zscore {:.3} of {} is above {}",
                                score.unwrap_or_default(),
                                transform.input,
                                threshold.unwrap_or_default()
                            ),
                        ));
                    }
                    if let (Some(x), false) = (x, *excluded_row) {
                        carried.keep(window, key, x, event_micros);
                    }
                    values.push(score.map(Scalar::Float64));
                }
            }
        }
        columns.push((transform.name.clone(), values));
    }
    Derived { columns, excluded }
}

#[derive(Clone, Copy)]
enum Input {
    Missing,
    Source(usize),
    Derived(usize),
}

impl FeedRows for EventBatch {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn value(&self, column: usize, row: usize) -> Option<Scalar> {
        self.rows[row].values.get(column).and_then(value_to_scalar)
    }

    fn event_micros(&self, row: usize) -> i64 {
        self.event_micros.get(row).copied().unwrap_or_default()
    }
}

/// Fills `batch.views` for `view`: runs its transforms over every row, marks anomalies, and
/// advances `statistics` with the rows kept (so later rows and batches compare with them).
pub fn feed(batch: &mut EventBatch, view: &PlannedView, statistics: &mut Statistics) {
    let Derived { columns, excluded } = derive(&view.view.transforms, &*batch, statistics);
    // Input references: 1-based source column, then derived; a derived column shadows a
    // source column of the same name, as in `derive`.
    let source_columns = batch.columns.len();
    let input_of = |name: &str| -> u32 {
        columns
            .iter()
            .position(|(n, _)| n == name)
            .map(|d| source_columns + d + 1)
            .or_else(|| batch.column(name).map(|c| c + 1))
            .unwrap_or(0) as u32
    };
    let inputs = view
        .aggregates
        .specs
        .iter()
        .map(|spec| spec.column.as_deref().map_or(0, input_of))
        .collect();
    let transforms = &view.view.transforms;
    let derived = columns
        .into_iter()
        .enumerate()
        .map(|(t, (name, values))| DerivedColumn {
            name,
            values: values.into_iter().map(scalar_to_value).collect(),
            recompute: recomputable(transforms, t, batch).then(|| transform_to_pb(&transforms[t])),
        })
        .collect();
    batch.views.push(ViewEvents {
        view: view.view.name.clone(),
        version: view.version,
        aggregates: view.aggregates_pb(),
        feature_count: view.aggregates.feature_count as u32,
        derived,
        inputs,
        excluded: excluded
            .into_iter()
            .map(|(row, reason)| Exclusion {
                row: row as u32,
                reason,
            })
            .collect(),
    });
}

/// Whether transform `t` of `transforms` can be computed again from `batch`'s rows alone: it is
/// stateless and reads a source column of the batch that no earlier transform shadows.
fn recomputable(transforms: &[Transform], t: usize, batch: &EventBatch) -> bool {
    let transform = &transforms[t];
    transform::is_recomputable(&transform.op)
        && batch.column(&transform.input).is_some()
        && !transforms[..t].iter().any(|e| e.name == transform.input)
}

/// Leaves out of `batch` the derived values [`recompute_derived`] can compute again (those
/// marked `recompute`), and points every `first`/`last` of such a column at the transform's
/// input: the record then keeps a row's text, not its vector, and serving applies the
/// transform to the value it returns. The leader does so for log entries once every member
/// runs the rules that recompute and finish them (`RECOMPUTE_RULES`).
pub fn leave_out_recomputable(batch: &mut EventBatch) {
    let source_columns = batch.columns.len();
    for view in &mut batch.views {
        for (input, aggregate) in view.inputs.iter_mut().zip(&view.aggregates) {
            let keeps_a_value = matches!(
                quiver_proto::registry::Aggregation::try_from(aggregate.aggregation),
                Ok(quiver_proto::registry::Aggregation::First
                    | quiver_proto::registry::Aggregation::Last)
            );
            let derived = (*input as usize)
                .checked_sub(source_columns + 1)
                .and_then(|d| view.derived.get(d));
            let source = derived
                .and_then(|d| d.recompute.as_ref())
                .and_then(|t| batch.columns.iter().position(|c| *c == t.input));
            if let (true, Some(column)) = (keeps_a_value, source) {
                *input = column as u32 + 1;
            }
        }
        for column in &mut view.derived {
            if column.recompute.is_some() {
                column.values = Vec::new();
            }
        }
    }
}

/// Computes again the derived values [`leave_out_recomputable`] left out, from the batch's rows
/// with the transforms' one implementation ([`derive`]), so apply and the export see what
/// compute did. A column it cannot compute (no valid stateless transform: an entry no leader
/// of this version writes) is null in every row, alike on every replica.
pub fn recompute_derived(batch: &mut EventBatch) {
    let rows = batch.rows.len();
    for v in 0..batch.views.len() {
        for d in 0..batch.views[v].derived.len() {
            let column = &batch.views[v].derived[d];
            if column.values.len() == rows {
                continue;
            }
            let transform = column
                .recompute
                .as_ref()
                .and_then(|t| transform_from_pb(t).ok())
                .filter(|t| transform::is_recomputable(&t.op));
            let values = match transform {
                Some(transform) => {
                    let mut derived = derive(&[transform], &*batch, &mut Statistics::default());
                    let (_, values) = derived.columns.pop().unwrap_or_default();
                    values.into_iter().map(scalar_to_value).collect()
                }
                None => vec![quiver_proto::types::Value { kind: None }; rows],
            };
            batch.views[v].derived[d].values = values;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use quiver_core::{Aggregation, Feature, Window};
    use quiver_proto::ingest::Row;
    use quiver_proto::types::value::Kind;
    use quiver_proto::types::Value;

    use super::*;

    fn transform(name: &str, input: &str, op: TransformOp) -> Transform {
        Transform {
            name: name.into(),
            input: input.into(),
            op,
        }
    }

    /// A view over `note` and `amount` with every kind of transform: two stateless ones over
    /// the source column, one over an earlier output (which shadows a source column of its
    /// name), and a zscore.
    fn planned() -> PlannedView {
        let ngrams = TransformOp::NgramHash { n: 3, buckets: 16 };
        let view = FeatureView {
            name: "v".into(),
            entity: "user".into(),
            source: "s".into(),
            ttl: None,
            transforms: vec![
                transform("tokens", "note", TransformOp::TokenCount),
                transform("grams", "note", ngrams.clone()),
                transform("amount", "amount", TransformOp::TokenCount),
                transform("shadowed", "amount", ngrams),
                transform(
                    "z",
                    "amount",
                    TransformOp::ZScore {
                        window: Some(Duration::from_secs(3_600)),
                        exclude_above: None,
                    },
                ),
            ],
            features: vec![
                feature("last_grams", "grams", Aggregation::Last),
                feature("mean_tokens", "tokens", Aggregation::Mean),
                feature("first_shadowed", "shadowed", Aggregation::First),
            ],
            description: String::new(),
        };
        PlannedView::new(Arc::new(view), 1)
    }

    fn feature(name: &str, column: &str, aggregation: Aggregation) -> Feature {
        Feature {
            name: name.into(),
            column: Some(column.into()),
            aggregation,
            window: Window::Lifetime,
            value_type: ValueType::Float32List,
            description: String::new(),
        }
    }

    fn batch() -> EventBatch {
        let text = |s: &str| Value {
            kind: Some(Kind::StringValue(s.into())),
        };
        let notes = ["coffee and cake", "", "ééé", "a b c d"];
        EventBatch {
            columns: vec!["note".into(), "amount".into()],
            rows: notes
                .iter()
                .map(|n| Row {
                    values: vec![text(n), text("12")],
                })
                .chain(std::iter::once(Row {
                    values: vec![Value { kind: None }, Value { kind: None }],
                }))
                .collect(),
            event_micros: vec![1_000_000; 5],
            entity_keys: vec![b"k".to_vec(); 5],
            ..EventBatch::default()
        }
    }

    /// Stateless transforms over a source column are marked for apply to compute again, and
    /// leaving their values out and computing them again gives back the columns compute fed;
    /// a `first`/`last` of such a column then folds the transform's input.
    #[test]
    fn left_out_values_are_computed_again_exactly() {
        let view = planned();
        let mut fed = batch();
        feed(&mut fed, &view, &mut Statistics::new());
        let marked: Vec<bool> = fed.views[0]
            .derived
            .iter()
            .map(|d| d.recompute.is_some())
            .collect();
        // `shadowed` reads the `amount` output, not the source column; `z` has statistics.
        assert_eq!(marked, [true, true, true, false, false]);
        let mut entry = fed.clone();
        leave_out_recomputable(&mut entry);
        let lengths: Vec<usize> = entry.views[0]
            .derived
            .iter()
            .map(|d| d.values.len())
            .collect();
        assert_eq!(lengths, [0, 0, 0, 5, 5]);
        // Inputs count 1-based: source columns (note, amount), then derived columns; the
        // last aggregate is z's statistics (of the `amount` output, which shadows the source).
        assert_eq!(fed.views[0].inputs, [4, 3, 6, 5]);
        assert_eq!(
            entry.views[0].inputs,
            [1, 3, 6, 5],
            "`last` of grams reads the note; a mean, a `first` of a column that is not \
             computed again and the statistics keep their inputs"
        );
        recompute_derived(&mut entry);
        assert_eq!(entry.views[0].derived, fed.views[0].derived);
        // Nothing left out: nothing changes.
        let computed = entry.clone();
        recompute_derived(&mut entry);
        assert_eq!(entry, computed);
    }

    /// A left-out column whose transform is missing or out of bounds (no leader writes one) is
    /// null in every row rather than computed from a hostile spec.
    #[test]
    fn a_column_that_cannot_be_computed_is_null() {
        let view = planned();
        let mut entry = batch();
        feed(&mut entry, &view, &mut Statistics::new());
        leave_out_recomputable(&mut entry);
        let derived = &mut entry.views[0].derived;
        derived[0].recompute = None;
        derived[1].recompute.as_mut().unwrap().buckets = u32::MAX;
        derived[2].recompute.as_mut().unwrap().op = 0;
        recompute_derived(&mut entry);
        for column in &entry.views[0].derived[..3] {
            assert_eq!(
                column.values,
                vec![Value { kind: None }; 5],
                "{}",
                column.name
            );
        }
    }
}
