//! `quiver load`: history into a source, exactly once. The events are admitted whatever their
//! age (no lateness, no watermark moves) into the offline store and into the online tiles still
//! kept. The file's rows decide the producer ids and sequences (a hash of the rows, a fixed
//! split and batch size), so re-running a load, whole or after an interruption, adds nothing
//! that was added before: ingest answers those batches as duplicates. The file (or prefix) is
//! read twice and never held whole (`event_input`).

use quiver::send::{send, Plan as SendPlan};
use quiver_proto::ingest::PushRequest;

use super::event_input::Input;
use super::push::{events_of, read_failure, stopped};
use crate::cli::{LoadArgs, Output, PushFormat};

/// Producers of one load (fixed, so the same rows always make the same batches).
const PARTS: usize = 4;
/// Rows per batch (fixed, for the same reason).
const BATCH: usize = 5_000;

/// `quiver load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let file = args.file.to_string_lossy();
    // A local directory (Spark's or pandas' output of part files) is read as a prefix is.
    let prefix = (file.contains("://") && !file.starts_with("file://")) || args.file.is_dir();
    let input = if prefix {
        anyhow::ensure!(
            matches!(args.format, None | Some(PushFormat::Parquet)),
            "--file {file}: an object-store prefix or a directory is read as Parquet objects only"
        );
        Input::prefix(&file).await?
    } else {
        Input::file(&args.file, args.format)?
    };
    let events = events_of(&args.addresses, &args.project, &args.source, input, PARTS).await?;
    let json = args.output == Output::Json;
    let survey = events.survey(!json).await?;
    let (total, identity) = (survey.rows, survey.identity);
    // Every split is kept, even an empty one, so the part numbers stay the same for the rows.
    let ids = (0..PARTS)
        .map(|part| Some(format!("load-{identity:032x}-{part}")))
        .collect();
    let (shares, reading) = events.shares(&survey, ids, BATCH);
    let columns = survey.columns;
    let plan = SendPlan {
        ingest: args.addresses.ingest.clone(),
        // History batches need rows, and load moves no watermark to register against.
        register: false,
        progress: !json,
        what: "load",
    };
    let (project, source_name) = (args.project.clone(), args.source.clone());
    let (t, failure, elapsed) = send(&plan, shares, total, move |rows| PushRequest {
        project: project.clone(),
        source: source_name.clone(),
        columns: columns.clone(),
        rows,
        history: true,
        ..PushRequest::default()
    })
    .await?;
    let failure = failure.or(read_failure(reading).await);
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
                "not_sent": total.saturating_sub(sent),
                "seconds": secs,
                "rows_per_second": sent as f64 / secs,
                "load_id": format!("{identity:032x}"),
                "error": failure.as_ref().map(|e| format!("{e:#}")),
            }))?
        );
    } else if total == 0 {
        println!("{} has no rows: nothing loaded", args.file.display());
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
            total.saturating_sub(sent)
        );
    }
    match failure {
        Some(e) => Err(stopped(
            e,
            "load",
            "the load stopped; run it again to finish it (what was loaded is not loaded twice)",
        )),
        None => Ok(()),
    }
}
