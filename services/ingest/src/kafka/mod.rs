//! Kafka sources: ingest consumes every source whose definition names a topic. Each ingest
//! process that has `[ingest.kafka] enabled` joins each such source's consumer group, and the
//! group spreads the topic's partitions over the processes (so an HPA that adds ingest pods
//! adds consumers, up to one per partition). A partition is a producer of the source,
//! `kafka:<topic>:<partition>`, and its next offset the producer's sequence: a batch of its
//! messages commits its offsets in the same Raft entry as its events, and a consumer resumes
//! from Quiver's replicated state, never from the group's offsets.

mod batch;
mod client_config;
mod consumer;
mod context;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_common::client_channel::AuthChannel;
use quiver_common::registry_cache::RegistryCache;
use quiver_common::Shutdown;
use quiver_core::KafkaSource;
use quiver_proto::compute::compute_service_client::ComputeServiceClient;
use rdkafka::consumer::BaseConsumer;
use tokio_util::sync::CancellationToken;

use crate::config::IngestConfig;
use batch::Sender;
use context::Context;
use status::StatusBoard;

/// How often the registry's definitions are compared with the running consumers.
const RECONCILE: Duration = Duration::from_secs(1);

/// One running consumer.
struct Running {
    kafka: KafkaSource,
    cancel: CancellationToken,
}

/// Starts consuming the registry's Kafka sources (and keeps the set in step with it) until
/// `shutdown`; the board reports what the consumers do.
pub fn start(
    config: IngestConfig,
    registry: RegistryCache,
    compute: ComputeServiceClient<AuthChannel>,
    shutdown: Shutdown,
) -> StatusBoard {
    let board = StatusBoard::default();
    if !config.kafka.enabled {
        return board;
    }
    let supervisor = board.clone();
    tokio::spawn(async move {
        let mut running: HashMap<(String, String), Running> = HashMap::new();
        loop {
            if registry.is_loaded() {
                reconcile(
                    &config,
                    &registry,
                    &compute,
                    &supervisor,
                    &shutdown,
                    &mut running,
                );
            }
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(RECONCILE) => {}
            }
        }
        for (_, r) in running.drain() {
            r.cancel.cancel();
        }
    });
    board
}

/// Starts consumers of new Kafka sources, restarts those whose `kafka:` block changed, stops
/// those of sources gone.
fn reconcile(
    config: &IngestConfig,
    registry: &RegistryCache,
    compute: &ComputeServiceClient<AuthChannel>,
    board: &StatusBoard,
    shutdown: &Shutdown,
    running: &mut HashMap<(String, String), Running>,
) {
    let catalog = registry.catalog();
    let mut wanted: HashMap<(String, String), KafkaSource> = HashMap::new();
    for (project, source) in catalog.sources() {
        if let Some(kafka) = catalog
            .source(project, source)
            .and_then(|s| s.kafka.clone())
        {
            wanted.insert((project.to_string(), source.to_string()), kafka);
        }
    }
    running.retain(|key, r| {
        let keep = wanted.get(key) == Some(&r.kafka);
        if !keep {
            tracing::info!(project = %key.0, source = %key.1, "kafka consumer stops");
            r.cancel.cancel();
        }
        keep
    });
    for (key, kafka) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        let cancel = shutdown.token().child_token();
        spawn(
            config,
            registry,
            compute,
            board,
            &key,
            &kafka,
            cancel.clone(),
        );
        running.insert(key, Running { kafka, cancel });
    }
}

/// Starts one source's consumer on its own thread (librdkafka's poll loop blocks).
fn spawn(
    config: &IngestConfig,
    registry: &RegistryCache,
    compute: &ComputeServiceClient<AuthChannel>,
    board: &StatusBoard,
    (project, source): &(String, String),
    kafka: &KafkaSource,
    cancel: CancellationToken,
) {
    tracing::info!(%project, %source, topic = %kafka.topic, "kafka consumer starts");
    let status = board.source(project, source, &kafka.topic);
    let sender = Arc::new(Sender {
        compute: compute.clone(),
        registry: registry.clone(),
        config: config.clone(),
        project: project.clone(),
        source: source.clone(),
        topic: kafka.topic.clone(),
    });
    let context = Context {
        project: project.clone(),
        source: source.clone(),
        topic: kafka.topic.clone(),
        start: kafka.start,
        compute: compute.clone(),
        runtime: tokio::runtime::Handle::current(),
        cancel: cancel.clone(),
        status: status.clone(),
        changes: Mutex::new(Vec::new()),
    };
    let clients =
        client_config::client_config(project, source, kafka, &config.kafka).and_then(|c| {
            let consumer = c
                .create_with_context::<_, BaseConsumer<Context>>(context)
                .map_err(|e| e.to_string())?;
            // Metadata and log-range checks go through a second client outside the group:
            // asked of the consuming client every half second, they stalled its fetches
            // (kafka_faults.rs found it), so the consumer's own requests are fetches only.
            let mut probe = c.clone();
            probe.remove("group.id");
            probe.set(
                "client.id",
                format!("quiver-ingest-probe.{project}.{source}"),
            );
            let probe = probe.create::<BaseConsumer>().map_err(|e| e.to_string())?;
            Ok((consumer, probe))
        });
    let (consumer, probe) = match clients {
        Ok(clients) => clients,
        Err(e) => {
            status.set(
                status::FAILED,
                &format!("the Kafka client refused the configuration: {e}"),
                Some("config"),
            );
            return;
        }
    };
    let kafka_config = config.kafka.clone();
    let name = format!("kafka-{source}");
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        consumer::run(
            consumer,
            probe,
            sender,
            kafka_config,
            status.clone(),
            cancel,
        );
        status.remove();
    });
    if let Err(e) = spawned {
        tracing::error!(%e, "cannot start a kafka consumer thread");
    }
}
