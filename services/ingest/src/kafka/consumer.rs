//! One source's consumer: a thread polling librdkafka, a buffer per owned partition, and at
//! most one batch of a partition in flight (a producer's batches must commit in order). A
//! batch is cut when it is full or its first message has waited `linger`; a partition whose
//! buffer is full pauses until its batches commit. Every `check_interval` a second client, the
//! probe (same brokers and security settings, no group), asks for the topic's metadata and the
//! owned partitions' log ranges; the consuming client itself only fetches.
//!
//! Why exactly once holds: every batch starts at an offset the stored sequence had reached when
//! the batch was cut (the resume point read from Quiver, or the end of this partition's last
//! committed batch), and the stored sequence never goes back, so no batch leaves a gap; apply
//! drops whatever part of a batch was applied already (another consumer owning the partition
//! for a moment, a retry), so nothing counts twice.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_proto::ingest::KafkaPartitionStatus;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::batch::{Delivered, Message, Sender};
use super::context::{Assigned, Context, Rebalanced};
use super::status::{self, SourceStatus};
use crate::config::KafkaConfig;

/// How long one poll waits for a message (bounds how late a due batch is cut).
const POLL: Duration = Duration::from_millis(5);

/// How long a metadata or watermark request to the brokers may take.
const BROKER_TIMEOUT: Duration = Duration::from_millis(1500);

/// One owned partition.
struct Partition {
    epoch: u64,
    /// The next offset stored in Quiver, as far as this consumer knows.
    committed: Option<u64>,
    /// The offset after the last message read (none before the first).
    next_read: Option<u64>,
    buffer: Vec<Message>,
    first_at: Option<Instant>,
    /// The batch in flight, by id.
    in_flight: Option<u64>,
    batches: u64,
    log_end: u64,
    paused: bool,
    cancel: CancellationToken,
}

/// Runs the consumer of one source until `cancel`; blocks the calling thread.
pub fn run(
    consumer: BaseConsumer<Context>,
    probe: BaseConsumer,
    sender: Arc<Sender>,
    config: KafkaConfig,
    status: SourceStatus,
    cancel: CancellationToken,
) {
    let context = consumer.context();
    let (topic, runtime) = (context.topic.clone(), context.runtime.clone());
    let (project, source) = (sender.project.clone(), sender.source.clone());
    if let Err(e) = consumer.subscribe(&[&topic]) {
        status.set(
            status::FAILED,
            &format!("cannot subscribe to {topic:?}: {e}"),
            Some("config"),
        );
        return;
    }
    let (done, finished) = mpsc::channel::<Delivered>();
    let mut partitions: BTreeMap<i32, Partition> = BTreeMap::new();
    let mut last_check: Option<Instant> = None;
    let mut known_count: Option<usize> = None;
    while !cancel.is_cancelled() {
        let polled = consumer.poll(POLL);
        // Assignment changes first: the poll that ran the rebalance callback may already
        // carry a message of a newly assigned partition.
        let changes = context
            .changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for change in changes {
            match change {
                Rebalanced::Revoked(revoked) => {
                    for partition in revoked {
                        if let Some(p) = partitions.remove(&partition) {
                            p.cancel.cancel();
                        }
                        crate::metrics::kafka_partition_gone(&project, &source, &topic, partition);
                    }
                }
                Rebalanced::Assigned(assigned) => {
                    for Assigned {
                        partition,
                        epoch,
                        committed,
                    } in assigned
                    {
                        if let Some(old) = partitions.remove(&partition) {
                            old.cancel.cancel();
                        }
                        partitions.insert(
                            partition,
                            Partition {
                                epoch,
                                committed,
                                next_read: committed,
                                buffer: Vec::new(),
                                first_at: None,
                                in_flight: None,
                                batches: 0,
                                log_end: committed.unwrap_or(0),
                                paused: false,
                                cancel: cancel.child_token(),
                            },
                        );
                    }
                    crate::metrics::kafka_partitions(
                        &project,
                        &source,
                        &topic,
                        "owned",
                        partitions.len(),
                    );
                    last_check = None;
                }
            }
        }

        match polled {
            Some(Ok(message)) => {
                let partition = message.partition();
                let offset = message.offset();
                if let (Some(p), Ok(offset)) =
                    (partitions.get_mut(&partition), u64::try_from(offset))
                {
                    // A message fetched before a seek can still arrive: only what follows the
                    // last one read counts.
                    if p.next_read.is_none_or(|next| offset >= next) {
                        if p.buffer.is_empty() {
                            p.first_at = Some(Instant::now());
                        }
                        p.buffer.push(Message {
                            offset,
                            payload: message.payload().map(<[u8]>::to_vec),
                        });
                        p.next_read = Some(offset + 1);
                        p.log_end = p.log_end.max(offset + 1);
                    }
                }
                if status.state() != status::CONSUMING {
                    status.set(status::CONSUMING, "", None);
                }
            }
            Some(Err(KafkaError::MessageConsumption(code))) => {
                handle_consume_error(code, &status);
            }
            Some(Err(e)) => tracing::warn!(%project, %source, %e, "kafka poll error"),
            None => {}
        }

        while let Ok(delivered) = finished.try_recv() {
            settle(
                &consumer,
                &topic,
                &mut partitions,
                delivered,
                &project,
                &source,
            );
        }

        for (&partition, p) in partitions.iter_mut() {
            let due = p.buffer.len() >= config.max_batch_messages.max(1)
                || p.first_at.is_some_and(|t| t.elapsed() >= config.linger);
            if p.in_flight.is_none() && !p.buffer.is_empty() && due {
                let take = p.buffer.len().min(config.max_batch_messages.max(1));
                let messages: Vec<Message> = p.buffer.drain(..take).collect();
                p.first_at = (!p.buffer.is_empty()).then(Instant::now);
                p.batches += 1;
                let id = p.batches;
                p.in_flight = Some(id);
                let (sender, done, cancel, epoch, log_end) = (
                    sender.clone(),
                    done.clone(),
                    p.cancel.clone(),
                    p.epoch,
                    p.log_end,
                );
                runtime.spawn(async move {
                    if let Some(d) = sender
                        .deliver(partition, id, epoch, messages, log_end, cancel)
                        .await
                    {
                        let _ = done.send(d);
                    }
                });
            }
            let full = p.buffer.len() >= config.max_buffered_messages.max(1);
            if full != p.paused {
                let mut list = TopicPartitionList::new();
                list.add_partition(&topic, partition);
                let result = if full {
                    consumer.pause(&list)
                } else {
                    consumer.resume(&list)
                };
                match result {
                    Ok(()) => p.paused = full,
                    Err(e) => tracing::warn!(partition, %e, "cannot pause or resume a partition"),
                }
            }
        }

        if last_check.is_none_or(|t| t.elapsed() >= config.check_interval) {
            last_check = Some(Instant::now());
            check_brokers(&probe, &topic, &status, &mut known_count);
            check_partitions(
                &consumer,
                &probe,
                &topic,
                &mut partitions,
                &status,
                &project,
                &source,
            );
        }
    }
    for p in partitions.values() {
        p.cancel.cancel();
    }
    for partition in partitions.keys() {
        crate::metrics::kafka_partition_gone(&project, &source, &topic, *partition);
    }
}

/// Takes a committed batch's outcome.
fn settle(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    partitions: &mut BTreeMap<i32, Partition>,
    delivered: Delivered,
    project: &str,
    source: &str,
) {
    let Some(p) = partitions.get_mut(&delivered.partition) else {
        return;
    };
    if p.in_flight != Some(delivered.id) {
        return; // of an earlier ownership of the partition
    }
    p.in_flight = None;
    let outcome = &delivered.outcome;
    if outcome.fenced || (outcome.duplicate && outcome.epoch != p.epoch) {
        // A consumer of a newer epoch (the topic was recreated) has written: follow it.
        tracing::info!(
            partition = delivered.partition,
            epoch = outcome.epoch,
            "kafka partition follows a newer epoch"
        );
        p.epoch = outcome.epoch;
        reposition(
            consumer,
            topic,
            delivered.partition,
            p,
            outcome.last_sequence,
        );
        return;
    }
    if outcome.duplicate {
        crate::metrics::kafka_messages(project, source, "duplicate", 1);
        // Another consumer committed past this batch: continue from there.
        if outcome.last_sequence > delivered.sequence {
            reposition(
                consumer,
                topic,
                delivered.partition,
                p,
                outcome.last_sequence,
            );
        } else {
            p.committed = Some(outcome.last_sequence.max(p.committed.unwrap_or(0)));
        }
        return;
    }
    p.committed = Some(delivered.sequence);
    crate::metrics::kafka_messages(project, source, "accepted", outcome.accepted);
    crate::metrics::kafka_messages(project, source, "late", outcome.late);
    crate::metrics::kafka_messages(project, source, "rejected", delivered.rejected);
}

/// Continues `partition` from `offset` (what Quiver stored): drops what is buffered below it and
/// seeks there if reading is behind it.
fn reposition(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    partition: i32,
    p: &mut Partition,
    offset: u64,
) {
    p.committed = Some(offset);
    p.buffer.retain(|m| m.offset >= offset);
    if p.buffer.is_empty() {
        p.first_at = None;
    }
    if p.next_read.is_none_or(|next| next < offset) {
        seek(consumer, topic, partition, Offset::Offset(offset as i64));
        p.next_read = Some(offset);
    }
}

fn seek(consumer: &BaseConsumer<Context>, topic: &str, partition: i32, offset: Offset) {
    if let Err(e) = consumer.seek(topic, partition, offset, BROKER_TIMEOUT) {
        tracing::warn!(topic, partition, ?offset, %e, "kafka seek failed");
    }
}

fn handle_consume_error(code: RDKafkaErrorCode, status: &SourceStatus) {
    match code {
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => status.set(
            status::TOPIC_MISSING,
            &format!("the topic is gone: {code}"),
            Some("topic_missing"),
        ),
        // Out-of-range offsets are found and fixed by `check_partitions`.
        RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange => {
            tracing::warn!(%code, "a kafka partition's offset is out of range")
        }
        _ => tracing::warn!(%code, "kafka consume error"),
    }
}

/// Asks the brokers for the topic (through the probe client): reachable, existing, and its
/// partition count.
fn check_brokers(
    probe: &BaseConsumer,
    topic: &str,
    status: &SourceStatus,
    known_count: &mut Option<usize>,
) {
    let metadata = match probe.fetch_metadata(Some(topic), BROKER_TIMEOUT) {
        Ok(m) => m,
        Err(e) => {
            status.set(
                status::UNREACHABLE,
                &format!("cannot read the topic's metadata from the brokers: {e}"),
                Some("broker_unreachable"),
            );
            return;
        }
    };
    let (project, source) = status.names();
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    let missing = match found {
        None => true,
        Some(t) => t.error().is_some() || t.partitions().is_empty(),
    };
    if missing {
        status.set(
            status::TOPIC_MISSING,
            &format!("topic {topic:?} does not exist on the brokers"),
            Some("topic_missing"),
        );
        return;
    }
    let count = found.map_or(0, |t| t.partitions().len());
    if let Some(before) = *known_count {
        if before != count {
            tracing::warn!(
                project,
                source,
                topic,
                before,
                count,
                "kafka partition count changed; the group rebalances"
            );
            crate::metrics::kafka_problem(project, source, "partitions_changed");
        }
    }
    *known_count = Some(count);
    status.set_partition_count(count as u32);
    crate::metrics::kafka_partitions(project, source, topic, "topic", count);
    if status.state() != status::CONSUMING {
        status.set(status::CONSUMING, "", None);
    }
}

/// Reads each owned partition's log range: its lag, and offsets that fell out of it (messages
/// deleted by retention before they were read, or the topic recreated with fewer messages).
fn check_partitions(
    consumer: &BaseConsumer<Context>,
    probe: &BaseConsumer,
    topic: &str,
    partitions: &mut BTreeMap<i32, Partition>,
    status: &SourceStatus,
    project: &str,
    source: &str,
) {
    let mut report = Vec::with_capacity(partitions.len());
    for (&partition, p) in partitions.iter_mut() {
        if status.state() == status::CONSUMING {
            match probe.fetch_watermarks(topic, partition, BROKER_TIMEOUT) {
                Ok((low, high)) => {
                    let (low, high) = (low.max(0) as u64, high.max(0) as u64);
                    p.log_end = high;
                    let idle = p.in_flight.is_none() && p.buffer.is_empty();
                    match p.next_read {
                        Some(next) if idle && next > high => {
                            // The log ends before what was consumed: the topic was deleted and
                            // made again. Its offsets start over, so the partition starts a new
                            // epoch (which resets its producer) from the beginning.
                            status.set(
                                status::CONSUMING,
                                &format!(
                                    "partition {partition}: stored offset {next} is past the log end {high} (topic recreated): restarting it from its beginning in epoch {}",
                                    p.epoch + 1
                                ),
                                Some("offsets_reset"),
                            );
                            p.epoch += 1;
                            p.committed = None;
                            p.next_read = Some(low);
                            seek(consumer, topic, partition, Offset::Offset(low as i64));
                        }
                        Some(next) if idle && next < low => {
                            status.set(
                                status::CONSUMING,
                                &format!(
                                    "partition {partition}: offsets {next}..{low} were deleted by retention before they were consumed"
                                ),
                                Some("expired"),
                            );
                            p.next_read = Some(low);
                            seek(consumer, topic, partition, Offset::Offset(low as i64));
                        }
                        _ => {}
                    }
                }
                Err(e) => tracing::debug!(partition, %e, "cannot read a partition's watermarks"),
            }
        }
        let committed = p.committed.unwrap_or(0);
        let lag = p.log_end.saturating_sub(committed);
        crate::metrics::kafka_partition(project, source, topic, partition, committed, lag);
        report.push(KafkaPartitionStatus {
            partition,
            committed,
            log_end: p.log_end,
            lag,
            pending: p.next_read.unwrap_or(committed).saturating_sub(committed),
        });
    }
    status.set_partitions(report);
}
