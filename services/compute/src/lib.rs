//! Quiver's compute service: it runs each view's transforms over the event batches ingest
//! hands it, coalesces concurrent batches into micro-batches (one Raft entry each) and writes
//! them to the online store, whose state machine folds them into tiles. Stateless: the running
//! statistics of `standardize`/`zscore` live in the online store and are read per micro-batch.

mod batcher;
pub mod config;
mod hot_keys;
mod metrics;
mod service;
pub use quiver_common::registry_cache::RegistryCache;
use quiver_common::{GrpcConfig, GrpcServer, Shutdown};
use quiver_proto::compute::compute_service_server::ComputeServiceServer;
use tokio::net::TcpListener;

pub use config::ComputeConfig;

/// Largest gRPC message compute accepts (one producer batch).
const MAX_MESSAGE: usize = 64 << 20;

/// Serves compute on `listener` until `shutdown`; `registry` and `online_store` are addresses
/// (host:port; the store's writes follow its leader hint).
pub async fn serve(
    config: &ComputeConfig,
    grpc: &GrpcConfig,
    registry: &str,
    online_store: &str,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let cache = RegistryCache::start(registry, shutdown.clone());
    let readiness = cache.readiness("compute");
    metrics::export_from_start();
    let service = service::Compute::start(
        config.clone(),
        cache,
        online_store.to_string(),
        shutdown.clone(),
    );
    GrpcServer::new("compute", grpc)
        .ready_when(readiness)
        .add_service(
            ComputeServiceServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve(listener, shutdown)
        .await
}
