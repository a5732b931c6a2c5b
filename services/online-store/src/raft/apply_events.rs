//! Applying streaming events: admission against the source's watermark, staging for the
//! offline export (with every late row's reason), folding admitted events into tiles and
//! running records, and dropping expired tile epochs.
//!
//! Everything here decides from the log alone: watermarks are replicated state (per producer
//! and per source, `source_clock`), the stamp
//! that breaks `first`/`last` ties is the log position, and tiles are written as RocksDB merge
//! operands of one record per (entity, tile) per producer batch, so every replica stores the
//! same bytes whichever way its applies were drained.

use std::collections::{HashMap, HashSet};
use std::io;

use prost::Message;
use quiver_core::aggregate::{FloatSums, Stamp, TileAggregator};
use quiver_core::tiling::{self, Layout, ViewAggregates};
use quiver_core::Scalar;
use quiver_proto::convert::{aggregate_spec_from_pb, value_to_scalar};
use quiver_proto::online::{
    BackfillChunk, EventBatch, SourceClock, StagedBatch, ViewEvents, ViewPhase,
};
use rocksdb::WriteBatch;

use super::producers::Sequencing;
use super::source_clock;
use super::{EventOutcome, StateMachine};
use crate::entity_stamps::Slot;
use crate::keys::{self, Space};

/// How many event times per apply feed the freshness histogram (a sample bounds the cost).
const FRESHNESS_SAMPLE: usize = 1_024;

/// What one apply admitted, for metrics recorded after the batch is durable.
#[derive(Default)]
pub struct AppliedEvents {
    event_micros: Vec<i64>,
    accepted: u64,
    late: u64,
    anomalous: u64,
    /// Per (project, source), its watermark after the batch.
    pub watermarks: HashMap<(String, String), i64>,
    /// A view version's state changed (registration, backfill progress).
    pub views_changed: bool,
    /// A row was folded behind its source's watermark minus the lateness, into a tile readers
    /// may hold as sealed (`sealed_tiles.rs`).
    pub sealed_tiles_written: bool,
    /// The entities whose tiles or running records were folded into.
    pub folded: Vec<Slot>,
}

impl AppliedEvents {
    /// Records the metrics of what was applied (call once the batch is durable).
    pub fn record_metrics(&self) {
        if self.accepted + self.late + self.anomalous == 0 {
            return;
        }
        crate::metrics::record_events(
            &self.event_micros,
            self.accepted,
            self.late,
            self.anomalous,
            &self.watermarks,
        );
    }
}

/// Where an aggregate's input comes from.
#[derive(Clone, Copy)]
enum Input {
    None,
    Source(usize),
    Derived(usize),
}

impl StateMachine {
    /// Applies one producer batch of entry `log_index` (whose rows are numbered from
    /// `row_base` within the entry), and says in `staged` what was decided about it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_event_batch(
        &self,
        log_index: u64,
        row_base: u32,
        events: &EventBatch,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        applied: &mut AppliedEvents,
        folds: &mut EntryFolds,
        staged: &mut StagedBatch,
        admission_rules: u32,
    ) -> io::Result<EventOutcome> {
        let mut outcome = EventOutcome::default();
        // Until admitted, a batch counts for nothing offline either.
        staged.duplicate = true;
        let rows = events.rows.len();
        if events.event_micros.len() != rows
            || events.entity_keys.len() != rows
            || (!events.offsets.is_empty() && events.offsets.len() != rows)
        {
            // Validated before proposing; a malformed entry is skipped the same everywhere.
            tracing::error!(log_index, "committed event batch is malformed; skipped");
            return Ok(outcome);
        }
        // Every version the store folds for this source must be in the batch; otherwise
        // nothing changes (not even the producer's sequence) and compute writes it again with
        // the versions added.
        let missing = self.missing_views(overlay, events)?;
        if !missing.is_empty() {
            outcome.missing_views = missing;
            return Ok(outcome);
        }
        let sequencing = self.sequence_batch(
            &events.producer_id,
            events.epoch,
            events.sequence,
            events.input_end,
            log_index,
            batch,
            overlay,
        )?;
        let reset = match sequencing {
            Sequencing::Duplicate { epoch, sequence } => {
                outcome.duplicate = true;
                (outcome.epoch, outcome.last_sequence) = (epoch, sequence);
                return Ok(outcome);
            }
            Sequencing::Fenced { epoch, sequence } => {
                outcome.fenced = true;
                (outcome.epoch, outcome.last_sequence) = (epoch, sequence);
                return Ok(outcome);
            }
            Sequencing::Fresh { reset } => reset,
        };
        (outcome.epoch, outcome.last_sequence) = (events.epoch, events.sequence);
        staged.duplicate = false;
        let data = self.cf(keys::CF_SM_DATA)?;

        // Admission against the producer's and the source's progress (`source_clock`); a
        // history load is admitted whole and moves no watermark.
        let watermark_key = keys::watermark_key(self.group(), &events.project, &events.source);
        let previous = self
            .read_through(overlay, &watermark_key)?
            .and_then(|v| v.as_slice().try_into().ok().map(keys::from_ordered_i64));
        let lateness = events.allowed_lateness_micros.max(0);
        self.note_lateness(&watermark_key, lateness, applied);
        // Only versions the store knows and has not retired are folded (`views`).
        let mut folded = Vec::with_capacity(events.views.len());
        for view in &events.views {
            folded.push(
                self.view_state_through(overlay, &events.project, &view.view, view.version)?
                    .is_some_and(|s| s.phase != ViewPhase::Retired as i32),
            );
        }
        // Each view's aggregates (None: invalid, which no validated definition produces).
        let view_aggregates: Vec<Option<ViewAggregates>> = events
            .views
            .iter()
            .map(|view| {
                let specs = view
                    .aggregates
                    .iter()
                    .map(aggregate_spec_from_pb)
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                Some(ViewAggregates::from_specs(
                    specs,
                    view.feature_count as usize,
                ))
            })
            .collect();
        // A positioned batch (Kafka) without events (only rejected messages, or trimmed to
        // nothing) moves its producer's offsets only: it neither registers the producer nor
        // makes it active, which would hold the source watermark back without progress.
        let positioned = events.input_end > 0 || !events.rejected.is_empty();
        let only_rejected = rows == 0 && positioned;
        let admission = if events.history || only_rejected {
            source_clock::Admission {
                admitted: vec![true; rows],
                late: Vec::new(),
                watermark: previous,
            }
        } else {
            let clock_key = keys::source_clock_key(self.group(), &events.project, &events.source);
            let mut clock = self
                .read_through(overlay, &clock_key)?
                .and_then(|v| SourceClock::decode(v.as_slice()).ok())
                .unwrap_or_default();
            if reset {
                source_clock::reset(&mut clock, &events.producer_id);
            }
            // The tiles' retention of the versions folded sets how old a row may be (under
            // the rules the entry was proposed with).
            let longest_window = view_aggregates
                .iter()
                .zip(&folded)
                .filter_map(|(a, &folded)| a.as_ref().filter(|_| folded))
                .map(|a| a.features.longest_micros.max(a.statistics.longest_micros))
                .filter(|&window| window > 0)
                .max();
            let longest_window = match admission_rules {
                r if r >= source_clock::TILELESS_RULES => longest_window,
                r if r >= source_clock::HORIZON_RULES => Some(longest_window.unwrap_or(0)),
                _ => Some(0),
            };
            let admission = source_clock::admit(
                &mut clock,
                previous,
                &events.producer_id,
                lateness,
                longest_window,
                &events.event_micros,
            );
            self.put_through(batch, overlay, clock_key, clock.encode_to_vec())?;
            admission
        };
        let admitted = admission.admitted;
        for (row, reason) in admission.late {
            outcome.late += 1;
            staged.late_rows.push(row);
            staged.late_reasons.push(reason);
        }
        let sealed_before = previous.map(|w| w.saturating_sub(lateness));
        for (row, &at) in events.event_micros.iter().enumerate() {
            if admitted[row] {
                outcome.accepted += 1;
                if sealed_before.is_some_and(|seal| at < seal) {
                    applied.sealed_tiles_written = true;
                }
                // History is old by design: it would only distort freshness.
                if !events.history && applied.event_micros.len() < FRESHNESS_SAMPLE {
                    applied.event_micros.push(at);
                }
            }
        }
        let watermark = admission.watermark;
        if let Some(w) = watermark.filter(|w| Some(*w) != previous) {
            self.put_through(batch, overlay, watermark_key, keys::ordered_i64(w).to_vec())?;
        }
        if let Some(w) = watermark {
            applied
                .watermarks
                .insert((events.project.clone(), events.source.clone()), w);
        }

        self.count_admitted(
            batch,
            overlay,
            &events.project,
            &events.source,
            outcome.accepted,
        )?;

        staged.views_decided = true;
        for (index, view) in events.views.iter().enumerate() {
            if !folded[index] {
                continue;
            }
            staged.folded_views.push(index as u32);
            let Some(aggregates) = &view_aggregates[index] else {
                tracing::error!(view = %view.view, "committed view events have invalid aggregates; skipped");
                continue;
            };
            let mut excluded = HashSet::new();
            // Excluded rows reach the quarantine log through the export (with their reason,
            // which the staged entry carries in `view.excluded`).
            for exclusion in &view.excluded {
                let row = exclusion.row as usize;
                if row < rows && admitted[row] && excluded.insert(row) {
                    outcome.anomalous += 1;
                }
            }
            fold_view(
                folds,
                |row| log_position(log_index, row_base.saturating_add(row as u32)),
                Retention::of(
                    watermark,
                    lateness,
                    admission_rules >= source_clock::STATISTICS_RULES,
                ),
                events,
                view,
                aggregates,
                |row| admitted[row] && !excluded.contains(&row),
            );
            // Expired epochs go as whole ranges when the watermark moves past them (the
            // features'; the column statistics only under rules older than
            // `STATISTICS_RULES`, see `write_folds`).
            if let (Some(before), Some(after)) = (previous, watermark) {
                let collected = [
                    (&aggregates.features, false),
                    (&aggregates.statistics, true),
                ];
                for (layout, statistics) in collected.into_iter().filter(|(_, statistics)| {
                    !statistics || admission_rules < source_clock::STATISTICS_RULES
                }) {
                    let prefix = keys::tiles_prefix(
                        self.group(),
                        &events.project,
                        &view.view,
                        view.version,
                        statistics,
                    );
                    for (tile, to) in expired_epochs(layout, before, after, lateness) {
                        batch.delete_range_cf(
                            data,
                            keys::tile_epoch_prefix(&prefix, tile, i64::MIN),
                            keys::tile_epoch_prefix(&prefix, tile, to),
                        );
                    }
                }
            }
        }
        applied.accepted += outcome.accepted;
        applied.late += outcome.late;
        applied.anomalous += outcome.anomalous;
        Ok(outcome)
    }

    /// Folds one batch of a backfill chunk into its one view version, row `r` stamped at
    /// `position(r)`: every row but the version's exclusions, no admission (the rows were
    /// admitted when they first arrived), no watermark.
    pub(super) fn apply_backfill_batch(
        &self,
        position: impl Fn(usize) -> u64,
        retention: Retention,
        events: &EventBatch,
        folds: &mut EntryFolds,
        staged: &mut StagedBatch,
    ) -> EventOutcome {
        let mut outcome = EventOutcome::default();
        staged.views_decided = true;
        let rows = events.rows.len();
        let (Some(view), true) = (
            events.views.first(),
            events.event_micros.len() == rows && events.entity_keys.len() == rows,
        ) else {
            staged.duplicate = true;
            return outcome;
        };
        let Ok(specs) = view
            .aggregates
            .iter()
            .map(aggregate_spec_from_pb)
            .collect::<Result<Vec<_>, _>>()
        else {
            staged.duplicate = true;
            return outcome;
        };
        staged.folded_views.push(0);
        let aggregates = ViewAggregates::from_specs(specs, view.feature_count as usize);
        let excluded: HashSet<usize> = view
            .excluded
            .iter()
            .map(|e| e.row as usize)
            .filter(|row| *row < rows)
            .collect();
        outcome.accepted = rows as u64;
        outcome.anomalous = excluded.len() as u64;
        fold_view(
            folds,
            position,
            retention,
            events,
            view,
            &aggregates,
            |row| !excluded.contains(&row),
        );
        outcome
    }

    /// Applies a backfill chunk (entry `log_index`) if it continues its version's backfill.
    pub(super) fn apply_backfill(
        &self,
        log_index: u64,
        chunk: &BackfillChunk,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        applied: &mut AppliedEvents,
    ) -> io::Result<Vec<StagedBatch>> {
        let Some(state) = self.backfill_applies(overlay, chunk)? else {
            return Ok(Vec::new());
        };
        let mut folds = EntryFolds::for_rules(chunk.admission_rules);
        let mut staged = Vec::with_capacity(chunk.batches.len());
        let mut row_base = 0u32;
        let watermark = self
            .read_through(
                overlay,
                &keys::watermark_key(self.group(), &chunk.project, &state.source),
            )?
            .and_then(|v| v.as_slice().try_into().ok().map(keys::from_ordered_i64));
        let rows = chunk.batches.iter().map(|b| b.rows.len()).sum();
        let position = backfill_position(chunk, rows, log_index);
        for events in &chunk.batches {
            let mut decided = StagedBatch::default();
            let retention = Retention::of(
                watermark,
                events.allowed_lateness_micros,
                chunk.admission_rules >= source_clock::STATISTICS_RULES,
            );
            let base = row_base;
            self.apply_backfill_batch(
                |row| position(base.saturating_add(row as u32)),
                retention,
                events,
                &mut folds,
                &mut decided,
            );
            row_base = row_base.saturating_add(events.rows.len() as u32);
            staged.push(decided);
        }
        self.write_folds(folds, batch, applied)?;
        self.finish_backfill_chunk(log_index, chunk, state, batch, overlay)?;
        Ok(staged)
    }

    /// Writes what an entry's batches folded, one merge operand per touched record, and notes
    /// the entities folded into in `applied`.
    pub(super) fn write_folds(
        &self,
        folds: EntryFolds,
        batch: &mut WriteBatch,
        applied: &mut AppliedEvents,
    ) -> io::Result<()> {
        let data = self.cf(keys::CF_SM_DATA)?;
        // Written in key order: RocksDB's memtable reuses the previous insert's position in its
        // skip list, so sorted inserts cost a fraction of random ones (perf: random-order
        // inserts were 40% of a node's CPU under `quiver-bench push`).
        // Keys and their records' ranges in one buffer of encoded records.
        let mut operands: Vec<(Vec<u8>, std::ops::Range<usize>)> = Vec::new();
        let mut records: Vec<u8> = Vec::new();
        let mut encode = |record: &quiver_core::aggregate::TileRecord| {
            let start = records.len();
            record.encode_into(&mut records);
            start..records.len()
        };
        for fold in folds.views {
            let running_prefix = keys::view_prefix(
                self.group(),
                Space::Running,
                &fold.project,
                &fold.view,
                fold.version,
            );
            let mut any_running = false;
            for (aggregator, is_statistics) in [(fold.features, false), (fold.statistics, true)] {
                let tiles_prefix = keys::tiles_prefix(
                    self.group(),
                    &fold.project,
                    &fold.view,
                    fold.version,
                    is_statistics,
                );
                let layout = aggregator.layout().clone();
                // A view's column statistics are kept for all time (one record per tile for the
                // whole view, not per entity): a history row of any age is scored against its
                // own time's window. (Under older rules they were not written past retention.)
                let kept = if is_statistics && fold.retention.keeps_statistics {
                    Vec::new()
                } else {
                    fold.retention.kept_from(&layout)
                };
                for (entity, touched) in aggregator.finish() {
                    applied.folded.push(Slot::of(&entity));
                    for (family_index, bucket, record) in touched.tiles {
                        let family = &layout.families[family_index];
                        let epoch = tiling::epoch(bucket, family.epoch_tiles);
                        // Already expired (history, backfills): collecting it would be the
                        // next thing to happen to it, so it is not written at all.
                        if kept.get(family_index).is_some_and(|&first| epoch < first) {
                            continue;
                        }
                        let prefix =
                            keys::tile_epoch_prefix(&tiles_prefix, family.tile_micros, epoch);
                        operands.push((keys::tile_key(&prefix, &entity, bucket), encode(&record)));
                    }
                    if let Some(record) = touched.running {
                        any_running = true;
                        operands
                            .push((keys::running_key(&running_prefix, &entity), encode(&record)));
                    }
                }
            }
            if any_running {
                // Before the batch commits: readers must look for its records from then on.
                self.streamed_views().mark(&running_prefix);
            }
        }
        operands.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, range) in operands {
            batch.merge_cf(data, key, &records[range]);
        }
        Ok(())
    }
}

/// What the producer batches of one entry folded, per view version: every batch feeding a view
/// folds into the same records, so a key touched by many batches is written once per entry
/// (and every replica groups the same way: the entry is the unit).
pub struct EntryFolds {
    views: Vec<ViewFold>,
    /// How the entry's records add floats: exactly under `EXACT_SUMS_RULES`, else as older
    /// binaries do (so every replica of a rolling upgrade writes the same bits).
    float_sums: FloatSums,
}

struct ViewFold {
    project: String,
    view: String,
    version: u32,
    features: TileAggregator,
    statistics: TileAggregator,
    /// What of its tiles is still kept: the most generous of its batches'.
    retention: Retention,
}

/// The source's retention as a batch sees it: tiles in epochs the watermark has left behind
/// (see `expired_epochs`) are collected, so folds into them need not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retention {
    /// The source's watermark (None: none yet, everything is kept).
    watermark: Option<i64>,
    lateness: i64,
    /// Whether the view's column statistics are kept whatever their age (the entry's rules
    /// are `STATISTICS_RULES` or newer).
    keeps_statistics: bool,
}

impl Retention {
    pub(super) fn of(watermark: Option<i64>, lateness_micros: i64, keeps_statistics: bool) -> Self {
        Self {
            watermark,
            lateness: lateness_micros.max(0),
            keeps_statistics,
        }
    }

    /// The more generous of two (the earlier watermark keeps more).
    fn widest(self, other: Self) -> Self {
        let keeps_statistics = self.keeps_statistics || other.keeps_statistics;
        let widest = match (self.watermark, other.watermark) {
            (Some(a), Some(b))
                if a.saturating_sub(self.lateness) <= b.saturating_sub(other.lateness) =>
            {
                self
            }
            (Some(_), Some(_)) => other,
            _ => Self::of(None, 0, keeps_statistics),
        };
        Self {
            keeps_statistics,
            ..widest
        }
    }

    /// Per family of `layout`: the first epoch kept (empty: every epoch is kept).
    fn kept_from(&self, layout: &Layout) -> Vec<i64> {
        let Some(watermark) = self.watermark else {
            return Vec::new();
        };
        let start = tiling::retention_start(watermark, self.lateness, layout.longest_micros);
        layout
            .families
            .iter()
            .map(|family| tiling::first_kept_epoch(family, start))
            .collect()
    }
}

impl EntryFolds {
    /// Nothing folded yet, for an entry proposed under `admission_rules`.
    pub(super) fn for_rules(admission_rules: u32) -> Self {
        Self {
            views: Vec::new(),
            float_sums: if admission_rules >= source_clock::EXACT_SUMS_RULES {
                FloatSums::Exact
            } else {
                FloatSums::Sequential
            },
        }
    }

    fn view(
        &mut self,
        project: &str,
        view: &str,
        version: u32,
        aggregates: &ViewAggregates,
        retention: Retention,
    ) -> &mut ViewFold {
        let position = self
            .views
            .iter()
            .position(|f| f.version == version && f.view == view && f.project == project);
        let index = match position {
            Some(index) => {
                let fold = &mut self.views[index];
                fold.retention = fold.retention.widest(retention);
                index
            }
            None => {
                self.views.push(ViewFold {
                    project: project.to_string(),
                    view: view.to_string(),
                    version,
                    features: TileAggregator::with_float_sums(
                        aggregates.feature_specs(),
                        &aggregates.features,
                        self.float_sums,
                    ),
                    statistics: TileAggregator::with_float_sums(
                        aggregates.statistics_specs(),
                        &aggregates.statistics,
                        self.float_sums,
                    ),
                    retention,
                });
                self.views.len() - 1
            }
        };
        &mut self.views[index]
    }
}

/// Row `row` of entry `log_index` as one log position, `(log index << 32) | row`: what a stamp's
/// sequence holds, so `first`/`last` tie-break by ingest order.
pub(crate) fn log_position(log_index: u64, row: u32) -> u64 {
    (log_index << 32) | u64::from(row)
}

/// The log position each event of backfill chunk `chunk` (entry `log_index`, `rows` events
/// across its batches) is stamped and exported with, by its row numbered across the batches:
/// where it was first admitted (`positions`, under `ORIGINAL_ORDER_RULES`, when there is one
/// for every row); else, as under older rules, its place in the chunk. Every replica and the
/// export decide the same.
pub(crate) fn backfill_position(
    chunk: &BackfillChunk,
    rows: usize,
    log_index: u64,
) -> impl Fn(u32) -> u64 + '_ {
    let original = (chunk.admission_rules >= source_clock::ORIGINAL_ORDER_RULES
        && chunk.positions.len() == rows)
        .then_some(chunk.positions.as_slice());
    move |row| match original {
        Some(positions) => positions[row as usize],
        None => log_position(log_index, row),
    }
}

/// Folds the included rows of one view of one batch into the entry's records for the view
/// (per-entity tiles and running records, and the view's column statistics), row `r` stamped
/// at log position `position(r)`.
#[allow(clippy::too_many_arguments)]
fn fold_view(
    folds: &mut EntryFolds,
    position: impl Fn(usize) -> u64,
    retention: Retention,
    events: &EventBatch,
    view: &ViewEvents,
    aggregates: &ViewAggregates,
    included: impl Fn(usize) -> bool,
) {
    {
        let columns = events.columns.len();
        let inputs: Vec<Input> = (0..aggregates.specs.len())
            .map(
                |i| match view.inputs.get(i).copied().unwrap_or(0) as usize {
                    0 => Input::None,
                    c if c <= columns => Input::Source(c - 1),
                    c => Input::Derived(c - columns - 1),
                },
            )
            .collect();
        // Convert each used column once.
        let mut source_cache: HashMap<usize, Vec<Option<Scalar>>> = HashMap::new();
        let mut derived_cache: HashMap<usize, Vec<Option<Scalar>>> = HashMap::new();
        for input in &inputs {
            match *input {
                Input::Source(c) => {
                    source_cache.entry(c).or_insert_with(|| {
                        events
                            .rows
                            .iter()
                            .map(|r| r.values.get(c).and_then(value_to_scalar))
                            .collect()
                    });
                }
                Input::Derived(d) => {
                    derived_cache.entry(d).or_insert_with(|| {
                        view.derived
                            .get(d)
                            .map(|col| col.values.iter().map(value_to_scalar).collect())
                            .unwrap_or_default()
                    });
                }
                Input::None => {}
            }
        }
        let value_of = |input: Input, row: usize| -> Option<&Scalar> {
            match input {
                Input::None => None,
                Input::Source(c) => source_cache.get(&c)?.get(row)?.as_ref(),
                Input::Derived(d) => derived_cache.get(&d)?.get(row)?.as_ref(),
            }
        };
        let fc = aggregates.feature_count;
        let fold = folds.view(
            &events.project,
            &view.view,
            view.version,
            aggregates,
            retention,
        );
        let has_statistics = !aggregates.statistics_specs().is_empty();
        let mut row_inputs: Vec<Option<&Scalar>> = Vec::with_capacity(aggregates.specs.len());
        for row in 0..events.rows.len() {
            if !included(row) {
                continue;
            }
            let stamp = Stamp {
                event_micros: events.event_micros[row],
                sequence: position(row),
            };
            row_inputs.clear();
            row_inputs.extend(inputs.iter().map(|input| value_of(*input, row)));
            fold.features
                .add(&events.entity_keys[row], stamp, &row_inputs[..fc]);
            if has_statistics {
                fold.statistics
                    .add(keys::STATISTICS_ENTITY, stamp, &row_inputs[fc..]);
            }
        }
    }
}

/// Per family of `layout` (one per tile size): the epoch before which everything expired when
/// the watermark moved from `before` to `after`, if that moved.
fn expired_epochs(layout: &Layout, before: i64, after: i64, lateness: i64) -> Vec<(i64, i64)> {
    let was = tiling::retention_start(before, lateness, layout.longest_micros);
    let now = tiling::retention_start(after, lateness, layout.longest_micros);
    layout
        .families
        .iter()
        .filter_map(|family| {
            let (was, now) = (
                tiling::first_kept_epoch(family, was),
                tiling::first_kept_epoch(family, now),
            );
            (now > was).then_some((family.tile_micros, now))
        })
        .collect()
}
