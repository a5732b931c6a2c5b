//! The offline store on S3-compatible storage: a real S3 server (moto, from PyPI) on loopback,
//! the online store exporting to it and compacting there, and the snapshot service reading it.
//! Its own test binary: it sets the process's `AWS_*` environment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quiver_core::Scalar;
use quiver_lake::columns::scalar_at;
use quiver_lake::layout::current_files;
use quiver_lake::{Lake, Path as LakePath};
use quiver_proto::convert::value_to_scalar;
use quiver_tests::flight::snapshot;
use quiver_tests::free_address;
use quiver_tests::offline_stack::{
    entity_table, get_features, now_micros, python_env, start, wait_for_source_log,
};
use quiver_tests::s3::{http, start_s3};
use quiver_tests::stream::{admission, generate, push, request, DEFS, HOUR, MINUTE, USERS};

#[tokio::test]
async fn the_offline_store_works_on_s3_compatible_storage() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = python_env(&root);
    let address = free_address().to_string();
    let _s3 = start_s3(&python, &address);
    assert_eq!(
        http(&address, "PUT", "/quiver-offline").unwrap(),
        200,
        "bucket created"
    );
    // This process (reading the store in the test) and the servers it starts share these.
    for (key, value) in [
        ("AWS_ENDPOINT_URL", format!("http://{address}")),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ] {
        std::env::set_var(key, value);
    }
    let store = "s3://quiver-offline/lake".to_string();
    let mut node_env: Vec<(String, String)> = quiver_tests::offline_stack::aws_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    node_env.push(("QUIVER__ONLINE_STORE__OFFLINE_STORE".into(), store.clone()));
    node_env.push(("QUIVER__ONLINE_STORE__COMPACT_MIN_FILES".into(), "2".into()));
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let stack = start(bin, DEFS, node_env).await;
    assert_eq!(stack.store, store);

    // Four pushes a second apart: several export files, which compaction then merges.
    let batch = 500;
    let events = generate(2_000, now_micros() - HOUR, HOUR, 9);
    for (i, part) in events.chunks(batch).enumerate() {
        push(&stack.ingest, request(part, "s3-producer", i as u64 + 1)).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let admitted = admission(&events).into_iter().filter(|a| *a).count();
    wait_for_source_log(&store, admitted).await;

    let lake = Lake::open(&store).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = lake.list(&LakePath::from("sources")).await.unwrap();
        let current = current_files(listed.clone());
        let spans_several = current.iter().any(|f| f.range.last - f.range.first >= 3);
        if spans_several && current.len() == listed.len() {
            break; // compacted, and the inputs are gone
        }
        assert!(
            Instant::now() < deadline,
            "no compaction on S3: {:?}",
            listed
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_source_log(&store, admitted).await;

    // Snapshots read S3 and agree with serving.
    let t = now_micros() + MINUTE;
    let users: Vec<i64> = (0..USERS).collect();
    let refs: Vec<String> = ["f:count", "f:sum", "f:last"].map(String::from).to_vec();
    let pairs: Vec<(i64, i64)> = users.iter().map(|u| (*u, t)).collect();
    let command = serde_json::json!({"project": "stream", "features": refs}).to_string();
    let answer = snapshot(&stack.offline, &command, vec![entity_table(&pairs)])
        .await
        .unwrap();
    let online = get_features(&stack.cluster.address(1), &users, &refs, t).await;
    let batch = &answer[0];
    let mut present = 0;
    for (f, name) in refs.iter().enumerate() {
        let column = batch.column_by_name(name).unwrap();
        for (row, user) in users.iter().enumerate() {
            let want = value_to_scalar(&online.results[f + 1].values[row]);
            let got: Option<Scalar> = scalar_at(column.as_ref(), row);
            assert_eq!(got, want, "user {user} {name}");
            present += usize::from(got.is_some());
        }
    }
    assert!(present > 60, "{present} values compared");

    // `quiver snapshot` writes its training set to an object-store URL: the same answer.
    let entities = stack.cluster.dir().join("entities.parquet");
    let table = entity_table(&pairs);
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&entities).unwrap(),
        table.schema(),
        None,
    )
    .unwrap();
    writer.write(&table).unwrap();
    writer.close().unwrap();
    let output = std::process::Command::new(bin)
        .args([
            "snapshot",
            "--project",
            "stream",
            "--features",
            &refs.join(","),
        ])
        .arg("--entities")
        .arg(&entities)
        .args([
            "--out",
            "s3://quiver-offline/training/train.parquet",
            "--output",
            "json",
        ])
        .args(["--offline", &stack.offline])
        .args(["--registry", &stack.cluster.registry.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = Lake::open("s3://quiver-offline/training")
        .unwrap()
        .get(&LakePath::from("train.parquet"))
        .await
        .unwrap();
    let written = quiver_lake::event_file::read_parquet(written, None).unwrap();
    for name in &refs {
        let column = written[0].column_by_name(name).unwrap();
        let expected = batch.column_by_name(name).unwrap();
        let rows = (0..users.len()).map(|row| {
            (
                scalar_at(column.as_ref(), row),
                scalar_at(expected.as_ref(), row),
            )
        });
        for (got, want) in rows {
            assert_eq!(got, want, "{name} in the training set written to S3");
        }
    }
}
