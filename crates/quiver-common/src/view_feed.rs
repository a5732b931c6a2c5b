//! Turning a source's event batch into what each of its views needs: the transforms' output
//! columns, in order, and the rows a `zscore` excludes. Compute feeds live batches with it and
//! the online store's backfills feed history with it: one implementation, so a backfilled
//! version computes exactly what a live one does.

use std::collections::HashMap;

use quiver_core::aggregate::{Partial, Stamp};
use quiver_core::tiling::ViewAggregates;
use quiver_core::transform::{self, numeric};
use quiver_core::{FeatureView, Scalar, TransformOp};
use quiver_proto::convert::{aggregate_spec_to_pb, scalar_to_value, value_to_scalar};
use quiver_proto::online::{DerivedColumn, EventBatch, Exclusion, ViewEvents};

/// The running statistics of a view's stateful transforms, by transform output name; read from
/// the online store at the start of a micro-batch and carried forward row by row.
pub type Statistics = HashMap<String, Partial>;

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
    /// The read of this version's running statistics (its stateful transforms' column
    /// statistics) as of `as_of_micros`, or `None` when it has no stateful transform. Compute
    /// reads them before each micro-batch, a backfill before each chunk.
    pub fn statistics_request(
        &self,
        project: &str,
        as_of_micros: i64,
    ) -> Option<quiver_proto::online::ReadAggregatesRequest> {
        if !self
            .view
            .transforms
            .iter()
            .any(|t| transform::is_stateful(&t.op))
        {
            return None;
        }
        let fc = self.aggregates.feature_count;
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
            as_of_micros,
        })
    }

    /// The statistics a [`PlannedView::statistics_request`] answered with, by transform name.
    pub fn statistics_from(&self, partials: Vec<Partial>) -> Statistics {
        self.view
            .transforms
            .iter()
            .filter(|t| transform::is_stateful(&t.op))
            .map(|t| t.name.clone())
            .zip(partials)
            .collect()
    }
}

/// Fills `batch.views` for `view`: runs its transforms over every row, marks anomalies, and
/// advances `statistics` with the rows kept (so later rows and batches compare with them).
pub fn feed(batch: &mut EventBatch, view: &PlannedView, statistics: &mut Statistics) {
    let columns = batch.columns.len();
    let rows = batch.rows.len();
    let mut derived: Vec<DerivedColumn> = Vec::with_capacity(view.view.transforms.len());
    // Column name -> input reference (1-based source column, then derived).
    let mut index: HashMap<String, usize> = batch
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i + 1))
        .collect();
    let mut excluded: Vec<Exclusion> = Vec::new();
    let mut is_excluded = vec![false; rows];
    for (t, transform) in view.view.transforms.iter().enumerate() {
        let input = index.get(transform.input.as_str()).copied().unwrap_or(0);
        let value_at = |row: usize| -> Option<Scalar> {
            match input {
                0 => None,
                i if i <= columns => batch.rows[row].values.get(i - 1).and_then(value_to_scalar),
                i => derived
                    .get(i - columns - 1)
                    .and_then(|d| d.values.get(row))
                    .and_then(value_to_scalar),
            }
        };
        let mut values = Vec::with_capacity(rows);
        match &transform.op {
            TransformOp::TokenCount => {
                for row in 0..rows {
                    values.push(scalar_to_value(match value_at(row) {
                        Some(Scalar::String(s)) => Some(Scalar::Int64(transform::token_count(&s))),
                        _ => None,
                    }));
                }
            }
            TransformOp::NgramHash { n, buckets } => {
                for row in 0..rows {
                    values.push(scalar_to_value(match value_at(row) {
                        Some(Scalar::String(s)) => {
                            Some(Scalar::Float32List(transform::ngram_hash(&s, *n, *buckets)))
                        }
                        _ => None,
                    }));
                }
            }
            TransformOp::Standardize { .. } | TransformOp::ZScore { .. } => {
                let stats = statistics.entry(transform.name.clone()).or_insert_with(|| {
                    Partial::empty(quiver_core::Aggregation::Stddev, true, None)
                });
                let threshold = match transform.op {
                    TransformOp::ZScore { exclude_above, .. } => exclude_above,
                    _ => None,
                };
                for (row, excluded_row) in is_excluded.iter_mut().enumerate() {
                    let x = numeric(value_at(row).as_ref());
                    let score = x.and_then(|x| match transform.op {
                        TransformOp::ZScore { .. } => transform::zscore(x, stats),
                        _ => transform::standardize(x, stats),
                    });
                    if !*excluded_row && transform::is_anomalous(score, stats, threshold) {
                        *excluded_row = true;
                        excluded.push(Exclusion {
                            row: row as u32,
                            reason: format!(
                                "anomalous: zscore {:.3} of {} is above {}",
                                score.unwrap_or_default(),
                                transform.input,
                                threshold.unwrap_or_default()
                            ),
                        });
                    }
                    if let (Some(x), false) = (x, *excluded_row) {
                        stats.update(
                            Some(&Scalar::Float64(x)),
                            Stamp {
                                event_micros: batch.event_micros[row],
                                sequence: 0,
                            },
                        );
                    }
                    values.push(scalar_to_value(score.map(Scalar::Float64)));
                }
            }
        }
        derived.push(DerivedColumn {
            name: transform.name.clone(),
            values,
        });
        index.insert(transform.name.clone(), columns + t + 1);
    }
    let inputs = view
        .aggregates
        .specs
        .iter()
        .map(|spec| {
            spec.column
                .as_deref()
                .and_then(|c| index.get(c).copied())
                .unwrap_or(0) as u32
        })
        .collect();
    batch.views.push(ViewEvents {
        view: view.view.name.clone(),
        version: view.version,
        aggregates: view.aggregates_pb(),
        feature_count: view.aggregates.feature_count as u32,
        derived,
        inputs,
        excluded,
    });
}
