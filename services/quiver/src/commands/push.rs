//! `quiver push`: stream a file of events to ingest in batches, with retries (the library's
//! [`quiver::producer::Producer`]), a progress line and a summary. The file is read twice and
//! never held whole (`event_input`).

use std::sync::Arc;

use anyhow::bail;
use quiver::addresses::{connect, Addresses};
use quiver::rpc_error;
use quiver::send::{send, Plan as SendPlan};
use quiver_common::clock::now_micros;
use quiver_core::{Entity, Source};
use quiver_proto::convert::timestamp_to_micros;
use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{LimitsRequest, PushRequest};
use quiver_proto::registry::registry_object::Spec;
use quiver_proto::registry::{DescribeRequest, ObjectKind};

use super::event_input::{Events, FutureBound, Input, InputChanged, Split};
use crate::cli::{Output, PushArgs};

/// `quiver push`.
pub async fn run(args: PushArgs) -> anyhow::Result<()> {
    let workers = args.workers.max(1);
    let input = Input::file(&args.file, args.format)?;
    let events = events_of(&args.addresses, &args.project, &args.source, input, workers).await?;
    let json = args.output == Output::Json;
    let survey = events.survey(!json).await?;
    let total = survey.rows;
    // The rows and the split decide the producer ids and sequences, so pushing the same file
    // the same way again (whole, or to finish an interrupted push) adds nothing it added
    // before: ingest answers those batches as duplicates.
    let run = format!(
        "push-{:032x}-{workers}x{}",
        survey.identity, args.batch_size
    );
    let ids = (survey.per_part.iter().enumerate())
        // A producer without rows would only register and hold the source's watermark back.
        .map(|(worker, rows)| (*rows > 0).then(|| format!("{run}-{worker}")))
        .collect();
    let (shares, reading) = events.shares(&survey, ids, args.batch_size);
    let columns = survey.columns;
    let plan = SendPlan {
        ingest: args.addresses.ingest.clone(),
        // Every producer registers with the source before any sends events, so none is judged
        // against a watermark the others moved (docs/streaming.md, "Lateness").
        register: true,
        progress: !json,
        what: "push",
    };
    let (project, source_name) = (args.project.clone(), args.source.clone());
    let (s, failure, elapsed) = send(&plan, shares, total, move |rows| PushRequest {
        project: project.clone(),
        source: source_name.clone(),
        columns: columns.clone(),
        rows,
        ..PushRequest::default()
    })
    .await?;
    let failure = failure.or(read_failure(reading).await);
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
                "rejected": total.saturating_sub(sent),
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
            total.saturating_sub(sent)
        );
    }
    match failure {
        Some(e) => Err(stopped(e, "push", "the push stopped; run it again the same way to finish it (what was pushed is not pushed twice)")),
        None => Ok(()),
    }
}

/// The events of `input` for source `source_name`, split over `parts` producers by the source's
/// entity join keys.
pub async fn events_of(
    addresses: &Addresses,
    project: &str,
    source_name: &str,
    input: Input,
    parts: usize,
) -> anyhow::Result<Events> {
    let source = fetch_source(addresses, project, source_name).await?;
    let entity = fetch_entity(addresses, project, &source).await?;
    let future = future_bound(&addresses.ingest).await?;
    Ok(Events {
        input: Arc::new(input),
        future,
        split: Split {
            key_names: entity.join_keys.iter().map(|k| k.name.clone()).collect(),
            parts,
        },
        source: Arc::new(source),
        entity: Arc::new(entity),
        project: project.to_string(),
    })
}

/// How far ahead event times may be, from ingest itself (its clock and configured skew), so
/// the first pass refuses the rows ingest would; `None` from an ingest that does not say (an
/// older version), which then refuses them itself as they are sent.
async fn future_bound(ingest: &str) -> anyhow::Result<Option<FutureBound>> {
    let mut client = IngestServiceClient::new(connect(ingest, "ingest").await?);
    match client.limits(LimitsRequest {}).await {
        Ok(limits) => {
            let limits = limits.into_inner();
            let now = limits
                .now
                .map_or_else(now_micros, |t| timestamp_to_micros(&t));
            Ok(Some(FutureBound::new(now, limits.max_future_skew_micros)))
        }
        Err(status) if status.code() == tonic::Code::Unimplemented => Ok(None),
        Err(status) => Err(rpc_error("asking ingest for its limits", status)),
    }
}

/// The source's entity.
async fn fetch_entity(
    addresses: &Addresses,
    project: &str,
    source: &Source,
) -> anyhow::Result<Entity> {
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
    match response.object.and_then(|o| o.spec) {
        Some(Spec::Entity(entity)) => Ok(Entity::try_from(&entity)?),
        _ => bail!("the registry returned no entity {:?}", source.entity),
    }
}

/// What the reading of the second pass ended with, if it failed (the producers' own failures
/// come first: a reader stops when a producer does).
/// A stopped push or load's error: how to finish it, unless its input changed (running it
/// again would then send another input).
pub fn stopped(error: anyhow::Error, what: &str, finish: &'static str) -> anyhow::Error {
    if error.downcast_ref::<InputChanged>().is_some() {
        error.context(format!("the {what} stopped"))
    } else {
        error.context(finish)
    }
}

pub async fn read_failure(
    reading: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> Option<anyhow::Error> {
    match reading.await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(anyhow::anyhow!("reading the events panicked: {e}")),
    }
}

/// A source's definition from the registry.
async fn fetch_source(addresses: &Addresses, project: &str, name: &str) -> anyhow::Result<Source> {
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
