//! The benches' definitions: the examples they copy from, and applying them to the registry.

use anyhow::Context;
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

/// The example definitions the benches copy sources and views from.
pub const EXAMPLES: &str = include_str!("../../../examples/fraud.yaml");

/// The object named `name` in `section` (`sources`, `feature_views`, ...) of [`EXAMPLES`].
pub fn example(section: &str, name: &str) -> anyhow::Result<serde_yaml::Value> {
    let examples: serde_yaml::Value = serde_yaml::from_str(EXAMPLES)?;
    examples[section]
        .as_sequence()
        .and_then(|items| items.iter().find(|i| i["name"].as_str() == Some(name)))
        .cloned()
        .with_context(|| format!("examples/fraud.yaml has no {section} {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benches_find_the_example_objects_they_copy() {
        for (section, name) in [
            ("entities", "user"),
            ("sources", "transactions"),
            ("feature_views", "user_txn"),
        ] {
            let object = example(section, name).unwrap();
            assert_eq!(object["name"].as_str(), Some(name));
        }
        let missing = example("sources", "nope").unwrap_err().to_string();
        assert!(missing.contains("has no sources \"nope\""), "{missing}");
    }
}
