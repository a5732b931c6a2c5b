//! `quiver-bench peer-server`: the baseline of the serving benchmark. A bare tonic server
//! implementing the same `quiver.serving.v1.ServingService/GetFeatures` as Quiver, answering
//! from an in-memory `HashMap` of the entities and values `quiver-bench write` writes, and
//! building the same response shape (a key column, then per feature its values, statuses and
//! event times; names, view versions, as-of). No storage, plan, auth, tower layers, health or
//! metrics: what tonic itself allows on this machine, so `get --peer` can say how far the
//! store's own work is from it. Runs until the process is stopped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use quiver_proto::convert::{micros_to_timestamp, timestamp_to_micros};
use quiver_proto::serving::serving_service_server::{ServingService, ServingServiceServer};
use quiver_proto::serving::{
    get_features_request, FeatureVector, GetFeaturesRequest, GetFeaturesResponse, ResponseMetadata,
    ViewVersion,
};
use quiver_proto::types::{value::Kind, FieldStatus, Value};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::online::{value_of, VIEW};

/// The flags of `quiver-bench peer-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerServerArgs {
    /// Where to listen (host:port; port 0 picks one, printed).
    #[arg(long, default_value = "127.0.0.1:7079")]
    pub listen: SocketAddr,
    /// Entities 0..N, as `quiver-bench write --entities`.
    #[arg(long, default_value_t = 100_000)]
    pub entities: u64,
    /// Features per entity, as `quiver-bench write --features`.
    #[arg(long, default_value_t = 8)]
    pub features: usize,
}

/// One entity's row: what Quiver keeps per entity of a directly written view.
struct Stored {
    event_time_micros: i64,
    values: Box<[f64]>,
}

/// The lookup server.
struct Peer {
    rows: HashMap<i64, Stored>,
}

/// Runs the peer server until the process is stopped.
pub async fn run(args: PeerServerArgs) -> anyhow::Result<()> {
    let written = quiver_common::clock::now_micros();
    let rows = (0..args.entities)
        .map(|id| {
            let values = (0..args.features).map(|f| value_of(id, f)).collect();
            (
                id as i64,
                Stored {
                    event_time_micros: written,
                    values,
                },
            )
        })
        .collect();
    let listener = TcpListener::bind(args.listen).await?;
    println!(
        "peer server: {} entities x {} features, listening on {}",
        args.entities,
        args.features,
        listener.local_addr()?
    );
    tonic::transport::Server::builder()
        .add_service(ServingServiceServer::new(Peer { rows }))
        // As Quiver's servers: small exchanges must not wait for Nagle's algorithm.
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}

fn float(v: f64) -> Value {
    Value {
        kind: Some(Kind::Float64Value(v)),
    }
}

#[tonic::async_trait]
impl ServingService for Peer {
    async fn get_features(
        &self,
        request: Request<GetFeaturesRequest>,
    ) -> Result<Response<GetFeaturesResponse>, Status> {
        let request = request.into_inner();
        let Some(get_features_request::Features::FeatureList(list)) = &request.features else {
            return Err(Status::invalid_argument(
                "the peer serves feature lists only",
            ));
        };
        // `bench_view:f3` reads value 3.
        let columns = list
            .refs
            .iter()
            .map(|r| {
                r.rsplit_once(":f")
                    .and_then(|(_, f)| f.parse::<usize>().ok())
                    .ok_or_else(|| Status::invalid_argument(format!("unknown feature {r:?}")))
            })
            .collect::<Result<Vec<usize>, Status>>()?;
        let Some(keys) = request.entities.first().and_then(|c| c.values.as_ref()) else {
            return Err(Status::invalid_argument("no entities"));
        };
        let found = keys
            .values
            .iter()
            .map(|v| match v.kind {
                Some(Kind::Int64Value(id)) => Ok(self.rows.get(&id)),
                _ => Err(Status::invalid_argument("user_id is an int64 key")),
            })
            .collect::<Result<Vec<Option<&Stored>>, Status>>()?;
        let rows = found.len();
        let as_of = request
            .as_of
            .unwrap_or_else(|| prost_types::Timestamp::from(SystemTime::now()));
        let as_of_micros = timestamp_to_micros(&as_of);

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
        for (name, &column) in list.refs.iter().zip(&columns) {
            let mut vector = FeatureVector {
                values: Vec::with_capacity(rows),
                statuses: Vec::with_capacity(rows),
                event_timestamps: Vec::with_capacity(rows),
            };
            for stored in &found {
                let (value, status, at) = match stored
                    .and_then(|s| s.values.get(column).map(|v| (*v, s.event_time_micros)))
                {
                    Some((value, at)) if at <= as_of_micros => {
                        (float(value), FieldStatus::Present, micros_to_timestamp(at))
                    }
                    Some((_, at)) => (
                        Value::default(),
                        FieldStatus::Invalid,
                        micros_to_timestamp(at),
                    ),
                    None => (
                        Value::default(),
                        FieldStatus::NotFound,
                        prost_types::Timestamp::default(),
                    ),
                };
                vector.values.push(value);
                vector.statuses.push(status as i32);
                vector.event_timestamps.push(at);
            }
            feature_names.push(name.clone());
            results.push(vector);
        }
        Ok(Response::new(GetFeaturesResponse {
            metadata: Some(ResponseMetadata {
                feature_names,
                views: vec![ViewVersion {
                    name: VIEW.into(),
                    version: 1,
                }],
                as_of: Some(as_of),
            }),
            results,
        }))
    }
}

#[cfg(test)]
mod tests {
    use quiver_proto::serving::FeatureList;
    use quiver_proto::types::{EntityColumn, RepeatedValue};

    use super::*;

    fn peer(entities: u64, features: usize) -> Peer {
        Peer {
            rows: (0..entities)
                .map(|id| {
                    let values = (0..features).map(|f| value_of(id, f)).collect();
                    (
                        id as i64,
                        Stored {
                            event_time_micros: 1_000,
                            values,
                        },
                    )
                })
                .collect(),
        }
    }

    fn request(ids: &[i64], refs: &[&str]) -> Request<GetFeaturesRequest> {
        Request::new(GetFeaturesRequest {
            project: "bench".into(),
            features: Some(get_features_request::Features::FeatureList(FeatureList {
                refs: refs.iter().map(|r| r.to_string()).collect(),
            })),
            entities: vec![EntityColumn {
                name: "user_id".into(),
                values: Some(RepeatedValue {
                    values: ids
                        .iter()
                        .map(|id| Value {
                            kind: Some(Kind::Int64Value(*id)),
                        })
                        .collect(),
                }),
            }],
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn answers_like_quiver_a_key_column_then_values_statuses_and_times_per_feature() {
        let peer = peer(10, 8);
        let refs = ["bench_view:f3", "bench_view:f0"];
        let response = peer
            .get_features(request(&[2, 99], &refs))
            .await
            .map(Response::into_inner)
            .map_err(|s| s.message().to_string());
        let Ok(response) = response else {
            panic!("the peer refused a valid request: {response:?}");
        };
        let metadata = response.metadata.unwrap_or_default();
        assert_eq!(
            metadata.feature_names,
            ["user_id", "bench_view:f3", "bench_view:f0"]
        );
        assert_eq!(metadata.views.len(), 1);
        assert_eq!(response.results.len(), 3);
        // The key column echoes the request, every key PRESENT.
        assert_eq!(response.results[0].values.len(), 2);
        assert_eq!(
            response.results[0].statuses,
            [FieldStatus::Present as i32; 2]
        );
        // Entity 2 is found with `write`'s values; entity 99 is not.
        let f3 = &response.results[1];
        assert_eq!(f3.values[0].kind, Some(Kind::Float64Value(value_of(2, 3))));
        assert_eq!(
            f3.statuses,
            [FieldStatus::Present as i32, FieldStatus::NotFound as i32]
        );
        assert_eq!(f3.event_timestamps[0], micros_to_timestamp(1_000));
        assert_eq!(f3.values[1].kind, None);
        assert_eq!(
            response.results[2].values[0].kind,
            Some(Kind::Float64Value(value_of(2, 0)))
        );
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_answer() {
        let peer = peer(1, 8);
        let unknown = peer
            .get_features(request(&[0], &["bench_view:amount"]))
            .await;
        assert_eq!(
            unknown.map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::InvalidArgument)
        );
    }
}
