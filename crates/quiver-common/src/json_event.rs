//! One event written as a JSON object, keys naming the source's columns: the form of a line of
//! a pushed JSON-lines file and of a Kafka message. Values are typed by the source schema;
//! timestamps stay RFC 3339 text, which ingest parses (and names the row of, when wrong).

use quiver_core::scalar::to_f32;
use quiver_core::{Source, ValueType};
use quiver_proto::ingest::Row;
use quiver_proto::types::value::Kind;
use quiver_proto::types::{Float32List, Value};
use serde_json::Value as Json;

/// The row of `object` in schema order (absent keys are null), or why it is not one, naming
/// the column and the value.
pub fn object_row(object: &serde_json::Map<String, Json>, source: &Source) -> Result<Row, String> {
    if let Some(unknown) = object.keys().find(|k| source.column(k).is_none()) {
        return Err(format!(
            "{unknown:?} is not a column of source {:?}",
            source.name
        ));
    }
    let values = source
        .schema
        .iter()
        .map(|c| {
            json_value(object.get(&c.name), c.value_type)
                .map_err(|e| format!("column {:?}: {e}", c.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Row { values })
}

/// Parses `bytes` as one JSON object and makes it a row of `source`.
pub fn parse_row(bytes: &[u8], source: &Source) -> Result<Row, String> {
    let object: serde_json::Map<String, Json> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON object: {e}"))?;
    object_row(&object, source)
}

/// One JSON value as a value of type `t` (null or absent is null).
pub fn json_value(v: Option<&Json>, t: ValueType) -> Result<Value, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Value { kind: None });
    };
    let value = |kind| Value { kind: Some(kind) };
    let number = |n: &serde_json::Number| n.as_f64().ok_or_else(|| format!("{n} is not a number"));
    Ok(match (t, v) {
        (ValueType::Int64, Json::Number(n)) => {
            value(Kind::Int64Value(n.as_i64().ok_or_else(|| {
                // A whole number past int64 arrives as u64, or as f64 when past that too.
                let whole = n.is_u64()
                    || n.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18);
                if whole {
                    format!("{n} is out of int64's range")
                } else {
                    format!("expected int64, got {n}")
                }
            })?))
        }
        (ValueType::Float64, Json::Number(n)) => value(Kind::Float64Value(number(n)?)),
        (ValueType::Float32, Json::Number(n)) => value(Kind::Float32Value(to_f32(number(n)?)?)),
        (ValueType::Bool, Json::Bool(b)) => value(Kind::BoolValue(*b)),
        (ValueType::String, Json::String(s)) => value(Kind::StringValue(s.clone())),
        (ValueType::Bytes, Json::String(s)) => value(Kind::BytesValue(s.as_bytes().to_vec())),
        // Ingest parses RFC 3339 text (and says which row was wrong).
        (ValueType::Timestamp, Json::String(s)) => value(Kind::StringValue(s.clone())),
        (ValueType::Float32List, Json::Array(items)) => {
            value(Kind::Float32ListValue(Float32List {
                values: items
                    .iter()
                    .map(|x| {
                        x.as_f64()
                            .ok_or_else(|| format!("{x} is not a number"))
                            .and_then(to_f32)
                    })
                    .collect::<Result<_, _>>()?,
            }))
        }
        (t, other) => return Err(format!("expected {t}, got {}", short(other))),
    })
}

/// A value for a message, cut short.
fn short(v: &Json) -> String {
    let text = v.to_string();
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use quiver_core::Column;

    use super::*;

    fn source() -> Source {
        let column = |name: &str, value_type| Column {
            name: name.into(),
            value_type,
        };
        Source {
            name: "orders".into(),
            entity: "user".into(),
            timestamp_field: "ts".into(),
            allowed_lateness: std::time::Duration::ZERO,
            schema: vec![
                column("user_id", ValueType::String),
                column("ts", ValueType::Timestamp),
                column("amount", ValueType::Float64),
            ],
            description: String::new(),
            kafka: None,
            log_retention: None,
        }
    }

    #[test]
    fn objects_become_rows_in_schema_order() {
        let row = parse_row(br#"{"amount": 2.5, "user_id": "u1"}"#, &source()).unwrap_or_default();
        assert_eq!(row.values.len(), 3);
        assert_eq!(row.values[0].kind, Some(Kind::StringValue("u1".into())));
        assert_eq!(row.values[1].kind, None);
        assert_eq!(row.values[2].kind, Some(Kind::Float64Value(2.5)));
    }

    #[test]
    fn bad_messages_say_why() {
        let s = source();
        let err = |bytes: &[u8]| parse_row(bytes, &s).err().unwrap_or_default();
        assert!(err(b"\xff not json").starts_with("not a JSON object"));
        assert!(err(b"[1, 2]").starts_with("not a JSON object"));
        assert_eq!(
            err(br#"{"amount": "ten"}"#),
            r#"column "amount": expected float64, got "ten""#
        );
        assert_eq!(
            err(br#"{"colour": 1}"#),
            r#""colour" is not a column of source "orders""#
        );
    }

    /// Kafka messages and pushed lines come from anyone: mutated JSON events become rows or
    /// errors, never a panic.
    #[test]
    fn a_number_beyond_float32s_range_is_refused_not_stored_as_infinity() {
        let big = serde_json::json!(1e300);
        assert_eq!(
            json_value(Some(&big), ValueType::Float32),
            Err("1e300 is out of float32's range (about ±3.4e38)".into())
        );
        assert_eq!(
            json_value(
                Some(&serde_json::json!([1.0, -1e39])),
                ValueType::Float32List
            ),
            Err("-1e39 is out of float32's range (about ±3.4e38)".into())
        );
        assert_eq!(
            json_value(Some(&serde_json::json!(0.1)), ValueType::Float32),
            Ok(Value {
                kind: Some(Kind::Float32Value(0.1))
            })
        );
    }

    #[test]
    fn fuzz_mutated_json_events_become_rows_or_errors() {
        use quiver_core::mutation::{self, mutate, Rng};
        let valid: [&[u8]; 3] = [
            br#"{"user_id": "u1", "ts": "2026-12-06T10:00:00.123456Z", "amount": 2.5}"#,
            br#"{"user_id": "u\u00e9", "ts": "2026-12-06T10:00:00+05:30", "amount": -1e300}"#,
            br#"{"user_id": null, "amount": 12345678901234567890}"#,
        ];
        let mut rng = Rng::from_env(0x15_0E7E_4700_0001);
        let mut refused = 0;
        for _ in 0..mutation::cases(20_000) {
            let seed = rng.pick(&valid).to_vec();
            let bytes = mutate(&mut rng, seed);
            refused += usize::from(parse_row(&bytes, &source()).is_err());
        }
        assert!(refused > 0);
    }
}
