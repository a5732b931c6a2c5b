//! `quiver-bench kafka`: Kafka sources, from a topic into tiles. The bench starts librdkafka's
//! mock cluster (a real Kafka wire protocol on a 127.0.0.1 port) inside this client process, so
//! the load generator and the broker stay out of the server, and applies a fresh project whose
//! sources name its topics. Then:
//!
//! 1. **lean throughput**: `--events` generated transactions are produced into a topic of
//!    `--partitions` partitions first; the source (a view of 3 features) is applied and the bench
//!    polls Quiver's committed offsets (`OnlineStoreService/Producers`, answered from the
//!    store's applied state, so an offset counts once its events are folded into tiles) until
//!    every message is committed. Events/s is measured from the first commit seen to the last
//!    (consumer start-up and group join excluded, and reported apart). `--events 0` skips it.
//! 2. **`user_txn` throughput**: the same with a copy of the example `transactions` source and
//!    its `user_txn` view (12 features), `--txn-events` events; then `quiver-bench push` of the
//!    same source for `--push-duration` in the same run, for the ratio. `--txn-events 0` skips
//!    it (to measure freshness on a server not busy with the phases before).
//! 3. **freshness**: an open-loop producer offers `--rate` events/s for `--duration` into a third
//!    topic (the lean view); each event's timestamp is its scheduled produce time. A poller asks
//!    `Producers` every 2 ms; when a partition's committed offset passes a message, that
//!    message's latency is now minus its timestamp: event -> committed and applied on the
//!    store's leader (servable there), including the producer's linger, the broker, the
//!    consumer's batching and up to one poll interval. The first second is warm-up. Its producer
//!    lingers `--producer-linger-ms` (5): the mock broker returns one produced message set per
//!    partition per fetch. It starts once Quiver's consumer has committed one message per
//!    partition (joining the group takes seconds; what was produced before is a backlog, not
//!    freshness). The peer, in the same run: a bare consumer of the same topic
//!    (`bare_consumer.rs`), event -> read, the floor this broker and machine allow.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use quiver::addresses::{connect, Addresses};
use quiver::demo::{Generator, Transaction};
use quiver::rpc_error;
use quiver_common::client_channel::AuthChannel;
use quiver_common::clock::now_micros;
use quiver_core::duration::parse_duration;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::ProducersRequest;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::definitions::apply;

/// How often the committed offsets are polled while measuring throughput.
const THROUGHPUT_POLL: Duration = Duration::from_millis(50);
/// How often they are polled while measuring freshness (bounds the added latency).
const FRESHNESS_POLL: Duration = Duration::from_millis(2);
/// Freshness samples of the first second are left out (the consumer's first fetches).
const WARM_UP: Duration = Duration::from_secs(1);
/// The consumers' `fetch.wait.max.ms` (Quiver's sources and the bare peer): librdkafka's mock
/// broker holds a fetch that finds no data for the whole wait (500 ms by default) and does not
/// answer early when messages arrive, as a real broker does (at `fetch.min.bytes`, one byte).
const FETCH_WAIT_MS: u32 = 10;
/// How long a throughput phase may take before the bench gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The bench's shape (its flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Partitions of each topic.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Events produced for the lean view's throughput.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Events produced for the `user_txn` view's throughput.
    #[arg(long, default_value_t = 300_000)]
    pub txn_events: usize,
    /// Distinct users.
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Events per second offered in the freshness phase (open loop).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// How long the freshness phase runs, e.g. 15s.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long `quiver-bench push` of the same source runs for the ratio (0s: not run).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub push_duration: Duration,
    /// The freshness producer's `linger.ms` (part of the latency measured). librdkafka's
    /// mock broker returns one message set per partition per fetch, so a set must carry
    /// what arrives during a fetch round trip or a backlog grows.
    #[arg(long, default_value_t = 5)]
    pub producer_linger_ms: u32,
}

/// The three phases' topics, sources and views.
struct Names {
    project: String,
    lean_topic: String,
    txn_topic: String,
    fresh_topic: String,
}

/// Runs the bench.
pub async fn run(addresses: &Addresses, shape: Shape) -> anyhow::Result<()> {
    let id = now_micros() / 1_000_000;
    let names = Names {
        project: format!("kafka_bench_{id}"),
        lean_topic: format!("bench-lean-{id}"),
        txn_topic: format!("bench-txn-{id}"),
        fresh_topic: format!("bench-fresh-{id}"),
    };
    let partitions = shape.partitions.max(1);
    let cluster = MockCluster::new(1).context("starting librdkafka's mock cluster")?;
    for topic in [&names.lean_topic, &names.txn_topic, &names.fresh_topic] {
        cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("creating topic {topic}"))?;
    }
    let bootstrap = cluster.bootstrap_servers();
    let producer = producer(&bootstrap, 1)?;
    let online = OnlineStoreServiceClient::new(connect(&addresses.online, "online").await?);
    println!(
        "mock cluster at {bootstrap}, {partitions} partitions per topic, project {}",
        names.project
    );

    // 1. Lean view (skipped with --events 0). The backlog is produced before the source is
    // applied, so the consumer drains it rather than following the producer.
    if shape.events > 0 {
        let produced = produce_backlog(
            &producer,
            &names.lean_topic,
            shape.events,
            partitions,
            shape.users,
        )?;
        println!(
            "lean: produced {} events into the topic at {produced:.0} events/s",
            shape.events
        );
    }
    apply(
        addresses,
        &format!("{}.yaml", names.project),
        &definitions(&names, &bootstrap, false)?,
    )
    .await?;
    if shape.events > 0 {
        let lean = drain(
            &online,
            &names.project,
            "lean_events",
            &names.lean_topic,
            shape.events as u64,
        )
        .await?;
        lean.print("lean view (3 features)");
    }

    // 2. user_txn, then the push path on the same source (skipped with --txn-events 0).
    if shape.txn_events > 0 {
        let produced = produce_backlog(
            &producer,
            &names.txn_topic,
            shape.txn_events,
            partitions,
            shape.users,
        )?;
        println!(
            "user_txn: produced {} events into the topic at {produced:.0} events/s",
            shape.txn_events
        );
        apply(
            addresses,
            &format!("{}.yaml", names.project),
            &definitions(&names, &bootstrap, true)?,
        )
        .await?;
        let txn = drain(
            &online,
            &names.project,
            "transactions",
            &names.txn_topic,
            shape.txn_events as u64,
        )
        .await?;
        txn.print("user_txn view (12 features)");
        if !shape.push_duration.is_zero() {
            let push = crate::push::run(
                addresses,
                crate::push::Shape {
                    rate: 0,
                    duration: shape.push_duration,
                    batch: 2_000,
                    producers: 8,
                    users: shape.users,
                    source: "transactions".into(),
                },
            )
            .await?;
            println!(
                "user_txn: kafka / push = {:.2} ({:.0} vs {push:.0} events/s)",
                txn.rate / push.max(1e-9),
                txn.rate
            );
        }
    }

    // 3. Freshness at an offered rate.
    freshness(&bootstrap, &online, &names, partitions, &shape).await?;

    // The project goes, so the server's consumers stop before the mock cluster does.
    if let Err(e) = apply(
        addresses,
        &format!("{}.yaml", names.project),
        &format!("project: {}\n", names.project),
    )
    .await
    {
        println!(
            "note: could not remove the bench project {}: {e:#}",
            names.project
        );
    }
    Ok(())
}

/// The bench project: `lean_events` (the transactions schema; 3 features) and `fresh_events`
/// (the same, for the freshness phase), and with `with_txn` the example `transactions` source
/// (renamed topic) with its `user_txn` view.
fn definitions(names: &Names, bootstrap: &str, with_txn: bool) -> anyhow::Result<String> {
    let pick = crate::definitions::example;
    // `FETCH_WAIT_MS` makes the mock broker behave like a real one for the freshness phase
    // (backlogs never wait).
    let kafka = |topic: &str| -> anyhow::Result<serde_yaml::Value> {
        Ok(serde_yaml::from_str(&format!(
            "{{bootstrap_servers: \"{bootstrap}\", topic: \"{topic}\", format: json, start: earliest, properties: {{fetch.wait.max.ms: \"{FETCH_WAIT_MS}\"}}}}"
        ))?)
    };
    let transactions = pick("sources", "transactions")?;
    let source = |name: &str, topic: &str| -> anyhow::Result<serde_yaml::Value> {
        let mut s = transactions.clone();
        s["name"] = name.into();
        s["kafka"] = kafka(topic)?;
        Ok(s)
    };
    let lean_view = |name: &str, source: &str| -> anyhow::Result<serde_yaml::Value> {
        Ok(serde_yaml::from_str(&format!(
            r#"
name: {name}
entity: user
source: {source}
ttl: 1d
features:
  - {{name: txn_count, aggregation: count}}
  - {{name: amount_sum_1h, column: amount, aggregation: sum, window: 1h}}
  - {{name: amount_max_1h, column: amount, aggregation: max, window: 1h}}
"#
        ))?)
    };
    let mut sources = vec![
        source("lean_events", &names.lean_topic)?,
        source("fresh_events", &names.fresh_topic)?,
    ];
    let mut views = vec![
        lean_view("lean", "lean_events")?,
        lean_view("fresh", "fresh_events")?,
    ];
    if with_txn {
        sources.push(source("transactions", &names.txn_topic)?);
        views.push(pick("feature_views", "user_txn")?);
    }
    let mut document = serde_yaml::Mapping::new();
    document.insert("project".into(), names.project.clone().into());
    document.insert("entities".into(), vec![pick("entities", "user")?].into());
    document.insert("sources".into(), sources.into());
    document.insert("feature_views".into(), views.into());
    Ok(serde_yaml::to_string(&document)?)
}

/// One transaction as the JSON message a Kafka source reads.
fn json(t: &Transaction) -> anyhow::Result<Vec<u8>> {
    let ts = humantime::format_rfc3339_micros(
        std::time::UNIX_EPOCH + Duration::from_micros(t.at.max(0) as u64),
    );
    Ok(serde_json::to_vec(&serde_json::json!({
        "user_id": t.user,
        "ts": ts.to_string(),
        "amount": t.amount,
        "merchant": t.merchant,
        "note": t.note,
    }))?)
}

/// Sends one message to `partition`, waiting while librdkafka's local queue is full.
fn send(producer: &BaseProducer, topic: &str, partition: i32, payload: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .partition(partition)
        .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                producer.poll(Duration::from_millis(1));
                record = back;
            }
        }
    }
}

/// Produces `events` generated transactions into `topic`, keyed by user over the partitions (as
/// a keyed producer would); returns the produce rate (events/s).
fn produce_backlog(
    producer: &BaseProducer,
    topic: &str,
    events: usize,
    partitions: i32,
    users: u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut generator = Generator::new(users, now_micros() as u64).clean();
    for _ in 0..events {
        let t = generator.transaction(now_micros());
        send(
            producer,
            topic,
            partition_of(t.user, partitions),
            &json(&t)?,
        );
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the backlog to the mock cluster")?;
    Ok(events as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

fn partition_of(user: i64, partitions: i32) -> i32 {
    user.rem_euclid(i64::from(partitions)) as i32
}

/// Committed offsets per partition of `topic` in Quiver's applied state.
async fn committed(
    online: &OnlineStoreServiceClient<AuthChannel>,
    project: &str,
    source: &str,
    topic: &str,
    partitions: usize,
) -> anyhow::Result<Vec<u64>> {
    let prefix = format!("kafka:{topic}:");
    let response = online
        .clone()
        .producers(ProducersRequest {
            project: project.into(),
            source: source.into(),
            prefix: prefix.clone(),
        })
        .await
        .map_err(|s| rpc_error("reading the committed offsets", s))?
        .into_inner();
    let mut out = vec![0; partitions];
    for p in response.producers {
        let partition: Option<usize> = p
            .producer_id
            .strip_prefix(&prefix)
            .and_then(|n| n.parse().ok());
        if let Some(slot) = partition.and_then(|i| out.get_mut(i)) {
            *slot = p.sequence;
        }
    }
    Ok(out)
}

/// [`committed`] of the freshness phase's topic.
async fn fresh_committed(
    online: &OnlineStoreServiceClient<AuthChannel>,
    names: &Names,
    partitions: usize,
) -> anyhow::Result<Vec<u64>> {
    committed(
        online,
        &names.project,
        "fresh_events",
        &names.fresh_topic,
        partitions,
    )
    .await
}

/// A throughput phase's outcome.
struct Drained {
    total: u64,
    start_up: f64,
    seconds: f64,
    rate: f64,
}

impl Drained {
    fn print(&self, what: &str) {
        println!(
            "{what}: {} events committed in {:.2}s after the first commit = {:.0} events/s (consumer start-up to the first commit {:.2}s)",
            self.total, self.seconds, self.rate, self.start_up
        );
    }
}

/// Polls the committed offsets of `source` until they sum to `total`.
async fn drain(
    online: &OnlineStoreServiceClient<AuthChannel>,
    project: &str,
    source: &str,
    topic: &str,
    total: u64,
) -> anyhow::Result<Drained> {
    let applied = Instant::now();
    let mut first: Option<(Instant, u64)> = None;
    loop {
        // The partition count is unknown here; 4,096 slots hold any bench topic.
        let done: u64 = committed(online, project, source, topic, 4_096)
            .await?
            .iter()
            .sum();
        let now = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((now, done));
        }
        if done >= total {
            let (at, base) = first.unwrap_or((now, 0));
            let seconds = now.duration_since(at).as_secs_f64();
            // The first poll that saw commits may already hold everything (a tiny backlog).
            let rate = if seconds > 0.0 {
                (done - base) as f64 / seconds
            } else {
                done as f64 / now.duration_since(applied).as_secs_f64().max(1e-9)
            };
            return Ok(Drained {
                total: done,
                start_up: at.duration_since(applied).as_secs_f64(),
                seconds,
                rate,
            });
        }
        if applied.elapsed() > PHASE_TIMEOUT {
            anyhow::bail!("{source}: only {done} of {total} events committed in {PHASE_TIMEOUT:?}");
        }
        tokio::time::sleep(THROUGHPUT_POLL).await;
    }
}

/// Phase 3: an open-loop producer at `shape.rate` (its own thread and client) and a poller
/// turning committed offsets into per-event latencies.
async fn freshness(
    bootstrap: &str,
    online: &OnlineStoreServiceClient<AuthChannel>,
    names: &Names,
    partitions: i32,
    shape: &Shape,
) -> anyhow::Result<()> {
    let count = partitions as usize;
    // Per partition, each message's timestamp (its scheduled produce time), by offset: the
    // topic is fresh and written only here, so the n-th message of a partition has offset n.
    let stamps: Arc<Mutex<Vec<Vec<i64>>>> = Arc::new(Mutex::new(vec![Vec::new(); count]));
    let rate = shape.rate.max(1);
    let (duration, users) = (shape.duration, shape.users);
    // The mock broker answers a fetch with one produced message set per partition, never more,
    // so a trickle of tiny sets (1 ms linger: 2-3 messages per partition) caps what a consumer
    // can read at all: each set must carry what arrives during a fetch round trip. The linger
    // is counted in the latency.
    let producer = producer(bootstrap, shape.producer_linger_ms)?;
    prime(&producer, online, names, partitions, users, &stamps).await?;
    let produced = Arc::new(AtomicBool::new(false));
    let measure_from = now_micros() + WARM_UP.as_micros() as i64;
    let deadline = Instant::now() + shape.duration + Duration::from_secs(60);
    let peer = crate::bare_consumer::spawn(crate::bare_consumer::Reading {
        bootstrap: bootstrap.to_string(),
        topic: names.fresh_topic.clone(),
        partitions,
        stamps: stamps.clone(),
        measure_from,
        produced: produced.clone(),
        deadline,
        fetch_wait_ms: FETCH_WAIT_MS,
    })?;
    let writer = {
        let stamps = stamps.clone();
        let produced = produced.clone();
        let topic = names.fresh_topic.clone();
        std::thread::spawn(move || -> anyhow::Result<u64> {
            let mut generator = Generator::new(users, 11).clean();
            let started = Instant::now();
            let start_micros = now_micros();
            let mut n = 0u64;
            while started.elapsed() < duration {
                // Every event whose scheduled time has come is sent now, stamped with that
                // time (open loop: a stall shows as latency, it does not lower the rate).
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                while n < due {
                    let at = start_micros + (n as f64 * 1e6 / rate as f64) as i64;
                    let t = generator.transaction(at);
                    let partition = partition_of(t.user, partitions);
                    if let Ok(mut s) = stamps.lock() {
                        s[partition as usize].push(at);
                    }
                    send(&producer, &topic, partition, &json(&t)?);
                    n += 1;
                }
                producer.poll(Duration::from_micros(200));
            }
            producer.flush(Duration::from_secs(30))?;
            produced.store(true, std::sync::atomic::Ordering::Release);
            Ok(n)
        })
    };
    let mut h = Histogram::<u64>::new(3)?;
    let mut seen = vec![0usize; count];
    loop {
        let stored = fresh_committed(online, names, count).await?;
        let now = now_micros();
        let all_sent: usize = {
            let s = stamps
                .lock()
                .map_err(|_| anyhow::anyhow!("the freshness producer panicked"))?;
            for (p, &offset) in stored.iter().enumerate() {
                let upto = (offset as usize).min(s[p].len());
                for &at in s[p].get(seen[p]..upto).unwrap_or_default() {
                    if at >= measure_from {
                        h.record((now - at).max(1) as u64)?;
                    }
                }
                seen[p] = seen[p].max(upto);
            }
            s.iter().map(Vec::len).sum()
        };
        if writer.is_finished() && seen.iter().sum::<usize>() >= all_sent {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("freshness: offsets not committed within 60s of the last event");
        }
        tokio::time::sleep(FRESHNESS_POLL).await;
    }
    let n = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the freshness producer panicked"))??;
    println!(
        "freshness at {rate} events/s offered ({n} events in {duration:.0?}, lean view, {partitions} partitions): event -> offset committed and applied on the leader, after a {WARM_UP:?} warm-up, ms: {}",
        quantiles(&h)
    );
    let bare = peer
        .join()
        .map_err(|_| anyhow::anyhow!("the bare consumer panicked"))??;
    println!(
        "  peer, same run: a bare librdkafka consumer of the same topic (event -> read), ms: {}; Quiver's p99 is {:.2}x the peer's",
        quantiles(&bare),
        h.value_at_quantile(0.99) as f64 / bare.value_at_quantile(0.99).max(1) as f64
    );
    Ok(())
}

/// p50, p90, p99 and max of latencies in microseconds, as milliseconds, and the count.
fn quantiles(h: &Histogram<u64>) -> String {
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  ({} events)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}

/// Quiver's consumer joins its group and gets its partitions seconds after the source is
/// applied, and events produced before then are a backlog to catch up (at one message set per
/// partition per fetch, this broker's limit), not freshness. So one message goes to each
/// partition first, and the measurement starts once Quiver has committed them all.
async fn prime(
    producer: &BaseProducer,
    online: &OnlineStoreServiceClient<AuthChannel>,
    names: &Names,
    partitions: i32,
    users: u64,
    stamps: &Mutex<Vec<Vec<i64>>>,
) -> anyhow::Result<()> {
    let mut generator = Generator::new(users, 12).clean();
    for partition in 0..partitions {
        let at = now_micros();
        stamps
            .lock()
            .map_err(|_| anyhow::anyhow!("the stamps lock is poisoned"))?[partition as usize]
            .push(at);
        send(
            producer,
            &names.fresh_topic,
            partition,
            &json(&generator.transaction(at))?,
        );
    }
    producer.flush(Duration::from_secs(30))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored = fresh_committed(online, names, partitions as usize).await?;
        if stored.iter().all(|&offset| offset >= 1) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("freshness: Quiver did not consume the first messages within 120s");
        }
        tokio::time::sleep(THROUGHPUT_POLL).await;
    }
}

/// A producer to the mock cluster with `linger_ms`, a deep local queue for the backlogs.
fn producer(bootstrap: &str, linger_ms: u32) -> anyhow::Result<BaseProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("creating the bench's Kafka producer")
}
