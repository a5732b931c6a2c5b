//! The command line of `quiver-bench`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use quiver::addresses::Addresses;

/// Quiver's load generators and same-run peer baselines (docs/benchmarks.md).
#[derive(Debug, Parser)]
#[command(name = "quiver-bench", version, about)]
pub struct Cli {
    /// Which benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
    /// The access token to send (`authorization: Bearer`), when the cluster has auth on.
    #[arg(long, global = true, env = "QUIVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster's CA certificate (PEM): connect over TLS and trust it.
    #[arg(long, global = true, env = "QUIVER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Apply the bench definitions and write `--entities` rows of `--features` float64 features
    /// in batches (the write benchmark: rows/s durably replicated).
    Write(crate::online::WriteArgs),
    /// Read random entities (written by `write`) with many requests in flight; with `--peer`,
    /// against the bare tonic lookup server too, alternating, and the ratio.
    Get(crate::online::GetArgs),
    /// A bare tonic `ServingService/GetFeatures` server answering from a HashMap of the entities
    /// and values `write` writes: the peer of `get --peer`.
    PeerServer(crate::peer_server::PeerServerArgs),
    /// Push generated transactions through ingest -> compute -> online store (applying the
    /// example definitions first) and report committed events/s and event-to-acknowledged
    /// latency (an upper bound of event-to-servable freshness).
    Push(crate::push::Shape),
    /// Load generated history into a new project's `transactions` source, then apply the
    /// example `user_txn` view and time its backfill (with a live producer measuring freshness).
    Backfill(crate::backfill::Shape),
    /// Kafka sources: start librdkafka's mock cluster in this process, apply a bench project
    /// whose sources name its topics, and measure events/s from a topic into tiles (a lean
    /// view, then the example `user_txn` view against `push`) and event -> committed
    /// freshness at an offered rate.
    Kafka(crate::kafka::Shape),
    /// Write generated events into the offline store as a source's log, then time
    /// point-in-time snapshots over Arrow Flight: as-of features cold and warm, and windowed.
    Snapshot(crate::snapshot::Shape),
}
