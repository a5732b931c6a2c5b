//! The compute service's configuration section (`[compute]`).

use serde::{Deserialize, Serialize};

/// `[compute]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// A micro-batch (one Raft entry) closes at this many rows; batches waiting while the
    /// previous one commits are coalesced up to it.
    pub max_batch_rows: usize,
    /// Rows accepted but not yet committed, at most; beyond it `Process` answers
    /// RESOURCE_EXHAUSTED so producers back off instead of memory growing.
    pub max_queued_rows: usize,
    /// Micro-batches committing at once (each one Raft entry); feeding stays sequential.
    pub max_inflight_writes: usize,
    /// How many top keys by event rate the hot-key metric reports.
    pub hot_keys: usize,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            max_batch_rows: 20_000,
            max_queued_rows: 400_000,
            max_inflight_writes: 4,
            hot_keys: 10,
        }
    }
}
