//! A view version's rows computed from its source's log: every admitted event of the source,
//! in log order, through the version's transforms (`quiver-common::view_feed::derive`, the code
//! compute and backfills run), the rows a `zscore` excludes dropped. So any version has
//! training data as soon as its source's events are exported, whenever it was defined.
//!
//! Only versions whose rows follow from the log alone are computed this way
//! (`FeatureView::rows_follow_from_source_log`): stateless transforms, and running statistics
//! over the whole log (no `window`). A windowed statistic is read online as of the moment a
//! batch was computed, which the log does not record, so such a version's snapshots read the
//! rows it aggregated online (`events/` in the offline store, written for those versions only).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use quiver_common::view_feed::{derive, output_type, Derived, FeedRows, Statistics};
use quiver_core::{Scalar, Transform};
use quiver_lake::columns::{array_of, scalar_at, value_type};
use quiver_lake::event_file::{ENTITY, EVENT_TIME, LOG_INDEX, ROW};

/// The source columns `transforms` and a view's value `columns` read (names that are not
/// transform outputs).
pub fn source_columns(transforms: &[Transform], columns: &[String]) -> Vec<String> {
    let mut wanted: Vec<String> = Vec::new();
    let inputs = transforms.iter().map(|t| t.input.as_str());
    for name in inputs.chain(columns.iter().map(String::as_str)) {
        let derived = transforms.iter().any(|t| t.name == name);
        if !derived && !wanted.iter().any(|w| w == name) {
            wanted.push(name.to_string());
        }
    }
    wanted
}

/// The version's rows from the source log's `chunks` (record batches of source-log files, any
/// order): the metadata columns, the source columns of `columns` and the transform outputs of
/// `columns`, excluded rows dropped. One batch, in log order. The transforms' running
/// statistics start from `statistics` (the rows before these) and end after these rows.
pub fn view_rows(
    chunks: &[RecordBatch],
    transforms: &[Transform],
    columns: &[String],
    statistics: &mut Statistics,
) -> Result<RecordBatch, String> {
    let rows = LogOrder::of(chunks)?;
    let Derived {
        columns: derived,
        excluded,
    } = derive(transforms, &rows, statistics);
    let mut dropped = vec![false; rows.order.len()];
    for (row, _) in &excluded {
        dropped[*row] = true;
    }
    let kept: Vec<usize> = (0..rows.order.len()).filter(|r| !dropped[*r]).collect();
    let positions: Vec<(usize, usize)> = kept.iter().map(|&r| rows.order[r]).collect();

    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for name in [ENTITY, EVENT_TIME, LOG_INDEX, ROW] {
        let array = rows
            .interleave(name, &positions)?
            .ok_or_else(|| format!("a source-log file has no {name} column"))?;
        fields.push(Field::new(name, array.data_type().clone(), false));
        arrays.push(array);
    }
    for name in columns {
        let array = match transforms.iter().position(|t| t.name == *name) {
            Some(t) => {
                let values: Vec<Option<Scalar>> =
                    kept.iter().map(|&r| derived[t].1[r].clone()).collect();
                Some(array_of(&values, output_type(&transforms[t].op)))
            }
            None => rows.interleave(name, &positions)?,
        };
        if let Some(array) = array {
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(array);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

/// The rows of several chunks in log order (log index, row in entry).
struct LogOrder<'a> {
    chunks: &'a [RecordBatch],
    /// (chunk, row in chunk), in log order.
    order: Vec<(usize, usize)>,
    /// Source column names; per chunk, each one's array (a file may lack a column).
    names: Vec<String>,
    arrays: Vec<Vec<Option<ArrayRef>>>,
}

impl<'a> LogOrder<'a> {
    fn of(chunks: &'a [RecordBatch]) -> Result<Self, String> {
        let mut keyed: Vec<(u64, usize, usize)> = Vec::new();
        for (c, chunk) in chunks.iter().enumerate() {
            let sequences = crate::dataset::sequences(chunk)?;
            keyed.extend(sequences.into_iter().enumerate().map(|(i, s)| (s, c, i)));
        }
        keyed.sort_unstable();
        let mut names: Vec<String> = Vec::new();
        for chunk in chunks {
            for field in chunk.schema().fields() {
                if !names.contains(field.name()) {
                    names.push(field.name().clone());
                }
            }
        }
        let arrays = chunks
            .iter()
            .map(|chunk| {
                names
                    .iter()
                    .map(|n| chunk.column_by_name(n).cloned())
                    .collect()
            })
            .collect();
        Ok(Self {
            chunks,
            order: keyed.into_iter().map(|(_, c, i)| (c, i)).collect(),
            names,
            arrays,
        })
    }

    /// Column `name` at `positions`, or `None` if no chunk has it. Chunks that lack it read
    /// as nulls; chunks whose types differ (a column typed by a fallback where it held only
    /// nulls) are rebuilt from their values, typed by the first value.
    fn interleave(
        &self,
        name: &str,
        positions: &[(usize, usize)],
    ) -> Result<Option<ArrayRef>, String> {
        let Some(n) = self.names.iter().position(|x| x == name) else {
            return Ok(None);
        };
        let parts: Vec<&ArrayRef> = self.arrays.iter().filter_map(|a| a[n].as_ref()).collect();
        let data_type = parts[0].data_type().clone();
        if parts.iter().all(|p| *p.data_type() == data_type) {
            let full: Vec<ArrayRef> = self
                .arrays
                .iter()
                .zip(self.chunks)
                .map(|(a, chunk)| {
                    a[n].clone().unwrap_or_else(|| {
                        arrow_array::new_null_array(&data_type, chunk.num_rows())
                    })
                })
                .collect();
            let refs: Vec<&dyn Array> = full.iter().map(|a| a.as_ref()).collect();
            return arrow_select::interleave::interleave(&refs, positions)
                .map(Some)
                .map_err(|e| format!("column {name:?}: {e}"));
        }
        let values: Vec<Option<Scalar>> = positions
            .iter()
            .map(|&(c, i)| self.arrays[c][n].as_ref().and_then(|a| scalar_at(a, i)))
            .collect();
        let value_type = values
            .iter()
            .flatten()
            .next()
            .map_or(quiver_core::ValueType::Float64, value_type);
        Ok(Some(array_of(&values, value_type)))
    }
}

impl FeedRows for LogOrder<'_> {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    fn value(&self, column: usize, row: usize) -> Option<Scalar> {
        let (c, i) = self.order[row];
        scalar_at(self.arrays[c][column].as_ref()?.as_ref(), i)
    }

    fn event_micros(&self, row: usize) -> i64 {
        let (c, i) = self.order[row];
        self.chunks[c]
            .column_by_name(EVENT_TIME)
            .and_then(|a| {
                a.as_primitive_opt::<arrow_array::types::TimestampMicrosecondType>()
                    .map(|t| t.value(i))
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use arrow_array::types::{UInt32Type, UInt64Type};
    use quiver_common::view_feed::{feed, PlannedView};
    use quiver_core::{Aggregation, Feature, FeatureView, TransformOp, ValueType, Window};
    use quiver_lake::event_file::{Column, EventRows};
    use quiver_proto::convert::{scalar_to_value, value_to_scalar};
    use quiver_proto::ingest::Row;
    use quiver_proto::online::EventBatch;

    use super::*;

    fn view() -> FeatureView {
        let transform = |name: &str, input: &str, op| Transform {
            name: name.into(),
            input: input.into(),
            op,
        };
        let sum = |name: &str, column: &str, value_type| Feature {
            name: name.into(),
            column: Some(column.into()),
            aggregation: Aggregation::Sum,
            window: Window::Lifetime,
            value_type,
            description: String::new(),
        };
        FeatureView {
            name: "f".into(),
            entity: "user".into(),
            source: "tx".into(),
            ttl: None,
            transforms: vec![
                transform(
                    "amount_z",
                    "amount",
                    TransformOp::ZScore {
                        window: None,
                        exclude_above: Some(2.0),
                    },
                ),
                transform("tokens", "note", TransformOp::TokenCount),
            ],
            features: vec![
                sum("tokens_sum", "tokens", ValueType::Int64),
                sum("z_sum", "amount_z", ValueType::Float64),
                sum("amount_sum", "amount", ValueType::Float64),
            ],
            description: String::new(),
        }
    }

    /// Events in log order: (log index, row, amount, note); every 7th amount far out.
    fn events() -> Vec<(u64, u32, f64, String)> {
        (0..300u64)
            .map(|i| {
                let amount = if i % 7 == 6 { 500.0 } else { (i % 13) as f64 };
                (
                    10 + i / 4,
                    (i % 4) as u32,
                    amount,
                    "a b c".repeat(1 + (i % 3) as usize),
                )
            })
            .collect()
    }

    /// The same events as source-log files would hold them: split into chunks out of order.
    fn chunks(events: &[(u64, u32, f64, String)]) -> Vec<RecordBatch> {
        let rows = |part: &[(u64, u32, f64, String)]| {
            EventRows {
                log_index: part.iter().map(|e| e.0).collect(),
                row: part.iter().map(|e| e.1).collect(),
                event_micros: part.iter().map(|e| e.0 as i64 * 1_000).collect(),
                ingested_micros: vec![0; part.len()],
                entity: part.iter().map(|e| vec![(e.0 % 5) as u8]).collect(),
                columns: vec![
                    Column {
                        name: "amount".into(),
                        value_type: ValueType::Float64,
                        values: part.iter().map(|e| Some(Scalar::Float64(e.2))).collect(),
                    },
                    Column {
                        name: "note".into(),
                        value_type: ValueType::String,
                        values: part
                            .iter()
                            .map(|e| Some(Scalar::String(e.3.clone())))
                            .collect(),
                    },
                ],
            }
            .to_batch()
            .unwrap()
        };
        vec![
            rows(&events[200..]),
            rows(&events[..90]),
            rows(&events[90..200]),
        ]
    }

    #[test]
    fn the_source_log_gives_what_feeding_each_entry_in_log_order_gives() {
        let definition = Arc::new(view());
        let events = events();
        let columns: Vec<String> = ["tokens", "amount_z", "amount"].map(String::from).to_vec();
        let mut carried = Statistics::new();
        let got = view_rows(
            &chunks(&events)[1..],
            &definition.transforms,
            &columns,
            &mut carried,
        )
        .unwrap();
        // The rest continue from the statistics the first rows left.
        let rest = view_rows(
            &chunks(&events)[..1],
            &definition.transforms,
            &columns,
            &mut carried,
        )
        .unwrap();
        let got = arrow_select::concat::concat_batches(&got.schema(), [&got, &rest]).unwrap();

        // Compute's way: one batch per log entry, statistics carried from entry to entry.
        let planned = PlannedView::new(definition.clone(), 1);
        let mut statistics = Statistics::new();
        let mut want: Vec<(u64, u32, Option<Scalar>, Option<Scalar>)> = Vec::new();
        for entry in events.chunk_by(|a, b| a.0 == b.0) {
            let mut batch = EventBatch {
                columns: vec!["amount".into(), "note".into()],
                rows: entry
                    .iter()
                    .map(|e| Row {
                        values: vec![
                            scalar_to_value(Some(Scalar::Float64(e.2))),
                            scalar_to_value(Some(Scalar::String(e.3.clone()))),
                        ],
                    })
                    .collect(),
                event_micros: entry.iter().map(|e| e.0 as i64 * 1_000).collect(),
                ..Default::default()
            };
            feed(&mut batch, &planned, &mut statistics);
            let fed = &batch.views[0];
            for (row, e) in entry.iter().enumerate() {
                if fed.excluded.iter().any(|x| x.row as usize == row) {
                    continue;
                }
                let derived = |d: usize| value_to_scalar(&fed.derived[d].values[row]);
                want.push((e.0, e.1, derived(1), derived(0)));
            }
        }
        assert!(want.len() < events.len(), "the test excludes some rows");
        assert_eq!(got.num_rows(), want.len());
        let log_index = got
            .column_by_name(LOG_INDEX)
            .unwrap()
            .as_primitive::<UInt64Type>();
        let row = got
            .column_by_name(ROW)
            .unwrap()
            .as_primitive::<UInt32Type>();
        for (i, w) in want.iter().enumerate() {
            assert_eq!((log_index.value(i), row.value(i)), (w.0, w.1));
            assert_eq!(scalar_at(got.column_by_name("tokens").unwrap(), i), w.2);
            assert_eq!(scalar_at(got.column_by_name("amount_z").unwrap(), i), w.3);
        }
    }

    #[test]
    fn only_versions_the_log_decides_are_computed_from_it() {
        let mut windowed = view();
        assert!(windowed.rows_follow_from_source_log());
        windowed.transforms[0].op = TransformOp::ZScore {
            window: Some(std::time::Duration::from_secs(3600)),
            exclude_above: None,
        };
        assert!(!windowed.rows_follow_from_source_log());
        assert_eq!(
            source_columns(&view().transforms, &["tokens".into(), "amount".into()]),
            ["amount", "note"]
        );
    }
}
