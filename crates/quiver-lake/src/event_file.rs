//! The Parquet form of exported rows. An events file holds the rows one view version
//! aggregated: metadata columns (log position, event and ingest time, the encoded entity key)
//! then the source's columns and the view's transform outputs, as computed online. The offline
//! path aggregates exactly these values, so it never recomputes a transform differently.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, RecordBatch, TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use quiver_core::{Scalar, ValueType};

use crate::columns::{array_of, data_type, timestamp_type};

/// The Raft log index of the row's entry.
pub const LOG_INDEX: &str = "_log_index";
/// The row's position within its entry; with the log index, the ingest order.
pub const ROW: &str = "_row";
/// The event time.
pub const EVENT_TIME: &str = "_event_time";
/// When ingest received the row.
pub const INGESTED_AT: &str = "_ingested_at";
/// The encoded entity key (Quiver's key encoding of the join-key values).
pub const ENTITY: &str = "_entity";

/// Rows read per record batch.
pub const READ_BATCH_ROWS: usize = 65_536;

/// One value column of exported rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The source column or transform output.
    pub name: String,
    /// Its type.
    pub value_type: ValueType,
    /// One value per row.
    pub values: Vec<Option<Scalar>>,
}

/// Exported rows of one view version (or any rows with these metadata columns).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRows {
    /// The log index of each row's entry.
    pub log_index: Vec<u64>,
    /// Each row's position within its entry.
    pub row: Vec<u32>,
    /// Event times, microseconds.
    pub event_micros: Vec<i64>,
    /// Ingest times, microseconds.
    pub ingested_micros: Vec<i64>,
    /// Encoded entity keys.
    pub entity: Vec<Vec<u8>>,
    /// The value columns.
    pub columns: Vec<Column>,
}

impl EventRows {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.log_index.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.log_index.is_empty()
    }

    /// The rows as one record batch.
    pub fn to_batch(&self) -> Result<RecordBatch, String> {
        let mut fields = metadata_fields();
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(self.log_index.clone())),
            Arc::new(UInt32Array::from(self.row.clone())),
            Arc::new(
                TimestampMicrosecondArray::from(self.event_micros.clone()).with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(self.ingested_micros.clone()).with_timezone("UTC"),
            ),
            Arc::new(BinaryArray::from_iter_values(self.entity.iter())),
        ];
        for column in &self.columns {
            fields.push(Field::new(&column.name, data_type(column.value_type), true));
            arrays.push(array_of(&column.values, column.value_type));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
    }
}

/// The metadata columns every exported file starts with.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(LOG_INDEX, DataType::UInt64, false),
        Field::new(ROW, DataType::UInt32, false),
        Field::new(EVENT_TIME, timestamp_type(), false),
        Field::new(INGESTED_AT, timestamp_type(), false),
        Field::new(ENTITY, DataType::Binary, false),
    ]
}

/// `batch` as a Parquet file (snappy, statistics on, one row group per million rows).
pub fn write_parquet(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let properties = parquet_properties(&batch.schema(), EVENT_FILE_ROW_GROUP_ROWS);
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(properties))
        .map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Rows per row group of an event file: a file is read whole, so bigger groups only save
/// metadata.
pub const EVENT_FILE_ROW_GROUP_ROWS: usize = 1 << 20;

/// Rows per row group of a training set: a writer holds a whole group encoded until it is
/// complete, so this bounds what `quiver snapshot` buffers (a million-row group was most of
/// its memory), and readers can stream a training set group by group. DuckDB writes groups
/// of 122,880 rows.
pub const TRAINING_SET_ROW_GROUP_ROWS: usize = 1 << 17;

/// How Quiver writes Parquet (event files, training sets): Snappy, row groups of up to
/// `row_group_rows`; floating-point columns with neither a dictionary nor compression,
/// timestamp columns without a dictionary. Measured values and features are close to unique, so a dictionary only grows
/// until the writer gives up on it (interning every value was 57% of `quiver snapshot`'s CPU
/// writing 500,000 rows x 8 float features), and their mantissas are noise to an LZ-style
/// compressor (Snappy was then 31% of it, for little).
pub fn parquet_properties(schema: &Schema, row_group_rows: usize) -> WriterProperties {
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows));
    for field in schema.fields() {
        let column = || parquet::schema::types::ColumnPath::from(field.name().as_str());
        match field.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                properties = properties
                    .set_column_dictionary_enabled(column(), false)
                    .set_column_compression(column(), Compression::UNCOMPRESSED);
            }
            DataType::Timestamp(..) => {
                properties = properties.set_column_dictionary_enabled(column(), false);
            }
            _ => {}
        }
    }
    properties.build()
}

/// The record batches of a Parquet file, only the columns named in `columns` (all when
/// `None`); a named column the file lacks is simply absent from the batches.
pub fn read_parquet(bytes: Bytes, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>, String> {
    contain_panics(|| read_parquet_unguarded(bytes, columns))
}

/// Runs a decoder of bytes from disk or the network, turning a panic inside it into an error:
/// the `parquet` crate asserts on some malformed files (our fuzzer found a dictionary-encoded
/// page without its dictionary), and no file may take a process down.
pub fn contain_panics<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder panicked".into());
        Err(format!("malformed Parquet: {reason}"))
    })
}

fn read_parquet_unguarded(
    bytes: Bytes,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, String> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| e.to_string())?
        .with_batch_size(READ_BATCH_ROWS);
    if let Some(columns) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
    builder
        .build()
        .map_err(|e| e.to_string())?
        .map(|b| b.map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::columns::scalar_at;

    #[test]
    fn rows_survive_a_parquet_round_trip() {
        let rows = EventRows {
            log_index: vec![3, 3, 4],
            row: vec![0, 1, 0],
            event_micros: vec![10, 5, 7],
            ingested_micros: vec![100, 100, 101],
            entity: vec![vec![1], vec![2], vec![1]],
            columns: vec![Column {
                name: "amount".into(),
                value_type: ValueType::Float64,
                values: vec![
                    Some(Scalar::Float64(1.5)),
                    None,
                    Some(Scalar::Float64(-2.0)),
                ],
            }],
        };
        let bytes = write_parquet(&rows.to_batch().unwrap()).unwrap();
        let batches = read_parquet(Bytes::from(bytes), Some(&[ENTITY, "amount"])).unwrap();
        let batch = &batches[0];
        assert_eq!(batch.num_columns(), 2);
        let amount = batch.column_by_name("amount").unwrap();
        assert_eq!(scalar_at(amount.as_ref(), 2), Some(Scalar::Float64(-2.0)));
        assert_eq!(scalar_at(amount.as_ref(), 1), None);
    }

    /// Found by `fuzz_mutated_event_files_are_read_or_refused`: a mutated file whose page is
    /// dictionary-encoded without a dictionary makes the `parquet` crate panic. Reading it is
    /// an error naming the problem, not a crash.
    #[test]
    fn a_file_the_parquet_crate_panics_on_is_an_error() {
        let bytes = include_bytes!("../testdata/dictionary-page-missing.parquet");
        let error = read_parquet(Bytes::from_static(bytes), None).unwrap_err();
        assert!(error.starts_with("malformed Parquet: "), "{error}");
    }
}
