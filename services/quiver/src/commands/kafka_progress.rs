//! What `quiver describe source NAME` shows of a Kafka source: per partition the offset
//! committed in Quiver (replicated, from the online store), the log end its last batch saw and
//! so the lag, its watermark and whether it is active (within the idleness bound, so it counts
//! toward the source watermark); and what the
//! reachable ingest process says live (state, problems, its partitions' current lag).

use std::time::Duration;

use quiver::addresses::{connect, Addresses};
use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{KafkaStatusRequest, KafkaStatusResponse};
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{ProducersRequest, ProducersResponse};
use serde_json::json;

/// Both views of one Kafka source.
pub struct KafkaProgress {
    /// What the online store has committed (or why it could not be read).
    pub committed: Result<ProducersResponse, String>,
    /// What the ingest process reports (or why it could not be read).
    pub live: Result<KafkaStatusResponse, String>,
}

/// Reads both for `project`'s `source`, consuming `topic`.
pub async fn fetch(
    addresses: &Addresses,
    project: &str,
    source: &str,
    topic: &str,
) -> KafkaProgress {
    let committed = async {
        let channel =
            tokio::time::timeout(Duration::from_secs(2), connect(&addresses.online, "online"))
                .await
                .map_err(|_| format!("the online store at {} did not answer", addresses.online))?
                .map_err(|e| e.to_string())?;
        OnlineStoreServiceClient::new(channel)
            .producers(ProducersRequest {
                project: project.into(),
                source: source.into(),
                prefix: format!("kafka:{topic}:"),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| s.message().to_string())
    }
    .await;
    let live = async {
        let channel =
            tokio::time::timeout(Duration::from_secs(2), connect(&addresses.ingest, "ingest"))
                .await
                .map_err(|_| format!("ingest at {} did not answer", addresses.ingest))?
                .map_err(|e| e.to_string())?;
        IngestServiceClient::new(channel)
            .kafka_status(KafkaStatusRequest {
                project: project.into(),
                source: source.into(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| s.message().to_string())
    }
    .await;
    KafkaProgress { committed, live }
}

fn partition_of(producer: &str, topic: &str) -> Option<i32> {
    producer
        .strip_prefix(&format!("kafka:{topic}:"))?
        .parse()
        .ok()
}

fn time(micros: Option<i64>) -> String {
    micros
        .map(|m| quiver_core::timestamp::format_rfc3339(m, quiver_core::timestamp::Fraction::None))
        .unwrap_or_else(|| "-".into())
}

impl KafkaProgress {
    /// Prints the table for people.
    pub fn print(&self, topic: &str) {
        println!("kafka topic {topic}:");
        match &self.committed {
            Ok(c) => {
                println!("  source watermark: {}", time(c.source_watermark));
                if c.producers.is_empty() {
                    println!("  no partition committed yet");
                } else {
                    println!(
                        "  {:>9} {:>12} {:>12} {:>10}  {:<20}  {:<6} epoch",
                        "partition", "offset", "log end", "lag", "watermark", "active"
                    );
                }
                let mut rows: Vec<_> = c
                    .producers
                    .iter()
                    .filter_map(|p| Some((partition_of(&p.producer_id, topic)?, p)))
                    .collect();
                rows.sort_by_key(|(n, _)| *n);
                for (n, p) in rows {
                    println!(
                        "  {:>9} {:>12} {:>12} {:>10}  {:<20}  {:<6} {}",
                        n,
                        p.sequence,
                        p.input_end,
                        p.input_end.saturating_sub(p.sequence),
                        time(p.watermark),
                        if p.active { "yes" } else { "idle" },
                        p.epoch
                    );
                }
                println!("  (offset: the next offset to consume, committed with the events; log end and lag as of the partition's last batch)");
            }
            Err(e) => println!("  committed offsets: unknown ({e})"),
        }
        match &self.live {
            Ok(live) if live.sources.is_empty() => {
                println!(
                    "  ingest{}: not consuming this source",
                    process(&live.process)
                )
            }
            Ok(live) => {
                for s in &live.sources {
                    println!(
                        "  ingest{}: {}{} ({} partitions in the topic, {} owned here)",
                        process(&live.process),
                        s.state,
                        if s.problem.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", s.problem)
                        },
                        s.partition_count,
                        s.partitions.len()
                    );
                    for p in &s.partitions {
                        println!(
                            "    partition {}: offset {}, log end {}, lag {}, read ahead {}",
                            p.partition, p.committed, p.log_end, p.lag, p.pending
                        );
                    }
                }
            }
            Err(e) => println!("  ingest: unknown ({e})"),
        }
    }

    /// The same as JSON.
    pub fn to_json(&self, topic: &str) -> serde_json::Value {
        let committed = match &self.committed {
            Ok(c) => json!({
                "source_watermark": time(c.source_watermark),
                "partitions": c.producers.iter().filter_map(|p| Some(json!({
                    "partition": partition_of(&p.producer_id, topic)?,
                    "offset": p.sequence,
                    "log_end": p.input_end,
                    "lag": p.input_end.saturating_sub(p.sequence),
                    "watermark": time(p.watermark),
                    "active": p.active,
                    "epoch": p.epoch,
                }))).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "error": e }),
        };
        let live = match &self.live {
            Ok(live) => json!({
                "process": live.process,
                "sources": live.sources.iter().map(|s| json!({
                    "state": s.state,
                    "problem": s.problem,
                    "partition_count": s.partition_count,
                    "partitions": s.partitions.iter().map(|p| json!({
                        "partition": p.partition, "offset": p.committed, "log_end": p.log_end,
                        "lag": p.lag, "read_ahead": p.pending,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "error": e }),
        };
        json!({ "topic": topic, "committed": committed, "ingest": live })
    }
}

fn process(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" ({name})")
    }
}
