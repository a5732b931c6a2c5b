//! The offline export, run by the group's leader: every `export_interval` it fixes the next
//! range of staged entries in the log (`ExportBegin`), writes the range's Parquet files to the
//! offline store, then releases the range (`ExportFinish`). Files are named by the range, so a
//! range redone after a crash (by this node or the next leader) rewrites the same files: each
//! row lands in the offline store exactly once. Small files are compacted between rounds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_common::Shutdown;
use quiver_lake::event_file::write_parquet;
use quiver_lake::layout::FileRange;
use quiver_lake::{Lake, Partition};
use quiver_proto::online::export_step::Step;
use quiver_proto::online::log_command::Kind;
use quiver_proto::online::{
    ExportBegin, ExportFinish, ExportState, ExportStep, ViewPhase, ViewState,
};

use crate::blocking::blocking;
use crate::compact;
use crate::error::OnlineStoreError;
use crate::export_rows::ExportFiles;
use crate::metrics;
use crate::node::Node;
use crate::raft::command;
use crate::raft::views::VersionId;
use crate::source_log_retention;

/// Set to `1` in tests only: the process aborts after writing a range's files and before
/// releasing them, the crash the export must survive.
pub const CRASH_AFTER_WRITE_ENV: &str = "QUIVER_FAULT_CRASH_AFTER_EXPORT_WRITE";

/// Under a steady stream, compaction runs after this many export intervals.
const COMPACT_EVERY: u32 = 30;

/// Runs the exporter until `shutdown`.
pub fn spawn(node: Arc<Node>, lake: Lake, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = node.config.export_interval;
        tracing::info!(store = lake.url(), ?interval, "offline export enabled");
        let mut compacted = Instant::now();
        let mut marked = HashSet::new();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            if !node.is_leader() {
                continue;
            }
            let started = Instant::now();
            let idle = match export_round(&node, &lake).await {
                Ok(Some(range)) => {
                    tracing::debug!(?range, elapsed = ?started.elapsed(), "exported a range");
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    metrics::count_export_error();
                    tracing::warn!(error = %e, "offline export failed; will retry");
                    false
                }
            };
            if let Err(e) = mark_complete(&node, &lake, &mut marked).await {
                tracing::warn!(error = %e, "cannot mark complete view versions; will retry");
            }
            // Small files are tidied up every COMPACT_EVERY intervals (sooner when idle), so
            // an idle store is not listed every round.
            let due = interval
                * if idle {
                    COMPACT_EVERY / 6
                } else {
                    COMPACT_EVERY
                };
            if compacted.elapsed() >= due {
                compacted = Instant::now();
                if let Err(e) = compact::compact(&lake, node.config.compact_min_files).await {
                    tracing::warn!(error = %e, "offline compaction failed; will retry");
                }
                let catalog = node.registry.catalog();
                let now = quiver_common::clock::now_micros();
                match source_log_retention::enforce(&lake, &catalog, now).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(deleted, "source-log files past retention deleted")
                    }
                    Err(e) => tracing::warn!(error = %e, "source-log retention failed; will retry"),
                }
            }
            // It decodes the oldest staged entry (up to `max_batch_rows` events): off the
            // runtime like the round.
            if let Err(e) = blocking(|| update_lag(&node)) {
                tracing::warn!(error = %e, "cannot read the export lag");
            }
        }
    })
}

/// One round: fix a range if none is pending and there is something staged, write its files,
/// release it. Returns the range exported, if any.
pub async fn export_round(node: &Node, lake: &Lake) -> Result<Option<FileRange>, OnlineStoreError> {
    let internal = |e: std::io::Error| OnlineStoreError::Internal(e.to_string());
    let mut state = node.state.export_state().map_err(internal)?;
    if state.pending_to == 0 {
        let after = state.exported_through.saturating_add(1);
        // The range ends where its staged entries reach the byte bound: the exporter holds one
        // range in memory.
        let max_entries = node.config.export_max_entries.max(1);
        let Some((through, _)) = blocking(|| {
            node.state.staged_extent(
                after,
                usize::try_from(max_entries).unwrap_or(usize::MAX),
                node.config.export_max_bytes,
            )
        })
        .map_err(internal)?
        else {
            return Ok(None);
        };
        propose(
            node,
            Step::Begin(ExportBegin {
                max_entries,
                through,
            }),
        )
        .await?;
        state = node.state.export_state().map_err(internal)?;
        if state.pending_to == 0 {
            return Ok(None);
        }
    }
    let range = FileRange {
        first: state.pending_from,
        last: state.pending_to,
    };
    // Reading the range, sorting its rows into files and encoding them is CPU work (perf: 12%
    // of a node under 20,000 `user_txn` events/s, in one burst per round): off the runtime
    // (`blocking`), or every RPC queued on this worker waits it out (it was the p99 of live
    // freshness).
    let (bytes, files) = blocking(|| {
        let entries = node
            .state
            .staged_entries(range.first, range.last, usize::MAX)
            .map_err(internal)?;
        // What the range holds, as apply counted it: each entry's stored (prost, canonical) size.
        let bytes: u64 = entries
            .iter()
            .map(|(_, entry)| prost::Message::encoded_len(entry) as u64)
            .sum();
        Ok::<_, OnlineStoreError>((
            bytes,
            ExportFiles::collect(&entries, &*node.registry.catalog()),
        ))
    })?;
    let failed = |path: &quiver_lake::Path, reason: String| {
        OnlineStoreError::Internal(format!("export file {path}: {reason}"))
    };
    let (mut rows, mut written) = (0u64, 0u64);
    for ((partition, date), builder) in files.sources.iter().chain(&files.events) {
        let path = partition.file(date, range);
        let bytes = blocking(|| builder.rows().to_batch().and_then(|b| write_parquet(&b)))
            .map_err(|e| failed(&path, e))?;
        rows += builder.rows().len() as u64;
        written += bytes.len() as u64;
        lake.put(&path, bytes).await.map_err(lake_error)?;
    }
    for ((partition, date), quarantined) in &files.quarantine {
        let path = partition.file(date, range);
        let bytes = blocking(|| quarantined.to_batch().and_then(|b| write_parquet(&b)))
            .map_err(|e| failed(&path, e))?;
        written += bytes.len() as u64;
        lake.put(&path, bytes).await.map_err(lake_error)?;
    }
    if std::env::var(CRASH_AFTER_WRITE_ENV).is_ok_and(|v| v == "1") {
        tracing::error!(
            ?range,
            "fault injected: aborting after writing the export files"
        );
        std::process::abort();
    }
    propose(
        node,
        Step::Finish(ExportFinish {
            through: range.last,
            bytes,
        }),
    )
    .await?;
    metrics::count_export(
        files.sources.len() + files.events.len() + files.quarantine.len(),
        rows,
        written,
    );
    Ok(Some(range))
}

/// Writes the completeness marker (`Partition::complete_marker`) of every view version whose
/// exported rows are complete and read by snapshots (a windowed `standardize`/`zscore`), once
/// per version and process (`marked`): snapshots of such a version refuse to run before it.
async fn mark_complete(
    node: &Node,
    lake: &Lake,
    marked: &mut HashSet<VersionId>,
) -> Result<(), OnlineStoreError> {
    let internal = |e: std::io::Error| OnlineStoreError::Internal(e.to_string());
    // States first: a version serving now had its last chunk applied (and staged) before the
    // export state is read.
    let states = blocking(|| node.state.view_states()).map_err(internal)?;
    let export = node.state.export_state().map_err(internal)?;
    let catalog = node.registry.catalog();
    for (id, state) in states {
        // Only versions whose snapshots read their own rows (the others' follow from the
        // source log, and nothing is written under `events/` for them); a version the
        // registry cache does not hold yet waits for a later round.
        let reads_own_rows = catalog
            .view_version(&id.0, &id.1, id.2)
            .is_some_and(|d| !d.rows_follow_from_source_log());
        if marked.contains(&id) || !reads_own_rows || !rows_complete(&state, &export) {
            continue;
        }
        let (project, view, version) = id.clone();
        let partition = Partition::Events {
            project,
            source: state.source.clone(),
            view,
            version,
        };
        if let Some(marker) = partition.complete_marker() {
            lake.put(&marker, Vec::new()).await.map_err(lake_error)?;
        }
        marked.insert(id);
    }
    Ok(())
}

/// Whether a version's exported rows are complete under `export`: it serves (or served before
/// it was retired), and had nothing to backfill or its backfill's last chunk has been exported
/// (or nothing staged is left: the last chunk may have held no rows to stage).
fn rows_complete(state: &ViewState, export: &ExportState) -> bool {
    let served = match ViewPhase::try_from(state.phase) {
        Ok(ViewPhase::Serving) => true,
        // A version retired while it backfilled never completed. (States written before
        // `serving_from` existed: a finished backfill folded everything it had to.)
        Ok(ViewPhase::Retired) => {
            state.serving_from > 0 || state.backfilled_rows >= state.backfill_total
        }
        _ => false,
    };
    served
        && (state.backfill_total == 0
            || state.serving_from <= export.exported_through
            || export.exported_through >= export.last_staged)
}

/// Proposes an export step and waits until it is applied here.
async fn propose(node: &Node, step: Step) -> Result<(), OnlineStoreError> {
    node.check_disk()?;
    let command = command::command(Kind::Export(ExportStep { step: Some(step) }));
    node.raft
        .client_write(command)
        .await
        .map_err(|e| node.write_error(e))?;
    Ok(())
}

fn lake_error(e: quiver_lake::LakeError) -> OnlineStoreError {
    OnlineStoreError::Unavailable(format!("offline store: {e}"))
}

/// The export lag: how long ago the oldest row not yet in the offline store was ingested.
fn update_lag(node: &Node) -> std::io::Result<()> {
    let state = node.state.export_state()?;
    let after = state.exported_through.saturating_add(1);
    let oldest = node
        .state
        .staged_entries(after, u64::MAX, 1)?
        .into_iter()
        .next()
        .and_then(|(_, entry)| match command::decode(&entry.command) {
            Some(Kind::Events(events)) => events.batches.iter().map(|b| b.received_micros).min(),
            _ => None,
        });
    let lag = oldest.map_or(Duration::ZERO, |micros| {
        let now = quiver_common::clock::now_micros();
        Duration::from_micros(u64::try_from(now.saturating_sub(micros)).unwrap_or(0))
    });
    metrics::set_export_lag(lag, state.exported_through, state.staged_bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use quiver_proto::online::{ExportState, ViewPhase, ViewState};

    use super::rows_complete;

    fn state(
        phase: ViewPhase,
        backfill_total: u64,
        backfilled_rows: u64,
        serving_from: u64,
    ) -> ViewState {
        ViewState {
            phase: phase as i32,
            backfill_total,
            backfilled_rows,
            serving_from,
            ..ViewState::default()
        }
    }

    fn exported(exported_through: u64, last_staged: u64) -> ExportState {
        ExportState {
            exported_through,
            last_staged,
            ..ExportState::default()
        }
    }

    #[test]
    fn a_version_is_complete_once_its_backfill_is_exported() {
        let behind = |through| exported(through, 90);
        // Nothing to backfill: complete at once, whatever was exported.
        assert!(rows_complete(
            &state(ViewPhase::Serving, 0, 0, 7),
            &behind(0)
        ));
        // Backfilling: never.
        assert!(!rows_complete(
            &state(ViewPhase::Backfilling, 10, 5, 0),
            &behind(100)
        ));
        // Serving since entry 40: once the export passed it, or nothing staged is left.
        assert!(!rows_complete(
            &state(ViewPhase::Serving, 10, 10, 40),
            &behind(39)
        ));
        assert!(rows_complete(
            &state(ViewPhase::Serving, 10, 10, 40),
            &behind(40)
        ));
        assert!(rows_complete(
            &state(ViewPhase::Serving, 10, 10, 40),
            &exported(39, 39)
        ));
        // Retired after serving, or while backfilling.
        assert!(rows_complete(
            &state(ViewPhase::Retired, 10, 10, 40),
            &behind(50)
        ));
        assert!(!rows_complete(
            &state(ViewPhase::Retired, 10, 4, 0),
            &behind(50)
        ));
        // A state written before `serving_from` existed: its finished backfill.
        assert!(rows_complete(
            &state(ViewPhase::Retired, 10, 10, 0),
            &behind(50)
        ));
    }
}
