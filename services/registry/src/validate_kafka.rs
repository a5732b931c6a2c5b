//! `sources[i].kafka`: the topic a source consumes. Every error names the field; a secret
//! written into a definition (which the registry stores and shows) is refused, since the
//! consuming process resolves `${env:NAME}` and `${file:PATH}` references itself.

use std::collections::BTreeMap;

use quiver_core::kafka_source::{is_reference, RESERVED_PROPERTIES, SECRET_PROPERTIES};
use quiver_core::{KafkaFormat, KafkaSource, KafkaStart};

use super::Validator;
use crate::spec::KafkaSpec;

impl Validator {
    /// Validates one `kafka:` block at `path` of `doc`.
    pub(super) fn kafka(&mut self, doc: &str, path: &str, spec: &KafkaSpec) -> Option<KafkaSource> {
        let mut ok = true;
        let mut fail = |v: &mut Self, field: &str, message: String| {
            v.error(doc, format!("{path}.{field}"), message);
            ok = false;
        };
        let servers: Vec<&str> = spec.bootstrap_servers.split(',').map(str::trim).collect();
        if spec.bootstrap_servers.trim().is_empty() {
            fail(
                self,
                "bootstrap_servers",
                "at least one broker is needed, e.g. \"kafka-0:9092,kafka-1:9092\"".into(),
            );
        } else if let Some(bad) = servers.iter().find(|s| !is_host_port(s)) {
            fail(
                self,
                "bootstrap_servers",
                format!("{bad:?} is not host:port (a comma-separated list of brokers)"),
            );
        }
        if let Err(why) = topic_name(&spec.topic) {
            fail(self, "topic", format!("{:?} {why}", spec.topic));
        }
        let format = match spec.format.as_deref().unwrap_or("json") {
            "json" => Some(KafkaFormat::Json),
            later @ ("avro" | "protobuf") => {
                fail(
                    self,
                    "format",
                    format!(
                        "{later} is not supported yet: messages must be JSON objects (Avro and \
                         Protobuf with a schema registry come later)"
                    ),
                );
                None
            }
            other => {
                fail(
                    self,
                    "format",
                    format!("unknown format {other:?} (supported: json)"),
                );
                None
            }
        };
        let start = match spec.start.as_deref().unwrap_or("earliest") {
            "earliest" => Some(KafkaStart::Earliest),
            "latest" => Some(KafkaStart::Latest),
            other => {
                fail(
                    self,
                    "start",
                    format!("unknown start {other:?} (earliest or latest)"),
                );
                None
            }
        };
        if spec
            .consumer_group
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            fail(
                self,
                "consumer_group",
                format!(
                    "{:?} has whitespace or control characters",
                    spec.consumer_group
                ),
            );
        }
        let mut properties = BTreeMap::new();
        for (name, value) in &spec.properties {
            let field = format!("properties[{name:?}]");
            if RESERVED_PROPERTIES.contains(&name.as_str()) {
                fail(
                    self,
                    &field,
                    format!(
                        "{name} is set by Quiver (offsets live in Quiver's replicated state and \
                         partitions are spread by its consumer group); use \
                         bootstrap_servers/consumer_group/start instead"
                    ),
                );
                continue;
            }
            let text = match value {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                _ => {
                    fail(
                        self,
                        &field,
                        "a property value must be a string, number or boolean".into(),
                    );
                    continue;
                }
            };
            if text.contains("${") {
                if let Err(why) = reference(&text) {
                    fail(self, &field, why);
                    continue;
                }
            } else if SECRET_PROPERTIES.contains(&name.as_str()) {
                fail(
                    self,
                    &field,
                    "a secret must not be written into a definition: reference it as \
                     \"${env:NAME}\" or \"${file:/path}\", resolved by the consuming process"
                        .into(),
                );
                continue;
            }
            properties.insert(name.clone(), text);
        }
        if !ok {
            return None;
        }
        Some(KafkaSource {
            bootstrap_servers: servers.join(","),
            topic: spec.topic.clone(),
            format: format?,
            start: start?,
            consumer_group: spec.consumer_group.clone(),
            properties,
        })
    }
}

fn is_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// Kafka's own rule for topic names.
fn topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("is empty");
    }
    if topic.len() > 249 {
        return Err("is longer than Kafka's 249 characters");
    }
    if topic == "." || topic == ".." {
        return Err("is not a topic name");
    }
    if !topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("may hold only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Checks that `text` is one whole `${env:NAME}` or `${file:/path}` reference.
fn reference(text: &str) -> Result<(), String> {
    let text = text.trim();
    if !is_reference(text) {
        return Err(format!(
            "{text:?}: a reference is a whole value, \"${{env:NAME}}\" or \"${{file:/path}}\""
        ));
    }
    let inner = &text[2..text.len() - 1];
    if let Some(name) = inner.strip_prefix("env:") {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{text:?}: {name:?} is not an environment variable name"
            ));
        }
    } else if let Some(path) = inner.strip_prefix("file:") {
        if !path.starts_with('/') {
            return Err(format!("{text:?}: the file path must be absolute"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::validate::{validate, Document};

    fn errors(kafka: &str) -> Vec<String> {
        let yaml = format!(
            "project: p\nentities:\n  - name: user\n    join_keys: [{{name: user_id, type: string}}]\n\
             sources:\n  - name: orders\n    entity: user\n    timestamp_field: ts\n    schema:\n      \
             - {{name: user_id, type: string}}\n      - {{name: ts, type: timestamp}}\n    kafka:\n{kafka}"
        );
        match validate(&[Document {
            name: "d.yaml".into(),
            yaml,
        }]) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_valid_block_passes() {
        let found = errors(
            "      bootstrap_servers: \"k1:9092, k2:9093\"\n      topic: orders.v1\n      \
             start: latest\n      properties:\n        security.protocol: SASL_SSL\n        \
             sasl.mechanism: SCRAM-SHA-512\n        sasl.username: quiver\n        \
             sasl.password: \"${env:KAFKA_PASSWORD}\"\n        session.timeout.ms: 10000\n",
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn every_bad_field_is_named() {
        let found = errors(
            "      bootstrap_servers: \"k1\"\n      topic: \"bad topic\"\n      format: avro\n      \
             start: middle\n      properties:\n        group.id: x\n        sasl.password: hunter2\n        \
             ssl.ca.location: \"${file:relative}\"\n",
        );
        let expect = [
            "sources[0].kafka.bootstrap_servers: \"k1\" is not host:port",
            "sources[0].kafka.topic: \"bad topic\" may hold only",
            "sources[0].kafka.format: avro is not supported yet",
            "sources[0].kafka.start: unknown start \"middle\"",
            "sources[0].kafka.properties[\"group.id\"]: group.id is set by Quiver",
            "sources[0].kafka.properties[\"sasl.password\"]: a secret must not be written",
            "sources[0].kafka.properties[\"ssl.ca.location\"]: \"${file:relative}\": the file path must be absolute",
        ];
        for e in expect {
            assert!(found.iter().any(|f| f.contains(e)), "{e} not in {found:#?}");
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let found = errors("      bootstrap_servers: k:9092\n      topic: t\n      topics: [t]\n");
        assert!(found.iter().any(|f| f.contains("topics")), "{found:#?}");
    }
}
