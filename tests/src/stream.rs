//! A generated event stream for end-to-end tests of streaming and offline features: the
//! definitions it feeds, events (out of order, late, anomalous, exact-time ties, skewed keys),
//! pushing them through ingest with retries, and which rows the store must admit, decided
//! independently of the server's code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failed step should fail loudly

use std::time::Duration;

use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{PushRequest, PushResponse, Row};
use quiver_proto::types::value::Kind;
use quiver_proto::types::Value;
use tonic::Code;

use crate::cluster::{channel, int};

/// The stream's definitions: view `f` over source `tx` with every aggregation and window kind.
pub const DEFS: &str = r#"
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
  - name: f
    entity: user
    source: tx
    ttl: 30d
    transforms:
      - {name: amount_z, op: zscore, input: amount, exclude_above: 4.0}
      - {name: tokens, op: token_count, input: note}
    features:
      - {name: count_1h, aggregation: count, window: 1h}
      - {name: sum_1h, column: amount, aggregation: sum, window: 1h}
      - {name: mean_1h, column: amount, aggregation: mean, window: 1h}
      - {name: stddev_1h, column: amount, aggregation: stddev, window: 1h}
      - {name: min_1h, column: amount, aggregation: min, window: 1h}
      - {name: max_1h, column: amount, aggregation: max, window: 1h}
      - {name: last_1h, column: amount, aggregation: last, window: 1h}
      - {name: first_1h, column: amount, aggregation: first, window: 1h}
      - {name: merchants_1h, column: merchant, aggregation: distinct_count, window: 1h}
      - {name: tokens_sum_1h, column: tokens, aggregation: sum, window: 1h}
      - {name: first_tokens_1h, column: tokens, aggregation: first, window: 1h}
      - {name: last_tokens, column: tokens, aggregation: last}
      - {name: sum_15m, column: amount, aggregation: sum, window: 15m}
      - {name: count_tumbling_1h, aggregation: count, window: 1h, kind: tumbling}
      - {name: max_tumbling_1h, column: amount, aggregation: max, window: 1h, kind: tumbling}
      - {name: last, column: amount, aggregation: last}
      - {name: first, column: amount, aggregation: first}
      - {name: count, aggregation: count}
      - {name: sum, column: amount, aggregation: sum}
"#;

/// The features of view `f` in [`DEFS`], in declared order.
pub const F_FEATURES: [&str; 19] = [
    "count_1h",
    "sum_1h",
    "mean_1h",
    "stddev_1h",
    "min_1h",
    "max_1h",
    "last_1h",
    "first_1h",
    "merchants_1h",
    "tokens_sum_1h",
    "first_tokens_1h",
    "last_tokens",
    "sum_15m",
    "count_tumbling_1h",
    "max_tumbling_1h",
    "last",
    "first",
    "count",
    "sum",
];

/// A minute in microseconds.
pub const MINUTE: i64 = 60_000_000;
/// An hour in microseconds.
pub const HOUR: i64 = 60 * MINUTE;
/// The source's allowed lateness.
pub const LATENESS: i64 = 10 * MINUTE;
/// Distinct users (ids 0..USERS).
pub const USERS: i64 = 40;

/// splitmix64: a tiny deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One generated event.
#[derive(Clone, Debug)]
pub struct Event {
    /// The user.
    pub user: i64,
    /// Event time, microseconds.
    pub at: i64,
    /// The amount (a multiple of 0.25 unless anomalous).
    pub amount: f64,
    /// The merchant.
    pub merchant: String,
    /// A note of 1-4 words.
    pub note: String,
}

/// Events in push order: mostly increasing time with jitter, skewed users, exact-time ties,
/// some late rows (far behind) and some anomalous amounts.
pub fn generate(n: usize, start: i64, span: i64, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let mut events: Vec<Event> = Vec::with_capacity(n);
    for i in 0..n {
        let base = start + span * i as i64 / n as i64;
        let mut at = base + rng.below(6 * MINUTE as u64) as i64 - 5 * MINUTE;
        let u = rng.unit();
        let user = ((u * u) * USERS as f64) as i64; // skewed towards low ids
        if i > 300 && rng.below(100) == 0 {
            at = base - (20 * MINUTE + rng.below(90 * MINUTE as u64) as i64); // late
        }
        if i > 0 && rng.below(50) == 0 {
            at = events[i - 1].at; // exact tie (maybe another user)
        }
        // Multiples of 0.25 add exactly in any order.
        let mut amount = (1 + rng.below(400)) as f64 * 0.25;
        if i > 300 && rng.below(200) == 0 {
            amount = 100_000.0 + rng.below(1000) as f64; // anomalous
        }
        let words = 1 + rng.below(4);
        events.push(Event {
            user,
            at,
            amount,
            merchant: format!("m{}", rng.below(25)),
            note: (0..words)
                .map(|w| format!("w{w}"))
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    events
}

/// An event as a pushed row.
pub fn row(e: &Event) -> Row {
    Row {
        values: vec![
            int(e.user),
            Value {
                kind: Some(Kind::TimestampValue(prost_types::Timestamp {
                    seconds: e.at.div_euclid(1_000_000),
                    nanos: (e.at.rem_euclid(1_000_000) * 1000) as i32,
                })),
            },
            Value {
                kind: Some(Kind::Float64Value(e.amount)),
            },
            Value {
                kind: Some(Kind::StringValue(e.merchant.clone())),
            },
            Value {
                kind: Some(Kind::StringValue(e.note.clone())),
            },
        ],
    }
}

/// The source's columns, in push order.
pub const COLUMNS: [&str; 5] = ["user_id", "ts", "amount", "merchant", "note"];

/// A push of `events` as batch `sequence` of `producer`.
pub fn request(events: &[Event], producer: &str, sequence: u64) -> PushRequest {
    PushRequest {
        project: "stream".into(),
        source: "tx".into(),
        columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows: events.iter().map(row).collect(),
        producer_id: producer.into(),
        sequence,
        ..PushRequest::default()
    }
}

/// Pushes with retries (the same sequence number), as a real producer does.
pub async fn push(ingest: &str, request: PushRequest) -> PushResponse {
    let mut backoff = Duration::from_millis(20);
    for _ in 0..400 {
        let attempt = async {
            let mut client = IngestServiceClient::new(channel(ingest).await?);
            client.push(request.clone()).await.map(|r| r.into_inner())
        };
        match attempt.await {
            Ok(response) => return response,
            Err(s)
                if matches!(
                    s.code(),
                    Code::Unavailable | Code::ResourceExhausted | Code::Unknown | Code::Cancelled
                ) =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(s) => panic!("push failed: {s:?}"),
        }
    }
    panic!("push never succeeded")
}

/// Which events of one producer's stream the store must admit, decided independently: its
/// watermark is the largest event time admitted so far, row by row (so the batch size does not
/// matter); a row is late when its time is before that watermark minus the lateness.
pub fn admission(events: &[Event]) -> Vec<bool> {
    let mut watermark: Option<i64> = None;
    events
        .iter()
        .map(|e| {
            let ok = watermark.is_none_or(|w| e.at >= w - LATENESS);
            if ok {
                watermark = Some(watermark.map_or(e.at, |w| w.max(e.at)));
            }
            ok
        })
        .collect()
}

/// Anomalies are the generator's huge amounts: their z-score is far above 4 and every normal
/// amount's far below, whatever order the statistics saw them in.
pub fn anomalous(e: &Event) -> bool {
    e.amount >= 50_000.0
}
