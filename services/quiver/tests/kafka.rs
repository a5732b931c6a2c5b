//! Kafka sources through real processes and a real Kafka wire protocol (librdkafka's mock
//! cluster, brokers on 127.0.0.1): a keyed stream over several partitions equals a brute-force
//! recomputation; ingest and the online store each killed with `kill -9` mid-stream end with
//! every per-entity count exact; poison messages land in the quarantine log with partition,
//! offset and reason while their partition keeps flowing; and an idle partition stops holding
//! the source back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::{Array, StringArray};
use quiver_proto::types::value::Kind;
use quiver_tests::cluster::Cluster;
use quiver_tests::flight::read_exported;
use quiver_tests::kafka::{by_partition, committed, wait_committed, Broker};
use quiver_tests::offline_stack::get_features_of;
use quiver_tests::{free_address, QuiverProcess};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const REFS: [&str; 3] = [
    "customer_orders:count",
    "customer_orders:amount_sum",
    "customer_orders:amount_max",
];

/// A source consuming topic `orders` of the brokers at `bootstrap`, and a view of lifetime
/// aggregates per customer.
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
        # A consumer killed with kill -9 leaves the group after this (its partitions then move).
        session.timeout.ms: 6000
        heartbeat.interval.ms: 1000
feature_views:
  - name: customer_orders
    entity: customer
    source: orders
    ttl: 30d
    features:
      - {{name: count, aggregation: count}}
      - {{name: amount_sum, column: amount, aggregation: sum}}
      - {{name: amount_max, column: amount, aggregation: max}}
"#
    )
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn rfc3339(micros: i64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(micros as u64)).to_string()
}

/// One order event as a Kafka message.
#[derive(Clone)]
struct Order {
    customer: i64,
    micros: i64,
    amount: f64,
}

impl Order {
    fn json(&self) -> Vec<u8> {
        format!(
            r#"{{"customer_id": {}, "ts": "{}", "amount": {}}}"#,
            self.customer,
            rfc3339(self.micros),
            self.amount
        )
        .into_bytes()
    }
}

/// `n` orders of `customers` customers, keyed: a customer's orders all go to partition
/// `customer % partitions`, each partition in event-time order (a little jitter within the
/// allowed lateness) from `start`, one every `step`.
fn orders(n: usize, customers: i64, partitions: i32, start: i64, step: i64) -> Vec<(i32, Order)> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|i| {
            let customer = (next() % customers as u64) as i64;
            let jitter = (next() % 60) as i64 * 1_000_000;
            let order = Order {
                customer,
                micros: start + i as i64 * step - jitter,
                // Halves keep every sum exact in float64.
                amount: (next() % 1_000) as f64 / 2.0,
            };
            ((customer % i64::from(partitions)) as i32, order)
        })
        .collect()
}

/// The brute-force answer: per customer (count, sum, max).
fn expected(orders: &[(i32, Order)]) -> BTreeMap<i64, (i64, f64, f64)> {
    let mut out: BTreeMap<i64, (i64, f64, f64)> = BTreeMap::new();
    for (_, o) in orders {
        let e = out.entry(o.customer).or_insert((0, 0.0, f64::MIN));
        e.0 += 1;
        e.1 += o.amount;
        e.2 = e.2.max(o.amount);
    }
    out
}

/// Serving's answer for `customers`.
async fn served(online: &str, customers: &[i64]) -> BTreeMap<i64, (i64, f64, f64)> {
    let refs: Vec<String> = REFS.iter().map(|r| r.to_string()).collect();
    let response = get_features_of(online, "shop", "customer_id", customers, &refs).await;
    let column = |i: usize| response.results[i + 1].values.clone();
    let (counts, sums, maxes) = (column(0), column(1), column(2));
    customers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let int = match counts[i].kind {
                Some(Kind::Int64Value(n)) => n,
                _ => 0,
            };
            let float = |v: &quiver_proto::types::Value| match v.kind {
                Some(Kind::Float64Value(x)) => x,
                _ => f64::NAN,
            };
            (*c, (int, float(&sums[i]), float(&maxes[i])))
        })
        .collect()
}

fn messages(orders: &[(i32, Order)]) -> Vec<(i32, Vec<u8>)> {
    orders.iter().map(|(p, o)| (*p, o.json())).collect()
}

/// A registry and one online-store node with the definitions for `broker`, plus compute.
async fn start(bin: &Path, broker: &Broker) -> (Cluster, QuiverProcess, std::net::SocketAddr) {
    let cluster = Cluster::start(bin, &defs(&broker.bootstrap()), 1).await;
    let compute = free_address();
    let process = cluster
        .spawn_role("compute", compute, compute, "compute", &[])
        .await;
    (cluster, process, compute)
}

/// An ingest process (the consumer) with `[ingest.kafka]` settings `extra`.
async fn ingest(
    cluster: &Cluster,
    compute: std::net::SocketAddr,
    name: &str,
    extra: &[(&str, String)],
) -> (QuiverProcess, std::net::SocketAddr) {
    let address = free_address();
    let process = cluster
        .spawn_role("ingest", address, compute, name, extra)
        .await;
    (process, address)
}

#[tokio::test]
async fn a_keyed_stream_over_several_partitions_equals_brute_force() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let mut broker = Broker::start(3);
    broker.create_topic("orders", 4);
    let (cluster, _compute, compute) = start(bin, &broker).await;
    let online = cluster.address(1);
    let (_ingest, _) = ingest(&cluster, compute, "ingest", &[]).await;

    // Phase 1: 12,000 orders of 50 customers over the last two hours, keyed over 4 partitions,
    // written in two rounds while the consumer runs.
    let all = orders(12_000, 50, 4, now_micros() - 2 * HOUR, 500_000);
    let (first, second) = all.split_at(5_000);
    broker.send("orders", &messages(first));
    broker.send("orders", &messages(second));
    let response = wait_committed(
        &broker,
        &online,
        "shop",
        "orders",
        "orders",
        Duration::from_secs(120),
    )
    .await;

    // Phase 2: every partition committed to its log end, and each customer's aggregates equal
    // the brute-force recomputation.
    let stored = by_partition(&response, "orders");
    assert_eq!(stored.len(), 4, "{stored:#?}");
    assert_eq!(
        stored.values().map(|p| p.sequence).sum::<u64>(),
        all.len() as u64
    );
    let want = expected(&all);
    let customers: Vec<i64> = want.keys().copied().collect();
    assert_eq!(served(&online, &customers).await, want);
    // A watermark per partition. The source's follows the slowest active partition but never
    // moves back, so a partition the consumer reached after the others had moved it on sits
    // behind it (its events still count: the sums above): the source's lies between the
    // slowest and the fastest. (`source_clock.rs`'s unit tests pin the rule itself.)
    let watermarks: Vec<i64> = stored
        .values()
        .filter(|p| p.active)
        .filter_map(|p| p.watermark)
        .collect();
    let (slowest, fastest) = (watermarks.iter().min(), watermarks.iter().max());
    let source = response.source_watermark;
    assert!(
        slowest.is_some() && source.as_ref() >= slowest && source.as_ref() <= fastest,
        "source watermark {source:?}, partitions {stored:#?}"
    );
}

#[tokio::test]
async fn killed_twice_mid_stream_every_count_stays_exact() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let mut broker = Broker::start(1);
    broker.create_topic("orders", 3);
    let (mut cluster, _compute, compute) = start(bin, &broker).await;
    let online = cluster.address(1);
    // Small batches: many commits, so each kill lands between some of them.
    let small = [(
        "QUIVER__INGEST__KAFKA__MAX_BATCH_MESSAGES",
        "25".to_string(),
    )];
    let (mut ingest_a, _) = ingest(&cluster, compute, "ingest-a", &small).await;

    let all = orders(9_000, 40, 3, now_micros() - 2 * HOUR, 600_000);
    let rounds: Vec<&[(i32, Order)]> = all.chunks(3_000).collect();
    let total_committed = |r: quiver_proto::online::ProducersResponse| -> u64 {
        r.producers.iter().map(|p| p.sequence).sum()
    };

    // Kill 1: the consumer, mid-stream (some of round 1 committed, not all).
    broker.send("orders", &messages(rounds[0]));
    wait_between(&online, 100, 2_900, &total_committed).await;
    ingest_a.kill();
    broker.send("orders", &messages(rounds[1]));
    let (_ingest_b, _) = ingest(&cluster, compute, "ingest-b", &small).await;

    // Kill 2: the online store node, mid-stream.
    let done_before = total_committed(committed(&online, "shop", "orders", "orders").await);
    wait_between(&online, done_before + 100, 5_900, &total_committed).await;
    cluster.kill(1);
    broker.send("orders", &messages(rounds[2]));
    cluster.restart(1).await;
    cluster.wait_for_leader(Duration::from_secs(30)).await;

    // Everything committed once: every per-entity count (and sum, and max) exact.
    wait_committed(
        &broker,
        &online,
        "shop",
        "orders",
        "orders",
        Duration::from_secs(180),
    )
    .await;
    let want = expected(&all);
    let customers: Vec<i64> = want.keys().copied().collect();
    assert_eq!(served(&online, &customers).await, want);
}

/// Waits until Quiver has committed more than `low` and at most `high` messages in total
/// (mid-stream); panics if it never is in that range.
async fn wait_between(
    online: &str,
    low: u64,
    high: u64,
    total: &dyn Fn(quiver_proto::online::ProducersResponse) -> u64,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let n = total(committed(online, "shop", "orders", "orders").await);
        if n > low {
            assert!(
                n <= high,
                "the stream finished before the kill ({n} committed)"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing committed");
}

#[tokio::test]
async fn poison_messages_are_quarantined_and_their_partition_keeps_flowing() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let mut broker = Broker::start(1);
    broker.create_topic("orders", 2);
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().display().to_string();
    let cluster = Cluster::start_with(bin, &defs(&broker.bootstrap()), 1, |_| {
        vec![
            (
                "QUIVER__ONLINE_STORE__OFFLINE_STORE".to_string(),
                store.clone(),
            ),
            (
                "QUIVER__ONLINE_STORE__EXPORT_INTERVAL".to_string(),
                "200ms".to_string(),
            ),
        ]
    })
    .await;
    let online = cluster.address(1);
    let compute = free_address();
    let _compute = cluster
        .spawn_role("compute", compute, compute, "compute", &[])
        .await;
    let (_ingest, _) = ingest(&cluster, compute, "ingest", &[]).await;

    // Partition 1: 200 good orders, three poison messages, 200 more good ones.
    let start = now_micros() - HOUR;
    let good = orders(400, 10, 2, start, 1_000_000);
    let (before, after) = good.split_at(200);
    let mut stream = messages(before);
    let poison: Vec<(i32, Vec<u8>)> = vec![
        (1, b"\x00\x01 not json".to_vec()),
        (
            1,
            format!(
                r#"{{"customer_id": "seven", "ts": "{}", "amount": 1}}"#,
                rfc3339(start)
            )
            .into_bytes(),
        ),
        (
            1,
            format!(r#"{{"ts": "{}", "amount": 1}}"#, rfc3339(start)).into_bytes(),
        ),
    ];
    stream.extend(poison);
    stream.extend(messages(after));
    broker.send("orders", &stream);

    // The partition flowed past its poison: committed to its log end, every good order counted.
    let response = wait_committed(
        &broker,
        &online,
        "shop",
        "orders",
        "orders",
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        by_partition(&response, "orders")[&1].sequence,
        broker.log_ends("orders")[&1]
    );
    let want = expected(&good);
    let customers: Vec<i64> = want.keys().copied().collect();
    assert_eq!(served(&online, &customers).await, want);

    // The quarantine log holds the three, with partition, offset and reason.
    let offsets_of_poison: Vec<u64> = {
        let before_on_1 = before.iter().filter(|(p, _)| *p == 1).count() as u64;
        (before_on_1..before_on_1 + 3).collect()
    };
    let mut reasons = Vec::new();
    for _ in 0..300 {
        let batches = read_exported(&store, "quarantine/project=shop/source=orders/").await;
        reasons = batches
            .iter()
            .flat_map(|b| {
                let column = b.column_by_name("reason").unwrap();
                let strings = column.as_any().downcast_ref::<StringArray>().unwrap();
                (0..strings.len())
                    .map(|i| strings.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        if reasons.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:#?}");
    let at = |o: u64| format!("kafka topic \"orders\" partition 1 offset {o}: ");
    assert!(
        reasons[0].starts_with(&at(offsets_of_poison[0])),
        "{reasons:#?}"
    );
    assert!(reasons[0].contains("not a JSON object"), "{reasons:#?}");
    assert!(reasons[1].starts_with(&at(offsets_of_poison[1])));
    assert!(
        reasons[1].contains(r#"column "customer_id": expected int64, got "seven""#),
        "{reasons:#?}"
    );
    assert!(reasons[2].starts_with(&at(offsets_of_poison[2])));
    assert!(
        reasons[2].contains(r#"column "customer_id": the join key is null"#),
        "{reasons:#?}"
    );
}

#[tokio::test]
async fn an_idle_partition_does_not_hold_the_source_back() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let mut broker = Broker::start(1);
    broker.create_topic("orders", 3);
    let (cluster, _compute, compute) = start(bin, &broker).await;
    let online = cluster.address(1);
    // One message per batch: the idleness rule counts batches of the source (1,000).
    let (_ingest, ingest_address) = ingest(
        &cluster,
        compute,
        "ingest",
        &[("QUIVER__INGEST__KAFKA__MAX_BATCH_MESSAGES", "1".to_string())],
    )
    .await;

    // Partition 0 writes a little three hours ago, then nothing.
    let start = now_micros() - 3 * HOUR;
    let early: Vec<(i32, Order)> = (0..5)
        .map(|i| {
            (
                0,
                Order {
                    customer: 3 * i,
                    micros: start + i * MINUTE,
                    amount: 1.0,
                },
            )
        })
        .collect();
    broker.send("orders", &messages(&early));
    wait_committed(
        &broker,
        &online,
        "shop",
        "orders",
        "orders",
        Duration::from_secs(60),
    )
    .await;

    // Partitions 1 and 2 stream 1,200 orders over the following three hours.
    let live: Vec<(i32, Order)> = (0..1_200i64)
        .map(|i| {
            let partition = 1 + (i % 2) as i32;
            let customer = 3 * (i % 20) + i64::from(partition);
            (
                partition,
                Order {
                    customer,
                    micros: start + 10 * MINUTE + i * 8_000_000,
                    amount: 2.0,
                },
            )
        })
        .collect();
    broker.send("orders", &messages(&live));
    let response = wait_committed(
        &broker,
        &online,
        "shop",
        "orders",
        "orders",
        Duration::from_secs(240),
    )
    .await;

    // Nothing of the live partitions was held back or made late: every order counts.
    let all: Vec<(i32, Order)> = early.iter().chain(&live).cloned().collect();
    let want = expected(&all);
    let customers: Vec<i64> = want.keys().copied().collect();
    assert_eq!(served(&online, &customers).await, want);
    // Partition 0 went idle; the source watermark follows the live partitions, not it.
    let stored = by_partition(&response, "orders");
    assert!(!stored[&0].active, "{stored:#?}");
    assert!(stored[&1].active && stored[&2].active, "{stored:#?}");
    let live_slowest = [&stored[&1], &stored[&2]]
        .iter()
        .filter_map(|p| p.watermark)
        .min()
        .unwrap();
    assert_eq!(response.source_watermark, Some(live_slowest));
    assert!(live_slowest > start + 3 * HOUR - 30 * MINUTE);

    // `quiver describe source` shows each partition's offset, lag and watermark.
    let output = Command::new(bin)
        .args(["describe", "source", "orders", "--project", "shop"])
        .args(["--registry", &cluster.registry.to_string()])
        .args(["--online", &online, "--ingest", &ingest_address.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("kafka topic orders:"), "{text}");
    let row = |p: i32| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(&p.to_string()))
            .unwrap_or_else(|| panic!("no row for partition {p}:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // partition, offset, log end, lag, watermark, active, epoch
    assert_eq!(row(0)[..4], ["0", "5", "5", "0"], "{text}");
    assert_eq!(row(0)[5], "idle", "{text}");
    assert_eq!(row(1)[..4], ["1", "600", "600", "0"], "{text}");
    assert_eq!(row(1)[5], "yes", "{text}");
    assert!(text.contains("ingest"), "{text}");
}
