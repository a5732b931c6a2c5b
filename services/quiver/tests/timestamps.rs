//! RFC 3339 timestamps with UTC offsets, end to end: JSON-lines and CSV files pushed with the
//! CLI and strings pushed over gRPC are stored at their UTC instant whatever offset they were
//! written with (`Z`, `+hh:mm`, `-hh:mm`, lower case, fractions); `quiver get --as-of` honours
//! offsets too; anything else is refused naming the row, the column and what was wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::types::value::Kind;
use quiver_proto::types::Value;
use quiver_tests::cluster::{channel, int, Cluster};

const DEFS: &str = r#"
project: clock
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: tx
    entity: user
    timestamp_field: ts
    allowed_lateness: 1d
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
feature_views:
  - name: f
    entity: user
    source: tx
    ttl: 30d
    features:
      - {name: last, column: amount, aggregation: last}
      - {name: count_1h, aggregation: count, window: 1h}
"#;

/// `micros` written at a UTC offset of `offset_minutes`, e.g. `2026-12-06T01:39:14.960000+02:00`.
fn at_offset(micros: i64, offset_minutes: i64) -> String {
    let local = micros + offset_minutes * 60_000_000;
    let text = humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(local as u64))
        .to_string();
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let m = offset_minutes.abs();
    text.replace('Z', &format!("{sign}{:02}:{:02}", m / 60, m % 60))
}

fn quiver(bin: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(bin).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `quiver get --features FEATURE --entity ENTITY [MORE...] --output json` against
/// `addresses`: (succeeded, stdout, stderr).
fn get(
    bin: &Path,
    addresses: &[String],
    feature: &str,
    entity: &str,
    more: &[&str],
) -> (bool, String, String) {
    let mut args = vec!["get", "--features", feature, "--entity", entity];
    args.extend(more);
    args.extend(["--output", "json"]);
    args.extend(addresses.iter().map(String::as_str));
    quiver(bin, &args)
}

#[tokio::test]
async fn timestamps_with_offsets_are_stored_at_their_utc_instant() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let streaming = cluster.spawn_streaming().await;
    let ingest = streaming.ingest;
    let (registry, online) = (cluster.registry.to_string(), cluster.address(1));
    let addresses = [
        "--registry",
        &registry,
        "--ingest",
        &ingest.to_string(),
        "--online",
        &online,
    ]
    .map(String::from);

    // Whole milliseconds an hour ago, so every written form is exact.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let base = (now - 3_600_000_000) / 1_000 * 1_000;
    // (user, instant, text): one form per user.
    let forms: Vec<(i64, i64, String)> = vec![
        (1, base, at_offset(base, 0)),
        (2, base + 1_000_000, at_offset(base + 1_000_000, 120)),
        (3, base + 2_000_000, at_offset(base + 2_000_000, -300)),
        (
            4,
            base + 3_000_000,
            at_offset(base + 3_000_000, 0)
                .replace('T', "t")
                .replace('Z', "z"),
        ),
        (5, base + 4_123_000, at_offset(base + 4_123_000, 330)),
        // Nanoseconds beyond the stored microseconds are truncated.
        (
            6,
            base + 5_000_001,
            at_offset(base + 5_000_001, -90).replace("001-", "001999-"),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    // Users 1-3 through a JSON-lines file, 4-6 through CSV: the CLI passes the text to ingest.
    let jsonl = dir.path().join("events.jsonl");
    std::fs::write(
        &jsonl,
        forms[..3]
            .iter()
            .map(|(u, _, t)| format!("{{\"user_id\": {u}, \"ts\": \"{t}\", \"amount\": {u}.5}}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let csv = dir.path().join("events.csv");
    std::fs::write(
        &csv,
        std::iter::once("user_id,ts,amount\n".to_string())
            .chain(
                forms[3..]
                    .iter()
                    .map(|(u, _, t)| format!("{u},{t},{u}.5\n")),
            )
            .collect::<String>(),
    )
    .unwrap();
    for file in [&jsonl, &csv] {
        let mut args = vec!["push", "--source", "tx", "--file", file.to_str().unwrap()];
        args.extend(addresses.iter().map(String::as_str));
        let (ok, out, err) = quiver(bin, &args);
        assert!(ok, "{out}\n{err}");
        assert!(out.contains("3 accepted"), "{out}");
    }

    // A file with bad rows among good ones, pushed or loaded, changes nothing, and its error
    // names every bad row: the CLI checks each row as ingest does before it sends any.
    let bad = dir.path().join("bad.csv");
    let good_row = |user: i64| format!("{user},{},1.5\n", at_offset(base, 0));
    // Lines 2 and 3 are good, line 4 has no user, line 5 no readable time, line 6 a time ingest
    // refuses as too far ahead of its clock (which the CLI asks ingest for).
    std::fs::write(
        &bad,
        format!(
            "user_id,ts,amount\n{}{},{},2.5\n9,yesterday,1.0\n9,2101-01-01T00:00:00Z,1.0\n",
            good_row(7),
            good_row(8),
            at_offset(base, 0)
        ),
    )
    .unwrap();
    for command in ["push", "load"] {
        let mut args = vec![command, "--source", "tx", "--file", bad.to_str().unwrap()];
        args.extend(addresses.iter().map(String::as_str));
        let (ok, out, err) = quiver(bin, &args);
        assert!(!ok, "{command}: {out}\n{err}");
        for named in [
            "3 bad rows; nothing was sent",
            "bad.csv:4: column \"user_id\": the join key is null",
            "bad.csv:5: column \"ts\": unparsable timestamp \"yesterday\"",
            "bad.csv:6: column \"ts\": event time 2101-01-01T00:00:00Z is more than 1h ahead of \
             ingest's clock",
        ] {
            assert!(err.contains(named), "{command}: {named} in {err}");
        }
    }

    // Each user's `last` carries the event time of its one event: the UTC instant.
    let users = forms
        .iter()
        .map(|(u, ..)| u.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let entity = format!("user_id={users}");
    let (ok, out, err) = get(bin, &addresses, "f:last", &entity, &[]);
    assert!(ok, "{out}\n{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (row, (user, instant, text)) in answer["rows"].as_array().unwrap().iter().zip(&forms) {
        let stored = row["features"]["f:last"]["event_time"].as_str().unwrap();
        let want =
            humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(*instant as u64))
                .to_string();
        let stored_micros = quiver_core::timestamp::parse_rfc3339_micros(stored).unwrap();
        assert_eq!(
            stored_micros, *instant,
            "user {user}: pushed {text}, stored {stored}, want {want}"
        );
    }

    // Nothing of the refused file arrived.
    let (ok, out, err) = get(bin, &addresses, "f:last", "user_id=7,8", &[]);
    assert!(ok, "{out}\n{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    for row in answer["rows"].as_array().unwrap() {
        assert_eq!(row["features"]["f:last"]["status"], "NOT_FOUND", "{row}");
    }

    // `--as-of` with an offset reads at the same instant as its UTC form: one second after
    // user 3's event (at -05:00) user 3 is found, one second before it is not yet.
    for (offset, delta, status) in [(-300, 1_000_000, "PRESENT"), (180, -1_000_000, "NOT_FOUND")] {
        let as_of = at_offset(base + 2_000_000 + delta, offset);
        let (ok, out, err) = get(bin, &addresses, "f:last", "user_id=3", &["--as-of", &as_of]);
        assert!(ok, "{out}\n{err}");
        let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
        let got = answer["rows"][0]["features"]["f:last"]["status"]
            .as_str()
            .unwrap();
        let want_status = if status == "NOT_FOUND" {
            // A past read before the only event: nothing was known then.
            ["NOT_FOUND", "INVALID"]
        } else {
            [status, status]
        };
        assert!(want_status.contains(&got), "--as-of {as_of}: {got}");
    }
    let (ok, _, err) = get(
        bin,
        &addresses,
        "f:last",
        "user_id=3",
        &["--as-of", "2026-01-01T00:00:00"],
    );
    assert!(!ok);
    assert!(
        err.contains("--as-of") && err.contains("no UTC offset"),
        "{err}"
    );

    // Refused forms over gRPC name the row and column and change nothing.
    let mut client = IngestServiceClient::new(channel(&ingest.to_string()).await.unwrap());
    for (text, why) in [
        ("2026-12-06T01:39:14.96", "no UTC offset"),
        ("2026-12-06T01:39:14+0200", "not Z, +hh:mm or -hh:mm"),
        ("2026-12-06 01:39", "too short"),
        ("06/12/2026 01:39:14Z", "YYYY-MM-DD"),
    ] {
        let row = |ts: &str| Row {
            values: vec![
                int(9),
                Value {
                    kind: Some(Kind::StringValue(ts.into())),
                },
                Value {
                    kind: Some(Kind::Float64Value(1.0)),
                },
            ],
        };
        let status = client
            .push(PushRequest {
                project: "clock".into(),
                source: "tx".into(),
                columns: ["user_id", "ts", "amount"].map(String::from).to_vec(),
                rows: vec![row(&at_offset(base, 0)), row(text)],
                producer_id: format!("bad-{text}"),
                sequence: 1,
                ..PushRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{text}");
        assert!(
            status
                .message()
                .contains("rows[1].ts: unparsable timestamp")
                && status.message().contains(why),
            "{text}: {}",
            status.message()
        );
    }
    let (ok, out, err) = get(bin, &addresses, "f:count_1h", "user_id=9", &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\"value\":0") || out.contains("NOT_FOUND"),
        "nothing of a refused batch is stored: {out}"
    );
}
