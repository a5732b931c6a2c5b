//! History loads through real processes: events older than anything the source keeps online
//! (its watermark minus the lateness and the longest window) are refused by `quiver push` (late,
//! quarantined); history of any age is admitted by `quiver load`, online (it counts in windowed
//! and lifetime features within retention) and offline (snapshots at past times equal a
//! brute-force count); re-running the load adds nothing and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use quiver_proto::types::value::Kind;
use quiver_tests::flight::{positions, read_exported, snapshot};
use quiver_tests::json_output;
use quiver_tests::offline_stack::{
    entity_table, get_features_of, now_micros, start, try_get_features_of, wait_for_source_log,
    Stack,
};
use quiver_tests::stream::{push, request, Event, Rng};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;

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
      - {name: note, type: string}
feature_views:
  - name: h
    entity: user
    source: tx
    ttl: 30d
    features:
      - {name: count, aggregation: count}
      - {name: count_24h, aggregation: count, window: 24h}
      - {name: sum_24h, column: amount, aggregation: sum, window: 24h}
"#;

const USERS: i64 = 10;

fn event(user: i64, at: i64, amount: f64) -> Event {
    Event {
        user,
        at,
        amount,
        merchant: "m".into(),
        note: "n".into(),
    }
}

/// Writes `events` as a JSON-lines file of source `tx` at `path`; returns the path.
fn write_jsonl(path: &Path, events: &[Event]) -> std::path::PathBuf {
    let lines: String = events
        .iter()
        .map(|e| {
            let ts =
                humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(e.at as u64));
            format!(
                "{{\"user_id\": {}, \"ts\": \"{ts}\", \"amount\": {}, \"merchant\": \"m\", \"note\": \"n\"}}\n",
                e.user, e.amount
            )
        })
        .collect();
    std::fs::write(path, lines).unwrap();
    path.to_path_buf()
}

fn quiver(bin: &Path, args: &[&str]) -> serde_json::Value {
    json_output(
        Command::new(bin).args(args).output().unwrap(),
        &format!("{args:?}"),
    )
}

/// `quiver COMMAND --source tx --file FILE` (push or load) against `stack`: its JSON summary.
fn run_file(bin: &Path, stack: &Stack, command: &str, file: &Path) -> serde_json::Value {
    let file = file.display().to_string();
    let registry = stack.cluster.registry.to_string();
    quiver(
        bin,
        &[
            command,
            "--source",
            "tx",
            "--file",
            &file,
            "--registry",
            &registry,
            "--ingest",
            &stack.ingest,
            "--output",
            "json",
        ],
    )
}

/// Each user's (count, count_24h, sum_24h) over `events`, all within a day of now.
fn per_user<'a>(events: impl Iterator<Item = &'a Event> + Clone) -> Vec<(i64, i64, f64)> {
    (0..USERS)
        .map(|u| {
            let mine = events.clone().filter(|e| e.user == u);
            let n = mine.clone().count() as i64;
            (n, n, mine.map(|e| e.amount).sum())
        })
        .collect()
}

/// Each user's (count, count_24h, sum_24h) of view `h` online now.
async fn online(address: &str) -> Vec<(i64, i64, f64)> {
    online_of(address, "h").await
}

/// Each user's (count, count_24h, sum_24h) of `view` (a copy of `h`) online now.
async fn online_of(address: &str, view: &str) -> Vec<(i64, i64, f64)> {
    let users: Vec<i64> = (0..USERS).collect();
    let refs = ["count", "count_24h", "sum_24h"].map(|f| format!("{view}:{f}"));
    let response = get_features_of(address, "stream", "user_id", &users, &refs).await;
    let int = |v: &quiver_proto::types::Value| match v.kind {
        Some(Kind::Int64Value(n)) => n,
        _ => -1,
    };
    (0..users.len())
        .map(|u| {
            let sum = match response.results[3].values[u].kind {
                Some(Kind::Float64Value(x)) => x,
                _ => f64::NAN,
            };
            (
                int(&response.results[1].values[u]),
                int(&response.results[2].values[u]),
                sum,
            )
        })
        .collect()
}

#[tokio::test]
async fn history_older_than_the_watermark_is_loaded_once_online_and_offline() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let stack = start(bin, DEFS, Vec::new()).await;
    let online_address = stack.cluster.address(1);

    // Live events over the last half hour move the source's watermark to about now.
    let now = now_micros();
    let mut rng = Rng(5);
    let live: Vec<Event> = (0..200)
        .map(|i| {
            event(
                rng.below(USERS as u64) as i64,
                now - 30 * MINUTE + i * 9_000_000,
                1.0,
            )
        })
        .collect();
    for (i, chunk) in live.chunks(50).enumerate() {
        let response = push(&stack.ingest, request(chunk, "live", i as u64 + 1)).await;
        assert_eq!(response.late, 0);
    }

    // History: 300 events from six to three hours ago, far behind the watermark.
    let history: Vec<Event> = (0..300)
        .map(|i| {
            let at = now - 6 * HOUR + i * 36_000_000;
            event(rng.below(USERS as u64) as i64, at, (i % 7) as f64)
        })
        .collect();
    // And 50 events of 30 to 27 hours ago: older than the source's horizon (the watermark minus
    // the 10-minute lateness and the 24-hour window).
    let ancient: Vec<Event> = (0..50)
        .map(|i| event(i % USERS, now - 30 * HOUR + i * 216_000_000, 1.0))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (file, ancient_file) = (
        write_jsonl(&dir.path().join("history.jsonl"), &history),
        write_jsonl(&dir.path().join("ancient.jsonl"), &ancient),
    );

    // Pushed, history older than the horizon is late: nothing of it counts.
    let before = online(&online_address).await;
    let pushed = run_file(bin, &stack, "push", &ancient_file);
    assert_eq!(
        (pushed["accepted"].as_u64(), pushed["late"].as_u64()),
        (Some(0), Some(50))
    );
    assert_eq!(online(&online_address).await, before);

    // Loaded, it counts online: lifetime and 24-hour windows include it.
    let loaded = run_file(bin, &stack, "load", &file);
    assert_eq!(
        (loaded["loaded"].as_u64(), loaded["already_loaded"].as_u64()),
        (Some(300), Some(0)),
        "{loaded}"
    );
    let want = per_user(live.iter().chain(&history));
    let after = online(&online_address).await;
    assert_eq!(after, want);

    // Loaded again: nothing added, and it says so.
    let again = run_file(bin, &stack, "load", &file);
    assert_eq!(
        (again["loaded"].as_u64(), again["already_loaded"].as_u64()),
        (Some(0), Some(300)),
        "{again}"
    );
    assert_eq!(online(&online_address).await, want);

    // Offline: every row once, and snapshots at past times count exactly the history before.
    // The source log holds every admitted event of the source once (the late push is not in it).
    let source_log = wait_for_source_log(&stack.store, live.len() + history.len()).await;
    let logged: Vec<(u64, u32)> = positions(&source_log);
    let unique: std::collections::HashSet<&(u64, u32)> = logged.iter().collect();
    assert_eq!(
        (logged.len(), unique.len()),
        (live.len() + history.len(), live.len() + history.len())
    );
    let times = [
        now - 5 * HOUR,
        now - 4 * HOUR + 17_000_000,
        now - 2 * HOUR,
        now,
    ];
    let pairs: Vec<(i64, i64)> = times
        .iter()
        .flat_map(|t| (0..USERS).map(move |u| (u, *t)))
        .collect();
    let command = r#"{"project": "stream", "features": ["h:count", "h:count_24h"]}"#;
    let answer = snapshot(&stack.offline, command, vec![entity_table(&pairs)])
        .await
        .unwrap();
    let column = |name: &str| -> Vec<Option<i64>> {
        answer
            .iter()
            .flat_map(|b: &RecordBatch| {
                let c = b.column_by_name(name).unwrap().as_primitive::<Int64Type>();
                (0..c.len())
                    .map(|i| c.is_valid(i).then(|| c.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (count, count_24h) = (column("h:count"), column("h:count_24h"));
    for (row, (user, t)) in pairs.iter().enumerate() {
        let n = live
            .iter()
            .chain(&history)
            .filter(|e| e.user == *user && e.at <= *t)
            .count() as i64;
        let want = (n > 0).then_some(n);
        assert_eq!(count[row], want, "user {user} at {t}: lifetime count");
        if n > 0 {
            // Every event of these users is within a day of t.
            assert_eq!(count_24h[row], Some(n), "user {user} at {t}: 24h count");
        }
    }
}

/// A windowed `zscore` scores loaded history against the window of the history's own time,
/// not the present's, and so does the backfill of a view applied afterwards. The present
/// window's amounts are about 1,000 and the history's about 10: scored against the present, every
/// history row would be excluded as anomalous; against its own time, only the five rows of
/// 10,000 are.
#[tokio::test]
async fn history_is_scored_against_the_window_of_its_own_time() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let scored = |view: &str| {
        DEFS.replace("  - name: h\n", &format!("  - name: {view}\n")).replace(
            "    ttl: 30d\n",
            "    ttl: 30d\n    transforms:\n      - {name: amount_z, op: zscore, input: amount, window: 1d, exclude_above: 4.0}\n",
        )
    };
    let defs = scored("h");
    let stack = start(bin, &defs, Vec::new()).await;
    let online_address = stack.cluster.address(1);

    let now = now_micros();
    let mut rng = Rng(11);
    let live: Vec<Event> = (0..200)
        .map(|i| {
            let amount = 1_000.0 + (i % 5) as f64;
            event(
                rng.below(USERS as u64) as i64,
                now - 30 * MINUTE + i * 9_000_000,
                amount,
            )
        })
        .collect();
    for (i, chunk) in live.chunks(50).enumerate() {
        let response = push(&stack.ingest, request(chunk, "live", i as u64 + 1)).await;
        assert_eq!((response.late, response.anomalous), (0, 0));
    }

    // 500 events from 20 to 10 hours ago, in time order; five of the last hundred are huge.
    let history: Vec<Event> = (0..500)
        .map(|i| {
            let amount = if i >= 400 && i % 20 == 0 {
                10_000.0
            } else {
                10.0 + (i % 7) as f64 * 0.5
            };
            event(
                rng.below(USERS as u64) as i64,
                now - 20 * HOUR + i * 72_000_000,
                amount,
            )
        })
        .collect();
    let huge = |e: &Event| e.amount >= 10_000.0;
    let dir = tempfile::tempdir().unwrap();
    let file = write_jsonl(&dir.path().join("history.jsonl"), &history);
    let loaded = run_file(bin, &stack, "load", &file);
    assert_eq!(
        (loaded["loaded"].as_u64(), loaded["anomalous"].as_u64()),
        (Some(500), Some(5)),
        "{loaded}"
    );
    let want = per_user(live.iter().chain(&history).filter(|e| !huge(e)));
    assert_eq!(online(&online_address).await, want);

    // Ten days ago, far older than anything online (the watermark minus the lateness and the
    // 24-hour window): the statistics of that time are kept all the same. Loaded in two files,
    // the second's two huge rows are scored against the first's 400 (its 25 rows alone are too
    // few to score anything, whatever batches compute makes of them).
    let ancient: Vec<Event> = history
        .iter()
        .map(|e| Event {
            at: e.at - 10 * 24 * HOUR,
            ..e.clone()
        })
        .collect();
    for (name, rows, anomalous) in [
        ("first", &ancient[..400], 0),
        ("second", &ancient[400..425], 2),
    ] {
        let path = write_jsonl(&dir.path().join(format!("{name}.jsonl")), rows);
        let loaded = run_file(bin, &stack, "load", &path);
        assert_eq!(
            loaded["anomalous"].as_u64(),
            Some(anomalous),
            "{name}: {loaded}"
        );
    }
    // Only lifetime counts reach that far back.
    let want: Vec<(i64, i64, f64)> = want
        .into_iter()
        .zip(0..)
        .map(|((count, count_24h, sum_24h), u)| {
            let old = ancient[..425]
                .iter()
                .filter(|e| e.user == u && !huge(e))
                .count() as i64;
            (count + old, count_24h, sum_24h)
        })
        .collect();
    assert_eq!(online(&online_address).await, want);

    // A copy of the view applied now is backfilled from the source log: live rows first (log
    // order), then the history, each scored against its own time's window.
    let both = dir.path().join("both.yaml");
    let copy = scored("h2");
    let copy = &copy[copy.find("  - name: h2").unwrap()..];
    std::fs::write(&both, format!("{defs}{copy}")).unwrap();
    quiver(
        bin,
        &[
            "apply",
            "--file",
            &both.display().to_string(),
            "--registry",
            &stack.cluster.registry.to_string(),
            "--output",
            "json",
        ],
    );
    // Until the online store has seen the new view (or while it backfills) reads fail or find
    // nothing.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let refs = ["h2:count".to_string()];
    loop {
        let read = try_get_features_of(&online_address, "stream", "user_id", &[0], &refs).await;
        if read.is_ok_and(|r| r.results[1].values[0].kind.is_some()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "h2 never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(online_of(&online_address, "h2").await, want);

    // Its snapshots read the rows it aggregated (a windowed zscore): refused, saying why, until
    // its backfill is exported, then equal to the original's at past and present times.
    let pairs: Vec<(i64, i64)> = [now - 12 * HOUR, now - 10 * 24 * HOUR + HOUR, now]
        .iter()
        .flat_map(|t| (0..USERS).map(move |u| (u, *t)))
        .collect();
    let snapshot_of = |view: &str| {
        let command = format!(
            r#"{{"project": "stream", "features": ["{view}:count", "{view}:count_24h", "{view}:sum_24h"]}}"#
        );
        let (offline, table) = (stack.offline.clone(), entity_table(&pairs));
        async move { snapshot(&offline, &command, vec![table]).await }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let copied = loop {
        match snapshot_of("h2").await {
            Ok(batches) => break batches,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(status.message().contains("backfill"), "{status:?}");
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "h2's rows never complete"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let original = snapshot_of("h").await.unwrap();
    // The three feature columns come last: counts (int64), then the sum (float64).
    let values = |batches: &[RecordBatch], column: usize| -> Vec<Option<f64>> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(b.num_columns() - 3 + column);
                (0..c.len())
                    .map(|i| {
                        c.is_valid(i)
                            .then(|| match c.as_primitive_opt::<Int64Type>() {
                                Some(ints) => ints.value(i) as f64,
                                None => c.as_primitive::<Float64Type>().value(i),
                            })
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for column in 0..3 {
        assert_eq!(
            values(&copied, column),
            values(&original, column),
            "column {column}"
        );
    }
}

/// A source log with `log_retention` keeps only the dates it covers; online state keeps
/// everything the tiles keep.
#[tokio::test]
async fn the_source_log_keeps_what_its_retention_covers() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let defs = DEFS.replace(
        "    allowed_lateness: 10m\n",
        "    allowed_lateness: 10m\n    log_retention: 2d\n",
    );
    // Retention runs with compaction: every few export intervals.
    let env = vec![(
        "QUIVER__ONLINE_STORE__EXPORT_INTERVAL".to_string(),
        "100ms".to_string(),
    )];
    let stack = start(bin, &defs, env).await;
    let now = now_micros();
    let mut rng = Rng(8);
    // Five days of history, one event every 20 minutes.
    let history: Vec<Event> = (0..360)
        .map(|i| {
            event(
                rng.below(USERS as u64) as i64,
                now - 120 * HOUR + i * 20 * MINUTE,
                1.0,
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = write_jsonl(&dir.path().join("history.jsonl"), &history);
    let loaded = run_file(bin, &stack, "load", &file);
    assert_eq!(loaded["loaded"].as_u64(), Some(360), "{loaded}");

    // The dates from two days ago on stay, whole; older ones go.
    let first_kept = quiver_lake::layout::date_of(now - 48 * HOUR);
    let kept = history
        .iter()
        .filter(|e| quiver_lake::layout::date_of(e.at) >= first_kept)
        .count();
    assert!(kept > 0 && kept < history.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows: usize = read_exported(&stack.store, "sources/project=stream/source=tx/")
            .await
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        if rows == kept {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the source log holds {rows} events, want the {kept} from {first_kept} on"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Online, every loaded event still counts (lifetime count).
    let counts = online(&stack.cluster.address(1)).await;
    let total: i64 = counts.iter().map(|c| c.0).sum();
    assert_eq!(total, history.len() as i64);
}

/// The peak resident memory (VmHWM) of a running process, in KiB; none once it has exited.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `quiver push` never holds a file whole: a 360 MB file of wide rows goes through with the CLI
/// at less than half the file's size (it used to hold every decoded row, more than the file;
/// streaming, it peaks at 100-120 MB whether the file is 120 or 240 MB), and every row counts
/// online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_pushed_in_memory_far_below_its_size() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let stack = start(bin, DEFS, Vec::new()).await;
    const ROWS: i64 = 120_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.jsonl");
    let note = "x".repeat(3_000);
    let now = now_micros();
    let lines: String = (0..ROWS)
        .map(|i| {
            let at = now - 30 * MINUTE + i * (30 * MINUTE / ROWS);
            let ts = humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(at as u64));
            format!(
                "{{\"user_id\": {}, \"ts\": \"{ts}\", \"amount\": 1.0, \"merchant\": \"m\", \"note\": \"{note}\"}}\n",
                i % USERS
            )
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    let file_kib = std::fs::metadata(&path).unwrap().len() / 1024;

    let registry = stack.cluster.registry.to_string();
    let child = Command::new(bin)
        .args(["push", "--source", "tx", "--file"])
        .arg(&path)
        .args(["--batch-size", "200", "--output", "json", "--registry"])
        .args([registry.as_str(), "--ingest", stack.ingest.as_str()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // VmHWM only grows: the last reading before the process exits is its peak, give or take
    // the last few milliseconds.
    let mut peak = 0;
    while let Some(kib) = peak_kib(child.id()) {
        peak = peak.max(kib);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
            .is_ok_and(|stat| stat.contains(") Z "))
        {
            break;
        }
    }
    let summary = json_output(child.wait_with_output().unwrap(), "push");
    assert_eq!(
        (summary["accepted"].as_i64(), summary["late"].as_i64()),
        (Some(ROWS), Some(0)),
        "{summary}"
    );
    eprintln!("file {file_kib} KiB, the CLI's peak {peak} KiB");
    assert!(
        peak > 0 && peak < file_kib / 2,
        "the CLI peaked at {peak} KiB pushing a {file_kib} KiB file"
    );
    let counts = online(&stack.cluster.address(1)).await;
    assert!(
        counts.iter().all(|(count, _, _)| *count == ROWS / USERS),
        "{counts:?}"
    );
}
