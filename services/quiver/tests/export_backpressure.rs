//! An offline store that cannot be written does not fill the online store's disk: once more than
//! `max_staged_bytes` of events wait for export, pushes are refused with `RESOURCE_EXHAUSTED` and
//! a `retry-after-ms`, nothing acknowledged is lost, and when the store comes back the producer's
//! retries go through and every acknowledged event is exported exactly once.
//!
//! The outage is real: the offline store's directory is replaced by a regular file, so every
//! write the exporter tries fails (as root too), then put back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::PushRequest;
use quiver_tests::cluster::channel;
use quiver_tests::offline_stack::{now_micros, start, wait_for_source_log};
use quiver_tests::stream::{generate, push, request, DEFS, HOUR};
use tonic::Code;

/// A field (in KiB) of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The process's resident memory now, KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// One push attempt: the accepted count, or the refusal.
async fn push_once(ingest: &str, request: PushRequest) -> Result<u64, tonic::Status> {
    let mut client = IngestServiceClient::new(channel(ingest).await.unwrap());
    client.push(request).await.map(|r| r.into_inner().accepted)
}

#[tokio::test]
async fn pushes_are_refused_while_the_offline_store_is_down_and_nothing_is_lost() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let stack = start(
        bin,
        DEFS,
        vec![(
            "QUIVER__ONLINE_STORE__MAX_STAGED_BYTES".into(),
            "40000".into(),
        )],
    )
    .await;
    let events = generate(6_000, now_micros() - HOUR, HOUR, 7);
    let batches: Vec<_> = events.chunks(100).collect();
    let mut accepted = 0u64;
    let mut sequence = 0u64;

    // Up: exported as usual.
    for chunk in &batches[..5] {
        sequence += 1;
        accepted += push(&stack.ingest, request(chunk, "p", sequence))
            .await
            .accepted;
    }
    wait_for_source_log(&stack.store, accepted as usize).await;

    // Down: the store's directory becomes a file.
    let store = Path::new(&stack.store);
    let aside = store.with_extension("aside");
    std::fs::rename(store, &aside).unwrap();
    std::fs::write(store, b"not a directory").unwrap();
    let mut refused = None;
    for chunk in &batches[5..] {
        sequence += 1;
        match push_once(&stack.ingest, request(chunk, "p", sequence)).await {
            Ok(n) => accepted += n,
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("pushes were refused before 5,500 events were staged");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("max_staged_bytes"),
        "{refused:?}"
    );
    assert!(
        refused.metadata().get("retry-after-ms").is_some(),
        "{refused:?}"
    );
    // Still refused for as long as the store is down (2 s here; `make chaos`: 10 minutes),
    // with the producer retrying every 200 ms: the bound holds, and so does memory.
    let outage = Duration::from_secs(
        std::env::var("QUIVER_CHAOS_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
    );
    let chunk = batches[sequence as usize - 1];
    let node = stack.cluster.process(1).pid();
    let down_since = Instant::now();
    let mut refusals = 0u64;
    let mut peak_rss_kib = 0u64;
    while down_since.elapsed() < outage {
        let again = push_once(&stack.ingest, request(chunk, "p", sequence))
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::ResourceExhausted, "{again:?}");
        refusals += 1;
        peak_rss_kib = peak_rss_kib.max(rss_kib(node));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "offline store down for {outage:?}: {refusals} pushes refused, the node's resident memory \
         peaked at {} MiB (high-water mark {} MiB)",
        peak_rss_kib >> 10,
        status_kib(node, "VmHWM:") >> 10
    );

    // Back: the refused batch goes through on retry, and everything is exported once.
    std::fs::remove_file(store).unwrap();
    std::fs::rename(&aside, store).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match push_once(&stack.ingest, request(chunk, "p", sequence)).await {
            Ok(n) => {
                accepted += n;
                break;
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    Instant::now() < deadline,
                    "never accepted again: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    for chunk in &batches[sequence as usize..sequence as usize + 3] {
        sequence += 1;
        accepted += push(&stack.ingest, request(chunk, "p", sequence))
            .await
            .accepted;
    }
    wait_for_source_log(&stack.store, accepted as usize).await;
}
