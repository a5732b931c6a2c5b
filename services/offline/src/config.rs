//! The snapshot service's configuration section (`[offline]`).

use serde::{Deserialize, Serialize};

/// `[offline]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineConfig {
    /// The offline store the online store exports to: a directory, `file:///dir` or
    /// `s3://bucket/prefix` (endpoint and credentials from the `AWS_*` environment).
    pub store: String,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        Self {
            // Where a single online-store node with default settings exports.
            store: "./quiver-data/online-store/offline".into(),
        }
    }
}
