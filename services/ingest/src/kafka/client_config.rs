//! The librdkafka configuration of one source's consumer: the source's `kafka:` block, the
//! process's `[ingest.kafka] properties`, and the settings Quiver owns. Property values that
//! reference a secret (`${env:NAME}`, `${file:PATH}`) are resolved here, in the consuming
//! process, so a definition never holds one.

use std::collections::BTreeMap;

use quiver_core::KafkaSource;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// The client configuration of `project`'s `source`, or why it cannot be built (naming the
/// property).
pub fn client_config(
    project: &str,
    source: &str,
    kafka: &KafkaSource,
    process: &KafkaConfig,
) -> Result<ClientConfig, String> {
    let mut properties: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in process.properties.iter().chain(&kafka.properties) {
        properties.insert(name, value);
    }
    let mut config = ClientConfig::new();
    for (name, value) in properties {
        let value = resolve(value).map_err(|e| format!("property {name}: {e}"))?;
        config.set(name, value);
    }
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", kafka.group_id(project, source))
        // Offsets live in Quiver's replicated state, committed with the events: the group only
        // spreads partitions, and never stores an offset anyone could resume from.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A stored offset outside the log is decided by the consumer (expired by retention, or
        // the topic recreated), never silently reset.
        .set("auto.offset.reset", "error")
        // Transactional producers' aborted messages are not events.
        .set("isolation.level", "read_committed")
        // Eager rebalancing: an assignment is the whole set, each partition's offset chosen by
        // the consumer before it fetches anything.
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("enable.partition.eof", "false");
    if !config
        .config_map()
        .contains_key("topic.metadata.refresh.interval.ms")
    {
        // New partitions are found (and assigned) within seconds, not the default 5 minutes.
        config.set("topic.metadata.refresh.interval.ms", "5000");
    }
    if !config.config_map().contains_key("client.id") {
        config.set("client.id", format!("quiver-ingest.{project}.{source}"));
    }
    Ok(config)
}

/// A property value with a `${env:NAME}` or `${file:PATH}` reference resolved.
fn resolve(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if !(trimmed.starts_with("${") && trimmed.ends_with('}')) {
        return Ok(value.to_string());
    }
    let inner = &trimmed[2..trimmed.len() - 1];
    if let Some(name) = inner.strip_prefix("env:") {
        return std::env::var(name)
            .map_err(|_| format!("environment variable {name} is not set in the ingest process"));
    }
    if let Some(path) = inner.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("cannot read {path}: {e}"));
    }
    Err(format!(
        "{value:?} is neither ${{env:NAME}} nor ${{file:PATH}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_resolved_where_the_consumer_runs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            resolve(&format!("${{file:{}}}", path.display())),
            Ok("s3cret".into())
        );
        assert_eq!(resolve("PLAIN"), Ok("PLAIN".into()));
        assert!(resolve("${env:QUIVER_TEST_SURELY_UNSET_VARIABLE}")
            .is_err_and(|e| e.contains("QUIVER_TEST_SURELY_UNSET_VARIABLE is not set")));
        assert!(resolve("${file:/nonexistent/x}").is_err_and(|e| e.contains("cannot read")));
    }

    #[test]
    fn quiver_owns_offsets_and_group() {
        let kafka = KafkaSource {
            bootstrap_servers: "k:9092".into(),
            topic: "t".into(),
            format: quiver_core::KafkaFormat::Json,
            start: quiver_core::KafkaStart::Earliest,
            consumer_group: String::new(),
            properties: [("security.protocol".to_string(), "SASL_SSL".to_string())].into(),
        };
        let config = client_config("p", "s", &kafka, &KafkaConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.get("group.id"), Some("quiver.p.s"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
    }
}
