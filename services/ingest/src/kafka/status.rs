//! What each Kafka consumer of this process is doing, for `IngestService/KafkaStatus` (and so
//! `quiver describe source`) and the metrics: a state with the latest problem, the topic's
//! partition count and the owned partitions with their live lag.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Every consumer's status in this process, each entry with the consumer that owns it: an
/// `apply` that restarts a source's consumer starts the new one before the old one has stopped,
/// and the old one must neither overwrite nor remove the new one's entry.
#[derive(Clone, Default)]
pub struct StatusBoard {
    sources: Arc<Mutex<BTreeMap<(String, String), Owned>>>,
}

/// A source's status and the consumer (its id) that reports it.
type Owned = (u64, KafkaSourceStatus);

/// Tells consumers apart on the board.
static NEXT_CONSUMER: AtomicU64 = AtomicU64::new(1);

impl StatusBoard {
    /// The statuses of `project` (all when empty) and `source` (all when empty).
    pub fn list(&self, project: &str, source: &str) -> Vec<KafkaSourceStatus> {
        let Ok(sources) = self.sources.lock() else {
            return Vec::new();
        };
        sources
            .values()
            .map(|(_, s)| s)
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
            id: NEXT_CONSUMER.fetch_add(1, Ordering::Relaxed),
        };
        if let Ok(mut sources) = self.sources.lock() {
            // The newest consumer of a source owns its entry from now on.
            sources.insert(
                status.key.clone(),
                (
                    status.id,
                    KafkaSourceStatus {
                        project: project.to_string(),
                        source: source.to_string(),
                        topic: topic.to_string(),
                        state: STARTING.into(),
                        since_micros: now_micros(),
                        ..KafkaSourceStatus::default()
                    },
                ),
            );
        }
        status
    }

    /// Removes `key`'s entry if consumer `id` owns it; whether it did.
    fn remove(&self, key: &(String, String), id: u64) -> bool {
        let Ok(mut sources) = self.sources.lock() else {
            return false;
        };
        if sources.get(key).is_some_and(|(owner, _)| *owner == id) {
            sources.remove(key);
            return true;
        }
        false
    }
}

/// One consumer's status.
#[derive(Clone)]
pub struct SourceStatus {
    board: StatusBoard,
    key: (String, String),
    /// This consumer, on the board.
    id: u64,
}

impl SourceStatus {
    /// Changes this consumer's entry; false (nothing changed) once a newer consumer of the
    /// source owns it.
    fn update(&self, f: impl FnOnce(&mut KafkaSourceStatus)) -> bool {
        let Ok(mut sources) = self.board.sources.lock() else {
            return false;
        };
        match sources.get_mut(&self.key) {
            Some((owner, status)) if *owner == self.id => {
                f(status);
                true
            }
            _ => false,
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
        let owned = self.update(|s| {
            changed = s.state != state || s.problem != problem;
            if s.state != state {
                s.since_micros = now_micros();
            }
            s.state = state.to_string();
            s.problem = problem.to_string();
        });
        if !owned {
            // A newer consumer of the source reports for it now.
            return;
        }
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
        if self.board.remove(&self.key, self.id) {
            let (project, source) = self.names();
            crate::metrics::kafka_up(project, source, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `apply` restarts a source's consumer: the new one registers before the old one has
    /// stopped. The old one's last reports and its removal must not touch the new one's entry
    /// (describe said `not consuming this source` for good).
    #[test]
    fn a_stopping_consumer_leaves_its_successors_status_alone() {
        let board = StatusBoard::default();
        let old = board.source("shop", "orders", "orders");
        old.set(CONSUMING, "", None);
        let new = board.source("shop", "orders", "orders");
        new.set(CONSUMING, "", None);
        old.set(UNREACHABLE, "stopping", None);
        old.remove();
        let listed = board.list("shop", "orders");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, CONSUMING);
        assert_eq!(listed[0].problem, "");
        new.remove();
        assert!(board.list("shop", "orders").is_empty());
    }
}
