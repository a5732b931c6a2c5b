//! Aggregation: partial aggregates (per tile, per feature) and the sketch behind
//! `distinct_count`. Pure and deterministic, shared by the online and offline paths.

mod hll;
mod partial;

pub use hll::Hll;
pub use partial::{Partial, Stamp};
