//! The types of columns, join keys and features.

use std::fmt;
use std::str::FromStr;

/// The type of a column, join key or feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Signed 64-bit integer.
    Int64,
    /// IEEE-754 double.
    Float64,
    /// IEEE-754 single.
    Float32,
    /// Boolean.
    Bool,
    /// UTF-8 string.
    String,
    /// Opaque bytes.
    Bytes,
    /// A point in time (UTC, microseconds).
    Timestamp,
    /// A list of float32, e.g. an embedding.
    Float32List,
}

impl ValueType {
    /// Every type, in declaration order.
    pub const ALL: [ValueType; 8] = [
        Self::Int64,
        Self::Float64,
        Self::Float32,
        Self::Bool,
        Self::String,
        Self::Bytes,
        Self::Timestamp,
        Self::Float32List,
    ];

    /// The name used in YAML definitions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Float32 => "float32",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Bytes => "bytes",
            Self::Timestamp => "timestamp",
            Self::Float32List => "float32_list",
        }
    }

    /// Whether numeric aggregations (sum, mean, min, max, stddev) apply to it.
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Int64 | Self::Float64 | Self::Float32)
    }

    /// Whether it can be an entity join key (exact equality, stable encoding).
    pub fn is_key_type(self) -> bool {
        matches!(self, Self::Int64 | Self::String | Self::Bytes)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A type name that is not one of Quiver's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown type {0:?}; expected one of int64, float64, float32, bool, string, bytes, timestamp, float32_list")]
pub struct UnknownValueType(pub String);

impl FromStr for ValueType {
    type Err = UnknownValueType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownValueType(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in ValueType::ALL {
            assert_eq!(t.name().parse::<ValueType>(), Ok(t));
        }
        assert!("float".parse::<ValueType>().is_err());
    }
}
