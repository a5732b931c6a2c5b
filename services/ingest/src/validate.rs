//! Checking a pushed batch against its source's schema and normalising it: every row in the
//! schema's column order (absent columns null), event time as a timestamp, the entity key
//! encoded. The first bad row rejects the batch with its index, column and reason.

use quiver_common::registry_cache::Catalog;

use crate::config::IngestConfig;
use quiver_proto::convert::{
    encode_entity, micros_to_timestamp, timestamp_to_micros, value_type, value_type_name,
};
use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::online::EventBatch;
use quiver_proto::types::value::Kind;
use quiver_proto::types::Value;

/// A batch refused, with the reason naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Checks `request` and returns the batch compute takes (views not yet filled).
pub fn normalize(
    catalog: &Catalog,
    request: &PushRequest,
    limits: &IngestConfig,
    received_micros: i64,
) -> Result<EventBatch, Invalid> {
    let max_rows = limits.max_batch_rows;
    let latest = received_micros
        .saturating_add(i64::try_from(limits.max_future_skew.as_micros()).unwrap_or(i64::MAX));
    let bad = |m: String| Invalid(m);
    let project = catalog
        .project(&request.project)
        .map_err(|e| bad(format!("project: {e}")))?;
    let source = catalog.source(&project, &request.source).ok_or_else(|| {
        bad(format!(
            "source: unknown source {:?} in project {project:?}",
            request.source
        ))
    })?;
    let entity = catalog.entity(&project, &source.entity).ok_or_else(|| {
        bad(format!(
            "source: entity {:?} of source {:?} is not loaded",
            source.entity, source.name
        ))
    })?;
    if request.rows.is_empty() {
        if request.producer_id.is_empty() || request.history {
            return Err(bad(
                "rows: a batch needs at least one row (an empty batch only registers a producer, \
                 which needs a producer_id)"
                    .into(),
            ));
        }
        // Registers the producer with its source: from now on it holds the source's watermark
        // back until it sends events (or goes idle), so producers started together can be
        // behind one another without their events turning late.
        return Ok(EventBatch {
            producer_id: request.producer_id.clone(),
            sequence: request.sequence,
            epoch: request.producer_epoch,
            project: project.clone(),
            source: source.name.clone(),
            allowed_lateness_micros: i64::try_from(source.allowed_lateness.as_micros())
                .unwrap_or(i64::MAX),
            received_micros,
            ..EventBatch::default()
        });
    }
    if request.rows.len() > max_rows {
        return Err(bad(format!(
            "rows: {} rows is over the limit of {max_rows} per push; split the batch",
            request.rows.len()
        )));
    }
    let checker = RowChecker::new(source, entity, &request.columns, latest, limits)?;
    let mut batch = EventBatch {
        producer_id: request.producer_id.clone(),
        sequence: request.sequence,
        epoch: request.producer_epoch,
        history: request.history,
        project: project.clone(),
        source: source.name.clone(),
        allowed_lateness_micros: i64::try_from(source.allowed_lateness.as_micros())
            .unwrap_or(i64::MAX),
        columns: source.schema.iter().map(|c| c.name.clone()).collect(),
        rows: Vec::with_capacity(request.rows.len()),
        event_micros: Vec::with_capacity(request.rows.len()),
        entity_keys: Vec::with_capacity(request.rows.len()),
        received_micros,
        ..EventBatch::default()
    };
    for (r, row) in request.rows.iter().enumerate() {
        let event = checker
            .check(row)
            .map_err(|e| bad(e.within(&format!("rows[{r}]"))))?;
        batch.rows.push(event.row);
        batch.event_micros.push(event.event_micros);
        batch.entity_keys.push(event.entity_key);
    }
    Ok(batch)
}

/// Why one row is not an event of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The column at fault, if one is.
    pub column: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl RowError {
    /// The message with the row's path in front, e.g. `rows[3].amount: expected float64`.
    pub fn within(&self, row: &str) -> String {
        match &self.column {
            Some(column) => format!("{row}.{column}: {}", self.reason),
            None => format!("{row}: {}", self.reason),
        }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "column {column:?}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// One checked event: its values in schema order, event time and encoded entity key.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRow {
    /// Every schema column (absent ones null).
    pub row: Row,
    /// Event time, microseconds.
    pub event_micros: i64,
    /// The encoded entity key.
    pub entity_key: Vec<u8>,
}

/// A source's schema prepared for rows whose values come in the order of `columns` (pushes
/// and Kafka messages share it).
pub struct RowChecker<'a> {
    source: &'a quiver_core::Source,
    /// Per given column, its position in the schema.
    slots: Vec<usize>,
    time_column: usize,
    key_columns: Vec<usize>,
    /// The latest event time accepted (ingest's clock plus the allowed skew).
    latest: i64,
    future_skew: std::time::Duration,
}

impl<'a> RowChecker<'a> {
    /// Prepares `source` (of `entity`) for rows given as `columns`; `latest` is the latest event
    /// time accepted. Errors name the column list's fault.
    pub fn new(
        source: &'a quiver_core::Source,
        entity: &quiver_core::Entity,
        columns: &[String],
        latest: i64,
        limits: &IngestConfig,
    ) -> Result<Self, Invalid> {
        let bad = |m: String| Invalid(m);
        // Where each given column goes in the schema.
        let mut slots = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let slot = source
                .schema
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| {
                    bad(format!(
                        "columns[{i}]: {name:?} is not a column of source {:?} (its columns: {})",
                        source.name,
                        source
                            .schema
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            if slots.contains(&slot) {
                return Err(bad(format!("columns[{i}]: {name:?} is given twice")));
            }
            slots.push(slot);
        }
        let given = |name: &str| columns.iter().position(|c| c == name);
        let time_column = given(&source.timestamp_field).ok_or_else(|| {
            bad(format!(
                "columns: the event time column {:?} is missing",
                source.timestamp_field
            ))
        })?;
        let key_columns = entity
            .join_keys
            .iter()
            .map(|k| {
                given(&k.name).ok_or_else(|| {
                    bad(format!(
                        "columns: the join key {:?} (entity {:?}) is missing",
                        k.name, entity.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source,
            slots,
            time_column,
            key_columns,
            latest,
            future_skew: limits.max_future_skew,
        })
    }

    /// Checks one row and normalises it.
    pub fn check(&self, row: &Row) -> Result<CheckedRow, RowError> {
        let mut values = vec![Value { kind: None }; self.source.schema.len()];
        let (event_micros, entity_key) =
            self.walk(row, |slot, value| values[slot] = value.into_owned())?;
        Ok(CheckedRow {
            row: Row { values },
            event_micros,
            entity_key,
        })
    }

    /// Checks one row as [`Self::check`] does, without building its normalised form (`quiver
    /// push` checks a whole file before it sends any of it).
    pub fn validate(&self, row: &Row) -> Result<(), RowError> {
        self.walk(row, |_, _| {}).map(|_| ())
    }

    /// Checks `row`, handing `normalised` each value's schema slot and normalised value; its
    /// event time and encoded entity key.
    fn walk(
        &self,
        row: &Row,
        mut normalised: impl FnMut(usize, std::borrow::Cow<'_, Value>),
    ) -> Result<(i64, Vec<u8>), RowError> {
        let source = self.source;
        let whole = |reason: String| RowError {
            column: None,
            reason,
        };
        if row.values.len() != self.slots.len() {
            return Err(whole(format!(
                "{} values for {} columns",
                row.values.len(),
                self.slots.len()
            )));
        }
        let time_at = |reason: String| RowError {
            column: Some(source.timestamp_field.clone()),
            reason,
        };
        let mut event_time_at = None;
        for (c, value) in row.values.iter().enumerate() {
            let column = &source.schema[self.slots[c]];
            let at = |reason: String| RowError {
                column: Some(column.name.clone()),
                reason,
            };
            // Any timestamp column may be written as an RFC 3339 string.
            let text_time = column.value_type == quiver_core::ValueType::Timestamp
                && matches!(value.kind, Some(Kind::StringValue(_)));
            let value = if c == self.time_column || text_time {
                let time = event_time(value).map_err(at)?;
                if c == self.time_column {
                    event_time_at = Some(timestamp_to_micros(&time));
                }
                std::borrow::Cow::Owned(Value {
                    kind: Some(Kind::TimestampValue(time)),
                })
            } else {
                match value_type(value) {
                    None if self.key_columns.contains(&c) => {
                        return Err(at("the join key is null".into()))
                    }
                    None => std::borrow::Cow::Owned(Value { kind: None }),
                    Some(t) if t == column.value_type => {
                        if let Some(Kind::TimestampValue(time)) = &value.kind {
                            in_range(time).map_err(at)?;
                        }
                        std::borrow::Cow::Borrowed(value)
                    }
                    Some(_) => {
                        return Err(at(format!(
                            "expected {}, got {}",
                            column.value_type,
                            value_type_name(value)
                        )))
                    }
                }
            };
            normalised(self.slots[c], value);
        }
        let Some(event_micros) = event_time_at else {
            return Err(time_at("no event time".into()));
        };
        if event_micros > self.latest {
            return Err(time_at(format!(
                "event time {} is more than {} ahead of ingest's clock",
                quiver_core::timestamp::format_rfc3339(
                    event_micros,
                    quiver_core::timestamp::Fraction::WholeOrNanos
                ),
                humantime::format_duration(self.future_skew)
            )));
        }
        let key_values: Vec<Value> = self
            .key_columns
            .iter()
            .map(|c| row.values[*c].clone())
            .collect();
        let entity_key = encode_entity(&key_values).map_err(|e| whole(e.to_string()))?;
        Ok((event_micros, entity_key))
    }
}

/// Whether a timestamp is one: nanos within a second, and a date of years 0000 to 9999 (what
/// RFC 3339 can write, and microseconds in an i64 hold with room to spare).
fn in_range(t: &prost_types::Timestamp) -> Result<(), String> {
    /// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z, seconds since the epoch.
    const YEARS: std::ops::Range<i64> = -62_167_219_200..253_402_300_800;
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(format!(
            "timestamp nanos {} is not within a second (0 to 999,999,999)",
            t.nanos
        ));
    }
    if !YEARS.contains(&t.seconds) {
        return Err(format!(
            "timestamp seconds {} is outside the years 0000 to 9999",
            t.seconds
        ));
    }
    Ok(())
}

/// An event time: a timestamp, or an RFC 3339 string.
fn event_time(value: &Value) -> Result<prost_types::Timestamp, String> {
    match &value.kind {
        Some(Kind::TimestampValue(t)) => in_range(t).map(|()| *t),
        Some(Kind::StringValue(text)) => {
            quiver_core::timestamp::parse_rfc3339_micros(text).map(micros_to_timestamp)
        }
        None | Some(Kind::NullValue(_)) => Err("the event time is null".into()),
        Some(_) => Err(format!(
            "expected a timestamp (or an RFC 3339 string), got {}",
            value_type_name(value)
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quiver_core::{Column, Entity, JoinKey, Source, ValueType};
    use quiver_proto::types::value::Kind;

    use super::*;

    fn source() -> (Source, Entity) {
        let column = |name: &str, value_type| Column {
            name: name.into(),
            value_type,
        };
        (
            Source {
                name: "transactions".into(),
                entity: "user".into(),
                timestamp_field: "ts".into(),
                allowed_lateness: Duration::from_secs(60),
                schema: vec![
                    column("user_id", ValueType::Int64),
                    column("ts", ValueType::Timestamp),
                    column("seen", ValueType::Timestamp),
                ],
                description: String::new(),
                kafka: None,
                log_retention: None,
            },
            Entity {
                name: "user".into(),
                join_keys: vec![JoinKey {
                    name: "user_id".into(),
                    value_type: ValueType::Int64,
                }],
                description: String::new(),
            },
        )
    }

    fn row(ts: prost_types::Timestamp, seen: prost_types::Timestamp) -> Row {
        let value = |kind| Value { kind: Some(kind) };
        Row {
            values: vec![
                value(Kind::Int64Value(7)),
                value(Kind::TimestampValue(ts)),
                value(Kind::TimestampValue(seen)),
            ],
        }
    }

    /// Timestamps a client could send that are not times: refused naming the column, never a
    /// panic (a year past 9999 once panicked while the future-skew message was written).
    #[test]
    fn timestamps_out_of_range_are_bad_rows_not_panics() {
        let (source, entity) = source();
        let columns = ["user_id", "ts", "seen"].map(String::from);
        let latest = 1_800_000_000_000_000;
        let checker =
            RowChecker::new(&source, &entity, &columns, latest, &IngestConfig::default()).unwrap();
        let at = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        let fine = at(1_700_000_000, 0);
        let reason = |r: Row| checker.validate(&r).unwrap_err().to_string();
        for (row, says) in [
            (
                row(at(1_700_000_000, -1), fine),
                "\"ts\": timestamp nanos -1 is not within a second",
            ),
            (
                row(fine, at(0, 2_000_000_000)),
                "\"seen\": timestamp nanos 2000000000",
            ),
            (row(at(i64::MIN, 0), fine), "outside the years 0000 to 9999"),
            (
                row(at(253_402_300_800, 0), fine),
                "outside the years 0000 to 9999",
            ),
        ] {
            assert!(
                reason(row.clone()).contains(says),
                "{:?}: {}",
                row,
                reason(row.clone())
            );
        }
        // The last second of 9999 is a time, too far ahead, named in RFC 3339.
        let message = reason(row(at(253_402_300_799, 0), fine));
        assert!(
            message.contains("event time 9999-12-31T23:59:59Z is more than 1h ahead"),
            "{message}"
        );
        assert!(checker.validate(&row(fine, fine)).is_ok());
    }
}
