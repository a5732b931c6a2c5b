//! `quiver-bench write|get`: load generators against a running online store.
//!
//! `write` applies a bench project (one int64-keyed entity, one view of N float64 `last`
//! features written directly, and a view of 8 windowed features fed through ingest), then writes
//! rows in batches with several writes in flight; a write returns only once it is committed by a
//! quorum and applied, so rows/s is durable replicated throughput. With `--windowed-events` it
//! then loads that many generated events (7 days of history) into the windowed view's source.
//! `get` reads random entities with many requests in flight, closed loop or at a fixed rate
//! (open loop, latency from each request's scheduled start), into an HDR histogram. With
//! `--peer` or `--versus-windowed` it measures two targets in the same run, alternating which
//! goes first, `--rounds` times, and prints both figures and their ratio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quiver::addresses::{connect, serving_client, Addresses};
use quiver::send::{send, Plan, Share};
use quiver_common::leader_hint::with_leader;
use quiver_core::duration::parse_duration;
use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{FeatureRow, WriteRequest};
use quiver_proto::serving::{get_features_request, FeatureList, GetFeaturesRequest};
use quiver_proto::types::{value::Kind, EntityColumn, EntityKey, RepeatedValue, Value};
use tokio::sync::Mutex;

use crate::definitions::apply;

/// The bench project.
pub const PROJECT: &str = "bench";
/// The view of directly written `last` features.
pub const VIEW: &str = "bench_view";
/// The view of windowed features, fed by `bench_stream` events.
const WINDOWED_VIEW: &str = "bench_windowed";
/// The windowed view's features: windows from 1 hour to 7 days, as `user_txn` has.
const WINDOWED_FEATURES: [(&str, &str); 8] = [
    ("txn_count_1h", "{aggregation: count, window: 1h}"),
    (
        "amount_sum_1h",
        "{column: amount, aggregation: sum, window: 1h}",
    ),
    (
        "amount_max_1h",
        "{column: amount, aggregation: max, window: 1h}",
    ),
    (
        "amount_sum_24h",
        "{column: amount, aggregation: sum, window: 24h}",
    ),
    (
        "amount_mean_24h",
        "{column: amount, aggregation: mean, window: 24h}",
    ),
    (
        "amount_min_24h",
        "{column: amount, aggregation: min, window: 24h}",
    ),
    (
        "amount_mean_7d",
        "{column: amount, aggregation: mean, window: 7d}",
    ),
    ("txn_count_7d", "{aggregation: count, window: 7d}"),
];
/// How far back the windowed view's events go.
const WINDOWED_SPAN_MICROS: i64 = 7 * 86_400_000_000;
/// Rows per batch of the windowed view's load.
const BATCH: usize = 5_000;

/// The flags of `quiver-bench write`.
#[derive(Debug, Clone, clap::Args)]
pub struct WriteArgs {
    /// Distinct entities to write.
    #[arg(long, default_value_t = 100_000)]
    pub entities: u64,
    /// Features per row (the bench view has this many float64 features).
    #[arg(long, default_value_t = 8)]
    pub features: usize,
    /// Rows per Write (one Raft entry).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Then load this many generated events (spread over the last 7 days, the same entities)
    /// through ingest into the windowed view `bench_windowed` (8 features, 1h-7d windows) that
    /// `get --windowed` reads. Needs ingest and compute (`quiver dev`, or those roles).
    #[arg(long, default_value_t = 0)]
    pub windowed_events: usize,
    /// Write no rows (they were written before): only apply the definitions and load
    /// `--windowed-events`.
    #[arg(long)]
    pub no_rows: bool,
}

/// The flags of `quiver-bench get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// Entities to pick from (ids 0..N).
    #[arg(long, default_value_t = 100_000)]
    pub entities: u64,
    /// Features per request.
    #[arg(long, default_value_t = 8)]
    pub features: usize,
    /// Entities per request.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Requests in flight at once (closed loop), or workers (with --rate).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Open loop: this many requests per second in total, latency measured from each
    /// request's scheduled start (no coordinated omission). Closed loop when absent.
    #[arg(long)]
    pub rate: Option<u64>,
    /// How long to measure, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up before, e.g. 2s.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Read this feature service (of `--project`) instead of the bench view's features,
    /// e.g. `fraud_model_v1` after `quiver-bench push` filled the example project.
    #[arg(long, conflicts_with = "windowed")]
    pub service: Option<String>,
    /// The project of `--service`.
    #[arg(long, default_value = "fraud")]
    pub project: String,
    /// Read the 8 windowed features of `bench_windowed` (filled by `write --windowed-events`)
    /// instead of the `last` features of `bench_view`.
    #[arg(long)]
    pub windowed: bool,
    /// Also measure a bare tonic lookup server (`quiver-bench peer-server`) at this address with
    /// the same requests, alternating with Quiver, and print the ratio Quiver / peer.
    #[arg(long, conflicts_with_all = ["service", "windowed", "versus_windowed"])]
    pub peer: Option<String>,
    /// Also measure the 8 windowed features with the same load, alternating with the `last`
    /// read, and print the ratio windowed / last.
    #[arg(long, conflicts_with_all = ["service", "windowed"])]
    pub versus_windowed: bool,
    /// With --peer or --versus-windowed: rounds of the pair (medians reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

fn definitions(features: usize) -> String {
    let mut yaml = format!(
        "project: {PROJECT}\nentities:\n  - name: bench_user\n    join_keys: [{{name: user_id, type: int64}}]\n\
         sources:\n  - name: bench_events\n    entity: bench_user\n    timestamp_field: ts\n    schema:\n\
         \x20     - {{name: user_id, type: int64}}\n      - {{name: ts, type: timestamp}}\n"
    );
    for f in 0..features {
        yaml.push_str(&format!("      - {{name: c{f}, type: float64}}\n"));
    }
    yaml.push_str(
        "  - name: bench_stream\n    entity: bench_user\n    timestamp_field: ts\n    schema:\n\
         \x20     - {name: user_id, type: int64}\n      - {name: ts, type: timestamp}\n\
         \x20     - {name: amount, type: float64}\n",
    );
    yaml.push_str(&format!("feature_views:\n  - name: {VIEW}\n    entity: bench_user\n    source: bench_events\n    features:\n"));
    for f in 0..features {
        yaml.push_str(&format!(
            "      - {{name: f{f}, column: c{f}, aggregation: last}}\n"
        ));
    }
    yaml.push_str(&format!(
        "  - name: {WINDOWED_VIEW}\n    entity: bench_user\n    source: bench_stream\n    features:\n"
    ));
    for (name, spec) in WINDOWED_FEATURES {
        let spec = spec.trim_start_matches('{');
        yaml.push_str(&format!("      - {{name: {name}, {spec}\n"));
    }
    yaml
}

fn int(v: i64) -> Value {
    Value {
        kind: Some(Kind::Int64Value(v)),
    }
}

/// `quiver-bench write`.
pub async fn write(addresses: &Addresses, args: WriteArgs) -> anyhow::Result<()> {
    let WriteArgs {
        entities,
        features,
        batch,
        concurrency,
        windowed_events,
        no_rows,
    } = args;
    apply(addresses, "bench.yaml", &definitions(features)).await?;
    // The store learns definitions through the registry's Watch; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    if !no_rows {
        write_rows(addresses, entities, features, batch, concurrency).await?;
    }
    if windowed_events > 0 {
        load_windowed(addresses, entities, windowed_events).await?;
    }
    Ok(())
}

/// Writes rows 0..entities of the bench view.
async fn write_rows(
    addresses: &Addresses,
    entities: u64,
    features: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let producer = format!("bench-{}", std::process::id());
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency.max(1) {
        let (next, histogram, online, producer) = (
            next.clone(),
            histogram.clone(),
            addresses.online.clone(),
            format!("{producer}-{worker}"),
        );
        workers.push(tokio::spawn(async move {
            let mut sequence = 0u64;
            loop {
                let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                if first >= entities {
                    return Ok::<_, anyhow::Error>(());
                }
                let last = (first + batch as u64).min(entities);
                sequence += 1;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_secs() as i64;
                let request = WriteRequest {
                    producer_id: producer.clone(),
                    sequence,
                    rows: (first..last)
                        .map(|id| FeatureRow {
                            project: PROJECT.into(),
                            view: VIEW.into(),
                            view_version: 0,
                            entity: Some(EntityKey {
                                join_keys: vec![],
                                values: vec![int(id as i64)],
                            }),
                            event_time: Some(prost_types::Timestamp {
                                seconds: now,
                                nanos: 0,
                            }),
                            values: (0..features)
                                .map(|f| Value {
                                    kind: Some(Kind::Float64Value(value_of(id, f))),
                                })
                                .collect(),
                        })
                        .collect(),
                };
                let sent = Instant::now();
                with_leader(&online, 50, |target| {
                    let request = request.clone();
                    async move {
                        let channel = connect(&target, "online")
                            .await
                            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                        OnlineStoreServiceClient::new(channel)
                            .max_encoding_message_size(256 << 20)
                            .write(request)
                            .await
                            .map(|r| r.into_inner())
                    }
                })
                .await
                .map_err(|s| anyhow::anyhow!("write failed: {}", s.message()))?;
                histogram
                    .lock()
                    .await
                    .record(sent.elapsed().as_micros() as u64)
                    .ok();
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = histogram.lock().await;
    println!(
        "wrote {entities} rows x {features} features in batches of {batch} ({concurrency} in flight): {:.1}s, {:.0} rows/s",
        elapsed,
        entities as f64 / elapsed
    );
    println!("write latency per batch: {}", summary(&h));
    Ok(())
}

/// Feature `f` of entity `id`, as written (the peer server answers the same).
pub fn value_of(id: u64, f: usize) -> f64 {
    id as f64 + f as f64 / 10.0
}

/// Loads `events` generated events over the last 7 days into `bench_stream` as history (every
/// event admitted, whatever its age), entity ids 0..entities round robin.
async fn load_windowed(addresses: &Addresses, entities: u64, events: usize) -> anyhow::Result<()> {
    const PRODUCERS: usize = 4;
    let end = quiver_common::clock::now_micros();
    let step = WINDOWED_SPAN_MICROS / events.max(1) as i64;
    let row = |user: u64, at: i64, amount: f64| Row {
        values: vec![
            int(user as i64),
            Value {
                kind: Some(Kind::TimestampValue(
                    quiver_proto::convert::micros_to_timestamp(at),
                )),
            },
            Value {
                kind: Some(Kind::Float64Value(amount)),
            },
        ],
    };
    let mut shares: Vec<Vec<Row>> = vec![Vec::new(); PRODUCERS];
    for i in 0..events {
        let user = i as u64 % entities.max(1);
        let at = end - WINDOWED_SPAN_MICROS + i as i64 * step;
        let amount = ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as f64 / 100.0;
        shares[(user % PRODUCERS as u64) as usize].push(row(user, at, amount));
    }
    let run = std::process::id();
    let shares = shares
        .into_iter()
        .enumerate()
        .map(|(p, rows)| Share::of_rows(format!("bench-windowed-{run}-{p}"), rows, BATCH))
        .collect();
    let plan = Plan {
        ingest: addresses.ingest.clone(),
        register: false,
        progress: false,
        what: "load",
    };
    let request = |history: bool| {
        move |rows| PushRequest {
            project: PROJECT.into(),
            source: "bench_stream".into(),
            columns: vec!["user_id".into(), "ts".into(), "amount".into()],
            rows,
            history,
            ..PushRequest::default()
        }
    };
    let (totals, failure, elapsed) = send(&plan, shares, events as u64, request(true)).await?;
    if let Some(e) = failure {
        return Err(e.context("loading the windowed view's events"));
    }
    // A live stream has a watermark, which a history load does not move: one live event, of
    // an entity the reads never ask for, gives the source the watermark the history ends at.
    let live = vec![Share::of_rows(
        format!("bench-windowed-{run}-live"),
        vec![row(entities, end, 1.0)],
        BATCH,
    )];
    if let (_, Some(e), _) = send(&plan, live, 1, request(false)).await? {
        return Err(e.context("pushing the windowed view's live event"));
    }
    println!(
        "loaded {} events over 7 days into {WINDOWED_VIEW} ({} accepted) in {:.1}s ({:.0} events/s)",
        totals.sent,
        totals.accepted,
        elapsed.as_secs_f64(),
        totals.sent as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn summary(h: &Histogram<u64>) -> String {
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// What a `get` target reads.
#[derive(Debug, Clone)]
enum Reads {
    /// `features` float64 features of the bench view (written by `write`).
    BenchView { features: usize },
    /// The 8 windowed features of `bench_windowed`.
    Windowed,
    /// A feature service (e.g. the example project's, filled by `quiver-bench push`).
    Service { project: String, name: String },
}

impl Reads {
    fn project_and_features(&self) -> (String, get_features_request::Features) {
        match self {
            Reads::BenchView { features } => (
                PROJECT.to_string(),
                get_features_request::Features::FeatureList(FeatureList {
                    refs: (0..*features).map(|f| format!("{VIEW}:f{f}")).collect(),
                }),
            ),
            Reads::Windowed => (
                PROJECT.to_string(),
                get_features_request::Features::FeatureList(FeatureList {
                    refs: WINDOWED_FEATURES
                        .iter()
                        .map(|(name, _)| format!("{WINDOWED_VIEW}:{name}"))
                        .collect(),
                }),
            ),
            Reads::Service { project, name } => (
                project.clone(),
                get_features_request::Features::FeatureService(name.clone()),
            ),
        }
    }

    fn shown(&self) -> String {
        match self {
            Reads::BenchView { features } => format!("{features} `last` features"),
            Reads::Windowed => format!("{} windowed features", WINDOWED_FEATURES.len()),
            Reads::Service { name, .. } => format!("service {name}"),
        }
    }
}

/// A server and what to ask it.
#[derive(Debug, Clone)]
struct Target {
    /// Shown in the output.
    label: String,
    /// host:port of a `ServingService`.
    address: String,
    reads: Reads,
}

/// The load: the same for every target of a run.
#[derive(Debug, Clone, Copy)]
struct Load {
    entities: u64,
    batch: usize,
    concurrency: usize,
    rate: Option<u64>,
    warmup: Duration,
    duration: Duration,
}

/// One measurement of one target.
struct Measured {
    requests_per_second: f64,
    latency: Histogram<u64>,
    errors: u64,
}

/// `quiver-bench get`.
pub async fn get(addresses: &Addresses, args: GetArgs) -> anyhow::Result<()> {
    let load = Load {
        entities: args.entities,
        batch: args.batch.max(1),
        concurrency: args.concurrency.max(1),
        rate: args.rate,
        warmup: args.warmup,
        duration: args.duration,
    };
    let reads = match (&args.service, args.windowed) {
        (Some(name), _) => Reads::Service {
            project: args.project.clone(),
            name: name.clone(),
        },
        (None, true) => Reads::Windowed,
        (None, false) => Reads::BenchView {
            features: args.features,
        },
    };
    let quiver = Target {
        label: "quiver".into(),
        address: addresses.online.clone(),
        reads: reads.clone(),
    };
    let rounds = args.rounds.max(1);
    match (&args.peer, args.versus_windowed) {
        // Ratio Quiver / peer.
        (Some(peer), _) => {
            let peer = Target {
                label: "bare tonic peer".into(),
                address: peer.clone(),
                reads,
            };
            compare(quiver, peer, load, rounds).await
        }
        // Ratio windowed / last.
        (None, true) => {
            let windowed = Target {
                label: "quiver windowed".into(),
                address: addresses.online.clone(),
                reads: Reads::Windowed,
            };
            let last = Target {
                label: "quiver last".into(),
                ..quiver
            };
            compare(windowed, last, load, rounds).await
        }
        (None, false) => {
            let measured = measure(&quiver, load).await?;
            println!("{}", headline(&quiver, load, &measured));
            println!("latency: {}", summary(&measured.latency));
            Ok(())
        }
    }
}

/// Measures `a` and `b` alternately (`a` first in odd rounds, `b` first in even ones) and
/// prints each measurement, then the medians and the median of each round's ratio a / b.
async fn compare(a: Target, b: Target, load: Load, rounds: usize) -> anyhow::Result<()> {
    let mut figures: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for which in order {
            let target = if which == 0 { &a } else { &b };
            let measured = measure(target, load).await?;
            println!("round {round}: {}", headline(target, load, &measured));
            println!(
                "round {round}: {} latency: {}",
                target.label,
                summary(&measured.latency)
            );
            let ms = |q: f64| measured.latency.value_at_quantile(q) as f64 / 1000.0;
            figures[which].push((measured.requests_per_second, ms(0.5), ms(0.99)));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.3}-{hi:.3}")
    };
    let column = |which: usize, field: usize| -> Vec<f64> {
        figures[which]
            .iter()
            .map(|f| [f.0, f.1, f.2][field])
            .collect()
    };
    let per_entity = load.batch as f64;
    println!(
        "== medians of {rounds} rounds ({} per request, {})",
        entities(load.batch),
        mode(load)
    );
    for (which, target) in [(0, &a), (1, &b)] {
        let rps = column(which, 0);
        println!(
            "{}: {:.0} req/s ({:.0} entity-reads/s), p50 {:.3} ms, p99 {:.3} ms (req/s range {:.0}-{:.0})",
            target.label,
            median(rps.clone()),
            median(rps.clone()) * per_entity,
            median(column(which, 1)),
            median(column(which, 2)),
            rps.iter().copied().fold(f64::MAX, f64::min),
            rps.iter().copied().fold(f64::MIN, f64::max),
        );
    }
    // Ratios within a round (same minutes, same load on the machine), then their median.
    let ratios = |field: usize| -> Vec<f64> {
        column(0, field)
            .iter()
            .zip(column(1, field))
            .map(|(a, b)| a / b.max(1e-9))
            .collect()
    };
    let throughput = ratios(0);
    let p99 = ratios(2);
    println!(
        "ratio {} / {}: throughput {:.3} (rounds {}), p99 {:.3} (rounds {})",
        a.label,
        b.label,
        median(throughput.clone()),
        range(&throughput),
        median(p99.clone()),
        range(&p99)
    );
    Ok(())
}

/// "1 entity" / "100 entities".
fn entities(batch: usize) -> String {
    format!("{batch} entit{}", if batch == 1 { "y" } else { "ies" })
}

/// Closed or open loop.
fn mode(load: Load) -> String {
    match load.rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => format!("closed loop, {} in flight", load.concurrency),
    }
}

fn headline(target: &Target, load: Load, measured: &Measured) -> String {
    format!(
        "{}: GetFeatures, {} x {}, {}: {:.0} req/s over {:?}, {} errors",
        target.label,
        entities(load.batch),
        target.reads.shown(),
        mode(load),
        measured.requests_per_second,
        load.duration,
        measured.errors
    )
}

/// Runs the load against one target and measures it.
async fn measure(target: &Target, load: Load) -> anyhow::Result<Measured> {
    let (project, what) = target.reads.project_and_features();
    let Load {
        entities,
        batch,
        concurrency,
        rate,
        warmup,
        duration,
    } = load;
    // Several HTTP/2 connections, so one connection's stream limits do not cap throughput.
    let mut clients = Vec::new();
    for _ in 0..concurrency.clamp(1, 8) {
        clients.push(serving_client(&target.address).await?);
    }
    let measuring_from = Instant::now() + warmup;
    let deadline = measuring_from + duration;
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    let workers_n = concurrency;
    // Open loop: each worker owns every workers_n-th slot of the global schedule.
    let interval = rate.map(|r| Duration::from_secs_f64(workers_n as f64 / r.max(1) as f64));
    for worker in 0..workers_n {
        let mut client = clients[worker % clients.len()].clone();
        let errors = errors.clone();
        let mut histogram = Histogram::<u64>::new(3)?;
        let mut template = GetFeaturesRequest {
            project: project.clone(),
            features: Some(what.clone()),
            entities: vec![EntityColumn {
                name: "user_id".into(),
                values: Some(RepeatedValue {
                    values: vec![int(0); batch],
                }),
            }],
            as_of: None,
            consistency: 0,
            full_feature_names: false,
        };
        workers.push(tokio::spawn(async move {
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (worker as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut scheduled = Instant::now()
                + interval
                    .map(|i| i.mul_f64(worker as f64 / workers_n as f64))
                    .unwrap_or_default();
            loop {
                if interval.is_some() {
                    tokio::time::sleep_until(scheduled.into()).await;
                }
                let start = if interval.is_some() {
                    scheduled
                } else {
                    Instant::now()
                };
                if start >= deadline {
                    return histogram;
                }
                // Only the entity ids change between requests: reuse the rest.
                if let Some(values) = template.entities[0].values.as_mut() {
                    for value in &mut values.values {
                        // xorshift: cheap, deterministic per worker.
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        value.kind = Some(Kind::Int64Value((rng % entities.max(1)) as i64));
                    }
                }
                let request = template.clone();
                let ok = client.get_features(request).await.is_ok();
                if start >= measuring_from {
                    if ok {
                        histogram.record(start.elapsed().as_micros() as u64).ok();
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(interval) = interval {
                    scheduled += interval;
                }
            }
        }));
    }
    let mut total = Histogram::<u64>::new(3)?;
    for worker in workers {
        total.add(worker.await?)?;
    }
    Ok(Measured {
        requests_per_second: total.len() as f64 / duration.as_secs_f64(),
        latency: total,
        errors: errors.load(Ordering::Relaxed),
    })
}
