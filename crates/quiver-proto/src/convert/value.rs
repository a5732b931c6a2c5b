//! The type of a wire `Value`.

use quiver_core::{Scalar, ValueType};

use super::{micros_to_timestamp, timestamp_to_micros};

use crate::types::value::Kind;
use crate::types::{Float32List, Value};

/// The type of `value`, or `None` when it is null.
pub fn value_type(value: &Value) -> Option<ValueType> {
    Some(match value.kind.as_ref()? {
        Kind::NullValue(_) => return None,
        Kind::Int64Value(_) => ValueType::Int64,
        Kind::Float64Value(_) => ValueType::Float64,
        Kind::Float32Value(_) => ValueType::Float32,
        Kind::BoolValue(_) => ValueType::Bool,
        Kind::StringValue(_) => ValueType::String,
        Kind::BytesValue(_) => ValueType::Bytes,
        Kind::TimestampValue(_) => ValueType::Timestamp,
        Kind::Float32ListValue(_) => ValueType::Float32List,
    })
}

/// A readable name of `value`'s type, `null` for null.
pub fn value_type_name(value: &Value) -> &'static str {
    value_type(value).map(ValueType::name).unwrap_or("null")
}

/// The domain value of a wire value (`None` for null).
pub fn value_to_scalar(value: &Value) -> Option<Scalar> {
    Some(match value.kind.as_ref()? {
        Kind::NullValue(_) => return None,
        Kind::Int64Value(v) => Scalar::Int64(*v),
        Kind::Float64Value(v) => Scalar::Float64(*v),
        Kind::Float32Value(v) => Scalar::Float32(*v),
        Kind::BoolValue(v) => Scalar::Bool(*v),
        Kind::StringValue(v) => Scalar::String(v.clone()),
        Kind::BytesValue(v) => Scalar::Bytes(v.clone()),
        Kind::TimestampValue(t) => Scalar::Timestamp(timestamp_to_micros(t)),
        Kind::Float32ListValue(l) => Scalar::Float32List(l.values.clone()),
    })
}

/// The wire value of a domain value (`None`: null).
pub fn scalar_to_value(scalar: Option<Scalar>) -> Value {
    Value {
        kind: scalar.map(|s| match s {
            Scalar::Int64(v) => Kind::Int64Value(v),
            Scalar::Float64(v) => Kind::Float64Value(v),
            Scalar::Float32(v) => Kind::Float32Value(v),
            Scalar::Bool(v) => Kind::BoolValue(v),
            Scalar::String(v) => Kind::StringValue(v),
            Scalar::Bytes(v) => Kind::BytesValue(v),
            Scalar::Timestamp(v) => Kind::TimestampValue(micros_to_timestamp(v)),
            Scalar::Float32List(values) => Kind::Float32ListValue(Float32List { values }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_explicit_null_are_null() {
        assert_eq!(value_type(&Value { kind: None }), None);
        assert_eq!(
            value_type(&Value {
                kind: Some(Kind::NullValue(0))
            }),
            None
        );
        assert_eq!(
            value_type(&Value {
                kind: Some(Kind::Int64Value(1))
            }),
            Some(ValueType::Int64)
        );
        assert_eq!(value_type_name(&Value { kind: None }), "null");
    }
}
