//! Kafka sources when the brokers misbehave, through real processes and librdkafka's mock
//! cluster: an unreachable broker, and a topic that is missing (never created, or gone from the
//! brokers' metadata) and then appears. Each is reported by `IngestService/KafkaStatus` and the
//! `quiver_kafka_*` metrics while it lasts, consuming resumes once it is over, and every
//! per-entity count ends equal to a brute-force recount (nothing lost, nothing doubled).
//!
//! A partition count change is not tested here: the mock cluster cannot add partitions to a
//! topic (it refuses `create_topic` of an existing topic and has no CreatePartitions handler).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{KafkaSourceStatus, KafkaStatusRequest};
use quiver_proto::types::value::Kind;
use quiver_tests::cluster::{channel, Cluster};
use quiver_tests::kafka::{wait_committed, Broker};
use quiver_tests::offline_stack::get_features_of;
use quiver_tests::{free_address, http_get, QuiverProcess};
use rdkafka::types::RDKafkaRespErr;

const HOUR: i64 = 3_600_000_000;

/// A source consuming topic `orders` of `bootstrap`, and a lifetime count and sum per customer.
fn defs(bootstrap: &str) -> String {
    format!(
        r#"
project: shop
entities:
  - name: customer
    join_keys: [{{name: customer_id, type: int64}}]
sources:
  - name: orders
    entity: customer
    timestamp_field: ts
    allowed_lateness: 1h
    schema:
      - {{name: customer_id, type: int64}}
      - {{name: ts, type: timestamp}}
      - {{name: amount, type: float64}}
    kafka:
      bootstrap_servers: "{bootstrap}"
      topic: orders
      start: earliest
      properties:
        # Reconnect quickly once a broker is back (librdkafka backs off up to 10 s by default).
        reconnect.backoff.max.ms: 1000
feature_views:
  - name: customer_orders
    entity: customer
    source: orders
    ttl: 30d
    features:
      - {{name: count, aggregation: count}}
      - {{name: amount_sum, column: amount, aggregation: sum}}
"#
    )
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// `n` orders (partition, customer, amount) of 30 customers keyed over `partitions`, as JSON
/// messages one second apart from `start`; `seed` varies the stream between rounds.
fn orders(n: usize, partitions: i32, start: i64, seed: u64) -> Vec<(i32, i64, f64, Vec<u8>)> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let customer = (next() % 30) as i64;
            // Halves keep every sum exact in float64.
            let amount = (next() % 1_000) as f64 / 2.0;
            let micros = start + i as i64 * 1_000_000;
            let ts =
                humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(micros as u64));
            let json =
                format!(r#"{{"customer_id": {customer}, "ts": "{ts}", "amount": {amount}}}"#);
            (
                (customer % i64::from(partitions)) as i32,
                customer,
                amount,
                json.into_bytes(),
            )
        })
        .collect()
}

fn messages(orders: &[(i32, i64, f64, Vec<u8>)]) -> Vec<(i32, Vec<u8>)> {
    orders.iter().map(|(p, _, _, m)| (*p, m.clone())).collect()
}

/// The brute-force answer: per customer (count, sum).
fn expected(orders: &[(i32, i64, f64, Vec<u8>)]) -> BTreeMap<i64, (i64, f64)> {
    let mut out: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for (_, customer, amount, _) in orders {
        let e = out.entry(*customer).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    out
}

/// Serving's answer for the customers of `want`.
async fn served(online: &str, want: &BTreeMap<i64, (i64, f64)>) -> BTreeMap<i64, (i64, f64)> {
    let customers: Vec<i64> = want.keys().copied().collect();
    let refs = vec![
        "customer_orders:count".to_string(),
        "customer_orders:amount_sum".to_string(),
    ];
    let response = get_features_of(online, "shop", "customer_id", &customers, &refs).await;
    let (counts, sums) = (&response.results[1].values, &response.results[2].values);
    customers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let count = match counts[i].kind {
                Some(Kind::Int64Value(n)) => n,
                _ => 0,
            };
            let sum = match sums[i].kind {
                Some(Kind::Float64Value(x)) => x,
                _ => f64::NAN,
            };
            (*c, (count, sum))
        })
        .collect()
}

/// The processes of one test: registry and online store, compute, and the ingest consumer
/// (with its `/metrics` address).
struct Stack {
    cluster: Cluster,
    _compute: QuiverProcess,
    _ingest: QuiverProcess,
    ingest: SocketAddr,
    ingest_http: SocketAddr,
}

impl Stack {
    async fn start(broker: &Broker) -> Self {
        let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
        let cluster = Cluster::start(bin, &defs(&broker.bootstrap()), 1).await;
        let compute = free_address();
        let compute_process = cluster
            .spawn_role("compute", compute, compute, "compute", &[])
            .await;
        let (ingest, ingest_http) = (free_address(), free_address());
        // Checking the brokers every 500 ms (not 2 s) keeps the test short, and is how it found
        // that checks made through the consuming client stalled its fetches (now a probe client).
        let extra = [
            ("QUIVER__HTTP__LISTEN", ingest_http.to_string()),
            ("QUIVER__INGEST__KAFKA__CHECK_INTERVAL", "500ms".to_string()),
        ];
        let ingest_process = cluster
            .spawn_role("ingest", ingest, compute, "ingest", &extra)
            .await;
        Self {
            cluster,
            _compute: compute_process,
            _ingest: ingest_process,
            ingest,
            ingest_http,
        }
    }

    /// Waits until every message written to `orders` is committed; on a timeout, panics with
    /// what is stored and the consumer's log.
    async fn wait_committed(&self, broker: &Broker) {
        let online = self.online();
        let wait = wait_committed(
            broker,
            &online,
            "shop",
            "orders",
            "orders",
            Duration::from_secs(60),
        );
        if let Err(e) = std::panic::AssertUnwindSafe(wait).catch_unwind().await {
            let e = e.downcast_ref::<String>().cloned().unwrap_or_default();
            let log = self._ingest.output();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let status = self.status().await;
            panic!("{e}\nstatus: {status:#?}\ningest log:\n{}", tail.join("\n"));
        }
    }

    fn online(&self) -> String {
        self.cluster.address(1)
    }

    async fn status(&self) -> Option<KafkaSourceStatus> {
        let mut client = IngestServiceClient::new(channel(&self.ingest.to_string()).await.ok()?);
        let response = client
            .kafka_status(KafkaStatusRequest {
                project: "shop".into(),
                source: "orders".into(),
            })
            .await
            .ok()?;
        response.into_inner().sources.into_iter().next()
    }

    /// Waits until the consumer's state is `state`; panics with what it reports otherwise.
    async fn wait_state(&self, state: &str, timeout: Duration) -> KafkaSourceStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status().await;
            if let Some(s) = status.as_ref().filter(|s| s.state == state) {
                return s.clone();
            }
            if Instant::now() >= deadline {
                panic!("not {state:?} within {timeout:?}: {status:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One sample of the ingest process's metric `name` with labels containing `labels`.
    fn metric(&self, name: &str, labels: &str) -> Option<f64> {
        let (_, body) = http_get(self.ingest_http, "/metrics").ok()?;
        body.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
            .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_reported_and_consuming_resumes_once_it_is_back() {
    let mut broker = Broker::start(1);
    broker.create_topic("orders", 3);
    let stack = Stack::start(&broker).await;
    let online = stack.online();
    let start = now_micros() - 2 * HOUR;

    // Phase 1: a first round is consumed; the consumer is up.
    let first = orders(1_500, 3, start, 7);
    broker.send("orders", &messages(&first));
    stack.wait_committed(&broker).await;
    let up = stack.wait_state("consuming", Duration::from_secs(10)).await;
    assert_eq!(up.partition_count, 3, "{up:#?}");
    assert_eq!(
        stack.metric("quiver_kafka_consumer_up", r#"source="orders""#),
        Some(1.0)
    );

    // Phase 2: the only broker goes down: status and metrics say so.
    broker.broker_down(1);
    let down = stack
        .wait_state("broker unreachable", Duration::from_secs(20))
        .await;
    assert!(!down.problem.is_empty(), "{down:#?}");
    assert_eq!(
        stack.metric("quiver_kafka_consumer_up", r#"source="orders""#),
        Some(0.0)
    );
    let problems = stack.metric(
        "quiver_kafka_problems_total",
        r#"kind="broker_unreachable""#,
    );
    assert!(problems.is_some_and(|n| n >= 1.0), "{problems:?}");

    // Phase 3: the broker is back: reported so; a second round is consumed after the first,
    // once each.
    broker.broker_up(1);
    let back = stack.wait_state("consuming", Duration::from_secs(30)).await;
    assert!(back.problem.is_empty(), "{back:#?}");
    let second = orders(1_500, 3, start + HOUR, 11);
    broker.send("orders", &messages(&second));
    stack.wait_committed(&broker).await;
    stack.wait_state("consuming", Duration::from_secs(10)).await;
    assert_eq!(
        stack.metric("quiver_kafka_consumer_up", r#"source="orders""#),
        Some(1.0)
    );
    let all: Vec<_> = first.into_iter().chain(second).collect();
    let want = expected(&all);
    assert_eq!(served(&online, &want).await, want);
}

#[tokio::test]
async fn a_missing_topic_is_reported_and_consumed_once_it_exists() {
    let mut broker = Broker::start(1);
    let stack = Stack::start(&broker).await;
    let online = stack.online();
    let start = now_micros() - 2 * HOUR;

    // Phase 1: the source names a topic the brokers do not have (consumers do not create it).
    let missing = stack
        .wait_state("topic missing", Duration::from_secs(20))
        .await;
    assert!(!missing.problem.is_empty(), "{missing:#?}");
    assert_eq!(
        stack.metric("quiver_kafka_consumer_up", r#"source="orders""#),
        Some(0.0)
    );
    let problems = stack.metric("quiver_kafka_problems_total", r#"kind="topic_missing""#);
    assert!(problems.is_some_and(|n| n >= 1.0), "{problems:?}");

    // Phase 2: the topic is created and written: consumed from its beginning.
    broker.create_topic("orders", 2);
    let first = orders(1_200, 2, start, 3);
    broker.send("orders", &messages(&first));
    stack.wait_committed(&broker).await;
    let found = stack.wait_state("consuming", Duration::from_secs(20)).await;
    assert_eq!(found.partition_count, 2, "{found:#?}");

    // Phase 3: the topic disappears from the brokers' metadata (deleted), then returns with its
    // log: reported, then consumed on from the offsets stored in Quiver, nothing twice.
    let before = stack
        .metric("quiver_kafka_problems_total", r#"kind="topic_missing""#)
        .unwrap_or(0.0);
    broker.topic_error(
        "orders",
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    );
    stack
        .wait_state("topic missing", Duration::from_secs(20))
        .await;
    let after = stack
        .metric("quiver_kafka_problems_total", r#"kind="topic_missing""#)
        .unwrap_or(0.0);
    assert!(after > before, "{before} -> {after}");
    broker.topic_error("orders", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR);
    let second = orders(1_200, 2, start + HOUR, 5);
    broker.send("orders", &messages(&second));
    stack.wait_committed(&broker).await;
    stack.wait_state("consuming", Duration::from_secs(20)).await;
    let all: Vec<_> = first.into_iter().chain(second).collect();
    let want = expected(&all);
    assert_eq!(served(&online, &want).await, want);
}
