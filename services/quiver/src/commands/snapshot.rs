//! `quiver snapshot`: a point-in-time training set as a job. Streams an entity table (Parquet)
//! to the snapshot service over Arrow Flight and writes the answer as Parquet, to a local path
//! or an object-store URL, with a progress line.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow_flight::error::FlightError;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver::progress::progress_line;
use quiver::snapshot_exchange::{exchange, flight_error};
use quiver_proto::offline::snapshot_command::Features;
use quiver_proto::offline::{
    sampling, BalancedSampling, FeatureRefs, InverseFrequencySampling, Sampling, SnapshotCommand,
};

use super::parquet_sink::{Destination, ParquetSink};
use crate::cli::{Output, SampleStrategy, SnapshotArgs};

/// Entity rows per batch sent.
const SEND_BATCH_ROWS: usize = 65_536;

/// `quiver snapshot`.
pub async fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    let command = command_of(&args)?;
    let file = std::fs::File::open(&args.entities)
        .with_context(|| format!("cannot open {}", args.entities.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(SEND_BATCH_ROWS).build())
        .with_context(|| format!("{} is not a readable Parquet file", args.entities.display()))?;
    let total = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&args.entities)?)?
        .metadata()
        .file_metadata()
        .num_rows() as u64;
    // (With no rows there are no batches to send, and the service would only see an empty
    // exchange.)
    anyhow::ensure!(
        total > 0,
        "{}: entity table: no rows (send at least one row)",
        args.entities.display()
    );
    let table = futures::stream::iter(reader.map(|b| b.map_err(FlightError::from)));
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let json = args.output == Output::Json;
    let progress = (!json).then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                eprint!(
                    "\r{}",
                    progress_line(
                        done.load(Ordering::Relaxed),
                        total,
                        "entity rows",
                        started.elapsed()
                    )
                );
                let _ = std::io::stderr().flush();
            }
        })
    });
    let mut answer = exchange(&args.addresses.offline, command, table).await?;
    let to_store = args.out.contains("://") && !args.out.starts_with("file://");
    let path = args.out.strip_prefix("file://").unwrap_or(&args.out);
    let sink = ParquetSink::start(if to_store {
        Destination::Memory
    } else {
        Destination::File(path.into())
    });
    let mut columns: Vec<String> = Vec::new();
    let received: anyhow::Result<()> = async {
        while let Some(batch) = answer.next().await {
            let batch = batch.map_err(flight_error)?;
            done.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            if columns.is_empty() {
                columns = batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
            }
            sink.write(batch).await?;
        }
        Ok(())
    }
    .await;
    let written = sink.finish().await;
    if let Some(progress) = &progress {
        progress.abort();
    }
    let bytes = match (received, written) {
        (Ok(()), Ok(bytes)) => bytes,
        // The writer's own error first: the receiving side then only saw it stop.
        (_, Err(error)) | (Err(error), _) => {
            // A training set cut short is not left behind looking whole.
            if !to_store {
                let _ = std::fs::remove_file(path);
            }
            return Err(error);
        }
    };
    let rows = done.load(Ordering::Relaxed);
    if progress.is_some() {
        eprintln!(
            "\r{}",
            progress_line(rows, total, "entity rows", started.elapsed())
        );
    }
    if let Some(bytes) = bytes {
        // An object-store URL: the directory part opens the store, the last part names the file.
        let (base, name) = args
            .out
            .rsplit_once('/')
            .context("--out: expected a path or URL ending in a file name")?;
        let lake = quiver_lake::Lake::open(base)?;
        lake.put(&quiver_lake::Path::from(name), bytes).await?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if json {
        // One object, documented in README "Using it".
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "out": args.out,
                "entity_rows": total,
                "rows": rows,
                "columns": columns,
                "seconds": secs,
                "rows_per_second": rows as f64 / secs,
            }))?
        );
    } else {
        println!(
            "wrote {rows} rows (of {total} entity rows) to {} in {secs:.1}s ({:.0} rows/s)",
            args.out,
            rows as f64 / secs
        );
    }
    Ok(())
}

fn command_of(args: &SnapshotArgs) -> anyhow::Result<SnapshotCommand> {
    let features = match (&args.service, args.features.is_empty()) {
        (Some(service), true) => Features::FeatureService(service.clone()),
        (None, false) => Features::FeatureRefs(FeatureRefs {
            refs: args.features.clone(),
        }),
        _ => anyhow::bail!("name either --service or --features (not both)"),
    };
    let sampling = match args.sample {
        None => None,
        Some(strategy) => {
            let column = args
                .label
                .clone()
                .context("--sample needs --label (the column whose classes are sampled)")?;
            let strategy = match strategy {
                SampleStrategy::Balanced => sampling::Strategy::Balanced(BalancedSampling {
                    label_column: column,
                    target_fraction: args.fraction,
                }),
                SampleStrategy::InverseFrequency => {
                    sampling::Strategy::InverseFrequency(InverseFrequencySampling { column })
                }
            };
            Some(Sampling {
                strategy: Some(strategy),
                seed: args.seed,
            })
        }
    };
    Ok(SnapshotCommand {
        project: args.project.clone(),
        features: Some(features),
        timestamp_column: args.timestamp_column.clone().unwrap_or_default(),
        sampling,
        filter_by_commit_time: false,
    })
}
