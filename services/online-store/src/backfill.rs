//! The leader's view-version work (see `raft::views` for the rules apply enforces):
//!
//! 1. **Registration**: every latest version in the registry that the state machine does not
//!    know is proposed as a `ViewBegin`; a view deleted from the registry as a `ViewEnd`.
//! 2. **Backfill**: for each backfilling version, the source's events of the entries before its
//!    `ViewBegin` are read in log order — from the source log in the offline store for what is
//!    exported, from the staged entries for the rest — run through the version's transforms
//!    (`quiver_common::view_feed`, the code compute runs) and proposed as `BackfillChunk`s of at
//!    most `backfill_chunk_rows` events, each with the log position it was first admitted at
//!    (what `first`/`last` break ties by). Progress is replicated (each chunk must start where the last
//!    ended), so a new leader resumes exactly where the old one stopped and nothing is folded
//!    twice. One chunk is in flight at a time and chunks are small, so live writes interleave
//!    with a backfill instead of waiting for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMicrosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use quiver_common::view_feed::{feed, leave_out_recomputable, PlannedView, Statistics};
use quiver_common::Shutdown;
use quiver_core::{FeatureView, Source};
use quiver_lake::column_read::{parallel_reads, read_columns};
use quiver_lake::columns::scalar_at;
use quiver_lake::event_file::{ENTITY, EVENT_TIME, LOG_INDEX, ROW};
use quiver_lake::layout::current_files;
use quiver_lake::{Lake, Partition};
use quiver_proto::convert::scalar_to_value;
use quiver_proto::ingest::Row;
use quiver_proto::online::log_command::Kind;
use quiver_proto::online::{
    BackfillChunk, EventBatch, StagedEntry, ViewBegin, ViewEnd, ViewPhase, ViewState,
};
use quiver_proto::types::Value;
use tokio::task::JoinHandle;

use crate::blocking::blocking;
use crate::error::OnlineStoreError;
use crate::node::Node;
use crate::raft::source_clock::{ORIGINAL_ORDER_RULES, RECOMPUTE_RULES};
use crate::raft::{command, log_position};

/// How often the leader looks for work when there is none.
const IDLE: Duration = Duration::from_millis(200);

/// Runs registration and backfills on whichever node leads, until `shutdown`, on a thread of
/// their own at a lower CPU priority (with the threads it starts to decode files): reading,
/// transforming and proposing a backfill takes whatever CPU the live path leaves, so on a busy
/// machine a backfill slows down rather than live writes. (Applying a chunk stays where every
/// entry is applied: `backfill_chunk_time` bounds what a live write waits behind it.)
pub fn spawn(node: Arc<Node>, lake: Option<Lake>, shutdown: Shutdown) -> JoinHandle<()> {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let work = {
        let (node, shutdown) = (node.clone(), shutdown.clone());
        let lake = lake.clone();
        move || {
            yield_cpu();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(run(node, lake, shutdown)),
                Err(error) => {
                    tracing::error!(%error, "cannot start the backfill thread's runtime");
                }
            }
            let _ = done.send(());
        }
    };
    match std::thread::Builder::new()
        .name("quiver-backfill".into())
        .spawn(work)
    {
        Ok(_) => tokio::spawn(async move {
            let _ = finished.await;
        }),
        Err(error) => {
            tracing::warn!(%error, "no thread for backfills; they run on the runtime at full priority");
            tokio::spawn(run(node, lake, shutdown))
        }
    }
}

/// Lowers the calling thread's CPU priority (Linux `nice` is per thread, and threads it starts
/// inherit it). A process not allowed to keep it lower just runs at the usual priority.
fn yield_cpu() {
    /// Below every thread at the default 0: the live path wins each contended slice.
    const NICE: i32 = 10;
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::warn!(%error, "cannot lower the backfill thread's priority");
    }
}

/// The registration and backfill loop.
async fn run(node: Arc<Node>, lake: Option<Lake>, shutdown: Shutdown) {
    let mut files = SourceLogFiles::default();
    let mut pace = Pace::default();
    loop {
        crate::metrics::record_views(&node);
        let busy = if node.is_leader() && node.registry.is_loaded() {
            match step(&node, lake.as_ref(), &mut files, &mut pace).await {
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
}

/// One round: registers what is new, then proposes one backfill chunk. Whether there was work.
async fn step(
    node: &Node,
    lake: Option<&Lake>,
    files: &mut SourceLogFiles,
    pace: &mut Pace,
) -> Result<bool, OnlineStoreError> {
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
                Kind::ViewBegin(ViewBegin {
                    project: project.to_string(),
                    view: name.to_string(),
                    version: version.version,
                    source: version.view.source.clone(),
                }),
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
            propose(node, Kind::ViewEnd(ViewEnd { project, view })).await?;
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
        let version = VersionToFill {
            project: &project,
            source: &source,
            definition,
            version,
            state: &state,
        };
        let limit = pace.rows(node.config.backfill_chunk_rows);
        let started = std::time::Instant::now();
        let rows = backfill_chunk(node, lake, files, version, limit).await?;
        pace.record(rows, started.elapsed(), node.config.backfill_chunk_time);
        return Ok(true);
    }
    Ok(busy)
}

/// The version a chunk is for.
struct VersionToFill<'a> {
    project: &'a str,
    source: &'a Source,
    definition: Arc<FeatureView>,
    version: u32,
    state: &'a ViewState,
}

/// Proposes the next chunk of one version's backfill.
async fn backfill_chunk(
    node: &Node,
    lake: Option<&Lake>,
    files: &mut SourceLogFiles,
    fill: VersionToFill<'_>,
    limit: usize,
) -> Result<usize, OnlineStoreError> {
    let VersionToFill {
        project,
        source,
        definition,
        version,
        state,
    } = fill;
    let internal = |e: String| OnlineStoreError::Internal(e);
    let from = state.backfilled_through + 1;
    let start = (from, state.resume_row);
    let last = state.registered_at.saturating_sub(1);
    let exported = node
        .state
        .export_state()
        .map_err(|e| internal(e.to_string()))?
        .exported_through;
    // At most `limit` events from `start` on, in log order, and where they end.
    let limit = limit.max(1);
    let (rows, (through, next_row)) = match lake {
        Some(lake) if from <= exported.min(last) => {
            let to = exported.min(last);
            files.load(lake, project, source, from, to).await?;
            blocking(|| files.rows(source, start, limit, to))
        }
        _ => {
            let cut = blocking(|| read_staged(node, source, project, start, last, limit))?;
            // The range was exported meanwhile (its staged entries released): read it next round.
            let now = node
                .state
                .export_state()
                .map_err(|e| internal(e.to_string()))?
                .exported_through;
            if lake.is_some() && now >= from && now > exported {
                return Ok(0);
            }
            cut
        }
    };
    let events = rows.len();
    let plan = PlannedView::new(definition, version);
    let mut batch = EventBatch {
        project: project.to_string(),
        source: source.name.clone(),
        columns: source.schema.iter().map(|c| c.name.clone()).collect(),
        // Apply collects what the source's retention has left behind by this lateness.
        allowed_lateness_micros: i64::try_from(source.allowed_lateness.as_micros())
            .unwrap_or(i64::MAX),
        ..EventBatch::default()
    };
    let admission_rules = node
        .admission_rules
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut positions = Vec::new();
    for row in rows {
        if admission_rules >= ORIGINAL_ORDER_RULES {
            positions.push(log_position(row.log_index, row.row));
        }
        batch.rows.push(Row { values: row.values });
        batch.event_micros.push(row.event_micros);
        batch.entity_keys.push(row.entity);
    }
    let batches = if batch.rows.is_empty() {
        Vec::new()
    } else {
        let mut statistics = blocking(|| statistics_of(node, project, &plan, &batch))?;
        blocking(|| feed(&mut batch, &plan, &mut statistics));
        if admission_rules >= RECOMPUTE_RULES {
            leave_out_recomputable(&mut batch);
        }
        vec![batch]
    };
    propose(
        node,
        Kind::Backfill(BackfillChunk {
            project: project.to_string(),
            view: plan.view.name.clone(),
            version,
            from,
            through,
            batches,
            from_row: state.resume_row,
            next_row,
            rows_from_source_log: plan.view.rows_follow_from_source_log(),
            admission_rules,
            positions,
        }),
    )
    .await?;
    Ok(events)
}

/// How many events the next chunk takes: sized from the last chunks so one takes about
/// `backfill_chunk_time` from read to applied (what a live write may wait behind it).
#[derive(Debug, Default)]
struct Pace {
    /// Seconds per event, smoothed; unknown before the first chunk.
    per_event: Option<f64>,
    target: Option<Duration>,
}

impl Pace {
    /// The fewest events a chunk takes (the fixed cost of an entry would dominate below).
    const MIN_ROWS: usize = 100;
    /// The first chunk's events, before any was measured.
    const FIRST_ROWS: usize = 1_000;

    /// The next chunk's size, at most `max`.
    fn rows(&self, max: usize) -> usize {
        let max = max.max(1);
        match (self.per_event, self.target) {
            (Some(per_event), Some(target)) if per_event > 0.0 => {
                ((target.as_secs_f64() / per_event) as usize).clamp(Self::MIN_ROWS.min(max), max)
            }
            // The first chunk measures.
            _ => Self::FIRST_ROWS.min(max),
        }
    }

    /// A chunk of `events` took `took`; chunks should take `target`.
    fn record(&mut self, events: usize, took: Duration, target: Duration) {
        self.target = Some(target);
        if events == 0 {
            return;
        }
        let observed = took.as_secs_f64() / events as f64;
        self.per_event = Some(match self.per_event {
            Some(previous) => (previous + observed) / 2.0,
            None => observed,
        });
    }
}

/// One source event to backfill.
struct SourceRow {
    log_index: u64,
    /// Its row in its entry (across the entry's batches, as the source log numbers them).
    row: u32,
    event_micros: i64,
    entity: Vec<u8>,
    /// In the source schema's column order.
    values: Vec<Value>,
}

/// The decoded source-log files of the window a backfill is in, kept across chunks so a
/// compacted file (which may hold millions of events) is read once, not once per chunk.
#[derive(Default)]
pub struct SourceLogFiles {
    /// The project, source and file paths decoded.
    loaded: Option<(String, String, Vec<String>)>,
    /// The log indexes the decoded files cover whole (together: every file reaching into the
    /// range was read).
    from: u64,
    through: u64,
    batches: Vec<RecordBatch>,
    /// Every decoded row as (log index, row, batch, row in batch), in log order.
    order: Vec<(u64, u32, u32, u32)>,
}

impl SourceLogFiles {
    /// Makes sure the files holding entries from `from` (up to the end of the first file that
    /// reaches past it, at most `to`) are decoded.
    async fn load(
        &mut self,
        lake: &Lake,
        project: &str,
        source: &Source,
        from: u64,
        to: u64,
    ) -> Result<(), OnlineStoreError> {
        // Still inside the decoded window: nothing to list. Exported files never change what
        // they hold (a compaction rewrites the same events), so the window stays whole even if
        // its files were compacted meanwhile; `rows` cuts it at the version's own end. (Listing
        // a source's files on every chunk was 12% of a node's CPU during a backfill.)
        if self
            .loaded
            .as_ref()
            .is_some_and(|(p, s, _)| p == project && *s == source.name)
            && (self.from..=self.through).contains(&from)
        {
            return Ok(());
        }
        let failed = |e: String| OnlineStoreError::Unavailable(format!("offline store: {e}"));
        let dir = Partition::Source {
            project: project.to_string(),
            source: source.name.clone(),
        }
        .dir();
        let files: Vec<_> =
            current_files(lake.list(&dir).await.map_err(|e| failed(e.to_string()))?)
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
        let window: Vec<_> = files.iter().filter(|f| f.range.first <= through).collect();
        let key = (
            project.to_string(),
            source.name.clone(),
            window
                .iter()
                .map(|f| f.path.to_string())
                .collect::<Vec<_>>(),
        );
        if self.loaded.as_ref() == Some(&key) {
            self.from = self.from.min(from);
            self.through = through;
            return Ok(());
        }
        *self = Self::default();
        // A column at a time: a compacted file is never in memory twice (bytes and decoded).
        for file in &window {
            self.batches.extend(
                read_columns(lake, &file.path, file.size, None, parallel_reads())
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            );
        }
        for (b, batch) in self.batches.iter().enumerate() {
            let (Some(index), Some(row)) = (
                batch
                    .column_by_name(LOG_INDEX)
                    .and_then(|c| c.as_primitive_opt::<UInt64Type>()),
                batch
                    .column_by_name(ROW)
                    .and_then(|c| c.as_primitive_opt::<UInt32Type>()),
            ) else {
                continue;
            };
            self.order.extend(
                (0..batch.num_rows()).map(|i| (index.value(i), row.value(i), b as u32, i as u32)),
            );
        }
        // Within a file rows are in log order; across dates they interleave.
        blocking(|| self.order.sort_unstable());
        self.loaded = Some(key);
        self.from = from;
        self.through = through;
        Ok(())
    }

    /// At most `limit` events from position `from` (entry, row) on, in log order, none past
    /// entry `to` (the window may reach further: another version of the source loaded it); and
    /// where they end (see [`take`]).
    fn rows(
        &self,
        source: &Source,
        from: (u64, u32),
        limit: usize,
        to: u64,
    ) -> (Vec<SourceRow>, End) {
        let through = self.through.min(to);
        let start = self.order.partition_point(|r| (r.0, r.1) < from);
        let end = self.order.partition_point(|r| r.0 <= through);
        let window = &self.order[start..end.max(start)];
        let (window, end) = take(window, limit, |r| (r.0, r.1), through);
        let columns: Vec<Vec<Option<&dyn Array>>> = self
            .batches
            .iter()
            .map(|batch| {
                source
                    .schema
                    .iter()
                    .map(|c| batch.column_by_name(&c.name).map(|a| a.as_ref()))
                    .collect()
            })
            .collect();
        let rows = window
            .iter()
            .filter_map(|&(log_index, row, b, i)| {
                let batch = &self.batches[b as usize];
                let i = i as usize;
                let time = batch
                    .column_by_name(EVENT_TIME)?
                    .as_primitive_opt::<TimestampMicrosecondType>()?;
                let entity = batch.column_by_name(ENTITY)?.as_binary_opt::<i32>()?;
                Some(SourceRow {
                    log_index,
                    row,
                    event_micros: time.value(i),
                    entity: entity.value(i).to_vec(),
                    values: columns[b as usize]
                        .iter()
                        .map(|c| scalar_to_value(c.and_then(|c| scalar_at(c, i))))
                        .collect(),
                })
            })
            .collect();
        (rows, end)
    }
}

/// Where a chunk ends: it covers every entry up to `through` whole and rows [0, next_row) of
/// the entry after.
type End = (u64, u32);

/// The first `limit` of `items` (in log order, `position` giving each one's entry and row) and
/// where they end: at the next item's position when there are more, else after entry `through`.
fn take<T>(
    items: &[T],
    limit: usize,
    position: impl Fn(&T) -> (u64, u32),
    through: u64,
) -> (&[T], End) {
    match items.get(limit).map(position) {
        Some((entry, row)) => (&items[..limit], (entry - 1, row)),
        None => (items, (through, 0)),
    }
}

/// At most `limit` admitted events of staged entries (not exported yet) from position `from`
/// on, up to entry `to`, in log order; and where they end (see [`take`]).
fn read_staged(
    node: &Node,
    source: &Source,
    project: &str,
    from: (u64, u32),
    to: u64,
    limit: usize,
) -> Result<(Vec<SourceRow>, End), OnlineStoreError> {
    // Entries are read a page at a time until the rows pass the limit.
    const PAGE: usize = 64;
    let mut rows = Vec::new();
    let mut next = from.0;
    let mut exhausted = false;
    while !exhausted && rows.len() <= limit {
        let entries = node
            .state
            .staged_entries(next, to, PAGE)
            .map_err(|e| OnlineStoreError::Internal(e.to_string()))?;
        staged_rows(&entries, source, project, &mut rows);
        rows.retain(|r| (r.log_index, r.row) >= from);
        match entries.last() {
            Some(&(last, _)) if entries.len() == PAGE && last < to => next = last + 1,
            _ => exhausted = true,
        }
    }
    // Every entry up to here was read (entries that are not staged hold no events).
    let read_through = if exhausted { to } else { next - 1 };
    let (kept, end) = take(&rows, limit, |r| (r.log_index, r.row), read_through);
    let keep = kept.len();
    rows.truncate(keep);
    Ok((rows, end))
}

/// The admitted events of `source` in staged `entries`, appended to `rows` in log order.
fn staged_rows(
    entries: &[(u64, StagedEntry)],
    source: &Source,
    project: &str,
    rows: &mut Vec<SourceRow>,
) {
    for (log_index, entry) in entries {
        let log_index = *log_index;
        // Only producer batches are source events (a backfill chunk's are already in the log).
        let Some(Kind::Events(write)) = command::decode(&entry.command) else {
            continue;
        };
        // Rows are numbered across the entry's batches, as the source log numbers them.
        let mut row_base = 0u32;
        for (events, decided) in write.batches.iter().zip(&entry.batches) {
            let base = row_base;
            row_base = row_base.saturating_add(events.rows.len() as u32);
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
                    row: base.saturating_add(r as u32),
                    event_micros: events.event_micros.get(r).copied().unwrap_or_default(),
                    entity: events.entity_keys.get(r).cloned().unwrap_or_default(),
                    values,
                });
            }
        }
    }
}

/// The version's running statistics as stored for `batch`'s rows (each reads the window ending
/// at its own event time), as compute reads them for a live batch.
fn statistics_of(
    node: &Node,
    project: &str,
    plan: &PlannedView,
    batch: &EventBatch,
) -> Result<Statistics, OnlineStoreError> {
    let mut statistics = Statistics::new();
    for read in plan.statistics_reads(project, batch, &statistics) {
        let records = crate::write::read_aggregates_records(node, &read)?;
        let answered = records.into_iter().map(|r| r.partials).collect();
        plan.add_statistics(&mut statistics, &read, answered)
            .map_err(OnlineStoreError::Internal)?;
    }
    Ok(statistics)
}

async fn propose(node: &Node, kind: Kind) -> Result<(), OnlineStoreError> {
    node.check_disk()?;
    node.raft
        .client_write(command::command(kind))
        .await
        .map_err(|e| node.write_error(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        BinaryArray, Float64Array, RecordBatch, TimestampMicrosecondArray, UInt32Array, UInt64Array,
    };
    use quiver_core::{Column, Source, ValueType};
    use quiver_lake::event_file::{ENTITY, EVENT_TIME, LOG_INDEX, ROW};

    use super::{take, SourceLogFiles};

    /// A decoded window of entries 1..=4 (one event each) loaded for one version is cut at
    /// another version's end when that version reads it: events after a version's `ViewBegin`
    /// are folded live, never backfilled.
    #[test]
    fn a_decoded_window_is_cut_at_the_reading_versions_end() {
        let batch = RecordBatch::try_from_iter([
            (
                LOG_INDEX,
                Arc::new(UInt64Array::from(vec![1, 2, 3, 4])) as _,
            ),
            (ROW, Arc::new(UInt32Array::from(vec![0, 0, 0, 0])) as _),
            (
                EVENT_TIME,
                Arc::new(TimestampMicrosecondArray::from(vec![10, 20, 30, 40])) as _,
            ),
            (
                ENTITY,
                Arc::new(BinaryArray::from_vec(vec![b"a", b"b", b"c", b"d"])) as _,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])) as _,
            ),
        ])
        .unwrap();
        let files = SourceLogFiles {
            loaded: Some(("p".into(), "s".into(), vec!["f".into()])),
            from: 1,
            through: 4,
            order: (0..4).map(|i| (i + 1, 0, 0, i as u32)).collect(),
            batches: vec![batch],
        };
        let source = Source {
            name: "s".into(),
            entity: "e".into(),
            timestamp_field: "t".into(),
            allowed_lateness: std::time::Duration::ZERO,
            schema: vec![Column {
                name: "amount".into(),
                value_type: ValueType::Float64,
            }],
            description: String::new(),
            kafka: None,
            log_retention: None,
        };
        let (rows, end) = files.rows(&source, (1, 0), 10, 2);
        let entries: Vec<u64> = rows.iter().map(|r| r.log_index).collect();
        assert_eq!((entries, end), (vec![1, 2], (2, 0)));
        let (rows, end) = files.rows(&source, (2, 0), 10, 4);
        let entries: Vec<u64> = rows.iter().map(|r| r.log_index).collect();
        assert_eq!((entries, end), (vec![2, 3, 4], (4, 0)));
    }

    #[test]
    fn a_chunk_ends_at_the_next_event_even_inside_an_entry() {
        // Events as (entry, row): entry 5 has three, entry 7 two.
        let events = [(5, 0), (5, 1), (5, 2), (7, 0), (7, 1)];
        let at = |e: &(u64, u32)| *e;
        // Inside entry 5: it ends before (5, 2), so nothing whole and rows [0, 2) of entry 5.
        assert_eq!(take(&events, 2, at, 9), (&events[..2], (4, 2)));
        // On a boundary: entries up to 6 whole.
        assert_eq!(take(&events, 3, at, 9), (&events[..3], (6, 0)));
        // Everything fits: the window's last entry whole.
        assert_eq!(take(&events, 5, at, 9), (&events[..], (9, 0)));
        assert_eq!(take(&events[..0], 5, at, 9), (&events[..0], (9, 0)));
    }
}
