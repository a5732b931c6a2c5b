//! Applying a bench's definitions to the registry.

use quiver::addresses::Addresses;
use quiver_proto::registry::{ApplyRequest, DefinitionDocument};

/// Applies one definitions document named `name` (not a dry run, at any revision).
pub async fn apply(addresses: &Addresses, name: &str, yaml: &str) -> anyhow::Result<()> {
    addresses
        .registry()
        .await?
        .apply(ApplyRequest {
            documents: vec![DefinitionDocument {
                name: name.to_string(),
                yaml: yaml.to_string(),
            }],
            dry_run: false,
            expected_revision: None,
        })
        .await
        .map_err(|s| quiver::rpc_error(&format!("applying {name}"), s))?;
    Ok(())
}
