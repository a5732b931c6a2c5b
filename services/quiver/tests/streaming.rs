//! Streaming features end to end, through real registry, online-store, compute and ingest
//! processes: generated events (out of order, late, anomalous, exact-time ties, skewed keys)
//! are pushed through ingest, then `GetFeatures` at several `as_of` times is compared with a
//! brute-force recomputation from the same events, written here independently of the server's
//! tiling and aggregation code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::PushRequest;
use quiver_proto::types::value::Kind;
use quiver_proto::types::{FieldStatus, Value};
use quiver_tests::cluster::{channel, Cluster};
use quiver_tests::free_address;
use quiver_tests::offline_stack::get_features;
use quiver_tests::stream::{
    admission, anomalous, generate, push, request, Event, DEFS, HOUR, LATENESS, MINUTE, USERS,
};
use tonic::Code;

/// The expected value of every feature for `user` at `as_of`, by brute force.
#[derive(Debug)]
enum Expect {
    Int(i64),
    Float(f64),
    Approx(f64),
    Null,
    Invalid,
}

/// An aggregate over a window's events.
type Aggregate<'a> = dyn Fn(&[(usize, &Event)]) -> f64 + 'a;

/// `horizon`: windows starting before it cannot be answered (their tiles may be collected):
/// the final watermark minus the lateness minus the view's reach (two hours: twice its 1h
/// tumbling window).
fn expected(
    events: &[(usize, &Event)],
    user: i64,
    as_of: i64,
    horizon: i64,
) -> Vec<(String, Expect)> {
    let mine: Vec<(usize, &Event)> = events
        .iter()
        .filter(|(_, e)| e.user == user)
        .copied()
        .collect();
    let bucket = |t: i64, tile: i64| t.div_euclid(tile);
    // Sliding windows: whole tiles (1h -> 1 minute, 15m -> 30 seconds) ending with as_of's.
    let sliding = |len: i64, tile: i64| -> Vec<(usize, &Event)> {
        let head = bucket(as_of, tile);
        let tiles = len / tile;
        mine.iter()
            .filter(|(_, e)| {
                let b = bucket(e.at, tile);
                b > head - tiles && b <= head
            })
            .copied()
            .collect()
    };
    let sliding_start = |len: i64, tile: i64| (bucket(as_of, tile) - len / tile + 1) * tile;
    // A past read whose window's newest tile holds later events would leak them: INVALID.
    let windowed = |start: i64, window: &[(usize, &Event)], v: Expect| {
        if start < horizon || window.iter().any(|(_, e)| e.at > as_of) {
            Expect::Invalid
        } else {
            v
        }
    };
    let (s1h, s15, st) = (
        sliding_start(HOUR, MINUTE),
        sliding_start(15 * MINUTE, 30_000_000),
        (bucket(as_of, HOUR) - 1) * HOUR,
    );
    let w1h = sliding(HOUR, MINUTE);
    let w15 = sliding(15 * MINUTE, 30_000_000);
    let tumbling: Vec<(usize, &Event)> = mine
        .iter()
        .filter(|(_, e)| bucket(e.at, HOUR) == bucket(as_of, HOUR) - 1)
        .copied()
        .collect();
    let sum = |w: &[(usize, &Event)]| w.iter().map(|(_, e)| e.amount).sum::<f64>();
    let float_or_null = |w: &[(usize, &Event)], f: &Aggregate| {
        if w.is_empty() {
            Expect::Null
        } else {
            Expect::Float(f(w))
        }
    };
    let last = |w: &[(usize, &Event)]| {
        w.iter()
            .max_by_key(|(i, e)| (e.at, *i))
            .map(|(_, e)| e.amount)
    };
    let first = |w: &[(usize, &Event)]| {
        w.iter()
            .min_by_key(|(i, e)| (e.at, *i))
            .map(|(_, e)| e.amount)
    };
    let opt = |v: Option<f64>| v.map(Expect::Float).unwrap_or(Expect::Null);
    // `first`/`last` of the note's token count: the record keeps the note, serving counts.
    let tokens_of = |e: Option<&Event>| {
        e.map_or(Expect::Null, |e| {
            Expect::Int(e.note.split_whitespace().count() as i64)
        })
    };

    let mean = |w: &[(usize, &Event)]| sum(w) / w.len() as f64;
    let stddev = |w: &[(usize, &Event)]| {
        let m = mean(w);
        (w.iter().map(|(_, e)| (e.amount - m).powi(2)).sum::<f64>() / w.len() as f64).sqrt()
    };
    let min = |w: &[(usize, &Event)]| {
        w.iter()
            .map(|(_, e)| e.amount)
            .fold(f64::INFINITY, f64::min)
    };
    let max = |w: &[(usize, &Event)]| {
        w.iter()
            .map(|(_, e)| e.amount)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let tokens = |w: &[(usize, &Event)]| {
        w.iter()
            .map(|(_, e)| e.note.split_whitespace().count() as i64)
            .sum::<i64>()
    };
    let merchants = |w: &[(usize, &Event)]| {
        w.iter()
            .map(|(_, e)| e.merchant.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let latest = mine.iter().map(|(_, e)| e.at).max();
    let lifetime = |v: Expect| {
        if latest.is_some_and(|l| as_of < l) {
            Expect::Invalid
        } else {
            v
        }
    };
    vec![
        (
            "count_1h".into(),
            windowed(s1h, &w1h, Expect::Int(w1h.len() as i64)),
        ),
        (
            "sum_1h".into(),
            windowed(s1h, &w1h, Expect::Float(sum(&w1h))),
        ),
        (
            "mean_1h".into(),
            windowed(s1h, &w1h, float_or_null(&w1h, &mean)),
        ),
        (
            "stddev_1h".into(),
            windowed(s1h, &w1h, float_or_null(&w1h, &stddev)),
        ),
        (
            "min_1h".into(),
            windowed(s1h, &w1h, float_or_null(&w1h, &min)),
        ),
        (
            "max_1h".into(),
            windowed(s1h, &w1h, float_or_null(&w1h, &max)),
        ),
        ("last_1h".into(), windowed(s1h, &w1h, opt(last(&w1h)))),
        ("first_1h".into(), windowed(s1h, &w1h, opt(first(&w1h)))),
        (
            "merchants_1h".into(),
            windowed(s1h, &w1h, Expect::Approx(merchants(&w1h) as f64)),
        ),
        (
            "tokens_sum_1h".into(),
            windowed(s1h, &w1h, Expect::Int(tokens(&w1h))),
        ),
        (
            "first_tokens_1h".into(),
            windowed(s1h, &w1h, tokens_of(first_event(&w1h))),
        ),
        (
            "sum_15m".into(),
            windowed(s15, &w15, Expect::Float(sum(&w15))),
        ),
        (
            "count_tumbling_1h".into(),
            windowed(st, &tumbling, Expect::Int(tumbling.len() as i64)),
        ),
        (
            "max_tumbling_1h".into(),
            windowed(st, &tumbling, float_or_null(&tumbling, &max)),
        ),
        ("last".into(), lifetime(opt(last(&mine)))),
        ("first".into(), lifetime(opt(first(&mine)))),
        ("last_tokens".into(), lifetime(tokens_of(last_event(&mine)))),
        ("count".into(), lifetime(Expect::Int(mine.len() as i64))),
        ("sum".into(), lifetime(Expect::Float(sum(&mine)))),
    ]
}

/// The latest event of `w` (the later push among events of one time).
fn last_event<'a>(w: &[(usize, &'a Event)]) -> Option<&'a Event> {
    w.iter().max_by_key(|(i, e)| (e.at, *i)).map(|(_, e)| *e)
}

/// The earliest event of `w`.
fn first_event<'a>(w: &[(usize, &'a Event)]) -> Option<&'a Event> {
    w.iter().min_by_key(|(i, e)| (e.at, *i)).map(|(_, e)| *e)
}

/// `GetFeatures` of view `f`'s `features` for `users` at `as_of`.
async fn read(
    online: &str,
    users: &[i64],
    features: &[String],
    as_of: i64,
) -> quiver_proto::serving::GetFeaturesResponse {
    let refs: Vec<String> = features.iter().map(|f| format!("f:{f}")).collect();
    get_features(online, users, &refs, as_of).await
}

fn check(
    response: &quiver_proto::serving::GetFeaturesResponse,
    users: &[i64],
    included: &[(usize, &Event)],
    as_of: i64,
    horizon: i64,
) -> usize {
    let mut checked = 0;
    for (u, user) in users.iter().enumerate() {
        let seen = included.iter().any(|(_, e)| e.user == *user);
        for (f, (name, want)) in expected(included, *user, as_of, horizon)
            .into_iter()
            .enumerate()
        {
            let vector = &response.results[f + 1];
            let status = FieldStatus::try_from(vector.statuses[u]).unwrap();
            let value = &vector.values[u].kind;
            let at = format!(
                "user {user} {name} at as_of {as_of}: got {status:?} {value:?}, want {want:?}"
            );
            if !seen {
                assert_eq!(status, FieldStatus::NotFound, "{at}");
                continue;
            }
            match (&want, status, value) {
                (Expect::Invalid, FieldStatus::Invalid, _) => {}
                (Expect::Null, FieldStatus::NullValue, _) => {}
                (Expect::Int(w), FieldStatus::Present, Some(Kind::Int64Value(v))) => {
                    assert_eq!(v, w, "{at}")
                }
                (Expect::Float(w), FieldStatus::Present, Some(Kind::Float64Value(v))) => {
                    let exact = ["sum", "min", "max", "last", "first"]
                        .iter()
                        .any(|p| name.starts_with(p));
                    if exact {
                        assert_eq!(v, w, "{at}");
                    } else {
                        assert!((v - w).abs() <= 1e-9 * w.abs().max(1e-300), "{at}");
                    }
                }
                (Expect::Approx(w), FieldStatus::Present, Some(Kind::Int64Value(v))) => {
                    assert!((*v as f64 - w).abs() <= (w * 0.03).max(1.0), "{at}")
                }
                _ => panic!("{at}"),
            }
            checked += 1;
        }
    }
    checked
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[tokio::test]
async fn streamed_features_equal_a_brute_force_recomputation() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let (compute_addr, ingest_addr) = (free_address(), free_address());
    let (compute_http, ingest_http) = (free_address(), free_address());
    let _compute = cluster
        .spawn_role(
            "compute",
            compute_addr,
            compute_addr,
            "compute",
            &[("QUIVER__HTTP__LISTEN", compute_http.to_string())],
        )
        .await;
    let _ingest = cluster
        .spawn_role(
            "ingest",
            ingest_addr,
            compute_addr,
            "ingest",
            &[("QUIVER__HTTP__LISTEN", ingest_http.to_string())],
        )
        .await;
    let ingest = ingest_addr.to_string();

    let batch = 500;
    let start = now_micros() - 3 * HOUR;
    let events = generate(30_000, start, 3 * HOUR, 7);
    let (mut accepted, mut late, mut anomalous_rows) = (0, 0, 0);
    for (i, chunk) in events.chunks(batch).enumerate() {
        let response = push(&ingest, request(chunk, "oracle-producer", i as u64 + 1)).await;
        assert!(!response.duplicate);
        accepted += response.accepted;
        late += response.late;
        anomalous_rows += response.anomalous;
    }
    let admit = admission(&events);
    let want_late = admit.iter().filter(|a| !**a).count() as u64;
    let want_anomalous = events
        .iter()
        .zip(&admit)
        .filter(|(e, a)| **a && anomalous(e))
        .count() as u64;
    assert_eq!(late, want_late, "late rows");
    assert_eq!(accepted, events.len() as u64 - want_late, "accepted rows");
    assert_eq!(anomalous_rows, want_anomalous, "anomalous rows");
    assert!(
        late > 50 && anomalous_rows > 50,
        "the stream exercises both: {late} late, {anomalous_rows} anomalous"
    );
    let included: Vec<(usize, &Event)> = events
        .iter()
        .enumerate()
        .filter(|(i, e)| admit[*i] && !anomalous(e))
        .collect();

    // A retried batch is recognised and changes nothing.
    let again = push(&ingest, request(&events[..batch], "oracle-producer", 1)).await;
    assert!(again.duplicate);

    let features: Vec<String> = expected(&included, 0, 0, 0)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let watermark = events
        .iter()
        .zip(&admit)
        .filter(|(_, a)| **a)
        .map(|(e, _)| e.at)
        .max()
        .unwrap();
    let horizon = watermark - LATENESS - 2 * HOUR;
    let mut users: Vec<i64> = (0..USERS).collect();
    users.push(10_000); // never seen
    let mut checked = 0;
    for as_of in [
        watermark - 150 * MINUTE,
        watermark - 90 * MINUTE,
        watermark - 37 * MINUTE - 17_000_000,
        watermark - 5 * MINUTE,
        watermark,
        now_micros(),
        now_micros() + 20 * MINUTE,
    ] {
        let response = read(&cluster.address(1), &users, &features, as_of).await;
        checked += check(&response, &users, &included, as_of, horizon);
    }
    eprintln!(
        "checked {checked} cells; {late} late, {anomalous_rows} anomalous, {} included",
        included.len()
    );
    assert!(checked > 2_000, "checked {checked} cells");

    // The metrics tell the same story, scraped from each process's /metrics.
    let store = cluster.metrics(1);
    let counter = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(
        counter(&store, "quiver_online_events_total{result=\"accepted\"}"),
        accepted as f64
    );
    assert_eq!(
        counter(&store, "quiver_online_events_total{result=\"late\"}"),
        late as f64
    );
    assert_eq!(
        counter(&store, "quiver_online_events_total{result=\"anomalous\"}"),
        anomalous_rows as f64
    );
    assert_eq!(
        counter(
            &store,
            "quiver_online_source_watermark_seconds{project=\"stream\",source=\"tx\"}"
        ),
        watermark.div_euclid(1_000_000) as f64
    );
    assert!(counter(&store, "quiver_online_event_freshness_seconds_count") > 0.0);
    let ingest_metrics = quiver_tests::http_get(ingest_http, "/metrics").unwrap().1;
    // Accepted rows plus the retried duplicate batch.
    assert_eq!(
        counter(
            &ingest_metrics,
            "quiver_ingest_rows_total{result=\"accepted\"}"
        ),
        accepted as f64
    );
    assert_eq!(
        counter(
            &ingest_metrics,
            "quiver_ingest_rows_total{result=\"duplicate\"}"
        ),
        batch as f64
    );
    let compute_metrics = quiver_tests::http_get(compute_http, "/metrics").unwrap().1;
    assert_eq!(
        counter(&compute_metrics, "quiver_compute_producer_batches_total"),
        (events.len() / batch + 1) as f64
    );
}

/// Killing compute (SIGKILL) while producers push and retry loses nothing and counts nothing
/// twice: every batch is retried with its sequence number until acknowledged.
#[tokio::test]
async fn killing_compute_mid_stream_keeps_counts_exact() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let (compute_addr, ingest_addr) = (free_address(), free_address());
    let mut compute = Some(
        cluster
            .spawn_role("compute", compute_addr, compute_addr, "compute-1", &[])
            .await,
    );
    let _ingest = cluster
        .spawn_role("ingest", ingest_addr, compute_addr, "ingest", &[])
        .await;
    let ingest = ingest_addr.to_string();

    // Normal amounts (nothing anomalous), and four minutes of event time in all: however far one
    // producer's retries fall behind the others, none of its events can be older than the
    // watermark minus the source's 10-minute lateness, so every row must count exactly once.
    let start = now_micros() - HOUR;
    let mut events = generate(12_000, start, HOUR, 11);
    for (i, e) in events.iter_mut().enumerate() {
        e.at = start + i as i64 * 20_000;
        e.amount = 1.0 + (i % 7) as f64;
    }
    let producers: Vec<Vec<Event>> = (0..4)
        .map(|p| events.iter().skip(p).step_by(4).cloned().collect())
        .collect();
    let mut tasks = Vec::new();
    for (p, mine) in producers.into_iter().enumerate() {
        let ingest = ingest.clone();
        tasks.push(tokio::spawn(async move {
            for (i, chunk) in mine.chunks(100).enumerate() {
                let response = push(
                    &ingest,
                    request(chunk, &format!("producer-{p}"), i as u64 + 1),
                )
                .await;
                assert_eq!(response.late, 0, "nothing can be late here");
            }
        }));
    }
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut old = compute.take().unwrap();
        old.kill();
        tokio::time::sleep(Duration::from_millis(200)).await;
        compute = Some(
            cluster
                .spawn_role(
                    "compute",
                    compute_addr,
                    compute_addr,
                    &format!("compute-{}", round + 2),
                    &[],
                )
                .await,
        );
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut per_user: HashMap<i64, i64> = HashMap::new();
    for e in &events {
        *per_user.entry(e.user).or_default() += 1;
    }
    let users: Vec<i64> = per_user.keys().copied().collect();
    let response = read(
        &cluster.address(1),
        &users,
        &["count".to_string()],
        now_micros(),
    )
    .await;
    for (u, user) in users.iter().enumerate() {
        let got = &response.results[1].values[u].kind;
        assert_eq!(got, &Some(Kind::Int64Value(per_user[user])), "user {user}");
    }
}

/// A change that makes a good batch bad.
type Spoil = Box<dyn Fn(&mut PushRequest)>;

/// A bad row rejects its whole batch with INVALID_ARGUMENT naming row, column and reason, and
/// nothing of it is written; when compute stalls, ingest refuses new work with
/// RESOURCE_EXHAUSTED (and a retry hint) instead of queueing, and recovers when compute does.
#[tokio::test]
async fn bad_rows_reject_their_batch_and_saturation_pushes_back() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let (compute_addr, ingest_addr) = (free_address(), free_address());
    let compute = cluster
        .spawn_role("compute", compute_addr, compute_addr, "compute", &[])
        .await;
    let limit = [("QUIVER__INGEST__MAX_INFLIGHT_ROWS", "1000".to_string())];
    let _ingest = cluster
        .spawn_role("ingest", ingest_addr, compute_addr, "ingest", &limit)
        .await;
    let ingest = ingest_addr.to_string();
    let now = now_micros();
    let good: Vec<Event> = generate(300, now - MINUTE, MINUTE, 3)
        .into_iter()
        .map(|mut e| {
            e.user = 1;
            e.amount = 2.0;
            e
        })
        .collect();
    let ok = push(&ingest, request(&good, "p", 1)).await;
    assert_eq!(ok.accepted, 300);

    let mut client = IngestServiceClient::new(channel(&ingest).await.unwrap());
    let cases: Vec<(Spoil, &str)> = vec![
        (
            Box::new(|r: &mut PushRequest| {
                r.rows[17].values[2] = Value {
                    kind: Some(Kind::StringValue("12".into())),
                }
            }),
            "rows[17].amount: expected float64, got string",
        ),
        (
            Box::new(|r: &mut PushRequest| {
                r.rows[4].values[1] = Value {
                    kind: Some(Kind::StringValue("yesterday".into())),
                }
            }),
            "rows[4].ts: unparsable timestamp \"yesterday\"",
        ),
        (
            Box::new(|r: &mut PushRequest| r.rows[9].values[0] = Value { kind: None }),
            "rows[9].user_id: the join key is null",
        ),
        (
            Box::new(|r: &mut PushRequest| r.columns[4] = "colour".into()),
            "columns[4]: \"colour\" is not a column of source \"tx\"",
        ),
        (
            Box::new(|r: &mut PushRequest| {
                r.columns.remove(0);
                for row in &mut r.rows {
                    row.values.remove(0);
                }
            }),
            "columns: the join key \"user_id\" (entity \"user\") is missing",
        ),
        (
            Box::new(|r: &mut PushRequest| r.rows[3].values.pop().map(drop).unwrap_or_default()),
            "rows[3]: 4 values for 5 columns",
        ),
        (
            Box::new(|r: &mut PushRequest| {
                r.rows[5].values[1] = Value {
                    kind: Some(Kind::StringValue("2101-01-01T00:00:00Z".into())),
                }
            }),
            "rows[5].ts: event time 2101-01-01T00:00:00Z is more than 1h ahead of ingest's clock",
        ),
        (
            Box::new(|r: &mut PushRequest| r.source = "nope".into()),
            "source: unknown source \"nope\"",
        ),
    ];
    for (i, (spoil, message)) in cases.iter().enumerate() {
        let mut bad = request(&good, "p", 2 + i as u64);
        spoil(&mut bad);
        let status = client.push(bad).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{message}: {status:?}"
        );
        assert!(
            status.message().contains(message),
            "want {message:?} in {:?}",
            status.message()
        );
    }
    // Nothing of the rejected batches was written.
    let response = read(
        &cluster.address(1),
        &[1],
        &["count".to_string()],
        now_micros() + 10 * MINUTE,
    )
    .await;
    assert_eq!(
        response.results[1].values[0].kind,
        Some(Kind::Int64Value(300)),
        "{response:?}"
    );

    // Stall compute: 1,000 rows in flight fill ingest, the next push is refused at once.
    compute.pause().unwrap();
    let mut waiting = Vec::new();
    for p in 0..4 {
        let ingest = ingest.clone();
        let batch: Vec<Event> = good[..250].to_vec();
        waiting.push(tokio::spawn(async move {
            let mut client = IngestServiceClient::new(channel(&ingest).await.unwrap());
            client
                .push(request(&batch, &format!("stalled-{p}"), 1))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = client
        .push(request(&good[..10], "late-comer", 1))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.metadata().get("retry-after-ms").is_some());
    compute.resume().unwrap();
    for task in waiting {
        let response = task.await.unwrap().unwrap().into_inner();
        assert_eq!(response.accepted, 250);
    }
    let again = push(&ingest, request(&good[..10], "late-comer", 1)).await;
    assert_eq!(again.accepted, 10);
}
