//! `From`/`TryFrom` between generated messages and `quiver-core` domain types.

mod duration;
mod entity;
mod entity_key;
mod feature_ref;
mod feature_service;
mod feature_view;
mod kafka_source;
mod source;
mod timestamp;
mod value;
mod value_type;

pub use duration::{duration_from_pb, duration_to_pb};
pub use entity_key::{display_entity, encode_entity, value_kind_name, BadKeyValue, KeyPart};
pub use feature_view::{
    aggregate_spec_from_pb, aggregate_spec_to_pb, transform_from_pb, transform_to_pb,
};
pub use timestamp::{micros_to_timestamp, timestamp_to_micros};
pub use value::{scalar_to_value, value_to_scalar, value_type, value_type_name};

/// A message that does not convert into a valid domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConversionError {
    /// The path of the offending field, e.g. `features[2].aggregation`.
    pub field: String,
    /// Why it is invalid.
    pub reason: String,
}

impl ConversionError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error nested under `parent`, e.g. `features[2]` + `.column`.
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            reason: self.reason,
        }
    }
}
