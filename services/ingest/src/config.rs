//! The ingest service's configuration section (`[ingest]`).

use std::time::Duration;

use quiver_common::config::duration_text;
use serde::{Deserialize, Serialize};

/// `[ingest]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// The largest batch a producer may push.
    pub max_batch_rows: usize,
    /// Rows in flight (validated, not yet committed) at most; beyond it pushes get
    /// RESOURCE_EXHAUSTED with a retry hint instead of queueing without bound.
    pub max_inflight_rows: usize,
    /// How far ahead of ingest's clock an event time may be. A producer with a broken clock
    /// would otherwise move the source's watermark into the future and make every later event
    /// "late"; such a row rejects its batch instead.
    #[serde(with = "duration_text")]
    pub max_future_skew: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_batch_rows: 50_000,
            max_inflight_rows: 400_000,
            max_future_skew: Duration::from_secs(3600),
        }
    }
}
