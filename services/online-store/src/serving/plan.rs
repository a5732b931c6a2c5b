//! The plan of a request: which view versions and features it reads, where each output column
//! comes from; compiled once per (registry revision, view-state generation) and cached.

use std::collections::HashMap;
use std::sync::Arc;

use quiver_common::feature_selection::{resolve_features, FeatureSelection, ResolvedFeature};
use quiver_common::registry_cache::Catalog;
use quiver_core::tiling::{self, ViewAggregates};
use quiver_core::{FeatureView, TransformOp};
use quiver_proto::online::{ViewPhase, ViewState};
use quiver_proto::serving::{get_features_request, GetFeaturesRequest};

use crate::error::OnlineStoreError;
use crate::keys::{self, Space};
use crate::node::GROUP;
use crate::raft::views::VersionId;

use super::cells::finishing;
use super::{invalid, Serving};

/// How many compiled plans are kept per registry revision.
const PLAN_CACHE_ENTRIES: usize = 4_096;

/// Compiled plans of the current registry revision, by request fingerprint; emptied when the
/// revision moves. The owned key is kept to rule out fingerprint collisions.
#[derive(Default)]
pub(super) struct PlanCache {
    pub(super) revision: (u64, u64),
    pub(super) plans: HashMap<u64, (PlanKey, Arc<ReadPlan>)>,
}

/// What identifies a plan: the project asked for, the features asked for, the naming.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct PlanKey {
    pub(super) project: String,
    pub(super) features: Option<get_features_request::Features>,
    pub(super) full_feature_names: bool,
}

impl PlanKey {
    /// Whether `request` asks for exactly this plan (compared without allocating).
    pub(super) fn matches(&self, request: &GetFeaturesRequest) -> bool {
        self.project == request.project
            && self.features == request.features
            && self.full_feature_names == request.full_feature_names
    }
}

/// A hash of what identifies a request's plan, computed from the borrowed request.
pub(super) fn fingerprint(request: &GetFeaturesRequest) -> u64 {
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
pub(super) struct ReadPlan {
    pub(super) project: String,
    pub(super) groups: Vec<PlannedView>,
    pub(super) slots: Vec<Slot>,
}

/// One view version a plan reads.
pub(super) struct PlannedView {
    pub(super) view: Arc<FeatureView>,
    pub(super) version: u32,
    /// What the streaming path keeps for the view (tiles, running record).
    pub(super) aggregates: ViewAggregates,
    /// The source's watermark key and allowed lateness (they bound how far back windows reach).
    pub(super) watermark_key: Vec<u8>,
    pub(super) lateness_micros: i64,
    pub(super) tiles_prefix: Vec<u8>,
    pub(super) running_prefix: Vec<u8>,
}

/// One requested output column.
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) group: usize,
    pub(super) feature: usize,
    /// The transform its answers go through (`cells::finishing`).
    pub(super) finish: Option<TransformOp>,
}

impl Serving {
    /// The plan for `request`, from the cache or compiled now.
    pub(super) async fn plan(
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
    pub(super) async fn compile(
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
            let finish = finishing(&groups[group].view, &groups[group].view.features[feature]);
            slots.push(Slot {
                name,
                group,
                feature,
                finish,
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
    pub(super) async fn servable(
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
}
