//! `quiver load`: history into a source, exactly once. The events are admitted whatever their
//! age (no lateness, no watermark moves) into the offline store and into the online tiles still
//! kept. The file's rows decide the producer ids and sequences (a hash of the rows, a fixed
//! split and batch size), so re-running a load, whole or after an interruption, adds nothing
//! that was added before: ingest answers those batches as duplicates.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message;
use quiver_proto::ingest::{PushRequest, Row};

use super::push::{
    fetch_source, join_key_columns, partition_by_key, progress_line, read_events, Producer,
};
use super::rpc_error;
use crate::cli::{LoadArgs, Output};

/// Producers of one load (fixed, so the same rows always make the same batches).
const PARTS: usize = 4;
/// Rows per batch (fixed, for the same reason).
const BATCH: usize = 5_000;

/// What a load did.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    loaded: u64,
    already: u64,
    anomalous: u64,
}

/// `quiver load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let source = fetch_source(&args.addresses, &args.project, &args.source).await?;
    let (columns, rows) = read_events(&args.file, args.format, &source)?;
    let total = rows.len() as u64;
    let identity = load_identity(&args.project, &args.source, &columns, &rows);
    let key_columns = join_key_columns(&args.addresses, &args.project, &source, &columns).await?;
    // Every split is kept, even an empty one, so the part numbers stay the same for the rows.
    let parts = partition_by_key(rows, &key_columns, PARTS);
    let done = Arc::new(AtomicU64::new(0));
    let counts = Arc::new(std::sync::Mutex::new(Counts::default()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for (part, rows) in parts.into_iter().enumerate() {
        let mut producer = Producer::connect(
            &args.addresses.ingest,
            format!("load-{identity:032x}-{part}"),
        )
        .await?;
        let (done, counts, columns) = (done.clone(), counts.clone(), columns.clone());
        let (project, source) = (args.project.clone(), args.source.clone());
        workers.push(tokio::spawn(async move {
            for rows in rows.chunks(BATCH) {
                let request = PushRequest {
                    project: project.clone(),
                    source: source.clone(),
                    columns: columns.clone(),
                    rows: rows.to_vec(),
                    history: true,
                    ..PushRequest::default()
                };
                let response = producer
                    .push(request)
                    .await
                    .map_err(|s| rpc_error("load", s))?;
                if let Ok(mut c) = counts.lock() {
                    if response.duplicate {
                        c.already += rows.len() as u64;
                    } else {
                        c.loaded += response.accepted;
                        c.anomalous += response.anomalous;
                    }
                }
                done.fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let json = args.output == Output::Json;
    let progress = (!json).then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = done.load(Ordering::Relaxed);
                eprint!("\r{}", progress_line(n, total, "rows", started.elapsed()));
                let _ = std::io::stderr().flush();
            }
        })
    });
    let mut failure = None;
    for worker in workers {
        if let Err(e) = worker.await.context("a load worker panicked")? {
            failure.get_or_insert(e);
        }
    }
    let sent = done.load(Ordering::Relaxed);
    if let Some(progress) = progress {
        progress.abort();
        eprintln!(
            "\r{}",
            progress_line(sent, total, "rows", started.elapsed())
        );
    }
    let c = counts.lock().map(|c| *c).unwrap_or_default();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "source": args.source,
                "rows": total,
                "loaded": c.loaded,
                "already_loaded": c.already,
                "anomalous": c.anomalous,
                "not_sent": total - sent,
                "seconds": secs,
                "rows_per_second": sent as f64 / secs,
                "load_id": format!("{identity:032x}"),
                "error": failure.as_ref().map(|e| format!("{e:#}")),
            }))?
        );
    } else if c.loaded == 0 && c.already == sent && failure.is_none() {
        println!(
            "{} rows of {} were loaded before: nothing added (load {identity:032x})",
            c.already, args.source
        );
    } else {
        println!(
            "loaded {} of {total} rows into {} in {secs:.1}s ({:.0} rows/s); {} already loaded \
             (nothing added for them), {} anomalous (row-view exclusions, quarantined), {} not \
             sent (load {identity:032x})",
            c.loaded,
            args.source,
            sent as f64 / secs,
            c.already,
            c.anomalous,
            total - sent
        );
    }
    match failure {
        Some(e) => Err(e.context(
            "the load stopped; run it again to finish it (what was loaded is not loaded twice)",
        )),
        None => Ok(()),
    }
}

/// The identity of a load: a 128-bit FNV-1a hash of the project, source, columns and encoded
/// rows (so the same events from another file format or path are the same load).
fn load_identity(project: &str, source: &str, columns: &[String], rows: &[Row]) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    let mut feed = |bytes: &[u8]| {
        // The length first, so fields cannot run into each other.
        for byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            hash = (hash ^ u128::from(*byte)).wrapping_mul(PRIME);
        }
    };
    feed(project.as_bytes());
    feed(source.as_bytes());
    for column in columns {
        feed(column.as_bytes());
    }
    for row in rows {
        feed(&row.encode_to_vec());
    }
    hash
}
