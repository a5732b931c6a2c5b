//! The trainer's side of the snapshot service, for tests: an exchange over Arrow Flight, and
//! reading what the online store exported to a local offline store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failed step should fail loudly

use arrow_array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
use futures::TryStreamExt;
use quiver_lake::event_file::read_parquet;
use quiver_lake::layout::current_files;
use quiver_lake::{Lake, Path as LakePath};
use tonic::Status;

use crate::cluster::channel;

/// Sends `table` with the JSON snapshot command `command` to the service at `address`; the
/// answer's batches, or the status it failed with.
pub async fn snapshot(
    address: &str,
    command: &str,
    table: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, Status> {
    let mut client = FlightClient::new(channel(address).await?);
    let request = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(command.as_bytes().to_vec())))
        .build(futures::stream::iter(table.into_iter().map(Ok)));
    let answer = client.do_exchange(request).await.map_err(status)?;
    answer.try_collect().await.map_err(status)
}

fn status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => Status::internal(other.to_string()),
    }
}

/// Every current file under `prefix` of the offline store at `url` (after compaction's
/// de-duplication by range), read whole.
pub async fn read_exported(url: &str, prefix: &str) -> Vec<RecordBatch> {
    let lake = Lake::open(url).unwrap();
    'listing: loop {
        let mut batches = Vec::new();
        for file in current_files(lake.list(&LakePath::from(prefix)).await.unwrap()) {
            let bytes = match lake.get(&file.path).await {
                Ok(bytes) => bytes,
                // Compacted away since it was listed: list again.
                Err(e) if e.is_not_found() => continue 'listing,
                Err(e) => panic!("{e}"),
            };
            batches.extend(read_parquet(bytes, None).unwrap());
        }
        return batches;
    }
}

/// The (log index, row) of every exported row in `batches`.
pub fn positions(batches: &[RecordBatch]) -> Vec<(u64, u32)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{UInt32Type, UInt64Type};
    use quiver_lake::event_file::{LOG_INDEX, ROW};
    let mut out = Vec::new();
    for batch in batches {
        let index = batch
            .column_by_name(LOG_INDEX)
            .unwrap()
            .as_primitive::<UInt64Type>();
        let row = batch
            .column_by_name(ROW)
            .unwrap()
            .as_primitive::<UInt32Type>();
        out.extend(
            index
                .values()
                .iter()
                .copied()
                .zip(row.values().iter().copied()),
        );
    }
    out
}
