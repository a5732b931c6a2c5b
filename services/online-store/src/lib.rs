//! The online store: the only stateful data tier. A Raft group (openraft) replicates batches of
//! feature rows into RocksDB; any replica serves `GetFeatures` from its applied state, and
//! `STRONG` reads are linearized through the leader (ReadIndex).
//!
//! RocksDB is linked only by this crate; openraft names stay inside [`raft`]. It reaches the
//! registry only through its gRPC client (the registry cache in `quiver-common`).

pub mod admin;
pub mod admission_rules;
pub mod backfill;
pub mod blocking;
pub mod compact;
pub mod config;
pub mod disk_guard;
pub mod entity_stamps;
pub mod error;
pub mod export;
pub mod export_rows;
pub mod keys;
pub mod member_address;
pub mod metrics;
pub mod node;
pub mod producer_progress;
pub mod raft;
pub mod sealed_tiles;
pub mod serving;
pub mod source_log_retention;
pub mod statistics_read;
pub mod storage;
pub mod store_identity;
pub mod store_reader;
pub mod tile_read;
pub mod write;

use quiver_common::registry_cache::RegistryCache;
use quiver_common::{GrpcConfig, GrpcServer, Shutdown};
use quiver_proto::online::cluster_admin_service_server::ClusterAdminServiceServer;
use quiver_proto::online::online_store_service_server::OnlineStoreServiceServer;
use quiver_proto::raft::raft_service_server::RaftServiceServer;
use quiver_proto::serving::serving_service_server::ServingServiceServer;
use tokio::net::TcpListener;

pub use config::OnlineStoreConfig;
pub use error::OnlineStoreError;

/// Largest gRPC message the store accepts (write batches, Raft payloads).
const MAX_MESSAGE: usize = 256 << 20;

/// Starts the node and serves it until `shutdown` triggers, then stops Raft: client RPCs on
/// `listener`, Raft and node-to-node calls on `peer_listener` (the peer port). `registry` is
/// the registry's address (host:port).
pub async fn serve(
    config: &OnlineStoreConfig,
    grpc: &GrpcConfig,
    registry: &str,
    listener: TcpListener,
    peer_listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let cache = RegistryCache::start(registry, shutdown.clone());
    let node = node::Node::start(config.clone(), cache).await?;
    tracing::info!(
        node_id = config.node_id,
        advertise = %config.advertise,
        peer_advertise = %config.peer_advertise,
        "online store node started"
    );
    metrics::export_raft_metrics(node.raft.clone(), shutdown.clone());
    let exporter = if config.export {
        let lake = quiver_lake::Lake::open(&config.offline_store_url())?;
        Some(export::spawn(node.clone(), lake, shutdown.clone()))
    } else {
        None
    };
    let views = backfill::spawn(
        node.clone(),
        if config.export {
            Some(quiver_lake::Lake::open(&config.offline_store_url())?)
        } else {
            None
        },
        shutdown.clone(),
    );
    // Streams a killed process was receiving are gone with it; so must their files be.
    let incoming = config.data_dir.join("incoming");
    raft::snapshot_file::remove_leftovers(&incoming)?;
    let raft_server = raft::server::RaftServer::new(
        node.raft.clone(),
        incoming,
        config.node_id,
        node.store_id.clone(),
        node.disk.clone(),
    );
    let readiness = quiver_common::Readiness::new("online-store", "starting");
    node.track_readiness(readiness.clone());
    // The peer port: only other nodes call it (replication, votes, snapshots, the leader's
    // committed index). No client service is served here.
    let peers = GrpcServer::new("online-store-peer", grpc)
        .peer_port()
        // Its own services answer at once; "" follows the node's readiness (one role in /readyz).
        .ready_when(readiness.clone())
        .add_peer_service(
            RaftServiceServer::new(raft_server)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_peer_service(ClusterAdminServiceServer::new(admin::Admin::new(
            node.clone(),
        )))
        .serve(peer_listener, shutdown.clone());
    let clients = GrpcServer::new("online-store", grpc)
        .ready_when(readiness)
        .add_service(
            OnlineStoreServiceServer::new(write::Writer::new(node.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_peer_service(ClusterAdminServiceServer::new(admin::Admin::new(
            node.clone(),
        )))
        .add_service(
            ServingServiceServer::new(serving::Serving::new(node.clone()))
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve(listener, shutdown.clone());
    let (clients, peers) = tokio::join!(clients, peers);
    if let Some(exporter) = exporter {
        let _ = exporter.await;
    }
    let _ = views.await;
    node.shutdown().await;
    clients.and(peers)
}
