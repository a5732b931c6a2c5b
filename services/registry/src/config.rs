//! The registry's configuration section (`[registry]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[registry]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Where the sled database lives.
    pub data_dir: PathBuf,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./quiver-data/registry"),
        }
    }
}
