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
    // Where each pushed column goes in the schema.
    let mut slots = Vec::with_capacity(request.columns.len());
    for (i, name) in request.columns.iter().enumerate() {
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
    let pushed = |name: &str| request.columns.iter().position(|c| c == name);
    let time_column = pushed(&source.timestamp_field).ok_or_else(|| {
        bad(format!(
            "columns: the event time column {:?} is missing",
            source.timestamp_field
        ))
    })?;
    let key_columns = entity
        .join_keys
        .iter()
        .map(|k| {
            pushed(&k.name).ok_or_else(|| {
                bad(format!(
                    "columns: the join key {:?} (entity {:?}) is missing",
                    k.name, entity.name
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let width = source.schema.len();
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
        views: Vec::new(),
        received_micros,
    };
    for (r, row) in request.rows.iter().enumerate() {
        if row.values.len() != request.columns.len() {
            return Err(bad(format!(
                "rows[{r}]: {} values for {} columns",
                row.values.len(),
                request.columns.len()
            )));
        }
        let mut values = vec![Value { kind: None }; width];
        for (c, value) in row.values.iter().enumerate() {
            let column = &source.schema[slots[c]];
            let at = |reason: String| bad(format!("rows[{r}].{}: {reason}", column.name));
            // Any timestamp column may be written as an RFC 3339 string.
            let text_time = column.value_type == quiver_core::ValueType::Timestamp
                && matches!(value.kind, Some(Kind::StringValue(_)));
            let value = if c == time_column || text_time {
                Value {
                    kind: Some(Kind::TimestampValue(event_time(value).map_err(at)?)),
                }
            } else {
                match value_type(value) {
                    None if key_columns.contains(&c) => {
                        return Err(at("the join key is null".into()))
                    }
                    None => Value { kind: None },
                    Some(t) if t == column.value_type => value.clone(),
                    Some(_) => {
                        return Err(at(format!(
                            "expected {}, got {}",
                            column.value_type,
                            value_type_name(value)
                        )))
                    }
                }
            };
            values[slots[c]] = value;
        }
        let Some(Kind::TimestampValue(at)) = &values[slots[time_column]].kind else {
            return Err(bad(format!(
                "rows[{r}].{}: no event time",
                source.timestamp_field
            )));
        };
        let event_micros = timestamp_to_micros(at);
        if event_micros > latest {
            return Err(bad(format!(
                "rows[{r}].{}: event time {} is more than {} ahead of ingest's clock",
                source.timestamp_field,
                humantime::format_rfc3339(
                    std::time::UNIX_EPOCH + std::time::Duration::from_micros(event_micros as u64)
                ),
                humantime::format_duration(limits.max_future_skew)
            )));
        }
        batch.event_micros.push(event_micros);
        let key_values: Vec<Value> = key_columns.iter().map(|c| row.values[*c].clone()).collect();
        let key = encode_entity(&key_values).map_err(|e| bad(format!("rows[{r}]: {e}")))?;
        batch.entity_keys.push(key);
        batch.rows.push(Row { values });
    }
    Ok(batch)
}

/// An event time: a timestamp, or an RFC 3339 string.
fn event_time(value: &Value) -> Result<prost_types::Timestamp, String> {
    match &value.kind {
        Some(Kind::TimestampValue(t)) => Ok(*t),
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
