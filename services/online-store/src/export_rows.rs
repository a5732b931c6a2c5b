//! What the offline export writes for a range of staged entries: per source and date, every
//! admitted row (the source log); per view version and date, the rows the view aggregated, for
//! the versions whose rows do not follow from the source log (a windowed statistic); per source
//! and date, the rows kept out (late, or excluded from a view as anomalous) with the reason. It
//! re-reads apply's decisions from the staged entries, so offline sees exactly what online
//! admitted.

use std::collections::{BTreeMap, HashMap};

use quiver_common::registry_cache::Catalog;
use quiver_common::view_feed::recompute_derived;
use quiver_core::{Scalar, ValueType};
use quiver_lake::columns::value_type;
use quiver_lake::event_file::{Column, EventRows};
use quiver_lake::layout::date_of;
use quiver_lake::quarantine_file::{QuarantineRows, Quarantined};
use quiver_lake::Partition;
use quiver_proto::convert::value_to_scalar;
use quiver_proto::online::log_command::Kind;
use quiver_proto::online::{EventBatch, StagedEntry};

use crate::raft::{backfill_position, command, log_position};

/// What the export asks of the definitions.
pub trait Definitions {
    /// A source column's declared type (used when a column holds only nulls in a range).
    fn column_type(&self, project: &str, source: &str, column: &str) -> Option<ValueType>;
    /// The type a view version's transform writes into its output column `name` (for the
    /// same reason: a range where every row's value is null still types the column right,
    /// or files of one version would disagree and never compact).
    fn derived_type(
        &self,
        project: &str,
        view: &str,
        version: u32,
        name: &str,
    ) -> Option<ValueType>;
    /// Whether a view version's aggregated rows are written: only when they do not follow from
    /// the source log (snapshots compute every other version from the log). A version these
    /// definitions do not hold is written, to be safe.
    fn keeps_rows(&self, project: &str, view: &str, version: u32) -> bool;
}

impl Definitions for Catalog {
    fn column_type(&self, project: &str, source: &str, column: &str) -> Option<ValueType> {
        self.source(project, source)
            .and_then(|s| s.column(column))
            .map(|c| c.value_type)
    }

    fn derived_type(
        &self,
        project: &str,
        view: &str,
        version: u32,
        name: &str,
    ) -> Option<ValueType> {
        self.view_version(project, view, version)?
            .transforms
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.op.output_type())
    }

    fn keeps_rows(&self, project: &str, view: &str, version: u32) -> bool {
        self.view_version(project, view, version)
            .is_none_or(|d| !d.rows_follow_from_source_log())
    }
}

/// The files of one export range, by (partition, date).
#[derive(Default)]
pub struct ExportFiles {
    /// Rows each view version aggregated.
    pub events: BTreeMap<(Partition, String), RowsBuilder>,
    /// The source log: every admitted row of each source.
    pub sources: BTreeMap<(Partition, String), RowsBuilder>,
    /// Rows kept out of aggregations.
    pub quarantine: BTreeMap<(Partition, String), QuarantineRows>,
}

impl ExportFiles {
    /// Sorts the staged entries of a range into files.
    pub fn collect(entries: &[(u64, StagedEntry)], definitions: &dyn Definitions) -> Self {
        let mut files = Self::default();
        for (log_index, entry) in entries {
            // A backfill chunk's events are in the source log already: only the rows of the
            // version it backfills are written, at the positions apply stamped them with.
            let (mut batches, source_log, chunk) = match command::decode(&entry.command) {
                Some(Kind::Backfill(mut chunk)) => {
                    (std::mem::take(&mut chunk.batches), false, Some(chunk))
                }
                Some(Kind::Events(events)) => (events.batches, true, None),
                _ => {
                    // Apply skipped it the same way: nothing of it was admitted.
                    tracing::error!(log_index, "a staged entry is not events; not exported");
                    continue;
                }
            };
            // Derived values the leader left out of the entry, as apply computed them.
            batches.iter_mut().for_each(recompute_derived);
            let position: Box<dyn Fn(u32) -> u64> = match &chunk {
                Some(chunk) => {
                    let rows = batches.iter().map(|b| b.rows.len()).sum();
                    Box::new(backfill_position(chunk, rows, *log_index))
                }
                None => Box::new(|row| log_position(*log_index, row)),
            };
            let mut row_base = 0u32;
            for (events, decided) in batches.iter().zip(&entry.batches) {
                if !decided.duplicate {
                    let late: HashMap<u32, &str> = decided
                        .late_rows
                        .iter()
                        .copied()
                        .zip(decided.late_reasons.iter().map(String::as_str))
                        .collect();
                    // Only the views apply folded (older entries folded every view).
                    let folded = |view: usize| {
                        !decided.views_decided || decided.folded_views.contains(&(view as u32))
                    };
                    let batch = Batch {
                        row_base,
                        position: &position,
                        events,
                        late: &late,
                        folded: &folded,
                        source_log,
                    };
                    files.add_batch(&batch, definitions);
                    files.add_rejected(*log_index, row_base, events);
                }
                row_base = row_base.saturating_add(events.rows.len() as u32);
            }
        }
        files
    }

    fn add_batch(&mut self, batch: &Batch<'_>, definitions: &dyn Definitions) {
        let Batch {
            row_base,
            position,
            events,
            late,
            folded,
            source_log,
        } = *batch;
        let source_types: Vec<Option<ValueType>> = events
            .columns
            .iter()
            .map(|c| definitions.column_type(&events.project, &events.source, c))
            .collect();
        let keeps_rows: Vec<bool> = events
            .views
            .iter()
            .map(|v| definitions.keeps_rows(&events.project, &v.view, v.version))
            .collect();
        let excluded: Vec<HashMap<u32, &str>> = events
            .views
            .iter()
            .map(|v| {
                v.excluded
                    .iter()
                    .map(|e| (e.row, e.reason.as_str()))
                    .collect()
            })
            .collect();
        for (row, values) in events.rows.iter().enumerate() {
            let at = events.event_micros.get(row).copied().unwrap_or_default();
            let at_position = position(row_base.saturating_add(row as u32));
            let meta = RowMeta {
                log_index: at_position >> 32,
                row: at_position as u32,
                event_micros: at,
                ingested_micros: events.received_micros,
                entity: events.entity_keys.get(row).cloned().unwrap_or_default(),
            };
            let source_values = || {
                events
                    .columns
                    .iter()
                    .zip(&source_types)
                    .zip(&values.values)
                    .map(|((name, declared), value)| {
                        (name.as_str(), *declared, value_to_scalar(value))
                    })
            };
            let date = date_of(at);
            let quarantine = |view: &str, reason: &str| Quarantined {
                view: view.to_string(),
                reason: reason.to_string(),
                producer_id: events.producer_id.clone(),
                sequence: events.sequence,
                row: source_values()
                    .map(|(n, _, v)| (n.to_string(), v))
                    .collect(),
            };
            let quarantine_partition = Partition::Quarantine {
                project: events.project.clone(),
                source: events.source.clone(),
            };
            if let Some(reason) = late.get(&(row as u32)) {
                self.quarantine_row(quarantine_partition, date, &meta, quarantine("", reason));
                continue;
            }
            if source_log {
                let partition = Partition::Source {
                    project: events.project.clone(),
                    source: events.source.clone(),
                };
                self.sources
                    .entry((partition, date.clone()))
                    .or_default()
                    .push(&meta, source_values());
            }
            for (index, (view, excluded)) in events.views.iter().zip(&excluded).enumerate() {
                if !folded(index) {
                    continue;
                }
                if let Some(reason) = excluded.get(&(row as u32)) {
                    let q = quarantine(&view.view, reason);
                    self.quarantine_row(quarantine_partition.clone(), date.clone(), &meta, q);
                    continue;
                }
                if !keeps_rows[index] {
                    continue;
                }
                let partition = Partition::Events {
                    project: events.project.clone(),
                    source: events.source.clone(),
                    view: view.view.clone(),
                    version: view.version,
                };
                let builder = self.events.entry((partition, date.clone())).or_default();
                let derived = view.derived.iter().map(|d| {
                    (
                        d.name.as_str(),
                        definitions.derived_type(
                            &events.project,
                            &view.view,
                            view.version,
                            &d.name,
                        ),
                        d.values.get(row).and_then(value_to_scalar),
                    )
                });
                builder.push(&meta, source_values().chain(derived));
            }
        }
    }

    /// A batch's messages that were not events (Kafka poison messages): quarantined with
    /// their offset, payload and reason (which names the partition), dated when ingest received
    /// them; numbered after the batch's rows (they were never events, so no event has their
    /// position).
    fn add_rejected(&mut self, log_index: u64, row_base: u32, events: &EventBatch) {
        for (i, message) in events.rejected.iter().enumerate() {
            let meta = RowMeta {
                log_index,
                row: row_base.saturating_add((events.rows.len() + i) as u32),
                event_micros: events.received_micros,
                ingested_micros: events.received_micros,
                entity: Vec::new(),
            };
            let row = vec![
                (
                    "offset".to_string(),
                    Some(Scalar::Int64(message.offset as i64)),
                ),
                (
                    "payload".to_string(),
                    Some(Scalar::String(
                        String::from_utf8_lossy(&message.payload).into_owned(),
                    )),
                ),
            ];
            let quarantined = Quarantined {
                view: String::new(),
                reason: message.reason.clone(),
                producer_id: events.producer_id.clone(),
                sequence: events.sequence,
                row,
            };
            let partition = Partition::Quarantine {
                project: events.project.clone(),
                source: events.source.clone(),
            };
            self.quarantine_row(
                partition,
                date_of(events.received_micros),
                &meta,
                quarantined,
            );
        }
    }

    fn quarantine_row(
        &mut self,
        partition: Partition,
        date: String,
        meta: &RowMeta,
        row: Quarantined,
    ) {
        let rows = self.quarantine.entry((partition, date)).or_default();
        meta.push_into(&mut rows.meta);
        rows.rows.push(row);
    }
}

/// One staged producer batch and what apply decided about it.
#[derive(Clone, Copy)]
struct Batch<'a> {
    row_base: u32,
    /// A row's log position, by its row numbered across the entry's batches.
    position: &'a dyn Fn(u32) -> u64,
    events: &'a EventBatch,
    late: &'a HashMap<u32, &'a str>,
    folded: &'a dyn Fn(usize) -> bool,
    /// Whether its rows belong in the source log (not for a backfill chunk's).
    source_log: bool,
}

/// Where a row came from in the log, when, and whose it is.
struct RowMeta {
    log_index: u64,
    row: u32,
    event_micros: i64,
    ingested_micros: i64,
    entity: Vec<u8>,
}

impl RowMeta {
    fn push_into(&self, rows: &mut EventRows) {
        rows.log_index.push(self.log_index);
        rows.row.push(self.row);
        rows.event_micros.push(self.event_micros);
        rows.ingested_micros.push(self.ingested_micros);
        rows.entity.push(self.entity.clone());
    }
}

/// Rows of one file, columns matched by name (a column missing from some rows is null there).
#[derive(Default)]
pub struct RowsBuilder {
    rows: EventRows,
    positions: HashMap<String, usize>,
    /// Per column: whether a value has fixed its type yet.
    typed: Vec<bool>,
}

impl RowsBuilder {
    fn push<'a>(
        &mut self,
        meta: &RowMeta,
        values: impl Iterator<Item = (&'a str, Option<ValueType>, Option<Scalar>)>,
    ) {
        let before = self.rows.len();
        meta.push_into(&mut self.rows);
        for (name, declared, value) in values {
            let position = match self.positions.get(name) {
                Some(p) => *p,
                None => {
                    self.rows.columns.push(Column {
                        name: name.to_string(),
                        value_type: declared.unwrap_or(ValueType::Float64),
                        values: vec![None; before],
                    });
                    self.typed.push(false);
                    self.positions
                        .insert(name.to_string(), self.rows.columns.len() - 1);
                    self.rows.columns.len() - 1
                }
            };
            let column = &mut self.rows.columns[position];
            if let (Some(v), false) = (&value, self.typed[position]) {
                // The data's own type wins over a fallback (a definition the registry cache no
                // longer holds).
                column.value_type = value_type(v);
                self.typed[position] = true;
            }
            column.values.push(value);
        }
        for column in &mut self.rows.columns {
            column.values.resize(before + 1, None);
        }
    }

    /// The rows.
    pub fn rows(&self) -> &EventRows {
        &self.rows
    }
}

#[cfg(test)]
mod tests {
    use quiver_proto::ingest::Row;
    use quiver_proto::online::{EventWrite, Exclusion, StagedBatch, ViewEvents};

    use super::*;

    /// Views `stateless` (rows follow from the log) and `windowed` (a windowed statistic).
    struct TwoViews;

    impl Definitions for TwoViews {
        fn column_type(&self, _: &str, _: &str, _: &str) -> Option<ValueType> {
            Some(ValueType::Int64)
        }

        fn derived_type(&self, _: &str, _: &str, _: u32, name: &str) -> Option<ValueType> {
            (name == "tokens").then_some(ValueType::Int64)
        }

        fn keeps_rows(&self, _: &str, view: &str, _: u32) -> bool {
            view != "stateless"
        }
    }

    #[test]
    fn only_versions_whose_rows_do_not_follow_from_the_log_write_rows_of_their_own() {
        let view = |name: &str| ViewEvents {
            view: name.into(),
            version: 1,
            excluded: vec![Exclusion {
                row: 2,
                reason: "anomalous".into(),
            }],
            ..ViewEvents::default()
        };
        let batch = EventBatch {
            project: "p".into(),
            source: "s".into(),
            columns: vec!["x".into()],
            rows: (0..4)
                .map(|x| Row {
                    values: vec![quiver_proto::convert::scalar_to_value(Some(Scalar::Int64(
                        x,
                    )))],
                })
                .collect(),
            event_micros: vec![0; 4],
            entity_keys: vec![b"e".to_vec(); 4],
            views: vec![view("stateless"), view("windowed")],
            ..EventBatch::default()
        };
        let entry = StagedEntry {
            command: command::encode(Kind::Events(EventWrite {
                batches: vec![batch],
                admission_rules: 3,
            })),
            batches: vec![StagedBatch {
                late_rows: vec![3],
                late_reasons: vec!["late: behind".into()],
                ..StagedBatch::default()
            }],
        };
        let files = ExportFiles::collect(&[(7, entry)], &TwoViews);

        let rows = |files: &BTreeMap<(Partition, String), RowsBuilder>| -> Vec<String> {
            files
                .iter()
                .map(|((p, _), b)| format!("{p:?}: {}", b.rows().len()))
                .collect()
        };
        // The source log: every admitted event (row 3 is late); the windowed view's rows without
        // the one it excluded; nothing of the stateless view.
        assert_eq!(
            rows(&files.sources),
            [r#"Source { project: "p", source: "s" }: 3"#]
        );
        assert_eq!(
            rows(&files.events),
            [r#"Events { project: "p", source: "s", view: "windowed", version: 1 }: 2"#]
        );
        // Both views' exclusions and the late row are quarantined all the same.
        let quarantined: usize = files.quarantine.values().map(|q| q.rows.len()).sum();
        assert_eq!(quarantined, 3);
    }

    /// Two empty rows of source `s` for version 1 of view `windowed`, with `derived` columns.
    fn windowed_batch(derived: Vec<quiver_proto::online::DerivedColumn>) -> EventBatch {
        EventBatch {
            project: "p".into(),
            source: "s".into(),
            columns: vec!["x".into()],
            rows: vec![Row::default(); 2],
            event_micros: vec![0; 2],
            entity_keys: vec![b"e".to_vec(); 2],
            views: vec![ViewEvents {
                view: "windowed".into(),
                version: 1,
                derived,
                ..ViewEvents::default()
            }],
            ..EventBatch::default()
        }
    }

    #[test]
    fn a_transform_column_with_only_nulls_keeps_its_declared_type() {
        use quiver_proto::online::DerivedColumn;
        let batch = windowed_batch(vec![DerivedColumn {
            name: "tokens".into(),
            values: vec![quiver_proto::types::Value::default(); 2],
            recompute: None,
        }]);
        let entry = StagedEntry {
            command: command::encode(Kind::Events(EventWrite {
                batches: vec![batch],
                admission_rules: 3,
            })),
            batches: vec![StagedBatch::default()],
        };
        let files = ExportFiles::collect(&[(7, entry)], &TwoViews);
        let (_, rows) = files.events.iter().next().unwrap();
        let tokens = rows
            .rows()
            .columns
            .iter()
            .find(|c| c.name == "tokens")
            .unwrap();
        // Not float64, the type of a column nothing typed: then this range's file and one
        // with a token count would not concatenate, and the version's files never compact.
        assert_eq!(tokens.value_type, ValueType::Int64);
        assert!(tokens.values.iter().all(Option::is_none));
    }

    #[test]
    fn a_backfilled_versions_rows_keep_where_their_events_were_first_admitted() {
        use quiver_proto::online::BackfillChunk;

        use crate::raft::source_clock::{ORIGINAL_ORDER_RULES, RECOMPUTE_RULES};
        let batch = windowed_batch(Vec::new());
        // Chunk entry 40 backfills events first admitted as rows 0 and 3 of entry 5.
        let exported = |rules: u32| {
            let chunk = BackfillChunk {
                batches: vec![batch.clone()],
                admission_rules: rules,
                positions: vec![5 << 32, (5 << 32) | 3],
                ..BackfillChunk::default()
            };
            let entry = StagedEntry {
                command: command::encode(Kind::Backfill(chunk)),
                batches: vec![StagedBatch::default()],
            };
            let files = ExportFiles::collect(&[(40, entry)], &TwoViews);
            assert!(files.sources.is_empty(), "the source log has them already");
            let rows = files.events.values().next().unwrap().rows();
            rows.log_index
                .iter()
                .copied()
                .zip(rows.row.iter().copied())
                .collect::<Vec<_>>()
        };
        assert_eq!(exported(ORIGINAL_ORDER_RULES), [(5, 0), (5, 3)]);
        // Under older rules apply stamped them at the chunk's own positions: so does the export.
        assert_eq!(exported(RECOMPUTE_RULES), [(40, 0), (40, 1)]);
    }
}
