//! The leader's view-version work (see `raft::views` for the rules apply enforces):
//!
//! 1. **Registration**: every latest version in the registry that the state machine does not
//!    know is proposed as a `ViewBegin`; a view deleted from the registry as a `ViewEnd`.
//! 2. **Backfill**: for each backfilling version, the source's events of the entries before its
//!    `ViewBegin` are read in log order — from the source log in the offline store for what is
//!    exported, from the staged entries for the rest — run through the version's transforms
//!    (`quiver_common::view_feed`, the code compute runs) and proposed as `BackfillChunk`s of at
//!    most `backfill_chunk_rows` events. Progress is replicated (each chunk must start where the last
//!    ended), so a new leader resumes exactly where the old one stopped and nothing is folded
//!    twice. One chunk is in flight at a time and chunks are small, so live writes interleave
//!    with a backfill instead of waiting for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMicrosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use prost::Message;
use quiver_common::view_feed::{feed, PlannedView, Statistics};
use quiver_common::Shutdown;
use quiver_core::{FeatureView, Source};
use quiver_lake::columns::scalar_at;
use quiver_lake::event_file::{read_parquet, ENTITY, EVENT_TIME, LOG_INDEX, ROW};
use quiver_lake::layout::current_files;
use quiver_lake::{Lake, Partition};
use quiver_proto::convert::scalar_to_value;
use quiver_proto::ingest::Row;
use quiver_proto::online::{
    BackfillChunk, EventBatch, ViewBegin, ViewEnd, ViewPhase, ViewState, WriteRequest,
};
use quiver_proto::types::Value;
use tokio::task::JoinHandle;

use crate::error::OnlineStoreError;
use crate::node::Node;
use crate::raft::Command;

/// How often the leader looks for work when there is none.
const IDLE: Duration = Duration::from_millis(200);

/// Runs registration and backfills on whichever node leads, until `shutdown`.
pub fn spawn(node: Arc<Node>, lake: Option<Lake>, shutdown: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            crate::metrics::record_views(&node);
            let busy = if node.is_leader() && node.registry.is_loaded() {
                match step(&node, lake.as_ref()).await {
                    Ok(busy) => busy,
                    Err(error) => {
                        tracing::warn!(%error, "view registration or backfill failed; retrying");
                        false
                    }
                }
            } else {
                false
            };
            let pause = if busy { Duration::ZERO } else { IDLE };
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    })
}

/// One round: registers what is new, then proposes one backfill chunk. Whether there was work.
async fn step(node: &Node, lake: Option<&Lake>) -> Result<bool, OnlineStoreError> {
    let internal = |e: std::io::Error| OnlineStoreError::Internal(e.to_string());
    let catalog = node.registry.catalog();
    let mut busy = false;
    for (project, name, version) in catalog.latest_views() {
        if node
            .state
            .view_state(project, name, version.version)
            .map_err(internal)?
            .is_none()
        {
            propose(
                node,
                WriteRequest {
                    view_begin: Some(ViewBegin {
                        project: project.to_string(),
                        view: name.to_string(),
                        version: version.version,
                        source: version.view.source.clone(),
                    }),
                    ..WriteRequest::default()
                },
            )
            .await?;
            busy = true;
        }
    }
    // Views deleted from the registry end: their versions retire. Only an explicit deletion
    // counts: a registry that lost its data must not wipe the online store.
    let mut ended = std::collections::BTreeSet::new();
    for ((project, view, _), state) in node.state.view_states().map_err(internal)? {
        if state.phase != ViewPhase::Retired as i32
            && catalog.view_deleted(&project, &view)
            && catalog.view(&project, &view).is_none()
            && ended.insert((project.clone(), view.clone()))
        {
            propose(
                node,
                WriteRequest {
                    view_end: Some(ViewEnd { project, view }),
                    ..WriteRequest::default()
                },
            )
            .await?;
            busy = true;
        }
    }
    for ((project, view, version), state) in node.state.view_states().map_err(internal)? {
        if state.phase != ViewPhase::Backfilling as i32 {
            continue;
        }
        let Some(definition) = node
            .registry
            .fetch_view_version(&project, &view, version)
            .await
        else {
            tracing::warn!(%view, version, "a backfilling view version is not in the registry");
            continue;
        };
        let Some(source) = catalog.source(&project, &state.source).cloned() else {
            continue;
        };
        backfill_chunk(node, lake, &project, &source, definition, version, &state).await?;
        return Ok(true);
    }
    Ok(busy)
}

/// Proposes the next chunk of one version's backfill.
async fn backfill_chunk(
    node: &Node,
    lake: Option<&Lake>,
    project: &str,
    source: &Source,
    definition: Arc<FeatureView>,
    version: u32,
    state: &ViewState,
) -> Result<(), OnlineStoreError> {
    let internal = |e: String| OnlineStoreError::Internal(e);
    let from = state.backfilled_through + 1;
    let last = state.registered_at.saturating_sub(1);
    let exported = node
        .state
        .export_state()
        .map_err(|e| internal(e.to_string()))?
        .exported_through;
    // Events of entries [from, through], in log order; `through` ends on an entry boundary.
    let (mut rows, through) = match lake {
        Some(lake) if from <= exported.min(last) => {
            read_source_log(lake, project, source, from, exported.min(last)).await?
        }
        _ => {
            let rows = read_staged(node, source, project, from, last)?;
            // The range was exported meanwhile (its staged entries released): read it next round.
            let now = node
                .state
                .export_state()
                .map_err(|e| internal(e.to_string()))?
                .exported_through;
            if lake.is_some() && now >= from && now > exported {
                return Ok(());
            }
            (rows, last)
        }
    };
    // At most `backfill_chunk_rows` events, cut between entries (an entry bigger than that
    // goes whole).
    let limit = node.config.backfill_chunk_rows.max(1);
    let through = match rows.get(limit).map(|r| r.log_index) {
        Some(cut) if cut > rows[0].log_index => {
            rows.retain(|r| r.log_index < cut);
            cut - 1
        }
        Some(cut) => {
            rows.retain(|r| r.log_index <= cut);
            cut
        }
        None => through,
    };
    let plan = PlannedView::new(definition, version);
    let mut batch = EventBatch {
        project: project.to_string(),
        source: source.name.clone(),
        columns: source.schema.iter().map(|c| c.name.clone()).collect(),
        ..EventBatch::default()
    };
    for row in rows {
        batch.rows.push(Row { values: row.values });
        batch.event_micros.push(row.event_micros);
        batch.entity_keys.push(row.entity);
    }
    let mut statistics = statistics_of(node, project, &plan)?;
    let batches = if batch.rows.is_empty() {
        Vec::new()
    } else {
        feed(&mut batch, &plan, &mut statistics);
        vec![batch]
    };
    propose(
        node,
        WriteRequest {
            backfill: Some(BackfillChunk {
                project: project.to_string(),
                view: plan.view.name.clone(),
                version,
                from,
                through,
                batches,
            }),
            ..WriteRequest::default()
        },
    )
    .await?;
    Ok(())
}

/// One source event to backfill.
struct SourceRow {
    log_index: u64,
    event_micros: i64,
    entity: Vec<u8>,
    /// In the source schema's column order.
    values: Vec<Value>,
}

/// The source log's events of entries `[from, to]` from the offline store (every date), in log
/// order, and the last entry they cover: at most one file's range past `from`, so a compacted
/// file is read once per chunk window rather than all at once.
async fn read_source_log(
    lake: &Lake,
    project: &str,
    source: &Source,
    from: u64,
    to: u64,
) -> Result<(Vec<SourceRow>, u64), OnlineStoreError> {
    let failed = |e: String| OnlineStoreError::Unavailable(format!("offline store: {e}"));
    let dir = Partition::Source {
        project: project.to_string(),
        source: source.name.clone(),
    }
    .dir();
    let files: Vec<_> = current_files(lake.list(&dir).await.map_err(|e| failed(e.to_string()))?)
        .into_iter()
        .filter(|f| f.range.last >= from && f.range.first <= to)
        .collect();
    // The window: up to the end of the first file that reaches past `from`.
    let through = files
        .iter()
        .map(|f| f.range.last)
        .min()
        .unwrap_or(to)
        .min(to);
    let mut rows = Vec::new();
    for file in files.iter().filter(|f| f.range.first <= through) {
        let bytes = lake
            .get(&file.path)
            .await
            .map_err(|e| failed(e.to_string()))?;
        for batch in read_parquet(bytes, None).map_err(failed)? {
            rows.extend(rows_of(&batch, source, from, through));
        }
    }
    // Within a file rows are in log order; across dates they interleave.
    rows.sort_by_key(|r| r.0);
    Ok((rows.into_iter().map(|(_, r)| r).collect(), through))
}

/// The rows of a source-log batch with log index in `[from, through]`, keyed by log position.
fn rows_of(
    batch: &RecordBatch,
    source: &Source,
    from: u64,
    through: u64,
) -> Vec<((u64, u32), SourceRow)> {
    let (Some(index), Some(row), Some(time), Some(entity)) = (
        batch.column_by_name(LOG_INDEX),
        batch.column_by_name(ROW),
        batch.column_by_name(EVENT_TIME),
        batch.column_by_name(ENTITY),
    ) else {
        return Vec::new();
    };
    let (Some(index), Some(row), Some(time), Some(entity)) = (
        index.as_primitive_opt::<UInt64Type>(),
        row.as_primitive_opt::<UInt32Type>(),
        time.as_primitive_opt::<TimestampMicrosecondType>(),
        entity.as_binary_opt::<i32>(),
    ) else {
        return Vec::new();
    };
    let columns: Vec<Option<&dyn Array>> = source
        .schema
        .iter()
        .map(|c| batch.column_by_name(&c.name).map(|a| a.as_ref()))
        .collect();
    (0..batch.num_rows())
        .filter(|&i| (from..=through).contains(&index.value(i)))
        .map(|i| {
            let values = columns
                .iter()
                .map(|c| scalar_to_value(c.and_then(|c| scalar_at(c, i))))
                .collect();
            (
                (index.value(i), row.value(i)),
                SourceRow {
                    log_index: index.value(i),
                    event_micros: time.value(i),
                    entity: entity.value(i).to_vec(),
                    values,
                },
            )
        })
        .collect()
}

/// The admitted events of staged entries `[from, to]` (not exported yet), in log order.
fn read_staged(
    node: &Node,
    source: &Source,
    project: &str,
    from: u64,
    to: u64,
) -> Result<Vec<SourceRow>, OnlineStoreError> {
    let entries = node
        .state
        .staged_entries(from, to, usize::MAX)
        .map_err(|e| OnlineStoreError::Internal(e.to_string()))?;
    let mut rows = Vec::new();
    for (log_index, entry) in entries {
        let Ok(write) = WriteRequest::decode(entry.write_request.as_slice()) else {
            continue;
        };
        if write.backfill.is_some() {
            continue;
        }
        for (events, decided) in write.event_batches.iter().zip(&entry.batches) {
            if decided.duplicate || events.project != project || events.source != source.name {
                continue;
            }
            // Columns by name into the source schema's order.
            let position: HashMap<&str, usize> = events
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i))
                .collect();
            for (r, row) in events.rows.iter().enumerate() {
                if decided.late_rows.contains(&(r as u32)) {
                    continue;
                }
                let values = source
                    .schema
                    .iter()
                    .map(|c| {
                        position
                            .get(c.name.as_str())
                            .and_then(|&i| row.values.get(i))
                            .cloned()
                            .unwrap_or(Value { kind: None })
                    })
                    .collect();
                rows.push(SourceRow {
                    log_index,
                    event_micros: events.event_micros.get(r).copied().unwrap_or_default(),
                    entity: events.entity_keys.get(r).cloned().unwrap_or_default(),
                    values,
                });
            }
        }
    }
    Ok(rows)
}

/// The version's running statistics as stored now (as compute reads them for a live batch).
fn statistics_of(
    node: &Node,
    project: &str,
    plan: &PlannedView,
) -> Result<Statistics, OnlineStoreError> {
    let now = quiver_common::clock::now_micros();
    let Some(request) = plan.statistics_request(project, now) else {
        return Ok(Statistics::new());
    };
    let record = crate::write::read_aggregates_record(node, &request)?;
    Ok(plan.statistics_from(record.partials))
}

async fn propose(node: &Node, write: WriteRequest) -> Result<(), OnlineStoreError> {
    node.raft
        .client_write(Command {
            write: write.encode_to_vec(),
        })
        .await
        .map_err(|e| node.write_error(e))?;
    Ok(())
}
