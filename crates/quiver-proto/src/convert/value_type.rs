//! `ValueType` <-> `quiver.types.v1.ValueType`.

use quiver_core::ValueType;

use super::ConversionError;
use crate::types;

impl From<ValueType> for types::ValueType {
    fn from(t: ValueType) -> Self {
        match t {
            ValueType::Int64 => Self::Int64,
            ValueType::Float64 => Self::Float64,
            ValueType::Float32 => Self::Float32,
            ValueType::Bool => Self::Bool,
            ValueType::String => Self::String,
            ValueType::Bytes => Self::Bytes,
            ValueType::Timestamp => Self::Timestamp,
            ValueType::Float32List => Self::Float32List,
        }
    }
}

/// Converts a wire enum value (as carried in a message) into a domain type, naming `field`.
pub(crate) fn value_type_from_pb(raw: i32, field: &str) -> Result<ValueType, ConversionError> {
    Ok(match types::ValueType::try_from(raw) {
        Ok(types::ValueType::Int64) => ValueType::Int64,
        Ok(types::ValueType::Float64) => ValueType::Float64,
        Ok(types::ValueType::Float32) => ValueType::Float32,
        Ok(types::ValueType::Bool) => ValueType::Bool,
        Ok(types::ValueType::String) => ValueType::String,
        Ok(types::ValueType::Bytes) => ValueType::Bytes,
        Ok(types::ValueType::Timestamp) => ValueType::Timestamp,
        Ok(types::ValueType::Float32List) => ValueType::Float32List,
        Ok(types::ValueType::Unspecified) | Err(_) => {
            return Err(ConversionError::new(
                field,
                format!("invalid value type {raw}"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        for t in ValueType::ALL {
            let wire = types::ValueType::from(t) as i32;
            assert_eq!(value_type_from_pb(wire, "type"), Ok(t));
        }
        assert!(value_type_from_pb(0, "type").is_err());
        assert!(value_type_from_pb(99, "type").is_err());
    }
}
