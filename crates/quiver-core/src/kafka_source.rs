//! A source's Kafka topic: where Quiver consumes its events itself. Each partition of the topic
//! is one producer of the source, named by [`partition_producer`], whose sequence is the
//! partition's next offset: the offsets consumed are committed with the events they carried.

use std::collections::BTreeMap;

/// How a message's value encodes one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaFormat {
    /// One JSON object per message, keys naming columns (as a pushed JSON-lines file).
    Json,
}

impl KafkaFormat {
    /// The name used in definitions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
        }
    }
}

/// Where a source that has consumed nothing yet begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaStart {
    /// The oldest message the topic keeps.
    Earliest,
    /// Messages produced after the source starts.
    Latest,
}

impl KafkaStart {
    /// The name used in definitions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// A source's `kafka:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSource {
    /// Comma-separated host:port list.
    pub bootstrap_servers: String,
    /// The topic.
    pub topic: String,
    /// How messages encode events.
    pub format: KafkaFormat,
    /// Where a new source begins.
    pub start: KafkaStart,
    /// The consumer group spreading partitions over consuming processes; empty for the default
    /// (see [`KafkaSource::group_id`]).
    pub consumer_group: String,
    /// librdkafka properties passed as given (values may reference `${env:NAME}` or
    /// `${file:PATH}`, resolved where the consumer runs).
    pub properties: BTreeMap<String, String>,
}

impl KafkaSource {
    /// The consumer group of `project`'s `source`.
    pub fn group_id(&self, project: &str, source: &str) -> String {
        if self.consumer_group.is_empty() {
            format!("quiver.{project}.{source}")
        } else {
            self.consumer_group.clone()
        }
    }
}

/// The producer id of one partition of `topic`.
pub fn partition_producer(topic: &str, partition: i32) -> String {
    format!("{}{partition}", partition_prefix(topic))
}

/// The prefix of every partition producer of `topic`.
pub fn partition_prefix(topic: &str) -> String {
    format!("kafka:{topic}:")
}

/// The partition of a producer id made by [`partition_producer`] for `topic`.
pub fn producer_partition(topic: &str, producer: &str) -> Option<i32> {
    producer
        .strip_prefix(&partition_prefix(topic))?
        .parse()
        .ok()
}

/// librdkafka properties Quiver sets itself: a definition may not override them, since each
/// would break exactly-once consumption or the partition spread.
pub const RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.partition.eof",
    "isolation.level",
    "partition.assignment.strategy",
    "group.protocol",
];

/// Properties whose value is a secret: a definition must reference it (`${env:NAME}` or
/// `${file:PATH}`), never hold it, since definitions are stored and shown.
pub const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
];

/// Whether `value` is a reference to a secret rather than the secret.
pub fn is_reference(value: &str) -> bool {
    let value = value.trim();
    (value.starts_with("${env:") || value.starts_with("${file:")) && value.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_producers_round_trip() {
        assert_eq!(partition_producer("orders", 3), "kafka:orders:3");
        assert_eq!(producer_partition("orders", "kafka:orders:3"), Some(3));
        assert_eq!(producer_partition("orders", "kafka:orders.eu:3"), None);
        assert_eq!(producer_partition("orders", "kafka:orders:x"), None);
    }

    #[test]
    fn secrets_are_references() {
        assert!(is_reference("${env:KAFKA_PASSWORD}"));
        assert!(is_reference("${file:/etc/kafka/password}"));
        assert!(!is_reference("hunter2"));
    }
}
