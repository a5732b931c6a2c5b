//! `quiver load` of an object-store prefix: a real S3 server (moto, from PyPI) on loopback holds
//! history as several Parquet objects (and a marker that is not Parquet); the load reads them as
//! one table, every event counts online once, and loading the prefix again adds nothing (nor
//! does loading the same objects from a local directory).
//! Its own test binary: it sets the process's `AWS_*` environment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use quiver_lake::{Lake, Path as LakePath};
use quiver_proto::types::value::Kind;
use quiver_tests::offline_stack::{get_features_of, now_micros, python_env, start};
use quiver_tests::s3::{http, start_s3};
use quiver_tests::{free_address, json_output};

const HOUR: i64 = 3_600_000_000;
const USERS: i64 = 7;

const DEFS: &str = r#"
project: stream
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: tx
    entity: user
    timestamp_field: ts
    allowed_lateness: 10m
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
      - {name: merchant, type: string}
feature_views:
  - name: h
    entity: user
    source: tx
    features:
      - {name: count, aggregation: count}
      - {name: total, column: amount, aggregation: sum}
"#;

/// Events `(user, at, amount)` as a Parquet file of the source's columns.
fn parquet(events: &[(i64, i64, f64)]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, false),
        Field::new("merchant", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.0))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.1))
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from_iter_values(events.iter().map(|e| e.2))),
            Arc::new(StringArray::from_iter_values(events.iter().map(|_| "m"))),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.into_inner().unwrap()
}

#[tokio::test]
async fn a_parquet_prefix_in_object_storage_loads_once() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = python_env(&root);
    let address = free_address().to_string();
    let _s3 = start_s3(&python, &address);
    assert_eq!(http(&address, "PUT", "/history").unwrap(), 200);
    // This process (writing the objects) and the `quiver load` it runs share these.
    for (key, value) in [
        ("AWS_ENDPOINT_URL", format!("http://{address}")),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ] {
        std::env::set_var(key, value);
    }

    // Three days of history in three objects, and a marker that is not Parquet.
    let now = now_micros();
    let events: Vec<(i64, i64, f64)> = (0..900)
        .map(|i| {
            (
                i % USERS,
                now - 72 * HOUR + i * 280_000_000,
                (i % 11) as f64,
            )
        })
        .collect();
    let lake = Lake::open("s3://history/orders").unwrap();
    for (i, part) in events.chunks(300).enumerate() {
        lake.put(
            &LakePath::from(format!("day={i}/part-0.parquet")),
            parquet(part),
        )
        .await
        .unwrap();
    }
    lake.put(&LakePath::from("_SUCCESS"), Vec::new())
        .await
        .unwrap();

    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let stack = start(bin, DEFS, Vec::new()).await;
    let registry = stack.cluster.registry.to_string();
    let load = || {
        let output = Command::new(bin)
            .args([
                "load",
                "--source",
                "tx",
                "--file",
                "s3://history/orders/",
                "--registry",
                &registry,
                "--ingest",
                &stack.ingest,
                "--output",
                "json",
            ])
            .output()
            .unwrap();
        json_output(output, "load")
    };
    let first = load();
    assert_eq!(
        (first["loaded"].as_u64(), first["already_loaded"].as_u64()),
        (Some(900), Some(0)),
        "{first}"
    );
    let again = load();
    assert_eq!(
        (again["loaded"].as_u64(), again["already_loaded"].as_u64()),
        (Some(0), Some(900)),
        "{again}"
    );
    // The same objects in a local directory are read the same way: the same rows in the same
    // order, so the same load, already loaded.
    let dir = tempfile::tempdir().unwrap();
    for (i, part) in events.chunks(300).enumerate() {
        let day = dir.path().join(format!("day={i}"));
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("part-0.parquet"), parquet(part)).unwrap();
    }
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.path().join(".part-0.parquet.crc"), b"not parquet").unwrap();
    let local = Command::new(bin)
        .args(["load", "--source", "tx", "--file"])
        .arg(dir.path())
        .args(["--registry", &registry, "--ingest", &stack.ingest])
        .args(["--output", "json"])
        .output()
        .unwrap();
    let local = json_output(local, "load");
    assert_eq!(
        (local["loaded"].as_u64(), local["already_loaded"].as_u64()),
        (Some(0), Some(900)),
        "{local}"
    );

    // Online, each user's lifetime count and total are exactly its events, once.
    let users: Vec<i64> = (0..USERS).collect();
    let refs = ["h:count", "h:total"].map(String::from);
    let response = get_features_of(
        &stack.cluster.address(1),
        "stream",
        "user_id",
        &users,
        &refs,
    )
    .await;
    for (u, user) in users.iter().enumerate() {
        let mine: Vec<&(i64, i64, f64)> = events.iter().filter(|e| e.0 == *user).collect();
        assert_eq!(
            response.results[1].values[u].kind,
            Some(Kind::Int64Value(mine.len() as i64)),
            "user {user}"
        );
        assert_eq!(
            response.results[2].values[u].kind,
            Some(Kind::Float64Value(mine.iter().map(|e| e.2).sum())),
            "user {user}"
        );
    }
}
