//! `quiver-bench push`: generated transactions through ingest, compute and the online store.
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
use quiver::addresses::Addresses;
use quiver::demo::{self, Generator, MERCHANT_COLUMNS, TRANSACTION_COLUMNS};
use quiver::producer::Producer;
use quiver::rpc_error;
use quiver_common::clock::now_micros;
use quiver_core::duration::parse_duration;
use tokio::sync::Mutex;

use crate::definitions::apply;

/// What to push (the flags of `quiver-bench push`).
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Events per second in total (open loop); 0 pushes as fast as acknowledgements allow.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to measure, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Rows per pushed batch.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Concurrent producers (each its own producer id, one batch in flight).
    #[arg(long, default_value_t = 8)]
    pub producers: usize,
    /// Distinct users (keys are skewed: a few users get most events).
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// The example source to push: `transactions` (view `user_txn`: 12 features, text
    /// transforms, 4 tile sizes) or `merchant_transactions` (view `merchant_txn`: 3 features).
    #[arg(long, default_value = "transactions")]
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
    apply(
        addresses,
        "examples/fraud.yaml",
        crate::definitions::EXAMPLES,
    )
    .await?;
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
