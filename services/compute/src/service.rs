//! `quiver.compute.v1.ComputeService/Process`: admit a batch into the bounded queue, wait for
//! the micro-batch that carries it to commit.

use std::sync::Arc;

use quiver_common::registry_cache::RegistryCache;
use quiver_common::Shutdown;
use quiver_proto::compute::compute_service_server::ComputeService;
use quiver_proto::online::{EventBatch, EventBatchResult, ProducersRequest, ProducersResponse};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::{Request, Response, Status};

use crate::batcher::{Batcher, Job, Store};
use crate::config::ComputeConfig;

/// The compute service.
#[derive(Clone)]
pub struct Compute {
    queue: mpsc::UnboundedSender<Job>,
    store: Arc<Store>,
    /// One permit per queued row: the bound on memory.
    rows: Arc<Semaphore>,
    limit: usize,
}

impl Compute {
    /// Starts the batcher; it stops with `shutdown`.
    pub fn start(
        config: ComputeConfig,
        registry: RegistryCache,
        online_store: String,
        shutdown: Shutdown,
    ) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let limit = config.max_queued_rows.max(1);
        let store = Arc::new(Store::new(online_store));
        Batcher::spawn(config, registry, store.clone(), jobs, shutdown);
        Self {
            queue,
            store,
            rows: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

#[tonic::async_trait]
impl ComputeService for Compute {
    async fn process(
        &self,
        request: Request<EventBatch>,
    ) -> Result<Response<EventBatchResult>, Status> {
        let batch = request.into_inner();
        let rows = batch.rows.len();
        if rows == 0 && batch.producer_id.is_empty() {
            // An empty batch only registers its producer with the source.
            return Err(Status::invalid_argument(
                "rows: a batch needs at least one row, or a producer_id to register",
            ));
        }
        // Ingest sends one event time and key per row; a caller that does not is refused before
        // anything indexes them.
        if batch.event_micros.len() != rows || batch.entity_keys.len() != rows {
            return Err(Status::invalid_argument(format!(
                "event_micros, entity_keys: {} and {} values for {rows} rows",
                batch.event_micros.len(),
                batch.entity_keys.len()
            )));
        }
        if !batch.offsets.is_empty() && batch.offsets.len() != rows {
            return Err(Status::invalid_argument(format!(
                "offsets: {} values for {rows} rows",
                batch.offsets.len()
            )));
        }
        if let Some(r) = batch
            .rows
            .iter()
            .position(|row| row.values.len() != batch.columns.len())
        {
            return Err(Status::invalid_argument(format!(
                "rows[{r}]: {} values for {} columns",
                batch.rows[r].values.len(),
                batch.columns.len()
            )));
        }
        if rows > self.limit {
            return Err(Status::invalid_argument(format!(
                "rows: {rows} rows is over compute's queue of {} rows; send smaller batches",
                self.limit
            )));
        }
        let permit = self
            .rows
            .clone()
            .try_acquire_many_owned(rows as u32)
            .map_err(|_| {
                crate::metrics::count_saturated();
                let mut status = Status::resource_exhausted(
                    "compute is saturated (its queue of uncommitted rows is full); retry after a short backoff",
                );
                status.metadata_mut().insert("retry-after-ms", 50.into());
                status
            })?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                batch,
                reply,
                span: tracing::Span::current(),
                _permit: permit,
            })
            .map_err(|_| Status::unavailable("compute is shutting down"))?;
        match answer.await {
            Ok(result) => result.map(Response::new),
            Err(_) => Err(Status::unavailable(
                "compute stopped before the batch committed; retry",
            )),
        }
    }

    async fn producers(
        &self,
        request: Request<ProducersRequest>,
    ) -> Result<Response<ProducersResponse>, Status> {
        self.store
            .producers(request.into_inner())
            .await
            .map(Response::new)
    }
}
