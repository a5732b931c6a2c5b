//! Feature values between Quiver's [`Scalar`] and Arrow arrays.

use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, TimeUnit};
use quiver_core::{Scalar, ValueType};

/// The Arrow type of a Quiver value type.
pub fn data_type(value_type: ValueType) -> DataType {
    match value_type {
        ValueType::Int64 => DataType::Int64,
        ValueType::Float64 => DataType::Float64,
        ValueType::Float32 => DataType::Float32,
        ValueType::Bool => DataType::Boolean,
        ValueType::String => DataType::Utf8,
        ValueType::Bytes => DataType::Binary,
        ValueType::Timestamp => timestamp_type(),
        ValueType::Float32List => {
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
        }
    }
}

/// Microsecond UTC timestamps, the type of every time Quiver writes.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Quiver value type of a scalar.
pub fn value_type(scalar: &Scalar) -> ValueType {
    match scalar {
        Scalar::Int64(_) => ValueType::Int64,
        Scalar::Float64(_) => ValueType::Float64,
        Scalar::Float32(_) => ValueType::Float32,
        Scalar::Bool(_) => ValueType::Bool,
        Scalar::String(_) => ValueType::String,
        Scalar::Bytes(_) => ValueType::Bytes,
        Scalar::Timestamp(_) => ValueType::Timestamp,
        Scalar::Float32List(_) => ValueType::Float32List,
    }
}

/// An array of `values` of type `value_type` (a value of another type is written as null;
/// validation upstream makes that impossible).
pub fn array_of(values: &[Option<Scalar>], value_type: ValueType) -> ArrayRef {
    macro_rules! collect {
        ($array:ty, $variant:ident) => {
            Arc::new(
                values
                    .iter()
                    .map(|v| match v {
                        Some(Scalar::$variant(x)) => Some(x.clone()),
                        _ => None,
                    })
                    .collect::<$array>(),
            ) as ArrayRef
        };
    }
    match value_type {
        ValueType::Int64 => collect!(Int64Array, Int64),
        ValueType::Float64 => collect!(Float64Array, Float64),
        ValueType::Float32 => collect!(Float32Array, Float32),
        ValueType::Bool => collect!(BooleanArray, Bool),
        ValueType::String => collect!(StringArray, String),
        ValueType::Bytes => collect!(BinaryArray, Bytes),
        ValueType::Timestamp => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Some(Scalar::Timestamp(x)) => Some(*x),
                    _ => None,
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        ValueType::Float32List => {
            let mut builder = ListBuilder::new(Float32Builder::new());
            for v in values {
                match v {
                    Some(Scalar::Float32List(list)) => {
                        builder.values().append_slice(list);
                        builder.append(true);
                    }
                    _ => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
    }
}

/// The value at `row` of `array` (`None`: null, or a type Quiver has no scalar for). Narrower
/// integers widen to int64 and any timestamp unit becomes microseconds, so entity tables from
/// pandas or polars work as they are.
pub fn scalar_at(array: &dyn Array, row: usize) -> Option<Scalar> {
    if row >= array.len() || array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Int64 => Scalar::Int64(array.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => Scalar::Int64(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int16 => Scalar::Int64(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int8 => Scalar::Int64(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::UInt32 => Scalar::Int64(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt16 => Scalar::Int64(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt8 => Scalar::Int64(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::Float64 => Scalar::Float64(array.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Scalar::Float32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Boolean => Scalar::Bool(array.as_boolean().value(row)),
        DataType::Utf8 => Scalar::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Scalar::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Scalar::String(array.as_string_view().value(row).to_string()),
        DataType::Binary => Scalar::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Scalar::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        DataType::Timestamp(unit, _) => Scalar::Timestamp(timestamp_micros(array, *unit, row)?),
        DataType::List(field) if field.data_type() == &DataType::Float32 => {
            let list = array.as_list::<i32>().value(row);
            Scalar::Float32List(list.as_primitive::<Float32Type>().values().to_vec())
        }
        _ => return None,
    })
}

/// A timestamp cell in microseconds, whatever its unit (`None` when null or out of range).
pub fn timestamp_micros(array: &dyn Array, unit: TimeUnit, row: usize) -> Option<i64> {
    use arrow_array::types::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    if array.is_null(row) {
        return None;
    }
    match unit {
        TimeUnit::Second => array
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .checked_mul(1_000_000),
        TimeUnit::Millisecond => array
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .checked_mul(1_000),
        TimeUnit::Microsecond => Some(array.as_primitive::<TimestampMicrosecondType>().value(row)),
        TimeUnit::Nanosecond => Some(
            array
                .as_primitive::<TimestampNanosecondType>()
                .value(row)
                .div_euclid(1_000),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_value_type_round_trips() {
        let cases = [
            (ValueType::Int64, Scalar::Int64(-7)),
            (ValueType::Float64, Scalar::Float64(2.5)),
            (ValueType::Float32, Scalar::Float32(0.25)),
            (ValueType::Bool, Scalar::Bool(true)),
            (ValueType::String, Scalar::String("é".into())),
            (ValueType::Bytes, Scalar::Bytes(vec![0, 255])),
            (
                ValueType::Timestamp,
                Scalar::Timestamp(1_700_000_000_000_001),
            ),
            (ValueType::Float32List, Scalar::Float32List(vec![1.0, 0.5])),
        ];
        for (value_type, scalar) in cases {
            let array = array_of(&[Some(scalar.clone()), None], value_type);
            assert_eq!(array.data_type(), &data_type(value_type));
            assert_eq!(scalar_at(array.as_ref(), 0), Some(scalar));
            assert_eq!(scalar_at(array.as_ref(), 1), None);
        }
    }
}
