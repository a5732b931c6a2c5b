//! The type of a wire `Value`.

use quiver_core::ValueType;

use crate::types::value::Kind;
use crate::types::Value;

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
