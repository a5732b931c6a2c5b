//! The registry service: where feature authors declare entities, sources, feature views and
//! feature services. It validates YAML definitions as a whole, keeps every version of every
//! object immutable, answers lineage questions, and streams changes to other services.
//!
//! Storage is an embedded sled database. This crate depends on `quiver-core`, `quiver-proto`
//! and `quiver-common` only; other services reach it through the generated gRPC client.

pub mod config;
pub mod definition;
pub mod diff;
pub mod error;
pub mod lineage;
pub mod plan;
pub mod service;
pub mod spec;
pub mod store;
pub mod tokens;
pub mod validate;
pub mod watch_hub;

use quiver_common::{GrpcConfig, GrpcServer, Shutdown};
use quiver_proto::auth::token_service_server::TokenServiceServer;
use quiver_proto::registry::registry_service_server::RegistryServiceServer;
use tokio::net::TcpListener;

pub use config::RegistryConfig;
pub use error::RegistryError;
pub use service::Registry;
pub use store::Store;

/// Opens the store and serves the registry on `listener` until `shutdown` triggers.
pub async fn serve(
    config: &RegistryConfig,
    grpc: &GrpcConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), anyhow::Error> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Store::open(&config.data_dir)?;
    tracing::info!(data_dir = %config.data_dir.display(), revision = store.revision()?, "registry store opened");
    let tokens = tokens::Tokens::open(&store)?;
    if let Some(auth) = quiver_common::auth::installed() {
        // This process checks tokens against its own table, read from the store.
        let table = tokens.clone();
        auth.tokens().follow_local(
            std::sync::Arc::new(move || table.records()),
            auth.refresh_interval(),
            shutdown.clone(),
        );
    }
    let registry = Registry::new(store, shutdown.clone());
    GrpcServer::new("registry", grpc)
        .add_service(RegistryServiceServer::new(registry))
        .add_service(TokenServiceServer::new(tokens))
        .serve(listener, shutdown)
        .await
}
