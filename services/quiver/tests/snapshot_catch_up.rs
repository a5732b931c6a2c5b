//! A follower catches up from a large snapshot, through real processes: it is killed, the
//! leader takes `QUIVER_SNAPSHOT_STATE_MIB` (64 in `make test`, 2,048 in `make chaos`) of
//! incompressible rows and purges its log, and the follower, restarted, can only catch up by
//! installing the leader's snapshot. Its first install is cut by `kill -9` midway (a truncated
//! received file); restarted again, it recovers without an operator and serves every row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use quiver_proto::online::FeatureRow;
use quiver_proto::types::value::Kind;
use quiver_proto::types::Value;
use quiver_tests::cluster::{stats_row, Cluster};
use quiver_tests::offline_stack::get_features_of;

const BIN: &str = env!("CARGO_BIN_EXE_quiver");

/// One string feature written directly: each row is one `blob` of `ROW_BYTES`.
const DEFS: &str = r#"
project: shop
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: uploads
    entity: user
    timestamp_field: ts
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: blob, type: string}
feature_views:
  - name: blobs
    entity: user
    source: uploads
    features:
      - {name: blob, column: blob, aggregation: last}
"#;

const ROW_BYTES: usize = 64 * 1024;
const ROWS_PER_WRITE: usize = 16;

/// User `user`'s blob: printable and incompressible (a xorshift stream over 64 letters), so
/// RocksDB's compression leaves the state its size.
fn blob(user: i64) -> String {
    let mut state = (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..ROW_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (b'0' + (state >> 58) as u8) as char
        })
        .collect()
}

/// Peak resident memory of a process, in MiB (`VmHWM`).
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// Bytes of the files under `dir` whose name contains `part` (recursively).
fn bytes_of(dir: &Path, part: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                bytes_of(&path, part)
            } else if e.file_name().to_string_lossy().contains(part) {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}

async fn write_blobs(cluster: &Cluster, sequence: u64, users: std::ops::Range<i64>) {
    let rows: Vec<FeatureRow> = users
        .map(|user| FeatureRow {
            view: "blobs".into(),
            values: vec![Value {
                kind: Some(Kind::StringValue(blob(user))),
            }],
            ..stats_row(user, (1_700_000_000 + user) * 1_000_000, 0)
        })
        .collect();
    cluster.write_rows("blobs", sequence, rows).await.unwrap();
}

/// Whether node `address` serves every blob of `users` exactly (EVENTUAL: its own copy).
async fn serves_all(address: &str, users: std::ops::Range<i64>) -> Result<(), String> {
    let users: Vec<i64> = users.collect();
    // 32 blobs of 64 KiB stay under gRPC's default 4 MiB message.
    for chunk in users.chunks(32) {
        let response = get_features_of(
            address,
            "shop",
            "user_id",
            chunk,
            &["blobs:blob".to_string()],
        )
        .await;
        let values = &response.results.last().ok_or("no feature column")?.values;
        for (user, value) in chunk.iter().zip(values) {
            match &value.kind {
                Some(Kind::StringValue(s)) if *s == blob(*user) => {}
                Some(Kind::StringValue(_)) => return Err(format!("user {user}: another blob")),
                other => return Err(format!("user {user}: {other:?}")),
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_from_a_large_snapshot_even_after_a_cut_transfer() {
    let state_mib: i64 = std::env::var("QUIVER_SNAPSHOT_STATE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let users = state_mib * (1 << 20) / ROW_BYTES as i64;
    let mut cluster = Cluster::start(Path::new(BIN), DEFS, 3).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    cluster.wait_for_views(leader).await;
    let follower = cluster.live().into_iter().find(|id| *id != leader).unwrap();

    // The follower is down while the state grows and the leader purges its log.
    cluster.kill(follower);
    let started = Instant::now();
    for (sequence, first) in (0..users).step_by(ROWS_PER_WRITE).enumerate() {
        write_blobs(
            &cluster,
            sequence as u64 + 1,
            first..(first + ROWS_PER_WRITE as i64).min(users),
        )
        .await;
    }
    let wrote = started.elapsed();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let started = Instant::now();
    let compacted = cluster.compact(leader).await;
    let built = started.elapsed();
    let snapshot_bytes = bytes_of(cluster.data_dir(leader), "snapshot-");
    assert!(
        snapshot_bytes >= (state_mib as u64) << 20,
        "the leader's snapshot holds {snapshot_bytes} bytes, less than the state written"
    );

    // First restart: killed once a quarter of the snapshot has arrived.
    cluster.restart(follower).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seen = 0;
    while seen < snapshot_bytes / 4 {
        assert!(
            Instant::now() < deadline,
            "no snapshot transfer to the follower began"
        );
        seen = bytes_of(cluster.data_dir(follower), ".tmp");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill(follower);
    println!(
        "cut the transfer after {:.0} MiB of {:.0} MiB",
        seen as f64 / 1048576.0,
        snapshot_bytes as f64 / 1048576.0
    );

    // Second restart: the cut transfer is left behind and a whole one installed.
    let started = Instant::now();
    cluster.restart(follower).await;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let status = cluster.status(follower).await;
        if status
            .as_ref()
            .is_ok_and(|s| s.snapshot_index >= compacted.snapshot_index)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower did not install the snapshot: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caught_up = started.elapsed();
    let address = cluster.address(follower);
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Err(e) = serves_all(&address, 0..users).await {
        assert!(Instant::now() < deadline, "the follower misses rows: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        bytes_of(cluster.data_dir(follower), ".tmp"),
        0,
        "the cut transfer's file is left behind"
    );
    // An install streams: a whole-state buffer would show at 2 GiB (`make chaos`), where a
    // count-bounded install batch once took the follower to 2.4 GiB.
    let follower_peak = peak_mib(cluster.process(follower).pid());
    assert!(
        follower_peak < 1024,
        "the follower peaked at {follower_peak} MiB installing a {state_mib} MiB snapshot"
    );
    println!(
        "snapshot catch-up: {state_mib} MiB of rows ({users} x {} KiB) written in {:.1} s; \
         snapshot of {:.0} MiB built in {:.1} s; follower installed it in {:.1} s after a \
         transfer cut by kill -9 (peak memory: follower {} MiB, leader {} MiB)",
        ROW_BYTES / 1024,
        wrote.as_secs_f64(),
        snapshot_bytes as f64 / 1048576.0,
        built.as_secs_f64(),
        caught_up.as_secs_f64(),
        follower_peak,
        peak_mib(cluster.process(leader).pid()),
    );
}
