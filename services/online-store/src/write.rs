//! `quiver.online.v1.OnlineStoreService/Write`: validate a batch of rows against the registry,
//! propose it as one Raft entry, answer once it is committed and applied.

use std::sync::Arc;

use quiver_common::auth::{check_project, Caller};
use quiver_common::registry_cache::Catalog;
use quiver_core::aggregate::{Partial, TileRecord};
use quiver_core::tiling::ViewAggregates;
use quiver_core::{Entity, FeatureView};
use quiver_proto::convert::{aggregate_spec_from_pb, transform_from_pb};
use quiver_proto::convert::{value_type, value_type_name};
use quiver_proto::online::log_command::Kind;
use quiver_proto::online::online_store_service_server::OnlineStoreService;
use quiver_proto::online::{
    EventBatchResult, EventWrite, FeatureRow, ProducersRequest, ProducersResponse,
    ReadAggregatesRequest, ReadAggregatesResponse, RowWrite, ViewStatesRequest, ViewStatesResponse,
    ViewVersionState, WriteEventsRequest, WriteEventsResponse, WriteRequest, WriteResponse,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::error::OnlineStoreError;
use crate::keys::{self, Space};
use crate::node::{Node, GROUP};
use crate::raft::command;
use crate::raft::source_clock::RECOMPUTE_RULES;
use crate::statistics_read::read_statistics_at;
use crate::store_reader::StoreReader;
use crate::tile_read::{read_entity, ViewTiles};
use quiver_common::view_feed::{leave_out_recomputable, MAX_STATISTICS_TIMES};

/// The write service of one node.
#[derive(Clone)]
pub struct Writer {
    node: Arc<Node>,
}

impl Writer {
    /// Writes through `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Checks every row and pins each to a concrete project and view version, so apply needs
    /// no registry lookups (and stays deterministic).
    async fn validate(&self, request: &mut WriteRequest) -> Result<(), OnlineStoreError> {
        if request.rows.is_empty() {
            return Err(OnlineStoreError::InvalidArgument(
                "rows: a write needs at least one row".into(),
            ));
        }
        let limit = self.node.config.max_rows_per_write;
        if request.rows.len() > limit {
            return Err(OnlineStoreError::InvalidArgument(format!(
                "rows: {} rows is over the limit of {limit} per write",
                request.rows.len()
            )));
        }
        // Rows of a batch usually share one view: resolve each (project, view, version) once.
        let catalog = self.node.registry.catalog();
        let mut resolved: Vec<(Target, Resolved)> = Vec::new();
        for (i, row) in request.rows.iter_mut().enumerate() {
            let at = |e: String| OnlineStoreError::InvalidArgument(format!("rows[{i}].{e}"));
            let target = (row.project.clone(), row.view.clone(), row.view_version);
            let index = match resolved.iter().position(|(t, _)| *t == target) {
                Some(index) => index,
                None => {
                    let r = self.resolve(&catalog, &target).await.map_err(at)?;
                    resolved.push((target, r));
                    resolved.len() - 1
                }
            };
            check_row(row, &resolved[index].1).map_err(at)?;
        }
        Ok(())
    }

    /// The concrete project, view version, view and entity a row names.
    async fn resolve(&self, catalog: &Catalog, target: &Target) -> Result<Resolved, String> {
        let (project, view_name, version) = target;
        let project = catalog
            .project(project)
            .map_err(|e| format!("project: {e}"))?;
        let (version, view) = if *version == 0 {
            let latest = catalog
                .view(&project, view_name)
                .ok_or_else(|| format!("view: unknown feature view {view_name:?}"))?;
            (latest.version, latest.view.clone())
        } else {
            let view = self
                .node
                .registry
                .fetch_view_version(&project, view_name, *version)
                .await
                .ok_or_else(|| {
                    format!("view_version: feature view {view_name:?} has no version {version}")
                })?;
            (*version, view)
        };
        let entity = catalog.entity(&project, &view.entity).ok_or_else(|| {
            format!(
                "view: entity {:?} of view {:?} is unknown",
                view.entity, view.name
            )
        })?;
        Ok(Resolved {
            project,
            version,
            view,
            entity: entity.clone(),
        })
    }
}

/// (project, view, version) as a row names them.
type Target = (String, String, u32);

/// What a row's target resolves to.
#[derive(Clone)]
struct Resolved {
    project: String,
    version: u32,
    view: Arc<FeatureView>,
    entity: Arc<Entity>,
}

/// Checks a row against its resolved view and pins it to the concrete project and version.
fn check_row(row: &mut FeatureRow, resolved: &Resolved) -> Result<(), String> {
    row.project.clone_from(&resolved.project);
    row.view_version = resolved.version;
    let (view, entity) = (&resolved.view, &resolved.entity);
    let key = row.entity.as_ref().ok_or("entity: required")?;
    if key.values.len() != entity.join_keys.len() {
        return Err(format!(
            "entity: entity {:?} has {} join key(s), the row has {}",
            entity.name,
            entity.join_keys.len(),
            key.values.len()
        ));
    }
    for (j, (join_key, value)) in entity.join_keys.iter().zip(&key.values).enumerate() {
        if let Some(name) = key.join_keys.get(j) {
            if name != &join_key.name {
                return Err(format!(
                    "entity.join_keys[{j}]: expected {:?}, got {name:?}",
                    join_key.name
                ));
            }
        }
        if value_type(value) != Some(join_key.value_type) {
            return Err(format!(
                "entity.values[{j}]: join key {:?} is {}, got {}",
                join_key.name,
                join_key.value_type,
                value_type_name(value)
            ));
        }
    }
    if row.event_time.is_none() {
        return Err("event_time: required".into());
    }
    if row.values.len() != view.features.len() {
        return Err(format!(
            "values: view {:?} v{} has {} features, the row has {} values",
            view.name,
            row.view_version,
            view.features.len(),
            row.values.len()
        ));
    }
    for (j, (feature, value)) in view.features.iter().zip(&row.values).enumerate() {
        if let Some(t) = value_type(value) {
            if t != feature.value_type {
                return Err(format!(
                    "values[{j}]: feature {:?} is {}, got {t}",
                    feature.name, feature.value_type
                ));
            }
        }
    }
    Ok(())
}

/// How far ahead of the leader's clock an event time may be (a backstop: ingest's own bound,
/// `max_future_skew`, is tighter by default).
const MAX_FUTURE_MICROS: i64 = 24 * 3_600_000_000;

/// Checks a micro-batch of events before it is proposed, so apply never meets a malformed one.
fn check_event_batches(request: &WriteEventsRequest, limit: usize) -> Result<(), String> {
    if request.batches.is_empty() {
        return Err("batches: at least one batch is required".into());
    }
    let total: usize = request.batches.iter().map(|b| b.rows.len()).sum();
    if total > limit {
        return Err(format!(
            "batches: {total} rows is over the limit of {limit} per write"
        ));
    }
    for (i, batch) in request.batches.iter().enumerate() {
        let at = |e: String| format!("batches[{i}].{e}");
        if batch.project.is_empty() || batch.source.is_empty() {
            return Err(at("project, source: required".into()));
        }
        let rows = batch.rows.len();
        if rows == 0 && batch.producer_id.is_empty() {
            // An empty batch only registers its producer with the source.
            return Err(at(
                "rows: at least one row is required without a producer_id".into(),
            ));
        }
        if batch.event_micros.len() != rows || batch.entity_keys.len() != rows {
            return Err(at(format!(
                "event_micros, entity_keys: {} and {} values for {rows} rows",
                batch.event_micros.len(),
                batch.entity_keys.len()
            )));
        }
        // Ingest refuses event times beyond its clock's skew bound; an internal caller that
        // did not is refused here, before a far-future time reaches a watermark.
        let latest = quiver_common::clock::now_micros().saturating_add(MAX_FUTURE_MICROS);
        if let Some(r) = batch.event_micros.iter().position(|t| *t > latest) {
            return Err(at(format!(
                "event_micros[{r}]: {} is more than a day ahead of the online store's clock",
                batch.event_micros[r]
            )));
        }
        for (r, row) in batch.rows.iter().enumerate() {
            if row.values.len() != batch.columns.len() {
                return Err(at(format!(
                    "rows[{r}]: {} values for {} columns",
                    row.values.len(),
                    batch.columns.len()
                )));
            }
            if batch.entity_keys[r].is_empty() {
                return Err(at(format!("entity_keys[{r}]: empty")));
            }
        }
        for (v, view) in batch.views.iter().enumerate() {
            let at = |e: String| at(format!("views[{v}].{e}"));
            for (a, aggregate) in view.aggregates.iter().enumerate() {
                aggregate_spec_from_pb(aggregate)
                    .map_err(|e| at(format!("aggregates[{a}].{e}")))?;
            }
            if view.feature_count as usize > view.aggregates.len()
                || view.inputs.len() != view.aggregates.len()
            {
                return Err(at("feature_count, inputs: do not match aggregates".into()));
            }
            let columns = batch.columns.len() + view.derived.len();
            if let Some(bad) = view.inputs.iter().find(|i| **i as usize > columns) {
                return Err(at(format!("inputs: {bad} is past the {columns} columns")));
            }
            if let Some(d) = view.derived.iter().position(|d| d.values.len() != rows) {
                return Err(at(format!("derived[{d}]: needs one value per row")));
            }
            // The leader may leave these values out of the entry for apply to compute again.
            let recomputable = |t: &quiver_proto::registry::Transform| {
                transform_from_pb(t).is_ok_and(|t| {
                    quiver_core::transform::is_recomputable(&t.op)
                        && batch.columns.contains(&t.input)
                })
            };
            if let Some(d) = view
                .derived
                .iter()
                .position(|d| d.recompute.as_ref().is_some_and(|t| !recomputable(t)))
            {
                return Err(at(format!(
                    "derived[{d}].recompute: not a stateless transform over a column of the batch"
                )));
            }
            if let Some(x) = view.excluded.iter().find(|x| x.row as usize >= rows) {
                return Err(at(format!("excluded: row {} is past the batch", x.row)));
            }
        }
    }
    Ok(())
}

impl Writer {
    /// Refuses writes while this node's disk is low ([`crate::disk_guard`]): `UNAVAILABLE`,
    /// as during an election, since a node with room takes over the leadership.
    fn check_disk(&self) -> Result<(), Status> {
        self.node.check_disk().map_err(|e| {
            let mut status = Status::from(e);
            status.metadata_mut().insert("retry-after-ms", 1_000.into());
            status
        })
    }

    /// Refuses event writes while more than `max_staged_bytes` wait for the offline export.
    fn check_staged(&self) -> Result<(), Status> {
        self.check_disk()?;
        let config = &self.node.config;
        if !config.export {
            return Ok(());
        }
        let staged = self
            .node
            .state
            .export_state()
            .map_err(|e| Status::internal(e.to_string()))?
            .staged_bytes;
        if staged <= config.max_staged_bytes {
            return Ok(());
        }
        crate::metrics::count_staged_refusal();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let mut status = Status::resource_exhausted(format!(
            "the offline store is behind: {:.1} MiB of events wait for export, over \
             max_staged_bytes ({:.1} MiB); the export is failing or slow (see \
             quiver_export_lag_seconds and the leader's log); retry later",
            mib(staged),
            mib(config.max_staged_bytes)
        ));
        status.metadata_mut().insert("retry-after-ms", 1_000.into());
        Err(status)
    }
}

#[tonic::async_trait]
impl OnlineStoreService for Writer {
    async fn write_events(
        &self,
        request: Request<WriteEventsRequest>,
    ) -> Result<Response<WriteEventsResponse>, Status> {
        let request = request.into_inner();
        if !self.node.is_leader() {
            return Err(self.node.not_leader().into());
        }
        let limit = self.node.config.max_rows_per_write * 10;
        check_event_batches(&request, limit).map_err(OnlineStoreError::InvalidArgument)?;
        self.check_staged()?;
        let request_batches = request.batches.len();
        let admission_rules = self
            .node
            .admission_rules
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut batches = request.batches;
        if admission_rules >= RECOMPUTE_RULES {
            batches.iter_mut().for_each(leave_out_recomputable);
        }
        let command = command::command(Kind::Events(EventWrite {
            batches,
            admission_rules,
        }));
        let batches = request_batches;
        let response = self
            .node
            .raft
            .client_write(command)
            .instrument(tracing::info_span!("raft.commit_and_apply", batches))
            .await
            .map_err(|e| self.node.write_error(e))?;
        Ok(Response::new(WriteEventsResponse {
            results: response
                .data
                .events
                .iter()
                .map(|o| EventBatchResult {
                    accepted: o.accepted,
                    late: o.late,
                    anomalous: o.anomalous,
                    duplicate: o.duplicate,
                    fenced: o.fenced,
                    epoch: o.epoch,
                    last_sequence: o.last_sequence,
                    missing_views: o.missing_views.clone(),
                })
                .collect(),
            log_index: response.log_id.index,
        }))
    }

    async fn view_states(
        &self,
        request: Request<ViewStatesRequest>,
    ) -> Result<Response<ViewStatesResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let states = self
            .node
            .state
            .view_states()
            .map_err(|e| OnlineStoreError::Internal(e.to_string()))?;
        let versions = states
            .into_iter()
            .filter(|((project, view, _), _)| {
                (request.project.is_empty() || *project == request.project)
                    && (request.view.is_empty() || *view == request.view)
                    && caller.as_ref().is_none_or(|c| c.projects.contains(project))
            })
            .map(|((project, view, version), state)| ViewVersionState {
                project,
                view,
                version,
                state: Some(state),
            })
            .collect();
        Ok(Response::new(ViewStatesResponse { versions }))
    }

    async fn producers(
        &self,
        request: Request<ProducersRequest>,
    ) -> Result<Response<ProducersResponse>, Status> {
        let request = request.into_inner();
        let progress = crate::producer_progress::read(&self.node, &request)?;
        Ok(Response::new(progress))
    }

    async fn read_aggregates(
        &self,
        request: Request<ReadAggregatesRequest>,
    ) -> Result<Response<ReadAggregatesResponse>, Status> {
        let mut records = read_aggregates_records(&self.node, &request.into_inner())?.into_iter();
        Ok(Response::new(ReadAggregatesResponse {
            record: records.next().map(|r| r.encode()).unwrap_or_default(),
            more_records: records.map(|r| r.encode()).collect(),
        }))
    }

    async fn write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let caller = Caller::of(&request);
        let mut request = request.into_inner();
        if !self.node.is_leader() {
            return Err(self.node.not_leader().into());
        }
        self.check_disk()?;
        // Projects named before anything is validated: a token of one project must not learn
        // another's schema from the validation's messages.
        for row in request.rows.iter().filter(|r| !r.project.is_empty()) {
            check_project(caller.as_ref(), &row.project)?;
        }
        self.validate(&mut request).await?;
        // Rows are pinned to their concrete project now.
        for row in &request.rows {
            check_project(caller.as_ref(), &row.project)?;
        }
        let request_rows = request.rows.len() as u64;
        // Only the rows, the writer and its sequence reach the log.
        let command = command::command(Kind::Rows(RowWrite {
            producer_id: request.producer_id,
            sequence: request.sequence,
            rows: request.rows,
        }));
        let response = self
            .node
            .raft
            .client_write(command)
            .await
            .map_err(|e| self.node.write_error(e))?;
        crate::metrics::count_write(
            response.data.applied,
            response.data.stale,
            if response.data.duplicate {
                request_rows
            } else {
                0
            },
        );
        Ok(Response::new(WriteResponse {
            applied: response.data.applied,
            stale: response.data.stale,
            duplicate: response.data.duplicate,
            log_index: response.log_id.index,
        }))
    }
}

/// The merged partials `request` asks for at its `as_of_micros`, then at each of its
/// `more_as_of_micros`, from this node's applied state (compute reads a view's running
/// statistics with it; so do backfills).
pub(crate) fn read_aggregates_records(
    node: &Node,
    request: &ReadAggregatesRequest,
) -> Result<Vec<TileRecord>, OnlineStoreError> {
    let invalid = OnlineStoreError::InvalidArgument;
    let specs = request
        .aggregates
        .iter()
        .enumerate()
        .map(|(i, a)| {
            aggregate_spec_from_pb(a).map_err(|e| invalid(format!("aggregates[{i}].{e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let aggregates = ViewAggregates::from_specs(specs, request.feature_count as usize);
    let fc = aggregates.feature_count;
    let statistics = request.read.first().is_some_and(|i| *i as usize >= fc);
    if request
        .read
        .iter()
        .any(|i| (*i as usize >= fc) != statistics || *i as usize >= aggregates.specs.len())
    {
        return Err(invalid(
            "read: indexes must all be features or all statistics".into(),
        ));
    }
    let (specs, layout, offset) = if statistics {
        (aggregates.statistics_specs(), &aggregates.statistics, fc)
    } else {
        (aggregates.feature_specs(), &aggregates.features, 0)
    };
    let entity = if request.entity_key.is_empty() {
        keys::STATISTICS_ENTITY.to_vec()
    } else {
        request.entity_key.clone()
    };
    let store = StoreReader::new(node.state.db())?;
    let running_prefix = keys::view_prefix(
        GROUP,
        Space::Running,
        &request.project,
        &request.view,
        request.version,
    );
    let running = store.running_record(&running_prefix, &entity)?;
    let tiles = keys::tiles_prefix(
        GROUP,
        &request.project,
        &request.view,
        request.version,
        statistics,
    );
    let view = ViewTiles {
        prefix: &tiles,
        specs,
        layout,
    };
    let max_event_micros = running.as_ref().map_or(i64::MIN, |r| r.max_event_micros);
    let record = |partials: &[Partial]| TileRecord {
        max_event_micros,
        partials: request
            .read
            .iter()
            .filter_map(|i| partials.get(*i as usize - offset).cloned())
            .collect(),
    };
    if !statistics {
        if !request.more_as_of_micros.is_empty() {
            return Err(invalid(
                "more_as_of_micros: only statistics are read at several times".into(),
            ));
        }
        let read = read_entity(
            &store,
            view,
            &entity,
            request.as_of_micros,
            running.as_ref(),
            None,
        )?;
        let partials: Vec<Partial> = read.into_iter().map(|r| r.partial).collect();
        return Ok(vec![record(&partials)]);
    }
    if request.more_as_of_micros.len() >= MAX_STATISTICS_TIMES {
        return Err(invalid(format!(
            "more_as_of_micros: {} times; at most {MAX_STATISTICS_TIMES} in one read",
            request.more_as_of_micros.len()
        )));
    }
    let moments: Vec<i64> = std::iter::once(request.as_of_micros)
        .chain(request.more_as_of_micros.iter().copied())
        .collect();
    let read = read_statistics_at(&store, view, &entity, running.as_ref(), &moments)?;
    Ok(read.iter().map(|partials| record(partials)).collect())
}

#[cfg(test)]
mod tests {
    use quiver_proto::ingest::Row;
    use quiver_proto::online::{DerivedColumn, EventBatch, ViewEvents};
    use quiver_proto::registry::{Transform, TransformOp};
    use quiver_proto::types::Value;

    use super::*;

    /// A batch of two rows with a `note` column, its view's one derived column `recompute`d by
    /// `transform`.
    fn request(transform: Transform) -> WriteEventsRequest {
        let null = || Value { kind: None };
        WriteEventsRequest {
            batches: vec![EventBatch {
                project: "p".into(),
                source: "s".into(),
                columns: vec!["note".into()],
                rows: vec![
                    Row {
                        values: vec![null()]
                    };
                    2
                ],
                event_micros: vec![1; 2],
                entity_keys: vec![b"k".to_vec(); 2],
                views: vec![ViewEvents {
                    derived: vec![DerivedColumn {
                        name: "grams".into(),
                        values: vec![null(); 2],
                        recompute: Some(transform),
                    }],
                    ..ViewEvents::default()
                }],
                ..EventBatch::default()
            }],
        }
    }

    fn ngrams(input: &str, buckets: u32) -> Transform {
        Transform {
            name: "grams".into(),
            op: TransformOp::NgramHash as i32,
            input: input.into(),
            n: 3,
            buckets,
            ..Transform::default()
        }
    }

    /// The leader leaves out only what apply can compute again within bounds: a `recompute`
    /// that is stateful, out of bounds or reads no column of the batch is refused before it is
    /// proposed.
    #[test]
    fn only_a_bounded_stateless_recompute_over_a_batch_column_is_accepted() {
        assert_eq!(
            check_event_batches(&request(ngrams("note", 64)), 100),
            Ok(())
        );
        let refused = |transform| {
            let error = check_event_batches(&request(transform), 100).unwrap_err();
            assert!(
                error.contains("views[0].derived[0].recompute: not a stateless transform"),
                "{error}"
            );
        };
        refused(ngrams("note", u32::MAX));
        refused(ngrams("amount", 64));
        refused(Transform {
            op: TransformOp::Zscore as i32,
            ..ngrams("note", 64)
        });
    }
}
