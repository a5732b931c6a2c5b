//! The snapshot service: point-in-time-correct training sets over Arrow Flight. Stateless: it
//! reads the rows the online store's leader exported to the offline store, and computes each
//! entity row's features at its timestamp with the same aggregation code the online store
//! serves with (`quiver_core::aggregate`), so training and serving agree.

pub mod command;
pub mod config;
pub mod dataset;
pub mod error;
pub mod flight;
pub mod metrics;
pub mod point_in_time;
pub mod sampling;
pub mod snapshot;
pub mod source_rows;

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use quiver_common::registry_cache::RegistryCache;
use quiver_common::{GrpcConfig, GrpcServer, Shutdown};
use tokio::net::TcpListener;

pub use config::OfflineConfig;

/// Largest Flight message accepted or sent (an entity-table batch).
const MAX_MESSAGE: usize = 256 << 20;

/// Serves the snapshot service on `listener` until `shutdown`. `registry` is the registry's
/// address (host:port).
pub async fn serve(
    config: &OfflineConfig,
    grpc: &GrpcConfig,
    registry: &str,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let lake = quiver_lake::Lake::open(&config.store)?;
    tracing::info!(
        store = lake.url(),
        "snapshot service reading the offline store"
    );
    let registry = RegistryCache::start(registry, shutdown.clone());
    let readiness = registry.readiness("offline");
    let service = flight::SnapshotService::new(registry, Arc::new(dataset::DataCache::new(lake)));
    GrpcServer::new("offline", grpc)
        .ready_when(readiness)
        .add_service(
            FlightServiceServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve(listener, shutdown)
        .await
}
