//! `quiver bench write|get`: load generators against a running online store.
//!
//! `write` applies a bench project (one int64-keyed entity, one view of N float64 features),
//! then writes rows in batches with several writes in flight; a write returns only once it is
//! committed by a quorum and applied, so rows/s is durable replicated throughput.
//! `get` reads random entities with many requests in flight, closed loop or at a fixed rate
//! (open loop, latency from each request's scheduled start), into an HDR histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quiver_common::leader_hint::with_leader;
use quiver_core::duration::parse_duration;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{FeatureRow, WriteRequest};
use quiver_proto::registry::{ApplyRequest, DefinitionDocument};
use quiver_proto::serving::{get_features_request, FeatureList, GetFeaturesRequest};
use quiver_proto::types::{value::Kind, EntityColumn, EntityKey, RepeatedValue, Value};
use tokio::sync::Mutex;

use crate::addresses::{connect, serving_client};
use crate::cli::{BenchArgs, BenchCommand};

const PROJECT: &str = "bench";
const VIEW: &str = "bench_view";

/// Runs a benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Write {
            entities,
            features,
            batch,
            concurrency,
        } => write(&args.addresses, entities, features, batch, concurrency).await,
        BenchCommand::Push {
            rate,
            duration,
            batch,
            producers,
            users,
            source,
        } => {
            let duration = parse_duration(&duration)?;
            let shape = super::bench_push::Shape {
                rate,
                duration,
                batch,
                producers,
                users,
                source,
            };
            super::bench_push::run(&args.addresses, shape)
                .await
                .map(|_| ())
        }
        BenchCommand::Backfill {
            events,
            users,
            days,
            live_rate,
            server_pid,
        } => {
            let shape = super::bench_backfill::Shape {
                events,
                users,
                days,
                live_rate,
                server_pid,
            };
            super::bench_backfill::run(&args.addresses, shape).await
        }
        BenchCommand::Kafka {
            partitions,
            events,
            txn_events,
            users,
            rate,
            duration,
            push_duration,
            producer_linger_ms,
        } => {
            let shape = super::bench_kafka::Shape {
                partitions,
                events,
                txn_events,
                users,
                rate,
                duration: parse_duration(&duration)?,
                push_duration: parse_duration(&push_duration)?,
                producer_linger_ms,
            };
            super::bench_kafka::run(&args.addresses, shape).await
        }
        BenchCommand::Snapshot {
            store,
            feature_rows,
            users,
            entity_rows,
            windowed_rows,
        } => {
            let shape = super::bench_snapshot::Shape {
                store,
                feature_rows,
                users,
                entity_rows,
                windowed_rows,
            };
            super::bench_snapshot::run(&args.addresses, shape).await
        }
        BenchCommand::Get {
            entities,
            features,
            batch,
            concurrency,
            rate,
            duration,
            warmup,
            service,
            project,
        } => {
            let duration = parse_duration(&duration)?;
            let warmup = parse_duration(&warmup)?;
            let what = match service {
                Some(name) => Reads::Service { project, name },
                None => Reads::BenchView { features },
            };
            get(
                &args.addresses,
                entities,
                what,
                batch,
                concurrency,
                rate,
                warmup,
                duration,
            )
            .await
        }
    }
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
    yaml.push_str(&format!("feature_views:\n  - name: {VIEW}\n    entity: bench_user\n    source: bench_events\n    features:\n"));
    for f in 0..features {
        yaml.push_str(&format!(
            "      - {{name: f{f}, column: c{f}, aggregation: last}}\n"
        ));
    }
    yaml
}

fn int(v: i64) -> Value {
    Value {
        kind: Some(Kind::Int64Value(v)),
    }
}

async fn write(
    addresses: &crate::addresses::Addresses,
    entities: u64,
    features: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut registry = addresses.registry().await?;
    registry
        .apply(ApplyRequest {
            documents: vec![DefinitionDocument {
                name: "bench.yaml".into(),
                yaml: definitions(features),
            }],
            dry_run: false,
            expected_revision: None,
        })
        .await
        .map_err(|s| anyhow::anyhow!("applying the bench definitions: {}", s.message()))?;
    // The store learns definitions through the registry's Watch; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

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
                                    kind: Some(Kind::Float64Value(id as f64 + f as f64 / 10.0)),
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

/// What `bench get` reads.
enum Reads {
    /// `features` float64 features of the bench view (written by `bench write`).
    BenchView { features: usize },
    /// A feature service (e.g. the example project's, filled by `bench push`).
    Service { project: String, name: String },
}

#[allow(clippy::too_many_arguments)]
async fn get(
    addresses: &crate::addresses::Addresses,
    entities: u64,
    reads: Reads,
    batch: usize,
    concurrency: usize,
    rate: Option<u64>,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<()> {
    let (project, what, shown) = match &reads {
        Reads::BenchView { features } => (
            PROJECT.to_string(),
            get_features_request::Features::FeatureList(FeatureList {
                refs: (0..*features).map(|f| format!("{VIEW}:f{f}")).collect(),
            }),
            format!("{features} features"),
        ),
        Reads::Service { project, name } => (
            project.clone(),
            get_features_request::Features::FeatureService(name.clone()),
            format!("service {name}"),
        ),
    };
    // Several HTTP/2 connections, so one connection's stream limits do not cap throughput.
    let mut clients = Vec::new();
    for _ in 0..concurrency.clamp(1, 8) {
        clients.push(serving_client(&addresses.online).await?);
    }
    let measuring_from = Instant::now() + warmup;
    let deadline = measuring_from + duration;
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    let workers_n = concurrency.max(1);
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
    let mode = match rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => format!("closed loop, {workers_n} in flight"),
    };
    println!(
        "GetFeatures, {batch} entit{} x {shown}, {mode}: {:.0} req/s over {:?}, {} errors",
        if batch == 1 { "y" } else { "ies" },
        total.len() as f64 / duration.as_secs_f64(),
        duration,
        errors.load(Ordering::Relaxed)
    );
    println!("latency: {}", summary(&total));
    Ok(())
}
