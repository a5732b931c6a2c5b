//! Many producers, one source, through real processes: a time-ordered file pushed with the
//! CLI's defaults (several producers at once) quarantines exactly its genuinely late rows, the
//! same as one producer with another batch size; and a producer ten minutes of event time behind
//! the others loses nothing (the source watermark follows the slowest active producer), nor does
//! one that joins hours behind while the tiles still hold its events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::types::value::Kind;
use quiver_proto::types::Value;
use quiver_tests::cluster::{int, Cluster};
use quiver_tests::json_output;
use quiver_tests::offline_stack::get_features_of;
use quiver_tests::stream::{push, Rng};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;

/// Two identical sources (pushed two ways) and a view counting each entity's events.
const DEFS: &str = r#"
project: shop
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: orders
    entity: customer
    timestamp_field: ts
    allowed_lateness: 1h
    schema:
      - {name: customer_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
  - name: orders_b
    entity: customer
    timestamp_field: ts
    allowed_lateness: 1h
    schema:
      - {name: customer_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
  - name: clicks
    entity: customer
    timestamp_field: ts
    allowed_lateness: 5m
    schema:
      - {name: customer_id, type: int64}
      - {name: ts, type: timestamp}
  - name: replays
    entity: customer
    timestamp_field: ts
    allowed_lateness: 5m
    schema:
      - {name: customer_id, type: int64}
      - {name: ts, type: timestamp}
feature_views:
  - name: replays_seen
    entity: customer
    source: replays
    ttl: 30d
    features:
      - {name: count, aggregation: count}
      - {name: count_24h, aggregation: count, window: 24h}
  - name: clicks_seen
    entity: customer
    source: clicks
    ttl: 30d
    features:
      - {name: count, aggregation: count}
"#;

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn rfc3339(micros: i64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(micros as u64)).to_string()
}

/// The pushed summary's counts: (accepted, late, already pushed).
fn push_file(
    bin: &Path,
    cluster: &Cluster,
    ingest: &str,
    source: &str,
    file: &Path,
    extra: &[&str],
) -> (u64, u64, u64) {
    let registry = cluster.registry.to_string();
    let mut args = vec![
        "push",
        "--source",
        source,
        "--file",
        file.to_str().unwrap(),
        "--registry",
        &registry,
        "--ingest",
        ingest,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let summary = json_output(Command::new(bin).args(&args).output().unwrap(), "push");
    (
        summary["accepted"].as_u64().unwrap(),
        summary["late"].as_u64().unwrap(),
        summary["already_pushed"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_time_ordered_file_pushed_in_parallel_quarantines_only_its_late_rows() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let streaming = cluster.spawn_streaming().await;
    let ingest = streaming.ingest;
    let ingest = ingest.to_string();

    // 30 hours of orders, in time order with up to 5 minutes of local jitter; 1% of rows
    // arrive 3 hours late (never among the first rows, which have nothing to be late against).
    let rows = 20_186;
    let end = now_micros() - 10 * MINUTE;
    let start = end - 30 * HOUR;
    let mut rng = Rng(12);
    let mut lines = String::new();
    let mut late = 0;
    for i in 0..rows {
        let on_time = start + (30 * HOUR) * i as i64 / rows as i64;
        let jitter = rng.below(5 * MINUTE as u64) as i64;
        let at = if i > 300 && rng.below(100) == 0 {
            late += 1;
            on_time - 3 * HOUR
        } else {
            on_time - jitter
        };
        lines.push_str(&format!(
            "{{\"customer_id\": {}, \"ts\": \"{}\", \"amount\": {}.25}}\n",
            rng.below(500),
            rfc3339(at),
            i % 100
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.jsonl");
    std::fs::write(&file, lines).unwrap();

    // The CLI's defaults: four producers at once.
    let pushed = push_file(bin, &cluster, &ingest, "orders", &file, &[]);
    assert_eq!(
        pushed,
        (rows - late, late, 0),
        "{late} rows are 3 hours late"
    );
    // The same file pushed the same way again adds nothing: the rows decide the producers and
    // their sequences, so every batch is a duplicate.
    let again = push_file(bin, &cluster, &ingest, "orders", &file, &[]);
    assert_eq!(again, (0, 0, rows));
    // One producer and another batch size decide the same rows.
    let pushed = push_file(
        bin,
        &cluster,
        &ingest,
        "orders_b",
        &file,
        &["--workers", "1", "--batch-size", "777"],
    );
    assert_eq!(pushed, (rows - late, late, 0));
    // Pushed again split another way, so by new producers 30 hours behind the source's
    // watermark: no view of `orders` keeps tiles, so nothing but each producer's own progress
    // bounds its rows, and again only the genuinely late ones are quarantined (a source with
    // windowed views bounds a joining producer by its horizon:
    // `a_producer_joining_hours_behind_...` below).
    let split_otherwise = push_file(bin, &cluster, &ingest, "orders", &file, &["--workers", "1"]);
    assert_eq!(split_otherwise, (rows - late, late, 0));
}

#[tokio::test]
async fn a_producer_ten_minutes_behind_the_others_loses_nothing() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let streaming = cluster.spawn_streaming().await;
    let ingest = streaming.ingest;
    let ingest = ingest.to_string();

    // Four producers register, then push 30 batches each; producer 3's events are ten minutes
    // behind the others' (twice the allowed lateness). Each customer belongs to one producer.
    let start = now_micros() - HOUR;
    let batch = |producer: i64, sequence: u64, rows: Vec<Row>| PushRequest {
        project: "shop".into(),
        source: "clicks".into(),
        columns: vec!["customer_id".into(), "ts".into()],
        rows,
        producer_id: format!("clicks-{producer}"),
        sequence,
        ..PushRequest::default()
    };
    for producer in 0..4 {
        let registered = push(&ingest, batch(producer, 1, Vec::new())).await;
        assert_eq!((registered.accepted, registered.late), (0, 0));
    }
    let mut tasks = Vec::new();
    for producer in 0..4i64 {
        let ingest = ingest.clone();
        let behind = if producer == 3 { 10 * MINUTE } else { 0 };
        tasks.push(tokio::spawn(async move {
            let mut pushed = 0;
            for b in 0..30i64 {
                let rows = (0..20)
                    .map(|r| Row {
                        values: vec![
                            int(producer * 100 + r % 10),
                            Value {
                                kind: Some(Kind::TimestampValue(prost_types::Timestamp {
                                    seconds: (start - behind + b * MINUTE + r * 1_000_000)
                                        / 1_000_000,
                                    nanos: 0,
                                })),
                            },
                        ],
                    })
                    .collect::<Vec<_>>();
                let response = push(&ingest, batch(producer, b as u64 + 2, rows)).await;
                assert_eq!(response.late, 0, "producer {producer}, batch {b}");
                pushed += response.accepted;
            }
            pushed
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 4 * 30 * 20);
    // Every customer counts all of its 60 events.
    let customers: Vec<i64> = (0..4)
        .flat_map(|p| (0..10).map(move |c| p * 100 + c))
        .collect();
    assert_eq!(
        counts(&cluster, &customers, "clicks_seen:count").await,
        vec![60; 40]
    );
}

#[tokio::test]
async fn a_producer_joining_hours_behind_loses_what_the_tiles_still_hold_nothing_older() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let streaming = cluster.spawn_streaming().await;
    let ingest = streaming.ingest.to_string();
    let batch = |producer: &str, customer: i64, times: &[i64]| PushRequest {
        project: "shop".into(),
        source: "replays".into(),
        columns: vec!["customer_id".into(), "ts".into()],
        rows: times
            .iter()
            .map(|&at| Row {
                values: vec![int(customer), timestamp(at)],
            })
            .collect(),
        producer_id: producer.into(),
        sequence: 1,
        ..PushRequest::default()
    };
    // A live producer is at now; then a replay after a 3-hour outage joins (no registration),
    // 36 times the 5-minute lateness behind, and a third producer sends events 25 hours old:
    // older than the source watermark minus the lateness and the longest window (24 h).
    let now = now_micros() - MINUTE;
    let live = push(&ingest, batch("live", 1, &[now - 2 * MINUTE, now])).await;
    assert_eq!((live.accepted, live.late), (2, 0));
    let replay: Vec<i64> = (0..60).map(|i| now - 3 * HOUR + i * MINUTE).collect();
    let replayed = push(&ingest, batch("replay", 2, &replay)).await;
    assert_eq!(
        (replayed.accepted, replayed.late),
        (60, 0),
        "the replay loses nothing"
    );
    let older = push(&ingest, batch("older", 3, &[now - 25 * HOUR, now])).await;
    assert_eq!((older.accepted, older.late), (1, 1));
    // Serving counts the replay in its windows and lifetime alike.
    let customers = [1, 2, 3];
    assert_eq!(
        counts(&cluster, &customers, "replays_seen:count").await,
        [2, 60, 1]
    );
    assert_eq!(
        counts(&cluster, &customers, "replays_seen:count_24h").await,
        [2, 60, 1]
    );
}

fn timestamp(micros: i64) -> Value {
    Value {
        kind: Some(Kind::TimestampValue(prost_types::Timestamp {
            seconds: micros.div_euclid(1_000_000),
            nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
        })),
    }
}

/// One int64 feature of `customers`, as served now (-1: not a number).
async fn counts(cluster: &Cluster, customers: &[i64], feature: &str) -> Vec<i64> {
    let response = get_features_of(
        &cluster.address(1),
        "shop",
        "customer_id",
        customers,
        &[feature.to_string()],
    )
    .await;
    response.results[1]
        .values
        .iter()
        .map(|v| match v.kind {
            Some(Kind::Int64Value(n)) => n,
            _ => -1,
        })
        .collect()
}
