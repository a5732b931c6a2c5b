//! `quiver.ingest.v1.IngestService`: Push and PushStream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use quiver_common::auth::{check_named_project, check_project, Caller};
use quiver_common::client_channel::{authorized, endpoint, AuthChannel};
use quiver_common::clock::now_micros;
use quiver_common::registry_cache::RegistryCache;
use quiver_common::trace_context::traced;
use quiver_proto::compute::compute_service_client::ComputeServiceClient;
use quiver_proto::ingest::ingest_service_server::IngestService;
use quiver_proto::ingest::{
    KafkaStatusRequest, KafkaStatusResponse, LimitsRequest, LimitsResponse, PushAck, PushRequest,
    PushResponse,
};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::IngestConfig;
use crate::kafka::status::StatusBoard;
use crate::validate::normalize;

/// How long ingest waits for compute to commit a batch.
const COMPUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a push waits for the registry cache at startup before answering UNAVAILABLE.
const REGISTRY_WAIT: Duration = Duration::from_secs(5);

/// The ingest service.
#[derive(Clone)]
pub struct Ingest {
    config: IngestConfig,
    registry: RegistryCache,
    compute: ComputeServiceClient<AuthChannel>,
    inflight: Arc<Semaphore>,
    kafka: StatusBoard,
}

impl Ingest {
    /// Ingest handing batches to compute at `compute` (host:port).
    pub fn new(
        config: IngestConfig,
        registry: RegistryCache,
        compute: &str,
    ) -> anyhow::Result<Self> {
        // A stalled compute must not hold ingest's in-flight budget forever: the producer gets
        // DEADLINE_EXCEEDED and retries (idempotently).
        let channel = endpoint(compute)?
            .connect_timeout(Duration::from_secs(2))
            .timeout(COMPUTE_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        let compute = ComputeServiceClient::new(authorized(channel))
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        Ok(Self {
            inflight: Arc::new(Semaphore::new(config.max_inflight_rows.max(1))),
            config,
            registry,
            compute,
            kafka: StatusBoard::default(),
        })
    }

    /// The compute client (shared with the Kafka consumers).
    pub fn compute(&self) -> ComputeServiceClient<AuthChannel> {
        self.compute.clone()
    }

    /// Reports the Kafka consumers of `board`.
    pub fn with_kafka(mut self, board: StatusBoard) -> Self {
        self.kafka = board;
        self
    }

    /// Validates, forwards and waits for one batch, once `caller` (with auth on) is known to
    /// cover its project.
    async fn push_one(
        &self,
        request: PushRequest,
        caller: Option<&Caller>,
    ) -> Result<PushResponse, Status> {
        // Before the rows are validated: their messages name the source's columns.
        check_named_project(caller, &request.project)?;
        let rows = request.rows.len() as u64;
        let (request_producer, request_epoch) =
            (request.producer_id.clone(), request.producer_epoch);
        if !self.registry.wait_ready(REGISTRY_WAIT).await {
            return Err(Status::unavailable(
                "ingest has not loaded the registry yet; retry",
            ));
        }
        let received = now_micros();
        let batch =
            normalize(&self.registry.catalog(), &request, &self.config, received).map_err(|e| {
                crate::metrics::count("invalid", rows);
                Status::invalid_argument(e.0)
            })?;
        check_project(caller, &batch.project)?;
        if rows as usize > self.config.max_inflight_rows {
            crate::metrics::count("invalid", rows);
            return Err(Status::invalid_argument(format!(
                "rows: {rows} rows is more than ingest ever holds in flight ({}); split the batch",
                self.config.max_inflight_rows
            )));
        }
        let _permit = self
            .inflight
            .clone()
            .try_acquire_many_owned(rows.min(u64::from(u32::MAX)) as u32)
            .map_err(|_| {
                crate::metrics::count("saturated", rows);
                let mut status = Status::resource_exhausted(format!(
                    "ingest is saturated ({} rows in flight); retry after a short backoff",
                    self.config.max_inflight_rows
                ));
                status.metadata_mut().insert("retry-after-ms", 100.into());
                status
            })?;
        crate::metrics::inflight(rows as i64);
        let result = self.compute.clone().process(traced(batch)).await;
        crate::metrics::inflight(-(rows as i64));
        let outcome = result
            .inspect_err(|status| {
                crate::metrics::count(
                    if status.code() == tonic::Code::ResourceExhausted {
                        "saturated"
                    } else {
                        "failed"
                    },
                    rows,
                );
            })?
            .into_inner();
        if outcome.fenced {
            crate::metrics::count("fenced", rows);
            return Err(Status::failed_precondition(format!(
                "producer_epoch: producer {:?} is fenced: epoch {} has written since (epoch {}, \
                 sequence {}); a newer incarnation of this producer is running",
                request_producer, outcome.epoch, request_epoch, outcome.last_sequence
            )));
        }
        if outcome.duplicate {
            crate::metrics::count("duplicate", rows);
        } else {
            crate::metrics::count("accepted", outcome.accepted);
            crate::metrics::count("late", outcome.late);
            crate::metrics::count("anomalous", outcome.anomalous);
        }
        Ok(PushResponse {
            accepted: outcome.accepted,
            late: outcome.late,
            anomalous: outcome.anomalous,
            duplicate: outcome.duplicate,
            committed_at: Some(prost_types::Timestamp::from(SystemTime::now())),
            last_sequence: outcome.last_sequence,
        })
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<PushAck, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let caller = Caller::of(&request);
        self.push_one(request.into_inner(), caller.as_ref())
            .await
            .map(Response::new)
    }

    type PushStreamStream = AckStream;

    async fn kafka_status(
        &self,
        request: Request<KafkaStatusRequest>,
    ) -> Result<Response<KafkaStatusResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let mut sources = self.kafka.list(&request.project, &request.source);
        if let Some(caller) = &caller {
            sources.retain(|s| caller.projects.contains(&s.project));
        }
        Ok(Response::new(KafkaStatusResponse {
            sources,
            process: std::env::var("HOSTNAME").unwrap_or_default(),
        }))
    }

    async fn limits(
        &self,
        _request: Request<LimitsRequest>,
    ) -> Result<Response<LimitsResponse>, Status> {
        let now = quiver_common::clock::now_micros();
        Ok(Response::new(LimitsResponse {
            now: Some(quiver_proto::convert::micros_to_timestamp(now)),
            max_future_skew_micros: i64::try_from(self.config.max_future_skew.as_micros())
                .unwrap_or(i64::MAX),
        }))
    }

    /// Batches of one stream are handled one at a time, in order (a producer's sequence numbers
    /// must commit in order). A failed batch is acknowledged with its error and ends the
    /// stream: a later batch committing before the failed one's retry would make that retry
    /// look like a duplicate, so the producer resends from the failed batch on a new stream.
    async fn push_stream(
        &self,
        request: Request<Streaming<PushRequest>>,
    ) -> Result<Response<Self::PushStreamStream>, Status> {
        let caller = Caller::of(&request);
        let mut inbound = request.into_inner();
        let (acks, outbound) = mpsc::channel(16);
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(item) = inbound.next().await {
                let request = match item {
                    Ok(request) => request,
                    Err(status) => {
                        let _ = acks.send(Err(status)).await;
                        return;
                    }
                };
                let sequence = request.sequence;
                let (ack, failed) = match this.push_one(request, caller.as_ref()).await {
                    Ok(response) => (
                        PushAck {
                            sequence,
                            response: Some(response),
                            error_code: 0,
                            error_message: String::new(),
                        },
                        false,
                    ),
                    Err(status) => (
                        PushAck {
                            sequence,
                            response: None,
                            error_code: status.code() as i32,
                            error_message: status.message().to_string(),
                        },
                        true,
                    ),
                };
                if acks.send(Ok(ack)).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(outbound))))
    }
}
