//! Backfills through real processes: a view applied after its source's events were pushed, and
//! a new version of an existing view, are built from the source log through Raft. Meanwhile
//! unpinned refs keep serving the previous version and refs only the new version has answer
//! `UNAVAILABLE` saying it is backfilling; afterwards the new view serves exactly what a view
//! that existed all along serves, its snapshots equal `GetFeatures` at the same times, and the
//! old version is retired. A backfill interrupted by killing the leader resumes and ends exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use quiver_core::Scalar;
use quiver_lake::columns::scalar_at;
use quiver_proto::convert::value_to_scalar;
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::{ApplyRequest, DefinitionDocument};
use quiver_proto::serving::GetFeaturesResponse;
use quiver_proto::types::FieldStatus;
use quiver_tests::cluster::{channel, Cluster};
use quiver_tests::flight::snapshot;
use quiver_tests::offline_stack::{
    entity_table, now_micros, push_all, start, wait_for_source_log, Stack,
};
use quiver_tests::stream::{
    admission, generate, push, request, Event, DEFS, F_FEATURES, HOUR, MINUTE, USERS,
};
use tonic::Code;

/// `DEFS` with view `f` given one more feature (its version 2) and a copy of `f` named `g`.
fn later_defs() -> String {
    let f = &DEFS[DEFS.find("  - name: f\n").unwrap()..];
    let g = f.replacen("  - name: f\n", "  - name: g\n", 1);
    let with_2h = DEFS.replacen(
        "      - {name: count_1h, aggregation: count, window: 1h}\n",
        "      - {name: count_1h, aggregation: count, window: 1h}\n      - {name: count_2h, aggregation: count, window: 2h}\n",
        1,
    );
    format!("{with_2h}{g}")
}

async fn apply(registry: &str, yaml: &str) {
    RegistryServiceClient::new(channel(registry).await.unwrap())
        .apply(ApplyRequest {
            documents: vec![DefinitionDocument {
                name: "defs.yaml".into(),
                yaml: yaml.into(),
            }],
            dry_run: false,
            expected_revision: None,
        })
        .await
        .unwrap();
}

/// GetFeatures of `refs` for every user at `as_of`, or the status it failed with.
async fn read(
    online: &str,
    refs: &[String],
    as_of: i64,
) -> Result<GetFeaturesResponse, tonic::Status> {
    read_checked(online, refs, as_of).await
}

/// Per feature, per user: (status, value).
type Cells = Vec<Vec<(i32, Option<Scalar>)>>;

/// Each cell as (status, value): what a comparison needs.
fn cells(response: &GetFeaturesResponse) -> Cells {
    response.results[1..]
        .iter()
        .map(|v| {
            v.statuses
                .iter()
                .zip(&v.values)
                .map(|(s, x)| (*s, value_to_scalar(x)))
                .collect()
        })
        .collect()
}

/// Equal cell by cell, floats to the bit: sums, means and deviations are exact sums rounded
/// once, whatever grouping the backfill's chunks and the live entries folded them in.
fn assert_same(name: &str, want: &[(i32, Option<Scalar>)], got: &[(i32, Option<Scalar>)]) {
    for (user, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.0, g.0, "{name} user {user}: status");
        assert_eq!(bits(&w.1), bits(&g.1), "{name} user {user}");
    }
}

/// A value with floats as their bits (so `-0.0 != 0.0` and NaN equals itself).
fn bits(value: &Option<Scalar>) -> Option<String> {
    value.as_ref().map(|v| match v {
        Scalar::Float64(x) => format!("f64 {:#x}", x.to_bits()),
        other => format!("{other:?}"),
    })
}

fn refs(view: &str) -> Vec<String> {
    F_FEATURES.iter().map(|f| format!("{view}:{f}")).collect()
}

/// Reads `view` until it serves (not UNAVAILABLE); every UNAVAILABLE message seen on the way.
async fn until_served(online: &str, refs: &[String], as_of: i64, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match read_checked(online, refs, as_of).await {
            Ok(_) => return seen,
            Err(status) if status.code() == Code::Unavailable => {
                seen.push(status.message().to_string())
            }
            Err(status) => panic!("{status:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "not served within {timeout:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GetFeatures that returns the failure status instead of panicking.
async fn read_checked(
    online: &str,
    refs: &[String],
    as_of: i64,
) -> Result<GetFeaturesResponse, tonic::Status> {
    use quiver_proto::serving::serving_service_client::ServingServiceClient;
    use quiver_proto::serving::{get_features_request, FeatureList, GetFeaturesRequest};
    use quiver_proto::types::{EntityColumn, RepeatedValue};
    let mut client = ServingServiceClient::new(channel(online).await?);
    client
        .get_features(GetFeaturesRequest {
            project: "stream".into(),
            features: Some(get_features_request::Features::FeatureList(FeatureList {
                refs: refs.to_vec(),
            })),
            entities: vec![EntityColumn {
                name: "user_id".into(),
                values: Some(RepeatedValue {
                    values: (0..USERS).map(quiver_tests::cluster::int).collect(),
                }),
            }],
            as_of: Some(prost_types::Timestamp {
                seconds: as_of.div_euclid(1_000_000),
                nanos: (as_of.rem_euclid(1_000_000) * 1000) as i32,
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Snapshot cells of `view` that differ from `want` (per time in `times`, per feature, per
/// user: what serving answered; INVALID cells are not compared).
async fn snapshot_mismatches(
    stack: &Stack,
    view: &str,
    times: &[i64],
    want: &[Cells],
) -> Result<Vec<String>, tonic::Status> {
    let pairs: Vec<(i64, i64)> = times
        .iter()
        .flat_map(|t| (0..USERS).map(move |u| (u, *t)))
        .collect();
    let command = serde_json::json!({"project": "stream", "features": refs(view)}).to_string();
    let answer = snapshot(&stack.offline, &command, vec![entity_table(&pairs)]).await?;
    let cell = |row: usize, column: &str| -> Option<Scalar> {
        let mut offset = row;
        for b in &answer {
            if offset < b.num_rows() {
                return scalar_at(b.column_by_name(column).unwrap().as_ref(), offset);
            }
            offset -= b.num_rows();
        }
        None
    };
    let rows: usize = answer.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, pairs.len());
    let mut mismatches = Vec::new();
    for (ti, &t) in times.iter().enumerate() {
        for (k, name) in F_FEATURES.iter().enumerate() {
            for (user, (status, value)) in want[ti][k].iter().enumerate() {
                if *status == FieldStatus::Invalid as i32 {
                    continue;
                }
                let offline = cell(ti * USERS as usize + user, &format!("{view}:{name}"));
                let equal = bits(value) == bits(&offline);
                if !equal {
                    mismatches.push(format!(
                        "{view}:{name} user {user} at {t}: online {value:?}, snapshot {offline:?}"
                    ));
                }
            }
        }
    }
    Ok(mismatches)
}

#[tokio::test]
async fn a_view_applied_after_its_events_serves_what_one_there_all_along_serves() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let stack = start(
        bin,
        DEFS,
        vec![(
            "QUIVER__ONLINE_STORE__BACKFILL_CHUNK_ROWS".into(),
            "300".into(),
        )],
    )
    .await;
    let online = stack.cluster.address(1);
    let start_at = now_micros() - 3 * HOUR;
    let events: Vec<Event> = generate(20_000, start_at, 3 * HOUR, 41);
    push_all(&stack.ingest, &events, 500).await;
    // The backfill's progress counts every admitted event of the source.
    let admitted = admission(&events).iter().filter(|a| **a).count();
    let end = events.iter().map(|e| e.at).max().unwrap();
    let times = [
        end + MINUTE,
        end - 20 * MINUTE,
        end - 65 * MINUTE + 17_000_000,
    ];

    // What `f` (there all along) serves, before anything changes.
    let mut before = Vec::new();
    for &t in &times {
        before.push(cells(&read(&online, &refs("f"), t).await.unwrap()));
    }

    wait_for_source_log(&stack.store, admitted).await;

    apply(&stack.cluster.registry.to_string(), &later_defs()).await;
    // `g` has training data at once: its snapshots are computed from the source log, and equal
    // what `f` (the same definition, there all along) served, before `g`'s backfill is done.
    let deadline = Instant::now() + Duration::from_secs(10);
    let at_once = loop {
        match snapshot_mismatches(&stack, "g", &times, &before).await {
            Ok(mismatches) => break mismatches,
            // The snapshot service learns of `g` from the registry's watch.
            Err(status) if status.message().contains("\"g\"") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(status) => panic!("{status:?}"),
        }
    };
    assert!(
        at_once.is_empty(),
        "{} mismatches, e.g. {:?}",
        at_once.len(),
        &at_once[..at_once.len().min(5)]
    );
    // While `f@2` backfills, `f`'s other features keep serving (from version 1) and the one only
    // version 2 has says why it cannot answer yet.
    let only_new = vec!["f:count_2h".to_string()];
    let mut waiting = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let old = read_checked(&online, &refs("f"), times[0]).await;
        assert!(old.is_ok(), "f's version-1 features keep serving: {old:?}");
        match read_checked(&online, &only_new, times[0]).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                waiting.push(status.message().to_string());
            }
        }
        assert!(Instant::now() < deadline, "f@2 never served: {waiting:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        waiting.iter().any(
            |m| m.contains("is backfilling (") && m.contains(&format!(" of {admitted} events"))
        ),
        "a read during the backfill says it is backfilling, with progress: {waiting:?}"
    );
    until_served(&online, &refs("g"), times[0], Duration::from_secs(120)).await;

    // `g` (applied after every event) and `f@2` serve exactly what `f@1` served.
    for (i, &t) in times.iter().enumerate() {
        for view in ["g", "f"] {
            let now = cells(&read(&online, &refs(view), t).await.unwrap());
            for (k, name) in F_FEATURES.iter().enumerate() {
                assert_same(&format!("{view}:{name} at {t}"), &before[i][k], &now[k]);
            }
        }
    }
    // `quiver describe view` shows each version's phase in the online store.
    let output = std::process::Command::new(bin)
        .args([
            "describe",
            "view",
            "f",
            "--output",
            "json",
            "--registry",
            &stack.cluster.registry.to_string(),
            "--online",
            &online,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let described: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let phases: Vec<(u64, String)> = described["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        phases,
        vec![(1, "retired".to_string()), (2, "serving".to_string())]
    );
    // Version 1 is retired: pinned, it is refused; its data is gone.
    let retired = read_checked(&online, &["f@1:count".to_string()], times[0])
        .await
        .unwrap_err();
    assert!(retired.message().contains("is retired"), "{retired:?}");

    // Snapshots of the backfilled view equal GetFeatures at the same times.
    let mut online_cells = Vec::new();
    for &t in &times {
        online_cells.push(cells(&read(&online, &refs("g"), t).await.unwrap()));
    }
    let mismatches = snapshot_mismatches(&stack, "g", &times, &online_cells)
        .await
        .unwrap();
    assert!(
        mismatches.is_empty(),
        "{} mismatches, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );

    // Events that arrive later reach snapshots too: the snapshot service merges the new
    // source-log files into what it loaded, and still equals serving.
    let mut more = generate(2_000, end, 10 * MINUTE, 43);
    for (k, e) in more.iter_mut().enumerate() {
        e.at = end + MINUTE + k as i64 * 100_000;
    }
    for (i, chunk) in more.chunks(250).enumerate() {
        push(&stack.ingest, request(chunk, "later", i as u64 + 1)).await;
    }
    wait_for_source_log(&stack.store, admitted + more.len()).await;
    let later = [more.last().unwrap().at + MINUTE];
    let online_cells = vec![cells(&read(&online, &refs("g"), later[0]).await.unwrap())];
    let mismatches = snapshot_mismatches(&stack, "g", &later, &online_cells)
        .await
        .unwrap();
    assert!(
        mismatches.is_empty(),
        "{} mismatches after more events, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[tokio::test]
async fn a_backfill_interrupted_by_a_leader_kill_resumes_and_ends_exact() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let mut cluster = Cluster::start_with(bin, DEFS, 3, |dir| {
        vec![
            (
                "QUIVER__ONLINE_STORE__OFFLINE_STORE".into(),
                dir.join("offline").display().to_string(),
            ),
            (
                "QUIVER__ONLINE_STORE__EXPORT_INTERVAL".into(),
                "200ms".into(),
            ),
            (
                "QUIVER__ONLINE_STORE__BACKFILL_CHUNK_ROWS".into(),
                "200".into(),
            ),
        ]
    })
    .await;
    let streaming = cluster.spawn_streaming().await;
    let ingest = streaming.ingest;
    let events = generate(20_000, now_micros() - 3 * HOUR, 3 * HOUR, 43);
    push_all(&ingest.to_string(), &events, 500).await;
    let end = events.iter().map(|e| e.at).max().unwrap();
    let t = end + MINUTE;
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let f = cells(&read(&cluster.address(leader), &refs("f"), t).await.unwrap());

    apply(&cluster.registry.to_string(), &later_defs()).await;
    // Kill the leader in the middle of the backfill (after a few chunks).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = cluster.metrics(leader);
        let done = metrics
            .lines()
            .find(|l| {
                l.starts_with("quiver_online_view_backfill_events{")
                    && l.contains("view=\"g\"")
                    && l.contains("kind=\"done\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        if done >= 2_000.0 {
            assert!(
                done < 19_000.0,
                "the backfill ended before the kill ({done})"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the backfill did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The leader reads and transforms the backfill on a thread below the live path's priority.
    assert_eq!(
        thread_nice(cluster.process(leader).pid(), "quiver-backfill"),
        Some(10)
    );
    cluster.kill(leader);
    let next = cluster.wait_for_leader(Duration::from_secs(30)).await;
    assert_ne!(next, leader);
    cluster.restart(leader).await;

    let online = cluster.address(next);
    until_served(&online, &refs("g"), t, Duration::from_secs(120)).await;
    let g = cells(&read(&online, &refs("g"), t).await.unwrap());
    for (k, name) in F_FEATURES.iter().enumerate() {
        assert_same(&format!("g:{name}"), &f[k], &g[k]);
    }
    // Every replica folded the same: the restarted node answers the same once caught up.
    let restarted = cluster.address(leader);
    until_served(&restarted, &refs("g"), t, Duration::from_secs(60)).await;
    let again = cells(&read(&restarted, &refs("g"), t).await.unwrap());
    for (k, name) in F_FEATURES.iter().enumerate() {
        assert_same(&format!("g:{name} on the restarted node"), &f[k], &again[k]);
    }
}

/// The nice value of process `pid`'s thread named `name` (`/proc`), if it has one.
fn thread_nice(pid: u32, name: &str) -> Option<i64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // `tid (comm) state ...`: the fields after the name, the 17th of them is the nice.
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            (comm == name).then(|| rest.split(' ').nth(16)?.parse().ok())?
        })
}
