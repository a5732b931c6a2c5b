//! Quiver's domain types: what feature authors declare (entities, sources, feature views,
//! feature services), the value types and durations they use, and feature references.
//!
//! This crate is pure: it must not depend on tonic, RocksDB, sled or any I/O, so every
//! service and the CLI can share it cheaply.

pub mod aggregate;
pub mod definitions;
pub mod duration;
pub mod feature_ref;
pub mod kafka_source;
pub mod mutation;
pub mod names;
pub mod scalar;
pub mod tiling;
pub mod timestamp;
pub mod transform;
pub mod value_type;

pub use definitions::{
    Aggregation, Column, Entity, Feature, FeatureService, FeatureView, JoinKey, Source, Transform,
    TransformOp, Window,
};
pub use feature_ref::FeatureRef;
pub use kafka_source::{KafkaFormat, KafkaSource, KafkaStart};
pub use scalar::Scalar;
pub use value_type::ValueType;
