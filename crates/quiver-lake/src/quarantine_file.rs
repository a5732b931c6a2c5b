//! The Parquet form of the quarantine log: every row kept out of an aggregation, with why.
//! Rows rejected as late are kept out of every view (`view` is empty); a row excluded as
//! anomalous is kept out of one view. The row itself is stored as JSON (`row`), so one file
//! holds rows of any source version.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use quiver_core::Scalar;

use crate::event_file::{metadata_fields, EventRows};

/// One quarantined row beyond the metadata columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// The view it was excluded from; empty when rejected as late.
    pub view: String,
    /// Why.
    pub reason: String,
    /// The producer it came from.
    pub producer_id: String,
    /// The producer's batch number.
    pub sequence: u64,
    /// The source columns and their values.
    pub row: Vec<(String, Option<Scalar>)>,
}

/// Quarantined rows: the metadata columns of [`EventRows`] (its value columns unused) plus
/// one [`Quarantined`] per row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuarantineRows {
    /// Log position, times and entity of each row.
    pub meta: EventRows,
    /// What was kept out, and why.
    pub rows: Vec<Quarantined>,
}

impl QuarantineRows {
    /// The rows as one record batch.
    pub fn to_batch(&self) -> Result<RecordBatch, String> {
        let meta = EventRows {
            columns: Vec::new(),
            ..self.meta.clone()
        }
        .to_batch()?;
        let mut fields: Vec<Field> = metadata_fields();
        let mut arrays: Vec<ArrayRef> = meta.columns().to_vec();
        let strings = |f: &dyn Fn(&Quarantined) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(self.rows.iter().map(f)))
        };
        for (name, array) in [
            ("view", strings(&|q| q.view.clone())),
            ("reason", strings(&|q| q.reason.clone())),
            ("producer_id", strings(&|q| q.producer_id.clone())),
            ("row", strings(&|q| row_json(&q.row))),
        ] {
            fields.push(Field::new(name, DataType::Utf8, false));
            arrays.push(array);
        }
        fields.push(Field::new("sequence", DataType::UInt64, false));
        arrays.push(Arc::new(UInt64Array::from_iter_values(
            self.rows.iter().map(|q| q.sequence),
        )));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
    }
}

/// A row as a JSON object (timestamps as microseconds, bytes as arrays of numbers).
fn row_json(row: &[(String, Option<Scalar>)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = row
        .iter()
        .map(|(name, value)| {
            let json = match value {
                None => serde_json::Value::Null,
                Some(Scalar::Int64(v) | Scalar::Timestamp(v)) => (*v).into(),
                Some(Scalar::Float64(v)) => serde_json::json!(v),
                Some(Scalar::Float32(v)) => serde_json::json!(v),
                Some(Scalar::Bool(v)) => (*v).into(),
                Some(Scalar::String(v)) => v.clone().into(),
                Some(Scalar::Bytes(v)) => serde_json::json!(v),
                Some(Scalar::Float32List(v)) => serde_json::json!(v),
            };
            (name.clone(), json)
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}
