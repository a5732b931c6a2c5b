//! The ingest service's configuration section (`[ingest]`).

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
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_batch_rows: 50_000,
            max_inflight_rows: 400_000,
        }
    }
}
