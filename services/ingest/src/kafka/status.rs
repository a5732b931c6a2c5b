//! What each Kafka consumer of this process is doing, for `IngestService/KafkaStatus` (and so
//! `quiver describe source`) and the metrics: a state with the latest problem, the topic's
//! partition count and the owned partitions with their live lag.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use quiver_common::clock::now_micros;
use quiver_proto::ingest::{KafkaPartitionStatus, KafkaSourceStatus};

/// A consumer is working.
pub const CONSUMING: &str = "consuming";
/// A consumer is connecting or waiting for its first assignment.
pub const STARTING: &str = "starting";
/// The brokers cannot be reached.
pub const UNREACHABLE: &str = "broker unreachable";
/// The topic does not exist (deleted, or not created yet).
pub const TOPIC_MISSING: &str = "topic missing";
/// The consumer cannot start (its configuration is refused).
pub const FAILED: &str = "failed";

/// Every consumer's status in this process.
#[derive(Clone, Default)]
pub struct StatusBoard {
    sources: Arc<Mutex<BTreeMap<(String, String), KafkaSourceStatus>>>,
}

impl StatusBoard {
    /// The statuses of `project` (all when empty) and `source` (all when empty).
    pub fn list(&self, project: &str, source: &str) -> Vec<KafkaSourceStatus> {
        let Ok(sources) = self.sources.lock() else {
            return Vec::new();
        };
        sources
            .values()
            .filter(|s| {
                (project.is_empty() || s.project == project)
                    && (source.is_empty() || s.source == source)
            })
            .cloned()
            .collect()
    }

    /// The handle one consumer reports through.
    pub fn source(&self, project: &str, source: &str, topic: &str) -> SourceStatus {
        let status = SourceStatus {
            board: self.clone(),
            key: (project.to_string(), source.to_string()),
        };
        status.update(|s| {
            *s = KafkaSourceStatus {
                project: project.to_string(),
                source: source.to_string(),
                topic: topic.to_string(),
                state: STARTING.into(),
                since_micros: now_micros(),
                ..KafkaSourceStatus::default()
            }
        });
        status
    }

    fn remove(&self, key: &(String, String)) {
        if let Ok(mut sources) = self.sources.lock() {
            sources.remove(key);
        }
    }
}

/// One consumer's status.
#[derive(Clone)]
pub struct SourceStatus {
    board: StatusBoard,
    key: (String, String),
}

impl SourceStatus {
    fn update(&self, f: impl FnOnce(&mut KafkaSourceStatus)) {
        if let Ok(mut sources) = self.board.sources.lock() {
            f(sources.entry(self.key.clone()).or_default());
        }
    }

    /// The project and source.
    pub fn names(&self) -> (&str, &str) {
        (&self.key.0, &self.key.1)
    }

    /// Moves to `state` with `problem` (empty when all is well); counts a problem of `kind`
    /// once per change into it.
    pub fn set(&self, state: &str, problem: &str, kind: Option<&str>) {
        let (project, source) = self.names();
        let mut changed = false;
        self.update(|s| {
            changed = s.state != state || s.problem != problem;
            if s.state != state {
                s.since_micros = now_micros();
            }
            s.state = state.to_string();
            s.problem = problem.to_string();
        });
        if changed {
            if let Some(kind) = kind {
                crate::metrics::kafka_problem(project, source, kind);
            }
            if problem.is_empty() {
                tracing::info!(project, source, state, "kafka consumer");
            } else {
                tracing::warn!(project, source, state, problem, "kafka consumer");
            }
        }
        crate::metrics::kafka_up(project, source, state == CONSUMING);
    }

    /// The current state.
    pub fn state(&self) -> String {
        let mut state = String::new();
        self.update(|s| state = s.state.clone());
        state
    }

    /// The topic's partition count as the brokers' metadata says.
    pub fn set_partition_count(&self, count: u32) {
        self.update(|s| s.partition_count = count);
    }

    /// The owned partitions.
    pub fn set_partitions(&self, partitions: Vec<KafkaPartitionStatus>) {
        self.update(|s| s.partitions = partitions);
    }

    /// Forgets this consumer (it stopped).
    pub fn remove(&self) {
        self.board.remove(&self.key);
        let (project, source) = self.names();
        crate::metrics::kafka_up(project, source, false);
    }
}
