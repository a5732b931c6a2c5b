//! The offline store and snapshots, end to end through real processes: events pushed through
//! ingest are exported by the online store's leader to Parquet, and snapshots over Arrow Flight
//! must equal what `GetFeatures` returns at the same `as_of`, feature by feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use quiver_core::Scalar;
use quiver_lake::columns::scalar_at;
use quiver_proto::convert::value_to_scalar;
use quiver_proto::types::FieldStatus;
use quiver_tests::flight::{positions, read_exported, snapshot};
use quiver_tests::free_port_block;
use quiver_tests::offline_stack::{
    entity_table, get_features, now_micros, push_all, python_env, start, wait_for_source_log,
};
use quiver_tests::stream::{
    admission, anomalous, generate, Event, Rng, DEFS, F_FEATURES, HOUR, MINUTE, USERS,
};
use tonic::Code;

/// A second view on the stream's source: no anomaly exclusion, a 20-minute TTL.
const RECENT: &str = r#"
  - name: recent
    entity: user
    source: tx
    ttl: 20m
    features:
      - {name: last_amount, column: amount, aggregation: last}
      - {name: count, aggregation: count}
      - {name: count_15m, aggregation: count, window: 15m}
"#;

/// Every (user, t) to compare: random times, 1-minute tile ends (where no window of the view
/// reads ahead), exact event times (ties with `t`), and times after the stream (lifetime
/// features and TTLs).
fn times(events: &[Event], start: i64, end: i64) -> Vec<i64> {
    let mut rng = Rng(99);
    let span = (end - start - 10 * MINUTE) as u64;
    let mut times: Vec<i64> = (0..60)
        .map(|_| start + 10 * MINUTE + rng.below(span) as i64)
        .collect();
    times.extend((0..30).map(|_| {
        let t = start + 10 * MINUTE + rng.below(span) as i64;
        (t.div_euclid(MINUTE) + 1) * MINUTE - 1
    }));
    times.extend((0..10).map(|_| events[rng.below(events.len() as u64) as usize].at));
    times.extend([MINUTE, 10 * MINUTE, 30 * MINUTE, 2 * HOUR].map(|d| end + d));
    times
}

#[tokio::test]
async fn snapshots_equal_get_features_at_the_same_time() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let stack = start(bin, &format!("{DEFS}{RECENT}"), Vec::new()).await;
    let batch = 500;
    let start = now_micros() - 3 * HOUR;
    let events = generate(20_000, start, 3 * HOUR, 21);
    push_all(&stack.ingest, &events, batch).await;
    let admit = admission(&events);
    let late = admit.iter().filter(|a| !**a).count();
    let excluded = events
        .iter()
        .zip(&admit)
        .filter(|(e, a)| **a && anomalous(e))
        .count();
    assert!(
        late > 20 && excluded > 20,
        "{late} late, {excluded} anomalous"
    );

    // Exactly the admitted events are exported to the source log, each once; the rest are
    // quarantined, with the rows `f` excluded as anomalous. Both views' rows follow from the
    // source log, so neither writes rows of its own.
    let admitted = events.len() - late;
    let exported = wait_for_source_log(&stack.store, admitted).await;
    let unique: HashSet<(u64, u32)> = positions(&exported).into_iter().collect();
    assert_eq!(unique.len(), admitted, "every exported event is there once");
    let view_rows = quiver_lake::Lake::open(&stack.store)
        .unwrap()
        .list(&quiver_lake::Path::from("events"))
        .await
        .unwrap();
    assert!(
        view_rows.is_empty(),
        "per-version rows written: {view_rows:?}"
    );
    let quarantined = read_exported(&stack.store, "quarantine/project=stream/source=tx/").await;
    let reasons: Vec<String> = quarantined
        .iter()
        .flat_map(|b| {
            let column = b.column_by_name("reason").unwrap();
            let strings = column.as_any().downcast_ref::<StringArray>().unwrap();
            strings
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(reasons.len(), late + excluded, "quarantine log rows");
    assert_eq!(
        reasons.iter().filter(|r| r.starts_with("late: ")).count(),
        late
    );

    // First included event time per user and view: before it, serving had nothing.
    let first_of = |include: &dyn Fn(usize) -> bool| -> HashMap<i64, i64> {
        let mut first = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if include(i) {
                let at = first.entry(e.user).or_insert(e.at);
                *at = (*at).min(e.at);
            }
        }
        first
    };
    let first_f = first_of(&|i| admit[i] && !anomalous(&events[i]));
    let first_recent = first_of(&|i| admit[i]);

    let mut refs: Vec<String> = F_FEATURES.iter().map(|f| format!("f:{f}")).collect();
    refs.extend(["recent:last_amount", "recent:count", "recent:count_15m"].map(String::from));
    let mut users: Vec<i64> = (0..USERS).collect();
    users.push(10_000); // never seen
    let end = events.iter().map(|e| e.at).max().unwrap();
    let times = times(&events, start, end);
    let pairs: Vec<(i64, i64)> = times
        .iter()
        .flat_map(|t| users.iter().map(move |u| (*u, *t)))
        .collect();

    let command = serde_json::json!({"project": "stream", "features": refs}).to_string();
    let answer = snapshot(&stack.offline, &command, vec![entity_table(&pairs)])
        .await
        .unwrap();
    let rows: usize = answer.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, pairs.len(), "every entity row comes back");
    let cell = |row: usize, column: &str| -> Option<Scalar> {
        let mut offset = row;
        for b in &answer {
            if offset < b.num_rows() {
                return scalar_at(b.column_by_name(column).unwrap().as_ref(), offset);
            }
            offset -= b.num_rows();
        }
        panic!("row {row} is missing")
    };

    let (mut compared, mut skipped_invalid, mut not_yet) = (0usize, 0usize, 0usize);
    let mut per_feature: HashMap<&str, usize> = HashMap::new();
    let online = stack.cluster.address(1);
    for (ti, &t) in times.iter().enumerate() {
        let response = get_features(&online, &users, &refs, t).await;
        for (ui, &user) in users.iter().enumerate() {
            let row = ti * users.len() + ui;
            assert_eq!(cell(row, "user_id"), Some(Scalar::Int64(user)), "row order");
            assert_eq!(
                cell(row, "label"),
                Some(Scalar::Int64(i64::from(row.is_multiple_of(10))))
            );
            for (fi, name) in refs.iter().enumerate() {
                let vector = &response.results[fi + 1];
                let status = FieldStatus::try_from(vector.statuses[ui]).unwrap();
                let online_value = value_to_scalar(&vector.values[ui]);
                let offline_value = cell(row, name);
                let at = format!(
                    "user {user} {name} at {t}: online {status:?} {online_value:?}, snapshot {offline_value:?}"
                );
                let first = if name.starts_with("f:") {
                    first_f.get(&user)
                } else {
                    first_recent.get(&user)
                };
                if first.is_none_or(|first| t < *first) {
                    // Serving had nothing for this user at t: not found.
                    assert_eq!(offline_value, None, "{at}");
                    not_yet += 1;
                    continue;
                }
                match status {
                    FieldStatus::Invalid => skipped_invalid += 1,
                    FieldStatus::Present => {
                        let (Some(want), Some(got)) = (&online_value, &offline_value) else {
                            panic!("{at}");
                        };
                        // Floats to the bit (exact sums), -0.0 and NaN included.
                        match (want, got) {
                            (Scalar::Float64(w), Scalar::Float64(g)) => {
                                assert_eq!(w.to_bits(), g.to_bits(), "{at}: {w} vs {g}")
                            }
                            _ => assert_eq!(want, got, "{at}"),
                        }
                        compared += 1;
                        *per_feature.entry(name.as_str()).or_default() += 1;
                    }
                    FieldStatus::NullValue | FieldStatus::NotFound | FieldStatus::OutsideTtl => {
                        assert_eq!(offline_value, None, "{at}");
                        compared += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "compared {compared} cells over {} (user, t) pairs; {skipped_invalid} online INVALID (look-ahead or history), {not_yet} before the user's first event",
        pairs.len()
    );
    assert!(compared > 10_000, "compared {compared}");
    for name in &refs {
        let n = per_feature.get(name.as_str()).copied().unwrap_or(0);
        assert!(n >= 40, "{name}: only {n} PRESENT cells compared");
    }

    bad_requests_name_what_is_wrong(&stack.offline).await;
    dates_are_their_midnight(&stack.offline, &pairs, &refs).await;
    sampling_is_deterministic_and_weighted(&stack.offline, &pairs).await;
    python_client_fetches_a_snapshot(&stack.offline);
}

/// An entity table whose time column holds dates answers as one holding each date's midnight,
/// UTC, does: the same features for every row, the dates passed through as they were. So does
/// one holding the same times as RFC 3339 text; an unparsable one is named by row.
async fn dates_are_their_midnight(offline: &str, pairs: &[(i64, i64)], refs: &[String]) {
    const DAY: i64 = 86_400_000_000;
    // Even rows: a midnight before every event (the test's span is 3 hours back from now);
    // odd rows: one after every event. A date read in the wrong unit answers neither right.
    let midnights: Vec<(i64, i64)> = pairs
        .iter()
        .enumerate()
        .map(|(row, &(u, t))| {
            let days = if row % 2 == 0 { -1 } else { 2 };
            (u, (t.div_euclid(DAY) + days) * DAY)
        })
        .collect();
    let timestamps = entity_table(&midnights);
    let schema = timestamps.schema();
    let i = schema.index_of("event_timestamp").unwrap();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[i] = Field::new("event_timestamp", DataType::Date32, false);
    let mut columns = timestamps.columns().to_vec();
    columns[i] = Arc::new(arrow_array::Date32Array::from_iter_values(
        midnights.iter().map(|&(_, t)| (t / DAY) as i32),
    ));
    let dates =
        RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns.clone()).unwrap();
    // And as RFC 3339 text (a label table read from CSV), one row in another zone's offset.
    let text = |micros: i64| {
        humantime::format_rfc3339_micros(
            std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros as u64),
        )
        .to_string()
    };
    let mut texts: Vec<String> = midnights.iter().map(|&(_, t)| text(t)).collect();
    texts[1] = texts[1].replace("T00:00:00.000000Z", "T02:00:00+02:00");
    fields[i] = Field::new("event_timestamp", DataType::Utf8, false);
    columns[i] = Arc::new(arrow_array::StringArray::from(texts.clone()));
    let as_text =
        RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns.clone()).unwrap();
    let command = serde_json::json!({"project": "stream", "features": refs}).to_string();
    let by_timestamp = snapshot(offline, &command, vec![timestamps]).await.unwrap();
    let by_date = snapshot(offline, &command, vec![dates]).await.unwrap();
    let by_text = snapshot(offline, &command, vec![as_text]).await.unwrap();
    texts[3] = "yesterday".into();
    columns[i] = Arc::new(arrow_array::StringArray::from(texts));
    let bad = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let error = snapshot(offline, &command, vec![bad]).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error
            .message()
            .contains("entity table: row 3: event_timestamp: unparsable timestamp \"yesterday\""),
        "{}",
        error.message()
    );
    let cells = |batches: &[RecordBatch]| -> Vec<Vec<Option<Scalar>>> {
        batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |r| {
                    refs.iter()
                        .map(|name| scalar_at(b.column_by_name(name).unwrap().as_ref(), r))
                        .collect()
                })
            })
            .collect()
    };
    let (a, b) = (cells(&by_timestamp), cells(&by_date));
    assert_eq!(a, cells(&by_text), "RFC 3339 text");
    assert_eq!(a.len(), pairs.len());
    let present = |row: &Vec<Option<Scalar>>| row.iter().any(Option::is_some);
    assert!(
        a.iter().step_by(2).all(|row| !present(row)),
        "nothing before today's events"
    );
    assert!(
        a.iter().skip(1).step_by(2).any(present),
        "features after them"
    );
    assert_eq!(a, b);
    assert_eq!(
        by_date[0]
            .column_by_name("event_timestamp")
            .unwrap()
            .data_type(),
        &DataType::Date32,
        "passed through"
    );
}

/// Bad input gets INVALID_ARGUMENT naming the column or field.
async fn bad_requests_name_what_is_wrong(offline: &str) {
    let good = entity_table(&[(1, now_micros()), (2, now_micros())]);
    let command = r#"{"project": "stream", "features": ["f:count_1h"]}"#;
    let without = |name: &str| {
        let schema = good.schema();
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|i| schema.field(*i).name() != name)
            .collect();
        good.project(&keep).unwrap()
    };
    let replaced = |name: &str, field: Field, array: arrow_array::ArrayRef| {
        let schema = good.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns = good.columns().to_vec();
        let i = schema.index_of(name).unwrap();
        fields[i] = field;
        columns[i] = array;
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    };
    let cases: Vec<(&str, String, Vec<RecordBatch>)> = vec![
        (
            "entity table: no timestamp column \"event_timestamp\"",
            command.into(),
            vec![without("event_timestamp")],
        ),
        (
            "entity table: no join-key column \"user_id\"",
            command.into(),
            vec![without("user_id")],
        ),
        (
            "entity table: join-key column \"user_id\" has type Utf8; expected int64",
            command.into(),
            vec![replaced(
                "user_id",
                Field::new("user_id", DataType::Utf8, false),
                Arc::new(StringArray::from(vec!["1", "2"])),
            )],
        ),
        (
            "entity table: column \"event_timestamp\" has type Int64; expected a timestamp, a date or RFC 3339 text",
            command.into(),
            vec![replaced(
                "event_timestamp",
                Field::new("event_timestamp", DataType::Int64, false),
                Arc::new(Int64Array::from(vec![1, 2])),
            )],
        ),
        (
            "entity table: no timestamp column \"ts\"",
            r#"{"project": "stream", "features": ["f:count_1h"], "timestamp_column": "ts"}"#.into(),
            vec![good.clone()],
        ),
        (
            "feature_refs[1]: feature view \"f\" has no feature \"nope\"",
            r#"{"project": "stream", "features": ["f:count_1h", "f:nope"]}"#.into(),
            vec![good.clone()],
        ),
        (
            "feature_refs[0]: unknown feature view \"nope\"",
            r#"{"project": "stream", "features": ["nope:x"]}"#.into(),
            vec![good.clone()],
        ),
        (
            "entity table: no rows",
            command.into(),
            vec![good.slice(0, 0)],
        ),
        (
            "entity table: column \"f:count_1h\" clashes with an output column",
            command.into(),
            vec![replaced(
                "label",
                Field::new("f:count_1h", DataType::Int64, false),
                Arc::new(Int64Array::from(vec![1, 2])),
            )],
        ),
    ];
    for (want, command, table) in cases {
        let status = snapshot(offline, &command, table).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{want}: {status:?}");
        assert!(
            status.message().contains(want),
            "want {want:?}, got {:?}",
            status.message()
        );
    }
}

/// Sampling keeps every rare row, down-samples the frequent class, adds weights, and gives the
/// same sample for the same seed.
async fn sampling_is_deterministic_and_weighted(offline: &str, pairs: &[(i64, i64)]) {
    let table = entity_table(pairs);
    let command = |seed: u64| {
        serde_json::json!({
            "project": "stream",
            "features": ["f:count_1h"],
            "sampling": {"strategy": "balanced", "column": "label", "target_fraction": 0.2, "seed": seed},
        })
        .to_string()
    };
    let rows_of =
        |batches: &[RecordBatch]| -> Vec<(Option<Scalar>, Option<Scalar>, Option<Scalar>)> {
            batches
                .iter()
                .flat_map(|b| {
                    (0..b.num_rows()).map(move |r| {
                        let get = |c: &str| scalar_at(b.column_by_name(c).unwrap().as_ref(), r);
                        (get("label"), get("event_timestamp"), get("sample_weight"))
                    })
                })
                .collect()
        };
    let a = rows_of(
        &snapshot(offline, &command(5), vec![table.clone()])
            .await
            .unwrap(),
    );
    let b = rows_of(
        &snapshot(offline, &command(5), vec![table.clone()])
            .await
            .unwrap(),
    );
    let c = rows_of(
        &snapshot(offline, &command(6), vec![table.clone()])
            .await
            .unwrap(),
    );
    assert_eq!(a, b, "same seed, same sample");
    assert_ne!(a, c, "another seed, another sample");
    let rare = pairs.len().div_ceil(10);
    let kept_rare = a.iter().filter(|r| r.0 == Some(Scalar::Int64(1))).count();
    assert_eq!(kept_rare, rare, "every rare row is kept");
    let frequent = pairs.len() - rare;
    let kept_frequent: Vec<_> = a.iter().filter(|r| r.0 == Some(Scalar::Int64(0))).collect();
    let expected = frequent as f64 * 0.2;
    assert!(
        (kept_frequent.len() as f64 - expected).abs() < expected * 0.15,
        "kept {} of {frequent} frequent rows",
        kept_frequent.len()
    );
    let weight = kept_frequent[0].2.clone();
    assert_eq!(weight, Some(Scalar::Float64(5.0)), "1 / keep probability");
}

/// The Python test (pytest + pyarrow, no Quiver package) against the running service.
fn python_client_fetches_a_snapshot(offline: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = python_env(&root);
    let output = std::process::Command::new(bin.join("pytest"))
        .args(["-q", "tests/python"])
        .current_dir(&root)
        .env("QUIVER_OFFLINE", offline)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pytest failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The exporting leader crashes after writing a range's files and before releasing its rows;
/// after it restarts, the range is written again under the same names and released, and every
/// row is in the offline store exactly once.
#[tokio::test]
async fn an_export_interrupted_after_writing_its_files_is_finished_exactly_once() {
    const CRASH: &str = "QUIVER_FAULT_CRASH_AFTER_EXPORT_WRITE";
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let mut stack = start(bin, DEFS, vec![(CRASH.into(), "1".into())]).await;
    let batch = 500;
    let events = generate(3_000, now_micros() - HOUR, HOUR, 5);
    let ingest = stack.ingest.clone();
    let pushing = {
        let events = events.clone();
        tokio::spawn(async move { push_all(&ingest, &events, batch).await })
    };
    let status = stack
        .cluster
        .wait_for_exit(1, Duration::from_secs(60))
        .await
        .expect("the node crashes after writing its first export files");
    assert!(!status.success(), "{status:?}");
    let before: Vec<String> = read_listing(&stack.store).await;
    assert!(!before.is_empty(), "files were written before the crash");

    // The node restarts without the fault; producers retry until their batches commit.
    stack.cluster.restart_with(1, &[(CRASH, "0".into())]).await;
    pushing.await.unwrap();
    let admitted = admission(&events).into_iter().filter(|a| *a).count();
    let exported = wait_for_source_log(&stack.store, admitted).await;
    let all = positions(&exported);
    let unique: HashSet<(u64, u32)> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "no row twice");
    assert_eq!(all.len(), admitted, "no row lost");
    let after = read_listing(&stack.store).await;
    for name in &before {
        assert!(
            after.contains(name),
            "{name} was rewritten under its name, not duplicated"
        );
    }
}

/// The names of every export file of the store's source logs.
async fn read_listing(store: &str) -> Vec<String> {
    let lake = quiver_lake::Lake::open(store).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = lake
            .list(&quiver_lake::Path::from("sources"))
            .await
            .unwrap()
            .into_iter()
            .map(|(p, _)| p.to_string())
            .collect();
        if !names.is_empty() || Instant::now() > deadline {
            return names;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first fenced block of `language` in a Markdown file.
fn fenced_block(markdown: &str, language: &str) -> String {
    let start = markdown
        .find(&format!("```{language}\n"))
        .unwrap_or_else(|| panic!("no {language} block"));
    let body = &markdown[start + language.len() + 4..];
    body[..body.find("```").unwrap()].to_string()
}

/// A Parquet file's batches.
fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// docs/training.md "Try it", as a user runs it against `make run`: `quiver dev` with the
/// examples and the demo stream, `examples/make_labels.py`, `quiver snapshot` (and its JSON
/// summary), the Python client block of the page, and `quiver push --output json`.
#[tokio::test]
async fn the_training_walkthrough_works_against_quiver_dev() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_block(7);
    let address = |offset: u16| format!("127.0.0.1:{}", base + offset);
    let dev = quiver_tests::QuiverProcess::spawn(
        bin,
        &[
            "dev",
            "--data-dir",
            dir.path().join("quiver-data").to_str().unwrap(),
            "--port-base",
            &base.to_string(),
            "--apply",
            root.join("examples").to_str().unwrap(),
        ],
        &[],
        dir.path().join("dev.log"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !dev.output().contains("Demo: backfilled") {
        assert!(
            Instant::now() < deadline,
            "no demo backfill:\n{}",
            dev.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (registry, ingest, offline) = (address(0), address(1), address(4));
    let services = [
        "--registry",
        registry.as_str(),
        "--ingest",
        ingest.as_str(),
        "--offline",
        offline.as_str(),
    ];
    let run = |program: &Path, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        (out.status.success(), stdout, stderr)
    };

    // 1. The entity table.
    let python = python_env(&root).join("python");
    let python = python.as_path();
    let make_labels = root.join("examples/make_labels.py");
    let (ok, stdout, stderr) = run(
        python,
        &[make_labels.to_str().unwrap(), "--out", "labels.parquet"],
    );
    assert!(ok, "make_labels.py: {stdout}{stderr}");
    let labels = read_parquet(&dir.path().join("labels.parquet"));
    let entity_rows: usize = labels.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(entity_rows, 10_000);

    // 2. quiver snapshot, until the export has caught up with the backfill: most rows' users
    // have a last amount at their time.
    let service_columns = [
        "user_txn:txn_count_1h",
        "user_txn:amount_sum_24h",
        "user_txn:last_amount",
        "user_txn:amount_mean_7d",
        "user_txn:amount_max_1h",
    ];
    let snapshot_args = [
        &["snapshot", "--entities", "labels.parquet"][..],
        &["--service", "fraud_model_v1", "--out", "train.parquet"],
        &["--output", "json"],
        &services[..],
    ]
    .concat();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, stdout, stderr) = run(bin, &snapshot_args);
        assert!(ok, "quiver snapshot: {stdout}{stderr}");
        assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
        assert!(!stderr.contains("rows/s"), "no progress line: {stderr}");
        let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(summary["out"], "train.parquet");
        assert_eq!(summary["entity_rows"], entity_rows);
        assert_eq!(summary["rows"], entity_rows);
        let mut columns = vec!["user_id", "event_timestamp", "is_fraud"];
        columns.extend(service_columns);
        assert_eq!(summary["columns"], serde_json::json!(columns));
        assert!(summary["seconds"].as_f64().unwrap() > 0.0, "{summary}");
        let train = read_parquet(&dir.path().join("train.parquet"));
        let present: usize = train
            .iter()
            .map(|b| {
                let c = b.column_by_name("user_txn:last_amount").unwrap();
                c.len() - c.null_count()
            })
            .sum();
        if present * 2 > entity_rows {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {present} of {entity_rows} rows have a last amount"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The sampled job of the page: every positive kept, weights added.
    let (ok, stdout, stderr) = run(
        bin,
        &[
            &["snapshot", "--entities", "labels.parquet"][..],
            &["--features", "user_txn:txn_count_1h,user_txn:last_amount"],
            &["--sample", "balanced", "--label", "is_fraud"],
            &["--fraction", "0.05", "--seed", "7"],
            &["--out", "train-sampled.parquet", "--output", "json"],
            &services[..],
        ]
        .concat(),
    );
    assert!(ok, "sampled snapshot: {stdout}{stderr}");
    let sampled: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kept = sampled["rows"].as_u64().unwrap() as usize;
    assert!(kept < entity_rows / 5, "{sampled}");
    assert_eq!(
        sampled["columns"].as_array().unwrap().last().unwrap(),
        "sample_weight"
    );

    // 3. The page's Python block, pointed at this dev's snapshot service.
    let page = std::fs::read_to_string(root.join("docs/training.md")).unwrap();
    let block = fenced_block(&page, "python");
    assert!(block.contains("127.0.0.1:7074"), "{block}");
    let script = format!(
        "{}\nassert training_set.num_rows == entities.num_rows\nprint(json.dumps(training_set.column_names))\n",
        block.replace("127.0.0.1:7074", &offline)
    );
    std::fs::write(dir.path().join("client.py"), script).unwrap();
    let (ok, stdout, stderr) = run(python, &["client.py"]);
    assert!(ok, "the Python block of docs/training.md: {stdout}{stderr}");
    let columns: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        columns,
        serde_json::json!([
            "user_id",
            "event_timestamp",
            "is_fraud",
            "user_txn:txn_count_1h",
            "user_txn:amount_sum_24h",
            "user_txn:last_amount"
        ])
    );

    // 4. quiver push --output json (the README's event).
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    std::fs::write(
        dir.path().join("ev.jsonl"),
        format!(
            r#"{{"user_id": 7, "ts": "{now}", "amount": 12.5, "merchant": "m1", "note": "coffee"}}"#
        ) + "\n",
    )
    .unwrap();
    let push = |file: &str| {
        run(
            bin,
            &[
                &["push", "--source", "transactions", "--file", file][..],
                &["--output", "json"],
                &services[..],
            ]
            .concat(),
        )
    };
    let (ok, stdout, stderr) = push("ev.jsonl");
    assert!(ok, "quiver push: {stdout}{stderr}");
    assert!(!stderr.contains("rows/s"), "no progress line: {stderr}");
    let pushed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pushed["source"], "transactions");
    assert_eq!(
        (&pushed["rows"], &pushed["pushed"], &pushed["accepted"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{pushed}"
    );
    assert_eq!(
        (&pushed["late"], &pushed["rejected"]),
        (&serde_json::json!(0), &serde_json::json!(0))
    );
    assert!(
        pushed["error"].is_null() && pushed["anomalous"].is_u64(),
        "{pushed}"
    );
    std::fs::copy(dir.path().join("ev.jsonl"), dir.path().join("ev.txt")).unwrap();
    let (ok, _, stderr) = push("ev.txt");
    assert!(
        !ok && stderr.contains("pass --format jsonl|csv|parquet"),
        "{stderr}"
    );
}
