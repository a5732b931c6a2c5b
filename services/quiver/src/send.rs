//! Sending rows through several producers at once — what `quiver push`, `quiver load` and
//! `quiver-bench` share: one task per producer sending its share's batches as they come (one
//! in flight), a progress line on stderr, outcome totals, and the first failure.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use quiver_proto::ingest::{PushRequest, Row};

use crate::producer::Producer;
use crate::progress::progress_line;
use crate::rpc_error;

/// One producer's share of the rows.
pub struct Share {
    /// The producer id.
    pub producer_id: String,
    /// Its batches, in the order they are sent (a reader feeds them as the producer goes).
    pub batches: tokio::sync::mpsc::Receiver<Vec<Row>>,
}

impl Share {
    /// A share of rows already in memory, in batches of `batch_size`.
    pub fn of_rows(producer_id: String, rows: Vec<Row>, batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        let batches = rows.len().div_ceil(batch_size);
        let (sender, receiver) = tokio::sync::mpsc::channel(batches.max(1));
        let mut rows = rows.into_iter();
        for _ in 0..batches {
            let batch: Vec<Row> = rows.by_ref().take(batch_size).collect();
            // The channel holds every batch, and its receiver is here.
            let _ = sender.try_send(batch);
        }
        Share {
            producer_id,
            batches: receiver,
        }
    }
}

/// How to send.
pub struct Plan {
    /// Ingest's address.
    pub ingest: String,
    /// Register every producer (an empty batch) before any sends rows.
    pub register: bool,
    /// Show a progress line on stderr.
    pub progress: bool,
    /// What failed, for error messages (`push`, `load`).
    pub what: &'static str,
}

/// What was sent and what ingest answered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Rows acknowledged (in fresh and in duplicate batches).
    pub sent: u64,
    /// Rows admitted.
    pub accepted: u64,
    /// Rows rejected as late.
    pub late: u64,
    /// Row-view exclusions.
    pub anomalous: u64,
    /// Rows of batches a previous run had committed (answered `duplicate`).
    pub duplicate: u64,
}

/// Sends every share (`total` rows together), `request` making a batch's request from its rows;
/// the totals and the first failure (the batches before it stay committed).
pub async fn send(
    plan: &Plan,
    shares: Vec<Share>,
    total: u64,
    request: impl Fn(Vec<Row>) -> PushRequest + Clone + Send + 'static,
) -> anyhow::Result<(Totals, Option<anyhow::Error>, Duration)> {
    let totals = Arc::new(Mutex::new(Totals::default()));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let registered = Arc::new(tokio::sync::Barrier::new(shares.len().max(1)));
    let mut workers = Vec::with_capacity(shares.len());
    for mut share in shares {
        let mut producer = Producer::connect(&plan.ingest, share.producer_id).await?;
        let (totals, sent, registered, request) = (
            totals.clone(),
            sent.clone(),
            registered.clone(),
            request.clone(),
        );
        let (register, what) = (plan.register, plan.what);
        workers.push(tokio::spawn(async move {
            if register {
                let registration = producer.push(request(Vec::new())).await;
                registered.wait().await;
                registration.map_err(|s| rpc_error("registering a producer with the source", s))?;
            }
            while let Some(rows) = share.batches.recv().await {
                let n = rows.len() as u64;
                let response = producer
                    .push(request(rows))
                    .await
                    .map_err(|s| rpc_error(what, s))?;
                if let Ok(mut t) = totals.lock() {
                    t.sent += n;
                    if response.duplicate {
                        t.duplicate += n;
                    } else {
                        t.accepted += response.accepted;
                        t.late += response.late;
                        t.anomalous += response.anomalous;
                    }
                }
                sent.fetch_add(n, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let progress = plan.progress.then(|| {
        let sent = sent.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = sent.load(Ordering::Relaxed);
                eprint!("\r{}", progress_line(n, total, "rows", started.elapsed()));
                let _ = std::io::stderr().flush();
            }
        })
    });
    let mut failure = None;
    for worker in workers {
        if let Err(e) = worker.await.context("a producer task panicked")? {
            failure.get_or_insert(e);
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        let n = sent.load(Ordering::Relaxed);
        eprintln!("\r{}", progress_line(n, total, "rows", started.elapsed()));
    }
    let totals = totals.lock().map(|t| *t).unwrap_or_default();
    Ok((totals, failure, started.elapsed()))
}
