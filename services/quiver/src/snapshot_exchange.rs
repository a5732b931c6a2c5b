//! A snapshot over Arrow Flight: an entity table sent to the snapshot service, the answer
//! streamed back. What `quiver snapshot` and `quiver-bench snapshot` share.

use arrow_array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
use futures::Stream;
use prost::Message;
use quiver_proto::offline::SnapshotCommand;

use crate::addresses::connect_plain;

/// Sends `table` with `command` to the snapshot service at `address`; the answer streams back.
pub async fn exchange(
    address: &str,
    command: SnapshotCommand,
    table: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
) -> anyhow::Result<FlightRecordBatchStream> {
    let channel = connect_plain(address, "offline").await?;
    let mut client = FlightClient::new(channel);
    if let Some(credential) = quiver_common::client_channel::credential() {
        client
            .add_header("authorization", credential.to_str()?)
            .map_err(flight_error)?;
    }
    let request = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(command.encode_to_vec())))
        .build(table);
    client.do_exchange(request).await.map_err(flight_error)
}

/// A Flight error as a readable one (a status's message, not its debug form).
pub fn flight_error(e: FlightError) -> anyhow::Error {
    match e {
        FlightError::Tonic(status) => {
            anyhow::anyhow!(
                "snapshot failed ({:?}): {}",
                status.code(),
                status.message()
            )
        }
        other => anyhow::anyhow!("snapshot failed: {other}"),
    }
}
