//! Quiver's ingest service: the producer-facing edge. It validates each pushed batch against
//! its source's schema from the registry's live cache (a bad row rejects the whole batch,
//! naming row, column and reason), bounds the work in flight (RESOURCE_EXHAUSTED beyond it),
//! and hands the batch to compute, answering the producer only once its rows are committed.
//! It also consumes the sources that name a Kafka topic (`kafka`).

pub mod config;
pub mod kafka;
mod metrics;
mod service;
pub mod validate;

use quiver_common::registry_cache::RegistryCache;
use quiver_common::{GrpcConfig, GrpcServer, Shutdown};
use quiver_proto::ingest::ingest_service_server::IngestServiceServer;
use tokio::net::TcpListener;

pub use config::IngestConfig;

/// Largest push accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// Serves ingest on `listener` until `shutdown`; `registry` and `compute` are addresses.
pub async fn serve(
    config: &IngestConfig,
    grpc: &GrpcConfig,
    registry: &str,
    compute: &str,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let cache = RegistryCache::start(registry, shutdown.clone());
    let readiness = cache.readiness("ingest");
    let service = service::Ingest::new(config.clone(), cache.clone(), compute)?;
    let kafka = kafka::start(config.clone(), cache, service.compute(), shutdown.clone());
    let service = service.with_kafka(kafka);
    GrpcServer::new("ingest", grpc)
        .ready_when(readiness)
        .add_service(
            IngestServiceServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve(listener, shutdown)
        .await
}
