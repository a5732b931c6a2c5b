//! Aggregation: partial aggregates (per tile, per feature), the sketch behind
//! `distinct_count`, tile records and their stored form, and the engine that folds events into
//! tiles. Pure and deterministic, shared by the online and offline paths.

mod engine;
mod exact_sum;
mod hll;
mod partial;
mod record;

pub use engine::{EntityTiles, FxBuildHasher, FxHasher, TileAggregator};
pub use exact_sum::ExactSum;
pub use hll::Hll;
pub use partial::{FloatSums, Partial, Stamp};
pub use record::{merge_stored, CorruptRecord, TileRecord};
