//! The snapshot service over Arrow Flight. `DoExchange`: the first message carries a
//! `FlightDescriptor` whose `cmd` is an encoded `quiver.offline.v1.SnapshotCommand` and the
//! entity table's schema; the entity table follows as record batches. The answer streams back
//! batch by batch, in the entity table's row order, while the table is still arriving (memory
//! stays bounded by a few batches; sampling, which needs every row's class first, holds the
//! table). Every other Flight method is unimplemented.

use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::{StreamExt, TryStreamExt};
use quiver_common::auth::{check_named_project, check_project, Caller};
use quiver_common::registry_cache::RegistryCache;
use quiver_lake::Partition;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::dataset::{DataCache, ViewData};
use crate::error::SnapshotError;
use crate::metrics;
use crate::snapshot::{self, SnapshotPlan};

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The Flight service.
pub struct SnapshotService {
    registry: RegistryCache,
    cache: Arc<DataCache>,
}

impl SnapshotService {
    /// A service resolving features with `registry` and reading rows through `cache`.
    pub fn new(registry: RegistryCache, cache: Arc<DataCache>) -> Self {
        Self { registry, cache }
    }
}

/// Refuses a snapshot of a view version whose rows in the offline store are not complete yet
/// (`complete`: what [`crate::dataset::DataCache::is_complete`] answered for `partition`).
fn incomplete_error(
    partition: &Partition,
    complete: Result<bool, quiver_lake::LakeError>,
) -> Result<(), SnapshotError> {
    match (complete?, partition) {
        (
            false,
            Partition::Events {
                view, version, ..
            },
        ) => Err(SnapshotError::Unavailable(format!(
            "feature view {view:?} version {version} has a standardize/zscore over a window, so its \
             training rows are the ones the online store aggregated, and they are not all in the \
             offline store yet: its backfill is running or not exported. Retry when `quiver \
             describe view {view}` shows v{version} serving (its rows follow within an export \
             interval), or pin the version serving now (`{view}@N:feature`)"
        ))),
        _ => Ok(()),
    }
}

fn unimplemented<T>(method: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{method}: the snapshot service answers DoExchange only (see docs/training.md)"
    )))
}

#[tonic::async_trait]
impl FlightService for SnapshotService {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unimplemented("Handshake")
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented("ListFlights")
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unimplemented("GetFlightInfo")
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unimplemented("PollFlightInfo")
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unimplemented("GetSchema")
    }

    async fn do_get(&self, _: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        unimplemented("DoGet")
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unimplemented("DoPut")
    }

    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        unimplemented("DoAction")
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        unimplemented("ListActions")
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let caller = Caller::of(&request);
        let mut input = request.into_inner();
        let first = input.message().await?.ok_or_else(|| {
            Status::invalid_argument(
                "the exchange is empty: send a FlightDescriptor (cmd: a SnapshotCommand) and the entity table",
            )
        })?;
        let command = first
            .flight_descriptor
            .as_ref()
            .filter(|d| d.r#type == DescriptorType::Cmd as i32)
            .ok_or_else(|| {
                Status::invalid_argument(
                    "the first message carries no command descriptor: use FlightDescriptor.for_command(SnapshotCommand bytes)",
                )
            })
            .and_then(|d| crate::command::decode(&d.cmd).map_err(Status::invalid_argument))?;
        check_named_project(caller.as_ref(), &command.project)?;
        let plan = Arc::new(snapshot::plan(&self.registry, &command).await?);
        check_project(caller.as_ref(), &plan.project)?;
        let mut data = Vec::with_capacity(plan.views.len());
        for view in &plan.views {
            incomplete_error(
                &view.partition,
                self.cache.is_complete(&view.partition).await,
            )?;
            let loaded = self
                .cache
                .get(&view.partition, &view.columns(), view.transforms.as_deref())
                .await;
            data.push(loaded.map_err(SnapshotError::from)?);
        }
        // pyarrow sends the descriptor alone, then the schema; Rust clients put both in one
        // message. A descriptor-only message carries no IPC data for the decoder.
        let head = (!first.data_header.is_empty()).then_some(first);
        let table = FlightRecordBatchStream::new_from_flight_data(
            futures::stream::iter(head.map(Ok)).chain(input.map_err(FlightError::from)),
        );
        let (tx, rx) = mpsc::channel::<Result<RecordBatch, FlightError>>(2);
        tokio::spawn(async move {
            if let Err(e) = answer(plan, data, table, &tx).await {
                metrics::count_snapshot("error", 0);
                let _ = tx.send(Err(FlightError::from(Status::from(e)))).await;
            }
        });
        let output = FlightDataEncoderBuilder::new()
            .build(tokio_stream::wrappers::ReceiverStream::new(rx))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(output)))
    }
}

/// Computes every batch of `table` and sends the results, in order.
async fn answer(
    plan: Arc<SnapshotPlan>,
    data: Vec<Arc<ViewData>>,
    mut table: FlightRecordBatchStream,
    tx: &mpsc::Sender<Result<RecordBatch, FlightError>>,
) -> Result<(), SnapshotError> {
    let data = Arc::new(data);
    let read_error = |e: FlightError| SnapshotError::InvalidArgument(format!("entity table: {e}"));
    let mut first_row = 0u64;
    let mut schema = None;
    let mut pending: Vec<RecordBatch> = Vec::new();
    while let Some(batch) = table.next().await {
        let batch = batch.map_err(read_error)?;
        if schema.is_none() {
            schema = Some(plan.output_schema(&batch.schema())?);
        }
        if plan.sampling.is_some() {
            pending.push(batch);
            continue;
        }
        let rows = batch.num_rows() as u64;
        let out = compute(&plan, &data, schema.clone(), batch, first_row, None).await?;
        first_row += rows;
        if tx.send(Ok(out)).await.is_err() {
            return Ok(()); // the client went away
        }
    }
    if let Some(sampling) = &plan.sampling {
        let classes: Vec<String> = pending.iter().flat_map(|b| plan.classes(b)).collect();
        let sampler = sampling.sampler(&classes);
        let weights: Arc<Vec<Option<f64>>> = Arc::new(
            classes
                .iter()
                .enumerate()
                .map(|(row, class)| sampler.keep(row as u64, class))
                .collect(),
        );
        for batch in pending {
            let rows = batch.num_rows() as u64;
            let out = compute(
                &plan,
                &data,
                schema.clone(),
                batch,
                first_row,
                Some(weights.clone()),
            )
            .await?;
            first_row += rows;
            if tx.send(Ok(out)).await.is_err() {
                return Ok(());
            }
        }
    }
    if first_row == 0 {
        return Err(SnapshotError::InvalidArgument(
            "entity table: no rows (send at least one row)".into(),
        ));
    }
    metrics::count_snapshot("ok", first_row);
    Ok(())
}

/// One batch's output, computed off the async threads.
async fn compute(
    plan: &Arc<SnapshotPlan>,
    data: &Arc<Vec<Arc<ViewData>>>,
    schema: Option<arrow_schema::SchemaRef>,
    batch: RecordBatch,
    first_row: u64,
    weights: Option<Arc<Vec<Option<f64>>>>,
) -> Result<RecordBatch, SnapshotError> {
    let schema = schema.ok_or_else(|| SnapshotError::Internal("no schema".into()))?;
    let (plan, data) = (plan.clone(), data.clone());
    tokio::task::spawn_blocking(move || {
        let weights = weights.as_ref().map(|w| {
            let start = first_row as usize;
            &w[start..start + batch.num_rows()]
        });
        plan.compute(&schema, &data, &batch, first_row, weights)
    })
    .await
    .map_err(|e| SnapshotError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use quiver_lake::Partition;

    use super::incomplete_error;

    #[test]
    fn an_incomplete_version_is_refused_saying_what_to_wait_for() {
        let events = Partition::Events {
            project: "p".into(),
            source: "s".into(),
            view: "user_txn".into(),
            version: 2,
        };
        let status = tonic::Status::from(incomplete_error(&events, Ok(false)).unwrap_err());
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status
                .message()
                .contains("feature view \"user_txn\" version 2")
                && status.message().contains("backfill is running")
                && status.message().contains("user_txn@N:feature"),
            "{status:?}"
        );
        assert!(incomplete_error(&events, Ok(true)).is_ok());
    }
}
