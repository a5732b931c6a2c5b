//! The peer of `quiver-bench kafka`'s freshness phase: a bare librdkafka consumer reading the
//! same topic from the same mock broker in the same run, recording when each message reaches
//! it. What it measures is the floor any consumer of this broker meets (the producer's linger,
//! the broker, the fetches); what Quiver adds on top is its batching, Raft commit and apply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use quiver_common::clock::now_micros;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// What the peer reads, and when it stops.
pub struct Reading {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    /// Per partition, each message's timestamp by offset (as the producer stamps them).
    pub stamps: Arc<Mutex<Vec<Vec<i64>>>>,
    /// Messages stamped before this are warm-up, not recorded.
    pub measure_from: i64,
    /// Set once the producer has sent everything: the peer stops when it has read it all.
    pub produced: Arc<AtomicBool>,
    /// It stops here in any case.
    pub deadline: Instant,
    /// The consumer's `fetch.wait.max.ms`, as the Quiver source's.
    pub fetch_wait_ms: u32,
}

/// Starts the peer on a thread of its own; it answers the latencies it saw (microseconds).
pub fn spawn(reading: Reading) -> anyhow::Result<JoinHandle<anyhow::Result<Histogram<u64>>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &reading.bootstrap)
        .set(
            "group.id",
            format!("quiver-bench-peer-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", reading.fetch_wait_ms.to_string())
        .create()
        .context("creating the bare consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..reading.partitions {
        assignment.add_partition_offset(&reading.topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(std::thread::spawn(move || {
        let mut latencies = Histogram::<u64>::new(3)?;
        let mut read = 0usize;
        while Instant::now() < reading.deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(10)) {
                let message = message?;
                let now = now_micros();
                read += 1;
                let stamp = reading.stamps.lock().ok().and_then(|s| {
                    let offset = usize::try_from(message.offset()).ok()?;
                    s.get(usize::try_from(message.partition()).ok()?)?
                        .get(offset)
                        .copied()
                });
                if let Some(at) = stamp.filter(|at| *at >= reading.measure_from) {
                    latencies.record((now - at).max(1) as u64)?;
                }
            }
            let sent: usize = reading
                .stamps
                .lock()
                .map(|s| s.iter().map(Vec::len).sum())
                .unwrap_or(0);
            if reading.produced.load(Ordering::Acquire) && read >= sent {
                break;
            }
        }
        Ok(latencies)
    }))
}
