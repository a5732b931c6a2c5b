//! `quiver.serving.v1.ServingService/GetFeatures`, answered from this replica's applied state.
//!
//! Cell rules (the same as the offline path will use): no stored row -> `NOT_FOUND`; a row
//! older than the view's TTL at `as_of` (`as_of - event_time > ttl`) -> `OUTSIDE_TTL` with the
//! row's timestamp; a null value -> `NULL_VALUE`; otherwise `PRESENT`. The online store keeps
//! the latest row per entity, so a row newer than `as_of` cannot say what was true at `as_of`:
//! that cell is `INVALID` (point-in-time history is the offline store's job).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prost::Message;
use quiver_common::feature_selection::{resolve_features, FeatureSelection, ResolvedFeature};
use quiver_common::registry_cache::Catalog;
use quiver_common::uri::http_uri;
use quiver_core::aggregate::TileRecord;
use quiver_core::tiling::{self, ViewAggregates};
use quiver_core::{FeatureView, Window};
use quiver_proto::convert::{
    micros_to_timestamp, scalar_to_value, timestamp_to_micros, value_type, value_type_name,
};
use quiver_proto::online::{StoredRow, ViewPhase, ViewState};
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::RecordConsumerRequest;
use quiver_proto::serving::serving_service_server::ServingService;
use quiver_proto::serving::{
    get_features_request, Consistency, FeatureVector, GetFeaturesRequest, GetFeaturesResponse,
    ResponseMetadata, ViewVersion,
};
use quiver_proto::types::{FieldStatus, Value};
use tonic::{Request, Response, Status};

use crate::error::OnlineStoreError;
use crate::keys::{self, Space};
use crate::node::{Node, GROUP};
use crate::raft::types::ReadPolicy;
use crate::raft::views::VersionId;
use crate::tile_read::{read_entity, ReadAggregate};

/// How often one consumer/target pair is reported to the registry at most.
const CONSUMER_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// How many compiled plans are kept per registry revision.
const PLAN_CACHE_ENTRIES: usize = 4_096;

/// The serving service of one node.
#[derive(Clone)]
pub struct Serving {
    node: Arc<Node>,
    reported: Arc<Mutex<HashMap<(String, String), Instant>>>,
    plans: Arc<Mutex<PlanCache>>,
}

/// Compiled plans of the current registry revision, by request fingerprint; emptied when the
/// revision moves. The owned key is kept to rule out fingerprint collisions.
#[derive(Default)]
struct PlanCache {
    revision: (u64, u64),
    plans: HashMap<u64, (PlanKey, Arc<ReadPlan>)>,
}

/// What identifies a plan: the project asked for, the features asked for, the naming.
#[derive(Clone, PartialEq, Eq)]
struct PlanKey {
    project: String,
    features: Option<get_features_request::Features>,
    full_feature_names: bool,
}

impl PlanKey {
    /// Whether `request` asks for exactly this plan (compared without allocating).
    fn matches(&self, request: &GetFeaturesRequest) -> bool {
        self.project == request.project
            && self.features == request.features
            && self.full_feature_names == request.full_feature_names
    }
}

/// A hash of what identifies a request's plan, computed from the borrowed request.
fn fingerprint(request: &GetFeaturesRequest) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.project.hash(&mut hasher);
    match &request.features {
        Some(get_features_request::Features::FeatureService(name)) => (0u8, name).hash(&mut hasher),
        Some(get_features_request::Features::FeatureList(list)) => {
            (1u8, &list.refs).hash(&mut hasher)
        }
        None => 2u8.hash(&mut hasher),
    }
    request.full_feature_names.hash(&mut hasher);
    hasher.finish()
}

/// What a feature list means at one registry revision: the views to read, and where each
/// output column comes from. Compiled once, reused by every request that asks the same.
struct ReadPlan {
    project: String,
    groups: Vec<PlannedView>,
    slots: Vec<Slot>,
}

/// One view version a plan reads.
struct PlannedView {
    view: Arc<FeatureView>,
    version: u32,
    /// What the streaming path keeps for the view (tiles, running record).
    aggregates: ViewAggregates,
    /// The source's watermark key and allowed lateness (they bound how far back windows reach).
    watermark_key: Vec<u8>,
    lateness_micros: i64,
    tiles_prefix: Vec<u8>,
    running_prefix: Vec<u8>,
}

/// One requested output column.
struct Slot {
    name: String,
    group: usize,
    feature: usize,
}

/// What was read for one planned view, one element per requested entity: a streamed
/// entity's aggregates (from its running record and tiles), or a directly written row.
#[derive(Default)]
struct ViewRows {
    entities: Vec<Vec<u8>>,
    keys: Vec<Vec<u8>>,
    rows: Vec<Option<StoredRow>>,
    streamed: Vec<Option<Streamed>>,
    /// The oldest instant a window may start at and still be answered (see
    /// `tiling::retention_start`); `None` before the source's first event.
    horizon: Option<i64>,
}

/// A streamed entity's view at `as_of`.
struct Streamed {
    /// The entity's latest event time (from its running record).
    latest_micros: i64,
    /// One per feature.
    features: Vec<ReadAggregate>,
}

fn invalid(message: String) -> OnlineStoreError {
    OnlineStoreError::InvalidArgument(message)
}

impl Serving {
    /// Serves reads of `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            node,
            reported: Arc::default(),
            plans: Arc::default(),
        }
    }

    /// The plan for `request`, from the cache or compiled now.
    async fn plan(
        &self,
        catalog: &Catalog,
        request: &GetFeaturesRequest,
    ) -> Result<Arc<ReadPlan>, OnlineStoreError> {
        let fingerprint = fingerprint(request);
        // View versions change phase (a backfill finishes) without a registry change.
        let revision = (catalog.revision, self.node.state.views_generation());
        if let Ok(cache) = self.plans.lock() {
            if cache.revision == revision {
                if let Some((key, plan)) = cache.plans.get(&fingerprint) {
                    if key.matches(request) {
                        return Ok(plan.clone());
                    }
                }
            }
        }
        let project = catalog
            .project(&request.project)
            .map_err(|e| invalid(format!("project: {e}")))?;
        let plan = Arc::new(self.compile(catalog, &project, request).await?);
        if let Ok(mut cache) = self.plans.lock() {
            if cache.revision != revision || cache.plans.len() >= PLAN_CACHE_ENTRIES {
                cache.plans.clear();
                cache.revision = revision;
            }
            let key = PlanKey {
                project: request.project.clone(),
                features: request.features.clone(),
                full_feature_names: request.full_feature_names,
            };
            cache.plans.insert(fingerprint, (key, plan.clone()));
        }
        Ok(plan)
    }

    /// Resolves the request's features to view versions and output slots.
    async fn compile(
        &self,
        catalog: &Catalog,
        project: &str,
        request: &GetFeaturesRequest,
    ) -> Result<ReadPlan, OnlineStoreError> {
        let selection = match &request.features {
            Some(get_features_request::Features::FeatureService(name)) => {
                FeatureSelection::Service(name)
            }
            Some(get_features_request::Features::FeatureList(list)) => {
                FeatureSelection::Refs(&list.refs)
            }
            None => {
                return Err(invalid(
                    "features: name a feature_service or a feature_list".into(),
                ))
            }
        };
        let resolved = resolve_features(
            &self.node.registry,
            catalog,
            project,
            selection,
            "feature_list.refs",
        )
        .await
        .map_err(invalid)?;
        // Every view version's phase, read once for the whole plan.
        let phases = self
            .node
            .state
            .view_states()
            .map_err(|e| OnlineStoreError::Internal(e.to_string()))?;
        let mut servable = Vec::with_capacity(resolved.len());
        for (i, feature) in resolved.into_iter().enumerate() {
            servable.push(self.servable(project, &phases, feature, i).await?);
        }
        let resolved = servable;
        let mut groups: Vec<PlannedView> = Vec::new();
        let mut slots = Vec::with_capacity(resolved.len());
        for ResolvedFeature {
            reference,
            version,
            view,
            feature,
        } in resolved
        {
            let group = match groups
                .iter()
                .position(|g| g.view.name == view.name && g.version == version)
            {
                Some(g) => g,
                None => {
                    let prefix =
                        |space| keys::view_prefix(GROUP, space, project, &view.name, version);
                    groups.push(PlannedView {
                        aggregates: ViewAggregates::of_view(&view),
                        tiles_prefix: keys::tiles_prefix(
                            GROUP, project, &view.name, version, false,
                        ),
                        watermark_key: keys::watermark_key(GROUP, project, &view.source),
                        lateness_micros: catalog
                            .source(project, &view.source)
                            .map_or(0, |s| tiling::micros(s.allowed_lateness)),
                        running_prefix: prefix(Space::Running),
                        view,
                        version,
                    });
                    groups.len() - 1
                }
            };
            let name = if request.full_feature_names {
                format!("{}__{}", reference.view, reference.feature)
            } else {
                reference.to_string()
            };
            slots.push(Slot {
                name,
                group,
                feature,
            });
        }
        Ok(ReadPlan {
            project: project.to_string(),
            groups,
            slots,
        })
    }

    /// The version a resolved feature is read from: the one resolved when the online store
    /// serves it; for an unpinned ref whose latest version is still backfilling, the newest
    /// version that serves (if it has the feature); otherwise `UNAVAILABLE` saying why.
    async fn servable(
        &self,
        project: &str,
        phases: &[(VersionId, ViewState)],
        feature: ResolvedFeature,
        position: usize,
    ) -> Result<ResolvedFeature, OnlineStoreError> {
        let view = feature.view.name.clone();
        let states: Vec<(u32, ViewState)> = phases
            .iter()
            .filter(|((p, v, _), _)| p == project && *v == view)
            .map(|((_, _, version), state)| (*version, state.clone()))
            .collect();
        let state = states
            .iter()
            .find(|(v, _)| *v == feature.version)
            .map(|(_, s)| s.clone());
        if state.is_none() && states.is_empty() {
            // A view the store has never registered (written directly, or applied a moment
            // ago with nothing streamed yet) reads what is there.
            return Ok(feature);
        }
        let not_yet = || {
            match &state {
            Some(state) => format!(
                "feature view {view:?} version {} is backfilling ({} of {} events); it serves when the backfill ends",
                feature.version, state.backfilled_rows, state.backfill_total
            ),
            None => format!(
                "feature view {view:?} version {} is starting in the online store (its backfill begins)",
                feature.version
            ),
        }
        };
        match state.as_ref().map(|s| ViewPhase::try_from(s.phase)) {
            Some(Ok(ViewPhase::Serving)) => Ok(feature),
            Some(Ok(ViewPhase::Retired)) => Err(invalid(format!(
                "feature_list.refs[{position}]: feature view {view:?} version {} is retired (a newer version replaced it and its data is gone); read the latest",
                feature.version
            ))),
            _ if feature.reference.version.is_some() => Err(OnlineStoreError::Unavailable(
                format!("feature_list.refs[{position}]: {}", not_yet()),
            )),
            _ => {
                // Unpinned: the newest serving version keeps answering, if it has the feature.
                let serving = states
                    .iter()
                    .filter(|(_, s)| s.phase == ViewPhase::Serving as i32)
                    .map(|(v, _)| *v)
                    .max();
                let name = &feature.reference.feature;
                if let Some(version) = serving {
                    if let Some(definition) = self
                        .node
                        .registry
                        .fetch_view_version(project, &view, version)
                        .await
                    {
                        if let Some(index) =
                            definition.features.iter().position(|f| f.name == *name)
                        {
                            return Ok(ResolvedFeature {
                                reference: feature.reference,
                                version,
                                view: definition,
                                feature: index,
                            });
                        }
                    }
                }
                Err(OnlineStoreError::Unavailable(format!(
                    "feature_list.refs[{position}]: {}, and no serving version has feature {name:?}",
                    not_yet()
                )))
            }
        }
    }

    /// Encodes every row's entity key for every view, checking join keys and their types.
    fn entity_keys(
        &self,
        catalog: &Catalog,
        request: &GetFeaturesRequest,
        plan: &ReadPlan,
    ) -> Result<(usize, Vec<ViewRows>), OnlineStoreError> {
        let columns = &request.entities;
        if columns.is_empty() {
            return Err(invalid(
                "entities: at least one join key column is required".into(),
            ));
        }
        let rows = columns[0]
            .values
            .as_ref()
            .map(|v| v.values.len())
            .unwrap_or(0);
        for (i, column) in columns.iter().enumerate() {
            let len = column.values.as_ref().map(|v| v.values.len()).unwrap_or(0);
            if len != rows {
                return Err(invalid(format!(
                    "entities[{i}] ({:?}): {len} values, but entities[0] has {rows}; every join key column needs one value per row",
                    column.name
                )));
            }
        }
        if rows == 0 {
            return Err(invalid("entities: no entity rows given".into()));
        }
        let limit = self.node.config.max_entities_per_request;
        if rows > limit {
            return Err(invalid(format!(
                "entities: {rows} rows is over the limit of {limit} per request"
            )));
        }
        let mut used = vec![false; columns.len()];
        let mut reads = Vec::with_capacity(plan.groups.len());
        for group in &plan.groups {
            let entity = catalog
                .entity(&plan.project, &group.view.entity)
                .ok_or_else(|| {
                    OnlineStoreError::Unavailable(format!(
                        "entity {:?} is not loaded yet",
                        group.view.entity
                    ))
                })?;
            let mut key_columns = Vec::with_capacity(entity.join_keys.len());
            for join_key in &entity.join_keys {
                let index = columns
                    .iter()
                    .position(|c| c.name == join_key.name)
                    .ok_or_else(|| {
                        invalid(format!(
                            "entities: missing join key {:?} (entity {:?} of view {:?})",
                            join_key.name, entity.name, group.view.name
                        ))
                    })?;
                used[index] = true;
                let values = columns[index]
                    .values
                    .as_ref()
                    .map(|v| v.values.as_slice())
                    .unwrap_or_default();
                for (row, value) in values.iter().enumerate() {
                    if value_type(value) != Some(join_key.value_type) {
                        return Err(invalid(format!(
                            "entities[{index}] ({:?}) row {row}: expected {}, got {}",
                            join_key.name,
                            join_key.value_type,
                            value_type_name(value)
                        )));
                    }
                }
                key_columns.push(values);
            }
            let entities = (0..rows)
                .map(|row| {
                    let values: Vec<Value> = key_columns.iter().map(|c| c[row].clone()).collect();
                    keys::encode_entity(&values)
                        .map_err(|e| invalid(format!("entities row {row}: {e}")))
                })
                .collect::<Result<Vec<_>, OnlineStoreError>>()?;
            let keys = entities
                .iter()
                .map(|entity| {
                    keys::row_key(
                        GROUP,
                        &plan.project,
                        &group.view.name,
                        group.version,
                        entity,
                    )
                })
                .collect();
            reads.push(ViewRows {
                entities,
                keys,
                ..ViewRows::default()
            });
        }
        if let Some(unused) = used.iter().position(|u| !*u) {
            return Err(invalid(format!(
                "entities[{unused}]: {:?} is not a join key of any requested view",
                columns[unused].name
            )));
        }
        Ok((rows, reads))
    }

    async fn linearize(&self) -> Result<(), OnlineStoreError> {
        if !self.node.is_leader() {
            return Err(self.node.not_leader());
        }
        let wait = self.node.config.election_timeout_max * 2;
        match tokio::time::timeout(
            wait,
            self.node.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(openraft::error::RaftError::APIError(
                openraft::error::LinearizableReadError::ForwardToLeader(_),
            ))) => Err(self.node.not_leader()),
            Ok(Err(e)) => Err(OnlineStoreError::Unavailable(format!(
                "a STRONG read needs a quorum: {e}"
            ))),
            Err(_) => Err(OnlineStoreError::Unavailable(format!(
                "a STRONG read could not reach a quorum within {wait:?}"
            ))),
        }
    }

    /// Reads every planned view for every entity: the running record first (streamed
    /// entities), then a directly written row for the others.
    fn read(
        &self,
        plan: &ReadPlan,
        reads: &mut [ViewRows],
        as_of_micros: i64,
    ) -> Result<(), OnlineStoreError> {
        let db = self.node.state.db();
        let cf = db
            .cf_handle(keys::CF_SM_DATA)
            .ok_or_else(|| OnlineStoreError::Internal("column family sm_data is missing".into()))?;
        let fail = |e: rocksdb::Error| OnlineStoreError::Internal(format!("read failed: {e}"));
        for (group, read) in plan.groups.iter().zip(reads.iter_mut()) {
            let running_keys: Vec<Vec<u8>> = read
                .entities
                .iter()
                .map(|e| keys::running_key(&group.running_prefix, e))
                .collect();
            read.horizon = db
                .get_cf(cf, &group.watermark_key)
                .map_err(fail)?
                .and_then(|v| v.as_slice().try_into().ok().map(keys::from_ordered_i64))
                .map(|w| {
                    tiling::retention_start(
                        w,
                        group.lateness_micros,
                        group.aggregates.features.longest_micros,
                    )
                });
            let running = db.batched_multi_get_cf(cf, running_keys.iter(), false);
            let aggregates = &group.aggregates;
            let mut missing = Vec::new();
            read.streamed = Vec::with_capacity(read.entities.len());
            for (row, result) in running.into_iter().enumerate() {
                let record = match result.map_err(fail)? {
                    Some(bytes) => TileRecord::decode(bytes.as_ref()).ok(),
                    None => None,
                };
                let Some(record) = record else {
                    missing.push(row);
                    read.streamed.push(None);
                    continue;
                };
                let features = read_entity(
                    db,
                    &group.tiles_prefix,
                    aggregates.feature_specs(),
                    &aggregates.features,
                    &read.entities[row],
                    as_of_micros,
                    Some(&record),
                )?;
                read.streamed.push(Some(Streamed {
                    latest_micros: record.max_event_micros,
                    features,
                }));
            }
            read.rows = (0..read.entities.len()).map(|_| None).collect();
            if missing.is_empty() {
                continue;
            }
            let values = db.batched_multi_get_cf(cf, missing.iter().map(|r| &read.keys[*r]), false);
            for (row, value) in missing.into_iter().zip(values) {
                read.rows[row] = match value.map_err(fail)? {
                    Some(bytes) => StoredRow::decode(bytes.as_ref()).ok(),
                    None => None,
                };
            }
        }
        Ok(())
    }

    /// Tells the registry (at most once a minute per pair) that `model` reads these features.
    fn report_consumer(&self, model: &str, project: &str, request: &GetFeaturesRequest) {
        let (service, features) = match &request.features {
            Some(get_features_request::Features::FeatureService(name)) => (name.clone(), vec![]),
            Some(get_features_request::Features::FeatureList(list)) => {
                (String::new(), list.refs.clone())
            }
            None => return,
        };
        let target = format!("{service}|{}", features.join(","));
        {
            let Ok(mut reported) = self.reported.lock() else {
                return;
            };
            let key = (model.to_string(), target);
            if reported
                .get(&key)
                .is_some_and(|at| at.elapsed() < CONSUMER_REPORT_INTERVAL)
            {
                return;
            }
            reported.insert(key, Instant::now());
        }
        let request = RecordConsumerRequest {
            project: project.to_string(),
            consumer: model.to_string(),
            feature_service: service,
            features,
        };
        let uri = http_uri(self.node.registry.registry_address());
        tokio::spawn(async move {
            let result = async {
                let mut client = RegistryServiceClient::connect(uri).await?;
                client.record_consumer(request).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
            .await;
            if let Err(error) = result {
                tracing::debug!(%error, "could not record a consumer");
            }
        });
    }
}

fn null() -> Value {
    Value { kind: None }
}

/// One cell of a streamed entity. Windowed features: the merged window, `PRESENT` (or
/// `NULL_VALUE` for an aggregate of no values), stamped with the latest event in the window.
/// Lifetime features (and `first`/`last` without a window) hold the running value, which cannot
/// answer for a time before the entity's latest event (`INVALID`; history is the offline
/// store's), and expires with the view's TTL (`OUTSIDE_TTL`, stamped with the latest event).
/// A window starting before `horizon` is `INVALID` too: its tiles may have been collected.
fn streamed_cell(
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

#[tonic::async_trait]
impl ServingService for Serving {
    async fn get_features(
        &self,
        request: Request<GetFeaturesRequest>,
    ) -> Result<Response<GetFeaturesResponse>, Status> {
        let model = request
            .metadata()
            .get("model")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let request = request.into_inner();
        let catalog = self.node.registry.catalog();
        let plan = self.plan(&catalog, &request).await?;
        let (rows, mut reads) = self.entity_keys(&catalog, &request, &plan)?;
        if request.consistency == Consistency::Strong as i32 {
            self.linearize().await?;
        } else {
            self.node.check_read_lag()?;
        }
        let now = SystemTime::now();
        let as_of = request
            .as_of
            .unwrap_or_else(|| prost_types::Timestamp::from(now));
        let as_of_micros = timestamp_to_micros(&as_of);
        self.read(&plan, &mut reads, as_of_micros)?;
        if let Some(model) = model.filter(|m| !m.is_empty()) {
            self.report_consumer(&model, &plan.project, &request);
        }

        let mut feature_names: Vec<String> =
            request.entities.iter().map(|c| c.name.clone()).collect();
        let mut results: Vec<FeatureVector> = request
            .entities
            .iter()
            .map(|c| FeatureVector {
                values: c
                    .values
                    .as_ref()
                    .map(|v| v.values.clone())
                    .unwrap_or_default(),
                statuses: vec![FieldStatus::Present as i32; rows],
                event_timestamps: vec![prost_types::Timestamp::default(); rows],
            })
            .collect();
        for slot in &plan.slots {
            let group = &plan.groups[slot.group];
            let ttl_micros = group
                .view
                .ttl
                .map(|t| i64::try_from(t.as_micros()).unwrap_or(i64::MAX));
            let mut vector = FeatureVector {
                values: Vec::with_capacity(rows),
                statuses: Vec::with_capacity(rows),
                event_timestamps: Vec::with_capacity(rows),
            };
            let read = &reads[slot.group];
            let feature = &group.view.features[slot.feature];
            for (row, stored) in read.rows.iter().enumerate() {
                if let Some(Some(streamed)) = read.streamed.get(row) {
                    let (value, status, at) = streamed_cell(
                        streamed,
                        slot.feature,
                        feature.window,
                        ttl_micros,
                        read.horizon,
                        as_of_micros,
                        request.as_of.is_some(),
                    );
                    vector.values.push(value);
                    vector.statuses.push(status as i32);
                    vector.event_timestamps.push(at);
                    continue;
                }
                let (value, status, at) = match stored {
                    None => (
                        null(),
                        FieldStatus::NotFound,
                        prost_types::Timestamp::default(),
                    ),
                    Some(stored) => {
                        let at = micros_to_timestamp(stored.event_time_micros);
                        let age = as_of_micros.saturating_sub(stored.event_time_micros);
                        let value = stored
                            .values
                            .get(slot.feature)
                            .cloned()
                            .unwrap_or_else(null);
                        if age < 0 {
                            (null(), FieldStatus::Invalid, at)
                        } else if ttl_micros.is_some_and(|ttl| age > ttl) {
                            (null(), FieldStatus::OutsideTtl, at)
                        } else if value_type(&value).is_none() {
                            (null(), FieldStatus::NullValue, at)
                        } else {
                            (value, FieldStatus::Present, at)
                        }
                    }
                };
                vector.values.push(value);
                vector.statuses.push(status as i32);
                vector.event_timestamps.push(at);
            }
            feature_names.push(slot.name.clone());
            results.push(vector);
        }
        Ok(Response::new(GetFeaturesResponse {
            metadata: Some(ResponseMetadata {
                feature_names,
                views: plan
                    .groups
                    .iter()
                    .map(|g| ViewVersion {
                        name: g.view.name.clone(),
                        version: g.version,
                    })
                    .collect(),
                as_of: Some(as_of),
            }),
            results,
        }))
    }
}
