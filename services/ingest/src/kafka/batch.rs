//! One partition's batch: its messages made events (a message that is not one becomes a
//! rejected message with its offset and reason), sent through compute like a pushed batch and
//! retried as it is until committed. The partition is the producer and the offset after the
//! last message its sequence, so the offsets commit in the same Raft entry as the events.

use std::time::Duration;

use quiver_common::client_channel::AuthChannel;
use quiver_common::clock::now_micros;
use quiver_common::json_event::parse_row;
use quiver_common::registry_cache::RegistryCache;
use quiver_common::trace_context::traced;
use quiver_core::kafka_source::partition_producer;
use quiver_proto::compute::compute_service_client::ComputeServiceClient;
use quiver_proto::online::{EventBatch, EventBatchResult, RejectedMessage};
use tokio_util::sync::CancellationToken;

use crate::config::IngestConfig;
use crate::validate::RowChecker;

/// The most of a poison message's payload kept in the quarantine log.
const PAYLOAD_KEPT: usize = 4 << 10;

/// A message as read from its partition.
pub struct Message {
    /// Its offset.
    pub offset: u64,
    /// Its value (none: a tombstone).
    pub payload: Option<Vec<u8>>,
}

/// Where a source's batches go.
pub struct Sender {
    /// Compute.
    pub compute: ComputeServiceClient<AuthChannel>,
    /// The registry's definitions.
    pub registry: RegistryCache,
    /// Ingest's limits (future skew).
    pub config: IngestConfig,
    /// The project.
    pub project: String,
    /// The source.
    pub source: String,
    /// The topic.
    pub topic: String,
}

/// A committed batch.
pub struct Delivered {
    /// The partition.
    pub partition: i32,
    /// Which of the partition's batches.
    pub id: u64,
    /// Its sequence (the offset after its last message).
    pub sequence: u64,
    /// Messages rejected as not events.
    pub rejected: u64,
    /// What the online store did.
    pub outcome: EventBatchResult,
}

impl Sender {
    /// Builds and sends one batch of `partition` until it commits, or `cancel` (the partition
    /// was revoked or the consumer stops).
    pub async fn deliver(
        &self,
        partition: i32,
        id: u64,
        epoch: u64,
        messages: Vec<Message>,
        input_end: u64,
        cancel: CancellationToken,
    ) -> Option<Delivered> {
        let mut backoff = Duration::from_millis(50);
        let mut batch = loop {
            match self.build(partition, epoch, &messages, input_end) {
                Ok(batch) => break batch,
                Err(why) => {
                    tracing::warn!(project = %self.project, source = %self.source, why, "kafka batch waits for the registry");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        loop {
            let rows = batch.rows.len() as i64;
            crate::metrics::inflight(rows);
            let mut compute = self.compute.clone();
            let result = tokio::select! {
                _ = cancel.cancelled() => None,
                r = compute.process(traced(batch.clone())) => Some(r),
            };
            crate::metrics::inflight(-rows);
            match result? {
                Ok(outcome) => {
                    return Some(Delivered {
                        partition,
                        id,
                        sequence: batch.sequence,
                        rejected: batch.rejected.len() as u64,
                        outcome: outcome.into_inner(),
                    })
                }
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    // Ingest checked every row, so this is a limit compute enforces; the batch
                    // must not block its partition: its events are quarantined with the reason.
                    tracing::error!(%status, partition, "compute refused a kafka batch; its messages are quarantined");
                    reject_all(&mut batch, status.message());
                }
                Err(status) => {
                    tracing::debug!(%status, partition, "kafka batch not committed; retrying");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The batch of `messages` (in offset order, at least one).
    fn build(
        &self,
        partition: i32,
        epoch: u64,
        messages: &[Message],
        input_end: u64,
    ) -> Result<EventBatch, String> {
        let catalog = self.registry.catalog();
        let source = catalog
            .source(&self.project, &self.source)
            .ok_or_else(|| format!("source {:?} is not loaded", self.source))?;
        let entity = catalog
            .entity(&self.project, &source.entity)
            .ok_or_else(|| format!("entity {:?} is not loaded", source.entity))?;
        let columns: Vec<String> = source.schema.iter().map(|c| c.name.clone()).collect();
        let received_micros = now_micros();
        let latest = received_micros.saturating_add(
            i64::try_from(self.config.max_future_skew.as_micros()).unwrap_or(i64::MAX),
        );
        let checker =
            RowChecker::new(source, entity, &columns, latest, &self.config).map_err(|e| e.0)?;
        let last = messages.last().map_or(0, |m| m.offset);
        let mut batch = EventBatch {
            producer_id: partition_producer(&self.topic, partition),
            sequence: last + 1,
            epoch,
            project: self.project.clone(),
            source: self.source.clone(),
            allowed_lateness_micros: i64::try_from(source.allowed_lateness.as_micros())
                .unwrap_or(i64::MAX),
            columns,
            received_micros,
            input_end: input_end.max(last + 1),
            ..EventBatch::default()
        };
        for message in messages {
            let checked = match &message.payload {
                None => Err("the message has no value (a tombstone)".to_string()),
                Some(payload) => parse_row(payload, source)
                    .and_then(|row| checker.check(&row).map_err(|e| e.to_string())),
            };
            match checked {
                Ok(event) => {
                    batch.rows.push(event.row);
                    batch.event_micros.push(event.event_micros);
                    batch.entity_keys.push(event.entity_key);
                    batch.offsets.push(message.offset);
                }
                Err(why) => batch.rejected.push(RejectedMessage {
                    offset: message.offset,
                    reason: format!(
                        "kafka topic {:?} partition {partition} offset {}: {why}",
                        self.topic, message.offset
                    ),
                    payload: message
                        .payload
                        .as_deref()
                        .map(|p| p[..p.len().min(PAYLOAD_KEPT)].to_vec())
                        .unwrap_or_default(),
                }),
            }
        }
        Ok(batch)
    }
}

/// Makes every event of `batch` a rejected message with `why`.
fn reject_all(batch: &mut EventBatch, why: &str) {
    let topic_partition = batch.producer_id.clone();
    for (row, offset) in batch.rows.drain(..).zip(batch.offsets.drain(..)) {
        let payload = serde_json::to_vec(&format!("{row:?}")).unwrap_or_default();
        batch.rejected.push(RejectedMessage {
            offset,
            reason: format!("{topic_partition} offset {offset}: refused downstream: {why}"),
            payload: payload[..payload.len().min(PAYLOAD_KEPT)].to_vec(),
        });
    }
    batch.event_micros.clear();
    batch.entity_keys.clear();
    batch.rejected.sort_by_key(|r| r.offset);
}
