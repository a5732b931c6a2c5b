//! `quiver bench push`: generated transactions through ingest, compute and the online store.
//!
//! Each producer pushes batches of the example `transactions` source and waits for each
//! acknowledgement (sent once the batch is committed and applied by the store's leader, i.e.
//! servable there). Events are stamped when their batch is built, so the time from an event's
//! timestamp to its acknowledgement bounds its event-to-servable freshness from above, on one
//! clock. With `--rate`, batches are scheduled at fixed times (open loop) and latency counts
//! from the scheduled time, so a backlog shows as latency instead of hiding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use quiver_proto::registry::{ApplyRequest, DefinitionDocument};
use tokio::sync::Mutex;

use super::push::Producer;
use super::rpc_error;
use quiver_common::clock::now_micros;

use crate::addresses::Addresses;
use crate::demo::{self, Generator, MERCHANT_COLUMNS, TRANSACTION_COLUMNS};

/// The definitions the bench pushes into (the README's example project).
const EXAMPLES: &str = include_str!("../../../../examples/fraud.yaml");

/// What to push.
pub struct Shape {
    /// Events per second offered (0: as fast as acknowledged).
    pub rate: u64,
    /// How long.
    pub duration: Duration,
    /// Rows per batch.
    pub batch: usize,
    /// Concurrent producers.
    pub producers: usize,
    /// Distinct users.
    pub users: u64,
    /// `transactions` or `merchant_transactions`.
    pub source: String,
}

/// Runs the push benchmark; returns the committed events/s.
pub async fn run(addresses: &Addresses, shape: Shape) -> anyhow::Result<f64> {
    let Shape {
        rate,
        duration,
        batch,
        producers,
        users,
        source,
    } = shape;
    let (columns, to_row): (&[&str], fn(&demo::Transaction) -> quiver_proto::ingest::Row) =
        match source.as_str() {
            "transactions" => (&TRANSACTION_COLUMNS, demo::transaction_row),
            "merchant_transactions" => (&MERCHANT_COLUMNS, demo::merchant_row),
            other => {
                anyhow::bail!("--source {other:?}: expected transactions or merchant_transactions")
            }
        };
    addresses
        .registry()
        .await?
        .apply(ApplyRequest {
            documents: vec![DefinitionDocument {
                name: "examples/fraud.yaml".into(),
                yaml: EXAMPLES.into(),
            }],
            dry_run: false,
            expected_revision: None,
        })
        .await
        .map_err(|s| rpc_error("applying the example definitions", s))?;
    let batch = batch.max(1);
    let producers = producers.max(1);
    // Open loop: each producer sends one batch every `interval`.
    let interval =
        (rate > 0).then(|| Duration::from_secs_f64(batch as f64 * producers as f64 / rate as f64));
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let run = now_micros();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let mut producer = Producer::connect(&addresses.ingest, format!("bench-{run}-{p}")).await?;
        let latency = latency.clone();
        let source = source.clone();
        tasks.push(tokio::spawn(async move {
            let mut generator = Generator::new(users, run as u64 + p as u64).clean();
            let mut pushed = 0u64;
            let mut next = Instant::now();
            while started.elapsed() < duration {
                let scheduled = match interval {
                    Some(interval) => {
                        tokio::time::sleep_until(next.into()).await;
                        let at = next;
                        next += interval;
                        at
                    }
                    None => Instant::now(),
                };
                let now = now_micros();
                let rows = (0..batch)
                    .map(|_| to_row(&generator.transaction(now)))
                    .collect();
                producer
                    .push(demo::request(&source, columns, rows))
                    .await
                    .map_err(|s| rpc_error("push", s))?;
                pushed += batch as u64;
                let took = scheduled.elapsed().as_micros() as u64;
                latency.lock().await.record(took.max(1))?;
            }
            Ok::<_, anyhow::Error>(pushed)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.context("a producer panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = latency.lock().await;
    let ms = |v: u64| v as f64 / 1000.0;
    println!(
        "push to {source}: {total} events in {elapsed:.1}s = {:.0} events/s committed ({producers} producers x {batch}-row batches{})",
        total as f64 / elapsed,
        interval.map(|_| format!(", offered {rate}/s")).unwrap_or_default()
    );
    println!(
        "event -> acknowledged (committed and applied on the leader), ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  ({} batches)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    );
    Ok(total as f64 / elapsed)
}
