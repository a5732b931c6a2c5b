//! Event files `quiver push` and `quiver load` read: JSON lines, CSV with a header row, and
//! Parquet. Every reader gives the column names, then rows of values typed by the source schema
//! a chunk at a time; a value that does not fit its column is an error naming the file, row and
//! column.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatchReader};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use quiver_common::json_event::json_value;
use quiver_core::scalar::to_f32;
use quiver_core::{Source, ValueType};
use quiver_proto::convert::micros_to_timestamp;
use quiver_proto::ingest::Row;
use quiver_proto::types::value::Kind;
use quiver_proto::types::{Float32List, Value};

/// Rows a reader hands over at a time (a Parquet reader: one record batch).
const CHUNK_ROWS: usize = 4_096;
/// And bytes of text (JSON lines, CSV records): a chunk of wide rows ends sooner.
const CHUNK_BYTES: usize = 4 << 20;

/// Some of an input's rows, in order.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The rows that could be read.
    pub rows: Vec<Row>,
    /// Where each of them is in the input (see [`EventReader::place`]), for messages.
    pub places: Vec<u64>,
    /// The rows that could not be read: each one's place and "where: why". A bad row does
    /// not stop the reading, so a check of the whole input can name every bad row at once.
    pub bad: Vec<(u64, String)>,
}

impl Chunk {
    fn push(&mut self, place: u64, row: Row) {
        self.rows.push(row);
        self.places.push(place);
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.bad.is_empty()
    }
}

/// One file's (or object's) events: its columns, then its rows in order, a chunk at a time, so
/// no file is ever held whole.
pub trait EventReader {
    /// The columns every row has, in order.
    fn columns(&self) -> &[String];
    /// The next rows (at most a few thousand); none once the file is read. An error is the
    /// input's (unreadable, not in its format), not a row's.
    fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>>;
    /// Where the row at `place` (one of a chunk's `places`) is, as messages name it:
    /// `file:line` for text, `file: row N` for Parquet.
    fn place(&self, place: u64) -> String;
}

/// What one line (or record) of a text file holds.
enum Line {
    Blank,
    Row(Row),
    /// A row that cannot be read: why, its place in front.
    Bad(String),
}

/// A text file read a line (or record) at a time.
trait TextRows {
    /// The next line's bytes, its place and what it holds; none at the end.
    fn next_row(&mut self) -> anyhow::Result<Option<(usize, u64, Line)>>;
}

/// The next chunk of a text file: up to [`CHUNK_ROWS`] rows or [`CHUNK_BYTES`] of text.
fn text_chunk(reader: &mut impl TextRows) -> anyhow::Result<Option<Chunk>> {
    let (mut chunk, mut bytes) = (Chunk::default(), 0);
    while chunk.rows.len() + chunk.bad.len() < CHUNK_ROWS && bytes < CHUNK_BYTES {
        let Some((len, place, line)) = reader.next_row()? else {
            break;
        };
        bytes += len;
        match line {
            Line::Blank => {}
            Line::Row(row) => chunk.push(place, row),
            Line::Bad(why) => chunk.bad.push((place, why)),
        }
    }
    Ok((!chunk.is_empty()).then_some(chunk))
}

/// A JSON-lines file: one object per line, keys are column names.
pub fn open_jsonl(path: &Path, source: &Source) -> anyhow::Result<Box<dyn EventReader>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(JsonLines {
        lines: BufReader::new(file).lines(),
        line: 0,
        path: path.display().to_string(),
        columns: source.schema.iter().map(|c| c.name.clone()).collect(),
        source: source.clone(),
    }))
}

struct JsonLines {
    lines: std::io::Lines<BufReader<std::fs::File>>,
    /// Lines read so far.
    line: usize,
    path: String,
    columns: Vec<String>,
    source: Source,
}

impl EventReader for JsonLines {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>> {
        text_chunk(self)
    }

    fn place(&self, line: u64) -> String {
        format!("{}:{line}", self.path)
    }
}

/// Why `name` is refused as a column of `source`, naming the ones it has (as ingest does).
fn not_a_column(name: &str, source: &Source) -> String {
    let columns: Vec<&str> = source.schema.iter().map(|c| c.name.as_str()).collect();
    format!(
        "{name:?} is not a column of source {:?} (its columns: {})",
        source.name,
        columns.join(", ")
    )
}

impl JsonLines {
    /// The row a line holds, or why it holds none.
    fn row(&self, line: &str) -> Result<Row, String> {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
        if let Some(unknown) = object.keys().find(|k| self.source.column(k).is_none()) {
            return Err(not_a_column(unknown, &self.source));
        }
        let values = self
            .source
            .schema
            .iter()
            .map(|c| {
                json_value(object.get(&c.name), c.value_type)
                    .map_err(|e| format!("column {:?}: {e}", c.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Row { values })
    }
}

impl TextRows for JsonLines {
    fn next_row(&mut self) -> anyhow::Result<Option<(usize, u64, Line)>> {
        let Some(line) = self.lines.next() else {
            return Ok(None);
        };
        self.line += 1;
        let place = self.line as u64;
        let at = || self.place(place);
        let line = match line {
            Ok(line) => line,
            // The line was read whole; only its bytes are not text.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Ok(Some((
                    0,
                    place,
                    Line::Bad(format!("{}: not UTF-8 text", at())),
                )))
            }
            Err(e) => return Err(anyhow::Error::new(e).context(at())),
        };
        if line.trim().is_empty() {
            return Ok(Some((line.len(), place, Line::Blank)));
        }
        let held = match self.row(&line) {
            Ok(row) => Line::Row(row),
            Err(why) => Line::Bad(format!("{}: {why}", at())),
        };
        Ok(Some((line.len(), place, held)))
    }
}

/// A CSV file with a header row naming the columns; an empty cell is null.
pub fn open_csv(path: &Path, source: &Source) -> anyhow::Result<Box<dyn EventReader>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: unreadable header", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    anyhow::ensure!(
        !header.is_empty(),
        "{}: the file is empty (a CSV file starts with a header row naming its columns)",
        path.display()
    );
    let types = header
        .iter()
        .map(|h| {
            source
                .column(h)
                .map(|c| c.value_type)
                .with_context(|| format!("{}: header {}", path.display(), not_a_column(h, source)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Box::new(Csv {
        records: reader.into_records(),
        record: 0,
        path: path.display().to_string(),
        header,
        types,
    }))
}

struct Csv {
    records: csv::StringRecordsIntoIter<std::fs::File>,
    /// Records read so far.
    record: usize,
    path: String,
    header: Vec<String>,
    types: Vec<ValueType>,
}

impl EventReader for Csv {
    fn columns(&self) -> &[String] {
        &self.header
    }

    fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>> {
        text_chunk(self)
    }

    fn place(&self, line: u64) -> String {
        format!("{}:{line}", self.path)
    }
}

impl TextRows for Csv {
    fn next_row(&mut self) -> anyhow::Result<Option<(usize, u64, Line)>> {
        let Some(record) = self.records.next() else {
            return Ok(None);
        };
        self.record += 1;
        // The header is line 1.
        let place = self.record as u64 + 1;
        let at = || self.place(place);
        let record = match record {
            Ok(record) => record,
            Err(e) if e.is_io_error() => return Err(anyhow::Error::new(e).context(at())),
            // A record with another number of fields, or not UTF-8: the reader goes on.
            Err(e) => {
                let why = match e.kind() {
                    csv::ErrorKind::UnequalLengths { len, .. } => {
                        format!("{len} fields where the header has {}", self.header.len())
                    }
                    csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
                    _ => e.to_string(),
                };
                return Ok(Some((0, place, Line::Bad(format!("{}: {why}", at())))));
            }
        };
        let values = record
            .iter()
            .zip(&self.types)
            .zip(&self.header)
            .map(|((cell, t), h)| {
                text_value(cell, *t).map_err(|e| format!("{}: column {h:?}: {e:#}", at()))
            })
            .collect::<Result<Vec<_>, _>>();
        let held = match values {
            Ok(values) => Line::Row(Row { values }),
            Err(why) => Line::Bad(why),
        };
        Ok(Some((record.as_slice().len(), place, held)))
    }
}

fn value(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

fn text_value(cell: &str, t: ValueType) -> anyhow::Result<Value> {
    if cell.is_empty() {
        return Ok(Value { kind: None });
    }
    Ok(match t {
        ValueType::Int64 => value(Kind::Int64Value(
            cell.parse()
                .with_context(|| format!("{cell:?} is not an int64"))?,
        )),
        ValueType::Float64 => value(Kind::Float64Value(
            cell.parse()
                .with_context(|| format!("{cell:?} is not a number"))?,
        )),
        ValueType::Float32 => value(Kind::Float32Value(
            to_f32(
                cell.parse()
                    .with_context(|| format!("{cell:?} is not a number"))?,
            )
            .map_err(anyhow::Error::msg)?,
        )),
        ValueType::Bool => value(Kind::BoolValue(
            cell.parse()
                .with_context(|| format!("{cell:?} is not true/false"))?,
        )),
        ValueType::String | ValueType::Timestamp => value(Kind::StringValue(cell.to_string())),
        ValueType::Bytes => value(Kind::BytesValue(cell.as_bytes().to_vec())),
        ValueType::Float32List => bail!("float32 lists cannot be read from CSV; use jsonl"),
    })
}

/// A Parquet file: columns named like the source's (any subset that ingest accepts).
pub fn open_parquet(path: &Path, source: &Source) -> anyhow::Result<Box<dyn EventReader>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(open_parquet_from(
        file,
        &path.display().to_string(),
        source,
    )?))
}

/// Parquet from `input` (a file, or an object's bytes), named `name` in errors. A malformed
/// file the `parquet` crate panics on is an error too.
pub fn open_parquet_from(
    input: impl parquet::file::reader::ChunkReader + 'static,
    name: &str,
    source: &Source,
) -> anyhow::Result<ParquetEvents> {
    // The file's own Parquet types, not the Arrow schema a writer may have stored beside them:
    // that would turn pandas' categoricals and pyarrow's dictionary columns into dictionary
    // arrays, where the Parquet types read them as the strings they hold.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let reader = guarded(name, || {
        ParquetRecordBatchReaderBuilder::try_new_with_options(input, options)
            .with_context(|| format!("{name}: not a Parquet file"))?
            .with_batch_size(CHUNK_ROWS)
            .build()
            .with_context(|| format!("{name}: not a Parquet file"))
    })?;
    let schema = reader.schema();
    let mut types = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = source
            .column(field.name())
            .with_context(|| format!("{name}: column {}", not_a_column(field.name(), source)))?;
        types.push(column.value_type);
    }
    Ok(ParquetEvents {
        columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        reader,
        types,
        name: name.to_string(),
        rows_read: 0,
    })
}

/// A Parquet file's events, a record batch at a time.
pub struct ParquetEvents {
    reader: ParquetRecordBatchReader,
    columns: Vec<String>,
    types: Vec<ValueType>,
    name: String,
    /// Rows of the batches read so far (for errors).
    rows_read: usize,
}

impl EventReader for ParquetEvents {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>> {
        let name = self.name.clone();
        let Some(batch) = guarded(&name, || self.reader.next().transpose())
            .with_context(|| format!("{name}: unreadable row group"))?
        else {
            return Ok(None);
        };
        let first = self.rows_read;
        self.rows_read += batch.num_rows();
        let mut rows: Vec<Row> = (0..batch.num_rows())
            .map(|_| Row {
                values: Vec::with_capacity(self.columns.len()),
            })
            .collect();
        // Why each row cannot be read, for the rows that cannot (its first bad column).
        let mut bad: Vec<Option<String>> = vec![None; rows.len()];
        for (c, (array, t)) in batch.columns().iter().zip(&self.types).enumerate() {
            for (r, row) in rows.iter_mut().enumerate() {
                match arrow_value(array, r, *t) {
                    Ok(value) => row.values.push(value),
                    Err(e) => {
                        bad[r].get_or_insert_with(|| {
                            format!(
                                "{}, column {:?}: {e:#}",
                                self.place((first + r) as u64),
                                self.columns[c]
                            )
                        });
                    }
                }
            }
        }
        let mut chunk = Chunk::default();
        for (r, (row, bad)) in rows.into_iter().zip(bad).enumerate() {
            match bad {
                None => chunk.push((first + r) as u64, row),
                Some(why) => chunk.bad.push(((first + r) as u64, why)),
            }
        }
        Ok(Some(chunk))
    }

    fn place(&self, row: u64) -> String {
        format!("{}: row {row}", self.name)
    }
}

/// Runs a step of the `parquet` crate, which asserts on some malformed files: a panic becomes
/// an error naming `name`.
fn guarded<T, E: Into<anyhow::Error>>(
    name: &str,
    step: impl FnOnce() -> Result<T, E>,
) -> anyhow::Result<T> {
    match quiver_lake::event_file::contain_panics(|| Ok(step().map_err(Into::into))) {
        Ok(result) => result,
        Err(panicked) => Err(anyhow::anyhow!("{name}: {panicked}")),
    }
}

/// A decimal's exact text as the nearest float64.
fn decimal(text: &str) -> anyhow::Result<f64> {
    text.parse()
        .with_context(|| format!("decimal {text} is not a number"))
}

/// An integer as a float64, if one holds it exactly (|x| <= 2^53, or a multiple of a power of
/// two beyond that); otherwise an error naming it.
fn exact(x: i128) -> anyhow::Result<f64> {
    let float = x as f64;
    if float as i128 == x {
        Ok(float)
    } else {
        bail!("{x} cannot be held exactly by a float64")
    }
}

/// Element `i` of `array` as a value of a `t` column.
fn arrow_value(array: &ArrayRef, i: usize, t: ValueType) -> anyhow::Result<Value> {
    if array.is_null(i) {
        return Ok(Value { kind: None });
    }
    let int = || -> Option<i64> {
        Some(match array.data_type() {
            DataType::Int64 => array.as_primitive::<Int64Type>().value(i),
            DataType::Int32 => i64::from(array.as_primitive::<Int32Type>().value(i)),
            DataType::Int16 => i64::from(array.as_primitive::<Int16Type>().value(i)),
            DataType::Int8 => i64::from(array.as_primitive::<Int8Type>().value(i)),
            DataType::UInt32 => i64::from(array.as_primitive::<UInt32Type>().value(i)),
            DataType::UInt16 => i64::from(array.as_primitive::<UInt16Type>().value(i)),
            DataType::UInt8 => i64::from(array.as_primitive::<UInt8Type>().value(i)),
            _ => return None,
        })
    };
    // Floats; decimals (what Spark writes for money) rounded to the nearest float64 from their
    // exact text; integers a float64 holds exactly (as the Python client casts them).
    let float = || -> anyhow::Result<Option<f64>> {
        Ok(Some(match array.data_type() {
            DataType::Float64 => array.as_primitive::<Float64Type>().value(i),
            DataType::Float32 => f64::from(array.as_primitive::<Float32Type>().value(i)),
            DataType::Decimal128(_, _) => {
                decimal(&array.as_primitive::<Decimal128Type>().value_as_string(i))?
            }
            DataType::Decimal256(_, _) => {
                decimal(&array.as_primitive::<Decimal256Type>().value_as_string(i))?
            }
            DataType::UInt64 => exact(array.as_primitive::<UInt64Type>().value(i) as i128)?,
            _ => match int() {
                Some(x) => exact(i128::from(x))?,
                None => return Ok(None),
            },
        }))
    };
    let text = || -> Option<String> {
        match array.data_type() {
            DataType::Utf8 => Some(array.as_string::<i32>().value(i).to_string()),
            DataType::LargeUtf8 => Some(array.as_string::<i64>().value(i).to_string()),
            _ => None,
        }
    };
    let micros = || -> Option<i64> {
        Some(match array.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => array
                .as_primitive::<TimestampSecondType>()
                .value(i)
                .saturating_mul(1_000_000),
            DataType::Timestamp(TimeUnit::Millisecond, _) => array
                .as_primitive::<TimestampMillisecondType>()
                .value(i)
                .saturating_mul(1_000),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                array.as_primitive::<TimestampMicrosecondType>().value(i)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => array
                .as_primitive::<TimestampNanosecondType>()
                .value(i)
                .div_euclid(1_000),
            // A date is its midnight, UTC (as the Python client sends one).
            DataType::Date32 => i64::from(array.as_primitive::<Date32Type>().value(i))
                .saturating_mul(86_400_000_000),
            DataType::Date64 => array
                .as_primitive::<Date64Type>()
                .value(i)
                .saturating_mul(1_000),
            _ => return None,
        })
    };
    let kind = match t {
        ValueType::Int64 => match array.data_type() {
            DataType::UInt64 => {
                let x = array.as_primitive::<UInt64Type>().value(i);
                let x =
                    i64::try_from(x).map_err(|_| anyhow::anyhow!("{x} is out of int64's range"))?;
                Some(Kind::Int64Value(x))
            }
            _ => int().map(Kind::Int64Value),
        },
        ValueType::Float64 => float()?.map(Kind::Float64Value),
        ValueType::Float32 => float()?
            .map(|x| to_f32(x).map(Kind::Float32Value))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        ValueType::Bool => match array.data_type() {
            DataType::Boolean => Some(Kind::BoolValue(array.as_boolean().value(i))),
            _ => None,
        },
        ValueType::String => text().map(Kind::StringValue),
        ValueType::Bytes => match array.data_type() {
            DataType::Binary => Some(Kind::BytesValue(array.as_binary::<i32>().value(i).to_vec())),
            _ => text().map(|s| Kind::BytesValue(s.into_bytes())),
        },
        ValueType::Timestamp => micros()
            .map(|m| Kind::TimestampValue(micros_to_timestamp(m)))
            .or_else(|| text().map(Kind::StringValue)),
        ValueType::Float32List => {
            let list = match array.data_type() {
                DataType::List(_) => Some(array.as_list::<i32>().value(i)),
                DataType::LargeList(_) => Some(array.as_list::<i64>().value(i)),
                _ => None,
            };
            // A null element has no value to send (its slot in the buffer holds whatever was
            // there): refused, as JSON lines refuse `null` in a list.
            if list.as_ref().is_some_and(|list| list.null_count() > 0) {
                anyhow::bail!("a float32 list value holds a null element; lists cannot hold nulls");
            }
            // float64 elements (what pandas and pyarrow write by default) as float32, as JSON
            // lines' numbers and the Python client's lists are.
            let values = match list {
                Some(list) => match list.data_type() {
                    DataType::Float32 => Some(list.as_primitive::<Float32Type>().values().to_vec()),
                    DataType::Float64 => Some(
                        list.as_primitive::<Float64Type>()
                            .values()
                            .iter()
                            .map(|&x| to_f32(x))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(anyhow::Error::msg)?,
                    ),
                    _ => None,
                },
                None => None,
            };
            values.map(|values| Kind::Float32ListValue(Float32List { values }))
        }
    };
    kind.map(|k| Value { kind: Some(k) })
        .with_context(|| format!("expected {t}, the file has {}", array.data_type()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use parquet::arrow::ArrowWriter;
    use quiver_core::Column;

    use super::*;

    /// Every row of `reader`, with its columns.
    fn read_all(
        reader: anyhow::Result<Box<dyn EventReader>>,
    ) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
        let mut reader = reader?;
        let mut rows = Vec::new();
        while let Some(mut chunk) = reader.next_chunk()? {
            if let Some((_, bad)) = chunk.bad.first() {
                anyhow::bail!("{bad}");
            }
            rows.append(&mut chunk.rows);
        }
        Ok((reader.columns().to_vec(), rows))
    }

    fn read_jsonl(path: &Path, source: &Source) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
        read_all(open_jsonl(path, source))
    }

    fn read_csv(path: &Path, source: &Source) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
        read_all(open_csv(path, source))
    }

    fn read_parquet(path: &Path, source: &Source) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
        read_all(open_parquet(path, source))
    }

    fn source() -> Source {
        let column = |name: &str, value_type| Column {
            name: name.into(),
            value_type,
        };
        Source {
            name: "transactions".into(),
            entity: "user".into(),
            timestamp_field: "ts".into(),
            allowed_lateness: std::time::Duration::from_secs(60),
            schema: vec![
                column("user_id", ValueType::Int64),
                column("ts", ValueType::Timestamp),
                column("amount", ValueType::Float64),
                column("merchant", ValueType::String),
            ],
            description: String::new(),
            kafka: None,
            log_retention: None,
        }
    }

    fn write(path: &Path, batch: RecordBatch) {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn parquet_rows_become_typed_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![5_000_000, 6_000_000])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        write(&path, batch);
        let (columns, rows) = read_parquet(&path, &source()).unwrap();
        assert_eq!(columns, ["user_id", "ts", "amount"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].values[0].kind, Some(Kind::Int64Value(1)));
        assert_eq!(
            rows[1].values[1].kind,
            Some(Kind::TimestampValue(micros_to_timestamp(6_000_000)))
        );
        assert_eq!(rows[0].values[2].kind, Some(Kind::Float64Value(1.5)));
        assert_eq!(rows[1].values[2].kind, None, "null stays null");
    }

    #[test]
    fn parquet_errors_name_the_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let batch = RecordBatch::try_from_iter([(
            "amount",
            Arc::new(StringArray::from(vec!["1.5", "x"])) as ArrayRef,
        )])
        .unwrap();
        write(&path, batch);
        let error = format!("{:#}", read_parquet(&path, &source()).unwrap_err());
        assert!(
            error.contains("row 0, column \"amount\": expected float64, the file has Utf8"),
            "{error}"
        );
        let unknown = dir.path().join("unknown.parquet");
        let batch = RecordBatch::try_from_iter([(
            "colour",
            Arc::new(StringArray::from(vec!["red"])) as ArrayRef,
        )])
        .unwrap();
        write(&unknown, batch);
        let error = format!("{:#}", read_parquet(&unknown, &source()).unwrap_err());
        assert!(
            error.contains(
                "column \"colour\" is not a column of source \"transactions\" (its columns: \
                 user_id, ts, amount, merchant)"
            ),
            "{error}"
        );
    }

    /// What pandas, pyarrow and Spark write for these columns: categoricals (dictionary
    /// columns), integer and decimal amounts, dates, unsigned ids.
    #[test]
    fn parquet_dictionaries_decimals_dates_and_integers_are_read_as_their_values() {
        use arrow_array::{Date32Array, Decimal128Array, DictionaryArray, UInt64Array};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typed.parquet");
        let merchants: DictionaryArray<Int32Type> = vec!["m1", "m2", "m1"].into_iter().collect();
        let batch = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(UInt64Array::from(vec![1, 2, u64::MAX])) as ArrayRef,
            ),
            (
                "ts",
                Arc::new(Date32Array::from(vec![0, 20_000, 20_001])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(vec![150, -7, 10])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ) as ArrayRef,
            ),
            ("merchant", Arc::new(merchants) as ArrayRef),
        ])
        .unwrap();
        write(&path, batch);
        let mut reader = open_parquet(&path, &source()).unwrap();
        let chunk = reader.next_chunk().unwrap().unwrap();
        let row = |r: usize| -> Vec<Option<Kind>> {
            chunk.rows[r]
                .values
                .iter()
                .map(|v| v.kind.clone())
                .collect()
        };
        assert_eq!(
            row(0),
            [
                Some(Kind::Int64Value(1)),
                Some(Kind::TimestampValue(micros_to_timestamp(0))),
                Some(Kind::Float64Value(1.5)),
                Some(Kind::StringValue("m1".into())),
            ]
        );
        assert_eq!(
            row(1)[1..],
            [
                Some(Kind::TimestampValue(micros_to_timestamp(
                    20_000 * 86_400_000_000
                ))),
                Some(Kind::Float64Value(-0.07)),
                Some(Kind::StringValue("m2".into())),
            ]
        );
        assert_eq!(chunk.rows.len(), 2, "the third row is bad");
        assert_eq!(chunk.bad.len(), 1);
        assert!(
            chunk.bad[0].1.ends_with(
                "row 2, column \"user_id\": 18446744073709551615 is out of int64's range"
            ),
            "{}",
            chunk.bad[0].1
        );
        // Integers in a float64 column: those a float64 holds exactly.
        let batch = RecordBatch::try_from_iter([(
            "amount",
            Arc::new(Int64Array::from(vec![150, (1 << 53) + 1])) as ArrayRef,
        )])
        .unwrap();
        write(&path, batch);
        let mut reader = open_parquet(&path, &source()).unwrap();
        let chunk = reader.next_chunk().unwrap().unwrap();
        assert_eq!(
            chunk.rows[0].values[0].kind,
            Some(Kind::Float64Value(150.0))
        );
        assert!(
            chunk.bad[0].1.ends_with(
                "column \"amount\": 9007199254740993 cannot be held exactly by a float64"
            ),
            "{}",
            chunk.bad[0].1
        );
    }

    #[test]
    fn parquet_float_lists_are_read_and_null_elements_refused() {
        use arrow_array::builder::{Float32Builder, Float64Builder, ListBuilder};
        let mut source = source();
        source.schema.push(Column {
            name: "vec".into(),
            value_type: ValueType::Float32List,
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists.parquet");
        let mut doubles = ListBuilder::new(Float64Builder::new());
        doubles.append_value([Some(1.5), Some(-2.0)]);
        doubles.append_null();
        write(
            &path,
            RecordBatch::try_from_iter([("vec", Arc::new(doubles.finish()) as ArrayRef)]).unwrap(),
        );
        let (_, rows) = read_parquet(&path, &source).unwrap();
        assert_eq!(
            rows[0].values[0].kind,
            Some(Kind::Float32ListValue(Float32List {
                values: vec![1.5, -2.0]
            }))
        );
        assert_eq!(rows[1].values[0].kind, None, "a null list stays null");
        let mut floats = ListBuilder::new(Float32Builder::new());
        floats.append_value([Some(1.0)]);
        floats.append_value([Some(2.0), None]);
        write(
            &path,
            RecordBatch::try_from_iter([("vec", Arc::new(floats.finish()) as ArrayRef)]).unwrap(),
        );
        let error = format!("{:#}", read_parquet(&path, &source).unwrap_err());
        assert!(
            error.contains("row 1, column \"vec\": a float32 list value holds a null element"),
            "{error}"
        );
    }

    /// Pushed and loaded files come from users: mutated JSON-lines, CSV and Parquet files are
    /// read or refused with an error, never a panic.
    #[test]
    fn fuzz_mutated_event_files_are_read_or_refused() {
        use quiver_core::mutation::{self, mutate, Rng};
        let dir = tempfile::tempdir().unwrap();
        let parquet = dir.path().join("valid.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![5, 6, 7])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-2.0)])) as ArrayRef,
            ),
            (
                "merchant",
                Arc::new(StringArray::from(vec!["a", "bb", "ccc"])) as ArrayRef,
            ),
        ])
        .unwrap();
        write(&parquet, batch);
        type Reader = fn(&Path, &Source) -> anyhow::Result<(Vec<String>, Vec<Row>)>;
        let valid: [(&str, Vec<u8>, Reader); 3] = [
            (
                "jsonl",
                br#"{"user_id": 1, "ts": "2026-12-06T10:00:00Z", "amount": 1.5, "merchant": "m"}
{"user_id": 2, "ts": "2026-12-06T10:00:01.5+01:00", "amount": null}
"#
                .to_vec(),
                read_jsonl,
            ),
            (
                "csv",
                b"user_id,ts,amount,merchant\n1,2026-12-06T10:00:00Z,1.5,m\n2,2026-12-06T10:00:01Z,,\"x,y\"\n"
                    .to_vec(),
                read_csv,
            ),
            ("parquet", std::fs::read(&parquet).unwrap(), read_parquet),
        ];
        for (_, bytes, read) in &valid {
            let path = dir.path().join("check");
            std::fs::write(&path, bytes).unwrap();
            assert!(read(&path, &source()).is_ok());
        }
        let mut rng = Rng::from_env(0xF11E_5000_0000_0002);
        let mut refused = [0; 3];
        for _ in 0..mutation::cases(3_000) {
            let which = rng.below(valid.len());
            let (extension, bytes, read) = &valid[which];
            let path = dir.path().join(format!("mutated.{extension}"));
            std::fs::write(&path, mutate(&mut rng, bytes.clone())).unwrap();
            refused[which] += usize::from(read(&path, &source()).is_err());
        }
        assert!(refused.iter().all(|r| *r > 0), "{refused:?}");
    }
}
