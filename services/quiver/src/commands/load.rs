//! `quiver load`: history into a source, exactly once. The events are admitted whatever their
//! age (no lateness, no watermark moves) into the offline store and into the online tiles still
//! kept. The file's rows decide the producer ids and sequences (a hash of the rows, a fixed
//! split and batch size), so re-running a load, whole or after an interruption, adds nothing
//! that was added before: ingest answers those batches as duplicates.

use anyhow::Context;
use quiver::send::{send, Plan as SendPlan, Share};
use quiver_core::Source;
use quiver_lake::{Lake, Path as LakePath};
use quiver_proto::ingest::{PushRequest, Row};

use super::event_files::read_parquet_from;
use super::push::{fetch_source, join_key_columns, partition_by_key, read_events, rows_identity};
use crate::cli::{LoadArgs, Output, PushFormat};

/// Producers of one load (fixed, so the same rows always make the same batches).
const PARTS: usize = 4;
/// Rows per batch (fixed, for the same reason).
const BATCH: usize = 5_000;

/// `quiver load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let source = fetch_source(&args.addresses, &args.project, &args.source).await?;
    let file = args.file.to_string_lossy();
    let (columns, rows) = if file.contains("://") && !file.starts_with("file://") {
        anyhow::ensure!(
            matches!(args.format, None | Some(PushFormat::Parquet)),
            "--file {file}: an object-store prefix is read as Parquet objects only"
        );
        read_prefix(&file, &source).await?
    } else {
        read_events(&args.file, args.format, &source)?
    };
    let total = rows.len() as u64;
    let identity = rows_identity(&args.project, &args.source, &columns, &rows);
    let key_columns = join_key_columns(&args.addresses, &args.project, &source, &columns).await?;
    // Every split is kept, even an empty one, so the part numbers stay the same for the rows.
    let shares = partition_by_key(rows, &key_columns, PARTS)
        .into_iter()
        .enumerate()
        .map(|(part, rows)| Share {
            producer_id: format!("load-{identity:032x}-{part}"),
            rows,
        })
        .collect();
    let json = args.output == Output::Json;
    let plan = SendPlan {
        ingest: args.addresses.ingest.clone(),
        batch_size: BATCH,
        // History batches need rows, and load moves no watermark to register against.
        register: false,
        progress: !json,
        what: "load",
    };
    let (project, source_name) = (args.project.clone(), args.source.clone());
    let (t, failure, elapsed) = send(&plan, shares, move |rows| PushRequest {
        project: project.clone(),
        source: source_name.clone(),
        columns: columns.clone(),
        rows,
        history: true,
        ..PushRequest::default()
    })
    .await?;
    let sent = t.sent;
    let secs = elapsed.as_secs_f64().max(1e-9);
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "source": args.source,
                "rows": total,
                "loaded": t.accepted,
                "already_loaded": t.duplicate,
                "anomalous": t.anomalous,
                "not_sent": total - sent,
                "seconds": secs,
                "rows_per_second": sent as f64 / secs,
                "load_id": format!("{identity:032x}"),
                "error": failure.as_ref().map(|e| format!("{e:#}")),
            }))?
        );
    } else if t.accepted == 0 && t.duplicate == sent && failure.is_none() {
        println!(
            "{} rows of {} were loaded before: nothing added (load {identity:032x})",
            t.duplicate, args.source
        );
    } else {
        println!(
            "loaded {} of {total} rows into {} in {secs:.1}s ({:.0} rows/s); {} already loaded \
             (nothing added for them), {} anomalous (row-view exclusions, quarantined), {} not \
             sent (load {identity:032x})",
            t.accepted,
            args.source,
            sent as f64 / secs,
            t.duplicate,
            t.anomalous,
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

/// Every Parquet object (`*.parquet`) under an object-store prefix (`s3://bucket/orders/`), in
/// key order, as one table: the objects must have the same columns. Other objects are skipped
/// (a `_SUCCESS` marker, a README).
async fn read_prefix(url: &str, source: &Source) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
    let base = url.trim_end_matches('/');
    let lake = Lake::open(base)?;
    let mut objects: Vec<LakePath> = lake
        .list(&LakePath::from(""))
        .await
        .with_context(|| format!("listing {url}"))?
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.as_ref().ends_with(".parquet"))
        .collect();
    objects.sort();
    anyhow::ensure!(
        !objects.is_empty(),
        "--file {url}: no Parquet objects (*.parquet) under this prefix"
    );
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for path in objects {
        let name = format!("{base}/{path}");
        let bytes = lake
            .get(&path)
            .await
            .with_context(|| format!("reading {name}"))?;
        let (these, mut part) = read_parquet_from(bytes, &name, source)?;
        match &columns {
            Some(first) if *first != these => anyhow::bail!(
                "{name}: columns {these:?} differ from {first:?} of the prefix's first object"
            ),
            Some(_) => {}
            None => columns = Some(these),
        }
        rows.append(&mut part);
    }
    Ok((columns.unwrap_or_default(), rows))
}
