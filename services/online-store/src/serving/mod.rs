//! `quiver.serving.v1.ServingService/GetFeatures`, answered from this replica's applied state,
//! in three steps: a **plan** (`plan.rs`: which view versions and features a request reads,
//! compiled once per registry revision), the entities' **keys** (`entity_keys.rs`: join-key
//! columns checked and encoded per view), and the **cells** (`cells.rs`: running records, tiles
//! and rows read and turned into values with their statuses). This file answers the RPC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use quiver_common::auth::{check_named_project, check_project, Caller};
use quiver_proto::convert::{micros_to_timestamp, timestamp_to_micros, value_type};
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::RecordConsumerRequest;
use quiver_proto::serving::serving_service_server::ServingService;
use quiver_proto::serving::{
    get_features_request, Consistency, FeatureVector, GetFeaturesRequest, GetFeaturesResponse,
    ResponseMetadata, ViewVersion,
};
use quiver_proto::types::FieldStatus;
use tonic::{Request, Response, Status};

use crate::error::OnlineStoreError;
use crate::node::Node;
use crate::raft::types::ReadPolicy;

mod cells;
mod entity_keys;
mod plan;

use cells::{finished, null, streamed_cell};
use plan::PlanCache;

/// How often one consumer/target pair is reported to the registry at most.
const CONSUMER_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The serving service of one node.
#[derive(Clone)]
pub struct Serving {
    node: Arc<Node>,
    reported: Arc<Mutex<HashMap<(String, String), Instant>>>,
    plans: Arc<Mutex<PlanCache>>,
    sealed: Arc<crate::sealed_tiles::SealedTiles>,
}

fn invalid(message: String) -> OnlineStoreError {
    OnlineStoreError::InvalidArgument(message)
}

impl Serving {
    /// Serves reads of `node`.
    pub fn new(node: Arc<Node>) -> Self {
        let sealed = crate::sealed_tiles::SealedTiles::new(node.config.sealed_tile_cache_entries);
        Self {
            node,
            reported: Arc::default(),
            plans: Arc::default(),
            sealed: Arc::new(sealed),
        }
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
        let registry = self.node.registry.registry_address().to_string();
        tokio::spawn(async move {
            let result = async {
                let channel = quiver_common::client_channel::endpoint(&registry)?
                    .connect()
                    .await?;
                let mut client =
                    RegistryServiceClient::new(quiver_common::client_channel::authorized(channel));
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

/// What the rest of a request's handling takes for granted: a known consistency level, and an
/// `as_of` that is a time (an unknown enum value or a negative nanos must not pass as a default).
fn check_request(request: &GetFeaturesRequest) -> Result<(), Status> {
    if Consistency::try_from(request.consistency).is_err() {
        return Err(Status::invalid_argument(format!(
            "consistency: {} is not a level (0 eventual, 1 strong)",
            request.consistency
        )));
    }
    if let Some(as_of) = &request.as_of {
        if !(0..1_000_000_000).contains(&as_of.nanos) {
            return Err(Status::invalid_argument(format!(
                "as_of: nanos {} is not within a second (0 to 999,999,999)",
                as_of.nanos
            )));
        }
        if as_of.seconds.checked_mul(1_000_000).is_none() {
            return Err(Status::invalid_argument(format!(
                "as_of: seconds {} is beyond what microseconds since 1970 can hold",
                as_of.seconds
            )));
        }
    }
    Ok(())
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
        let caller = Caller::of(&request);
        let request = request.into_inner();
        check_request(&request)?;
        check_named_project(caller.as_ref(), &request.project)?;
        let catalog = self.node.registry.catalog();
        let plan = self.plan(&catalog, &request).await?;
        check_project(caller.as_ref(), &plan.project)?;
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
                    vector.values.push(finished(slot.finish.as_ref(), value));
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
