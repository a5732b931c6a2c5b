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

/// Crafted Raft traffic on the peer port is refused and the node keeps serving and committing:
/// an AppendEntries whose bytes decode to an uncommitted vote of term 2^60 (this very message
/// stopped the node's Raft core on an openraft assertion until `check_append`), and a snapshot
/// stream of garbage.
#[tokio::test]
async fn crafted_raft_messages_and_snapshot_streams_are_refused() {
    use quiver_proto::raft::raft_service_client::RaftServiceClient;
    use quiver_proto::raft::{RaftPayload, SnapshotChunk};

    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, quiver_tests::cluster::DEFS, 1).await;
    cluster.write("w", 1, &[1]).await.unwrap();
    let mut raft = RaftServiceClient::new(channel(&cluster.peer_address(1)).await.unwrap());

    // The format byte, then bincode's varint marker for a u64 and 2^60.
    let mut hostile = vec![1u8, 0xFD];
    hostile.extend_from_slice(&(1u64 << 60).to_le_bytes());
    hostile.extend_from_slice(&[0; 26]);
    let refused = raft
        .append_entries(RaftPayload { data: hostile })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let chunks = vec![
        SnapshotChunk {
            header: vec![1, 0xFF, 0xFF, 0xFF],
            data: vec![7; 1 << 16],
        },
        SnapshotChunk {
            header: vec![],
            data: vec![9; 1 << 16],
        },
    ];
    let refused = raft
        .install_snapshot(futures::stream::iter(chunks))
        .await
        .unwrap_err();
    assert_ne!(refused.code(), Code::Ok, "{refused:?}");

    // Still serving, still committing.
    cluster.write("w", 2, &[2]).await.unwrap();
    let cells = cluster
        .read(1, &[1, 2], quiver_proto::serving::Consistency::Strong)
        .await
        .unwrap();
    assert!(
        cells
            .iter()
            .all(|c| c.0 == quiver_proto::types::FieldStatus::Present),
        "{cells:?}"
    );
}
