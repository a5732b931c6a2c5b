//! Internal RPCs validate what they are given as strictly as the public ones, through real
//! processes: a `WriteEvents` batch with a far-future event time (which would drag a watermark
//! to the end of time) and a compute batch whose arrays disagree with its rows are refused with
//! `INVALID_ARGUMENT` naming the field, and both processes keep serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use quiver_proto::compute::compute_service_client::ComputeServiceClient;
use quiver_proto::ingest::Row;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{EventBatch, WriteEventsRequest};
use quiver_tests::cluster::{channel, int, Cluster};
use quiver_tests::stream::{push, request, DEFS};
use tonic::Code;

#[tokio::test]
async fn internal_rpcs_refuse_what_ingest_would_have_refused() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let streaming = cluster.spawn_streaming().await;
    let (compute, ingest) = (streaming.compute, streaming.ingest);

    let batch = EventBatch {
        producer_id: "forged".into(),
        sequence: 1,
        project: "stream".into(),
        source: "tx".into(),
        columns: vec!["user_id".into()],
        rows: vec![Row {
            values: vec![int(1)],
        }],
        event_micros: vec![i64::MAX],
        entity_keys: vec![b"i-user-1".to_vec()],
        ..EventBatch::default()
    };
    let mut store = OnlineStoreServiceClient::new(channel(&cluster.address(1)).await.unwrap());
    let refused = store
        .write_events(WriteEventsRequest {
            batches: vec![batch.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("batches[0].event_micros[0]")
            && refused
                .message()
                .contains("ahead of the online store's clock"),
        "{refused:?}"
    );

    let mut short = batch.clone();
    short.event_micros = vec![];
    let mut client = ComputeServiceClient::new(channel(&compute.to_string()).await.unwrap());
    let refused = client.process(short).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("event_micros, entity_keys"),
        "{refused:?}"
    );

    // Both keep serving: an ordinary push goes through end to end.
    let now = quiver_common::clock::now_micros();
    let events = quiver_tests::stream::generate(10, now - 60_000_000, 30_000_000, 3);
    let pushed = push(&ingest.to_string(), request(&events, "honest", 1)).await;
    assert_eq!(pushed.accepted, 10);
}
