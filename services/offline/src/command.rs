//! Reading a snapshot command from a Flight descriptor: the `quiver.offline.v1.SnapshotCommand`
//! protobuf, or the same as JSON, so a trainer with nothing but `pyarrow` can write it:
//!
//! ```json
//! {"project": "fraud", "features": ["user_txn:last_amount"], "timestamp_column": "ts",
//!  "sampling": {"strategy": "balanced", "column": "label", "target_fraction": 0.1, "seed": 7}}
//! ```
//!
//! (`"feature_service": "name"` instead of `"features"`.)

use prost::Message;
use quiver_proto::offline::snapshot_command::Features;
use quiver_proto::offline::{
    sampling, BalancedSampling, FeatureRefs, InverseFrequencySampling, Sampling, SnapshotCommand,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCommand {
    #[serde(default)]
    project: String,
    #[serde(default)]
    feature_service: Option<String>,
    #[serde(default)]
    features: Option<Vec<String>>,
    #[serde(default)]
    timestamp_column: String,
    #[serde(default)]
    sampling: Option<JsonSampling>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSampling {
    strategy: String,
    column: String,
    #[serde(default)]
    target_fraction: Option<f64>,
    #[serde(default)]
    seed: u64,
}

/// The command in a descriptor's `cmd` bytes (protobuf, or JSON when it starts with `{`).
pub fn decode(cmd: &[u8]) -> Result<SnapshotCommand, String> {
    if cmd.first() != Some(&b'{') {
        return SnapshotCommand::decode(cmd)
            .map_err(|e| format!("descriptor cmd: not a SnapshotCommand (protobuf or JSON): {e}"));
    }
    let json: JsonCommand = serde_json::from_slice(cmd)
        .map_err(|e| format!("descriptor cmd: invalid JSON snapshot command: {e}"))?;
    let features = match (json.feature_service, json.features) {
        (Some(service), None) => Features::FeatureService(service),
        (None, Some(refs)) => Features::FeatureRefs(FeatureRefs { refs }),
        _ => {
            return Err(
                "descriptor cmd: name exactly one of \"feature_service\" and \"features\"".into(),
            )
        }
    };
    let sampling = match json.sampling {
        None => None,
        Some(s) => {
            let strategy = match s.strategy.as_str() {
                "balanced" => sampling::Strategy::Balanced(BalancedSampling {
                    label_column: s.column,
                    target_fraction: s.target_fraction.ok_or(
                        "descriptor cmd: sampling.target_fraction is required for balanced",
                    )?,
                }),
                "inverse_frequency" => {
                    sampling::Strategy::InverseFrequency(InverseFrequencySampling {
                        column: s.column,
                    })
                }
                other => {
                    return Err(format!(
                        "descriptor cmd: sampling.strategy {other:?} is not one of \"balanced\", \"inverse_frequency\""
                    ))
                }
            };
            Some(Sampling {
                strategy: Some(strategy),
                seed: s.seed,
            })
        }
    };
    Ok(SnapshotCommand {
        project: json.project,
        features: Some(features),
        timestamp_column: json.timestamp_column,
        sampling,
        filter_by_commit_time: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_and_protobuf_commands_read_the_same() {
        let json = br#"{"project": "p", "features": ["v:a", "v:b"], "timestamp_column": "ts",
            "sampling": {"strategy": "balanced", "column": "label", "target_fraction": 0.5, "seed": 3}}"#;
        let command = decode(json).unwrap();
        assert_eq!(decode(&command.encode_to_vec()).unwrap(), command);
        assert_eq!(command.timestamp_column, "ts");
        assert_eq!(command.sampling.unwrap().seed, 3);
        let err = decode(br#"{"features": ["v:a"], "feature_service": "s"}"#).unwrap_err();
        assert!(err.contains("exactly one"), "{err}");
        let err = decode(br#"{"features": ["v:a"], "colour": 1}"#).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    /// A snapshot command is the first message of a Flight exchange from any client: mutated
    /// commands (protobuf and JSON) decode or are refused, never panic.
    #[test]
    fn fuzz_mutated_commands_decode_or_are_refused() {
        use quiver_core::mutation::{self, mutate, Rng};
        let json = br#"{"project": "p", "features": ["v:a", "v@2:b"], "timestamp_column": "ts",
            "sampling": {"strategy": "inverse_frequency", "column": "label", "seed": 3}}"#;
        let valid = [json.to_vec(), decode(json).unwrap().encode_to_vec()];
        let mut rng = Rng::from_env(0xF11E_0000_0000_0001);
        for _ in 0..mutation::cases(20_000) {
            let seed = rng.pick(&valid).clone();
            let _ = decode(&mutate(&mut rng, seed));
        }
    }
}
