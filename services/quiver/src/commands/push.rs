//! `quiver push`: stream a file of events to ingest in batches, with retries (the library's
//! [`quiver::producer::Producer`]), a progress line and a summary.

use anyhow::bail;
use quiver::addresses::Addresses;
use quiver::rpc_error;
use quiver::send::{send, Plan as SendPlan, Share};
use quiver_core::Source;
use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::registry::registry_object::Spec;
use quiver_proto::registry::{DescribeRequest, ObjectKind};

use super::event_files::{read_csv, read_jsonl, read_parquet};
use crate::cli::{Output, PushArgs, PushFormat};

/// `quiver push`.
pub async fn run(args: PushArgs) -> anyhow::Result<()> {
    let source = fetch_source(&args.addresses, &args.project, &args.source).await?;
    let (columns, rows) = read_events(&args.file, args.format, &source)?;
    let total = rows.len() as u64;
    // The rows and the split decide the producer ids and sequences, so pushing the same file
    // the same way again (whole, or to finish an interrupted push) adds nothing it added
    // before: ingest answers those batches as duplicates.
    let identity = rows_identity(&args.project, &args.source, &columns, &rows);
    let key_columns = join_key_columns(&args.addresses, &args.project, &source, &columns).await?;
    let workers = args.workers.max(1);
    let parts = partition_by_key(rows, &key_columns, workers);
    let run = format!("push-{identity:032x}-{workers}x{}", args.batch_size);
    let shares = parts
        .into_iter()
        .enumerate()
        // A producer without rows would only register and hold the source's watermark back.
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(worker, rows)| Share {
            producer_id: format!("{run}-{worker}"),
            rows,
        })
        .collect();
    let json = args.output == Output::Json;
    let plan = SendPlan {
        ingest: args.addresses.ingest.clone(),
        batch_size: args.batch_size,
        // Every producer registers with the source before any sends events, so none is judged
        // against a watermark the others moved (docs/streaming.md, "Lateness").
        register: true,
        progress: !json,
        what: "push",
    };
    let (project, source_name) = (args.project.clone(), args.source.clone());
    let (s, failure, elapsed) = send(&plan, shares, move |rows| PushRequest {
        project: project.clone(),
        source: source_name.clone(),
        columns: columns.clone(),
        rows,
        ..PushRequest::default()
    })
    .await?;
    let sent = s.sent;
    let secs = elapsed.as_secs_f64().max(1e-9);
    if json {
        // One object (documented in README "Using it"); on a failure it is printed too, with the
        // error, since the rows before it were committed.
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "source": args.source,
                "rows": total,
                "pushed": sent,
                "accepted": s.accepted,
                "already_pushed": s.duplicate,
                "late": s.late,
                "anomalous": s.anomalous,
                "rejected": total - sent,
                "seconds": secs,
                "rows_per_second": sent as f64 / secs,
                "error": failure.as_ref().map(|e| format!("{e:#}")),
            }))?
        );
    } else {
        println!(
            "pushed {sent} of {total} rows to {} in {secs:.1}s ({:.0} rows/s): {} accepted, {} already pushed (nothing added for them), {} late (quarantined), {} anomalous (row-view exclusions, quarantined), {} rejected",
            args.source,
            sent as f64 / secs,
            s.accepted,
            s.duplicate,
            s.late,
            s.anomalous,
            total - sent
        );
    }
    match failure {
        Some(e) => Err(e.context(
            "the push stopped; run it again the same way to finish it (what was pushed is not pushed twice)",
        )),
        None => Ok(()),
    }
}

/// The events of `file` (format from `format` or its extension) as rows of `source`.
pub fn read_events(
    file: &std::path::Path,
    format: Option<PushFormat>,
    source: &Source,
) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
    let format = match format {
        Some(format) => format,
        None => match file.extension().and_then(|e| e.to_str()) {
            Some("csv") => PushFormat::Csv,
            Some("jsonl" | "ndjson" | "json") => PushFormat::Jsonl,
            Some("parquet") => PushFormat::Parquet,
            _ => bail!(
                "cannot tell the format of {} from its extension; pass --format jsonl|csv|parquet",
                file.display()
            ),
        },
    };
    match format {
        PushFormat::Jsonl => read_jsonl(file, source),
        PushFormat::Csv => read_csv(file, source),
        PushFormat::Parquet => read_parquet(file, source),
    }
}

/// Splits `rows` over at most `workers` producers by a hash of their join keys, keeping file
/// order within each: every producer's stream spans the file's whole time range in order, so
/// its rows are late exactly when they are late in the file, and one entity's events keep
/// their order.
pub fn partition_by_key(rows: Vec<Row>, key_columns: &[usize], workers: usize) -> Vec<Vec<Row>> {
    let mut parts: Vec<Vec<Row>> = vec![Vec::new(); workers];
    for row in rows {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &c in key_columns {
            let encoded = row.values.get(c).map(prost::Message::encode_to_vec);
            for byte in encoded.unwrap_or_default() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        parts[(hash % workers as u64) as usize].push(row);
    }
    parts
}

/// Where the source's entity join keys are among the file's `columns`.
pub async fn join_key_columns(
    addresses: &Addresses,
    project: &str,
    source: &Source,
    columns: &[String],
) -> anyhow::Result<Vec<usize>> {
    let response = addresses
        .registry()
        .await?
        .describe(DescribeRequest {
            project: project.to_string(),
            kind: ObjectKind::Entity as i32,
            name: source.entity.clone(),
            version: 0,
        })
        .await
        .map_err(|s| rpc_error("looking up the source's entity", s))?
        .into_inner();
    let Some(Spec::Entity(entity)) = response.object.and_then(|o| o.spec) else {
        bail!("the registry returned no entity {:?}", source.entity);
    };
    Ok(entity
        .join_keys
        .iter()
        .filter_map(|k| columns.iter().position(|c| *c == k.name))
        .collect())
}

/// A source's definition from the registry.
pub async fn fetch_source(
    addresses: &Addresses,
    project: &str,
    name: &str,
) -> anyhow::Result<Source> {
    let response = addresses
        .registry()
        .await?
        .describe(DescribeRequest {
            project: project.to_string(),
            kind: ObjectKind::Source as i32,
            name: name.to_string(),
            version: 0,
        })
        .await
        .map_err(|s| rpc_error("looking up the source", s))?
        .into_inner();
    match response.object.and_then(|o| o.spec) {
        Some(Spec::Source(source)) => Ok(Source::try_from(&source)?),
        _ => bail!("the registry returned no source {name:?}"),
    }
}

/// The identity of a push or a load: a 128-bit FNV-1a hash of the project (as given), source,
/// columns and encoded rows as read (the same file, wherever it is, is the same push or load;
/// the Python client's `load()` computes the same for the same rows).
pub fn rows_identity(project: &str, source: &str, columns: &[String], rows: &[Row]) -> u128 {
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
        feed(&prost::Message::encode_to_vec(row));
    }
    hash
}
