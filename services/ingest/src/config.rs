//! The ingest service's configuration section (`[ingest]`).

use std::collections::BTreeMap;
use std::time::Duration;

use quiver_common::config::duration_text;
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
    /// How far ahead of ingest's clock an event time may be. A producer with a broken clock
    /// would otherwise move the source's watermark into the future and make every later event
    /// "late"; such a row rejects its batch instead.
    #[serde(with = "duration_text")]
    pub max_future_skew: Duration,
    /// How this process consumes sources with a `kafka:` block.
    pub kafka: KafkaConfig,
}

/// `[ingest.kafka]`: the Kafka consumers of an ingest process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Consume Kafka sources here. Every consuming process joins each source's consumer group,
    /// which spreads the topic's partitions over them.
    pub enabled: bool,
    /// Messages of one partition per batch at most (one batch is one producer batch of the
    /// source, committed with its offsets).
    pub max_batch_messages: usize,
    /// How long a partition's first unsent message waits for more before its batch goes.
    #[serde(with = "duration_text")]
    pub linger: Duration,
    /// Messages read ahead per partition at most; beyond it the partition pauses until its
    /// batches commit (backpressure without unbounded memory).
    pub max_buffered_messages: usize,
    /// How often brokers are asked for the topic's metadata (reachable, exists, partition
    /// count) and its partitions' log ends (lag).
    #[serde(with = "duration_text")]
    pub check_interval: Duration,
    /// librdkafka properties for every Kafka source (a source's own `properties` win), e.g.
    /// `client.rack` or a CA bundle; `${env:NAME}` and `${file:PATH}` values are resolved.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_batch_messages: 5_000,
            linger: Duration::from_millis(20),
            max_buffered_messages: 50_000,
            check_interval: Duration::from_secs(2),
            properties: BTreeMap::new(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_batch_rows: 50_000,
            max_inflight_rows: 400_000,
            max_future_skew: Duration::from_secs(3600),
            kafka: KafkaConfig::default(),
        }
    }
}
