//! The consumer's librdkafka callbacks. On an assignment, every partition's starting offset is
//! chosen before anything is fetched: the next offset stored in Quiver's replicated state (read
//! through compute from the online store), never the group's committed offsets; a partition
//! Quiver has never consumed starts where the source's `start` says, or at its beginning once
//! the source has consumed any partition (a partition added later holds only new messages).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use quiver_common::client_channel::AuthChannel;
use quiver_core::kafka_source::{partition_prefix, producer_partition};
use quiver_core::KafkaStart;
use quiver_proto::compute::compute_service_client::ComputeServiceClient;
use quiver_proto::online::{ProducerProgress, ProducersRequest};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

use super::status::{self, SourceStatus};

/// A partition assigned to this consumer, with where it resumes.
#[derive(Debug, Clone)]
pub struct Assigned {
    /// The partition.
    pub partition: i32,
    /// Its producer epoch in Quiver.
    pub epoch: u64,
    /// Its next offset stored in Quiver (none: never consumed).
    pub committed: Option<u64>,
}

/// A change of assignment, for the poll loop.
#[derive(Debug)]
pub enum Rebalanced {
    /// These partitions are now this consumer's.
    Assigned(Vec<Assigned>),
    /// These are no longer.
    Revoked(Vec<i32>),
}

/// The callbacks' state.
pub struct Context {
    pub(super) project: String,
    pub(super) source: String,
    pub(super) topic: String,
    pub(super) start: KafkaStart,
    pub(super) compute: ComputeServiceClient<AuthChannel>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) cancel: CancellationToken,
    pub(super) status: SourceStatus,
    /// Assignment changes not yet taken by the poll loop.
    pub(super) changes: Mutex<Vec<Rebalanced>>,
}

impl Context {
    /// The stored progress of every partition of the topic; retried until read or cancelled
    /// (a partition must never start anywhere else).
    fn stored(&self) -> Option<HashMap<i32, ProducerProgress>> {
        let request = ProducersRequest {
            project: self.project.clone(),
            source: self.source.clone(),
            prefix: partition_prefix(&self.topic),
        };
        loop {
            if self.cancel.is_cancelled() {
                return None;
            }
            let mut compute = self.compute.clone();
            let request = request.clone();
            match self.runtime.block_on(async move {
                tokio::time::timeout(Duration::from_secs(10), compute.producers(request)).await
            }) {
                Ok(Ok(response)) => {
                    return Some(
                        response
                            .into_inner()
                            .producers
                            .into_iter()
                            .filter_map(|p| {
                                Some((producer_partition(&self.topic, &p.producer_id)?, p))
                            })
                            .collect(),
                    )
                }
                Ok(Err(status)) => self.status.set(
                    status::STARTING,
                    &format!(
                        "cannot read the stored offsets from Quiver: {}",
                        status.message()
                    ),
                    Some("resume_failed"),
                ),
                Err(_) => self.status.set(
                    status::STARTING,
                    "cannot read the stored offsets from Quiver: no answer within 10s",
                    Some("resume_failed"),
                ),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn push(&self, change: Rebalanced) {
        if let Ok(mut changes) = self.changes.lock() {
            changes.push(change);
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let (project, source) = (&self.project, &self.source);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(project, source, facility, message, "librdkafka")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(project, source, facility, message, "librdkafka")
            }
            _ => tracing::debug!(project, source, facility, message, "librdkafka"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let (state, kind) = match code {
            Some(
                RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable,
            ) => (status::UNREACHABLE, "broker_unreachable"),
            Some(
                RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition,
            ) => (status::TOPIC_MISSING, "topic_missing"),
            _ => {
                tracing::warn!(project = %self.project, source = %self.source, %error, reason, "kafka client error");
                return;
            }
        };
        self.status
            .set(state, &format!("{error}: {reason}"), Some(kind));
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let Some(stored) = self.stored() else {
                    return;
                };
                let mut assigned = Vec::new();
                for mut element in list.elements_for_topic(&self.topic) {
                    let partition = element.partition();
                    let (offset, epoch, committed) = match stored.get(&partition) {
                        Some(p) => (Offset::Offset(p.sequence as i64), p.epoch, Some(p.sequence)),
                        None if !stored.is_empty() || self.start == KafkaStart::Earliest => {
                            (Offset::Beginning, 0, None)
                        }
                        None => (Offset::End, 0, None),
                    };
                    if let Err(e) = element.set_offset(offset) {
                        tracing::error!(partition, %e, "cannot set a partition's starting offset");
                    }
                    assigned.push(Assigned {
                        partition,
                        epoch,
                        committed,
                    });
                }
                tracing::info!(project = %self.project, source = %self.source, partitions = ?assigned.iter().map(|a| (a.partition, a.committed)).collect::<Vec<_>>(), "kafka partitions assigned");
                self.push(Rebalanced::Assigned(assigned));
            }
            Rebalance::Revoke(list) => {
                let partitions = list
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                self.push(Rebalanced::Revoked(partitions));
            }
            Rebalance::Error(e) => {
                tracing::warn!(project = %self.project, source = %self.source, %e, "kafka rebalance failed");
            }
        }
    }
}
