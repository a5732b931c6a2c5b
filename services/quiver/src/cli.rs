//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quiver::addresses::Addresses;

/// Quiver: a real-time feature store.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// The access token client commands send (`authorization: Bearer`), when the cluster
    /// has auth on (docs/security.md).
    #[arg(long, global = true, env = "QUIVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster's CA certificate (PEM): client commands connect over TLS and trust it
    /// (`quiver dev --secure` writes `<data-dir>/tls/ca.pem`).
    #[arg(long, global = true, env = "QUIVER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process, with all state under one directory.
    Dev(DevArgs),
    /// Run one role.
    Serve(ServeArgs),
    /// Validate definitions and apply them to the registry.
    Apply(ApplyArgs),
    /// List objects of one kind.
    List(ListArgs),
    /// Show one object, at its latest or a given version.
    Describe(DescribeArgs),
    /// Show the upstream and downstream lineage of a feature or object.
    Lineage(LineageArgs),
    /// Follow registry changes as they happen.
    Watch(WatchArgs),
    /// Read features from the online store.
    Get(GetArgs),
    /// Administer the online store's Raft cluster.
    Cluster(ClusterArgs),
    /// Push a file of events to ingest.
    Push(PushArgs),
    /// Load history: a file of events of any age, exactly once (re-running it adds nothing).
    Load(LoadArgs),
    /// Compute a point-in-time training set for an entity table (Parquet in, Parquet out).
    Snapshot(SnapshotArgs),
    /// Create, list and revoke access tokens (admin).
    Token(TokenArgs),
}

/// `quiver token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
    /// Output format.
    #[arg(long, value_enum, default_value_t, global = true)]
    pub output: Output,
    /// Where the registry is (tokens live there).
    #[command(flatten)]
    pub addresses: Addresses,
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once; only its digest is kept).
    Create {
        /// reader, writer (implies reader), editor (implies writer) or admin (everything).
        #[arg(long)]
        role: String,
        /// A project the token may act on; repeat for several. None: every project.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Lifetime, e.g. `30d` or `12h`; none: no expiry.
        #[arg(long)]
        ttl: Option<String>,
        /// Who or what it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens (ids, roles, projects, expiry, revoked; never secrets).
    List,
    /// Revoke a token by id (`t_...`): every process refuses it within seconds.
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// `quiver snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The entity table: join-key columns, a timestamp column, anything else (labels) passed
    /// through.
    #[arg(long)]
    pub entities: std::path::PathBuf,
    /// Features as `view:feature` (or `view@N:feature`), comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// A feature service instead of --features.
    #[arg(long)]
    pub service: Option<String>,
    /// The entity table's timestamp column.
    #[arg(long)]
    pub timestamp_column: Option<String>,
    /// Where to write: a path, file:///path, or an object-store URL (s3://bucket/key.parquet).
    #[arg(long)]
    pub out: String,
    /// The project (may be left out when the registry holds one).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Sample entity rows (adds a `sample_weight` column).
    #[arg(long, value_enum)]
    pub sample: Option<SampleStrategy>,
    /// The column whose classes drive --sample.
    #[arg(long)]
    pub label: Option<String>,
    /// balanced: the fraction the most frequent class keeps.
    #[arg(long, default_value_t = 0.1)]
    pub fraction: f64,
    /// The sampling seed (same seed and table, same sample).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output format of the summary (json: one object, no progress line).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// Sampling strategies of `quiver snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleStrategy {
    /// Keep rare classes, down-sample the frequent ones to --fraction.
    Balanced,
    /// Keep each class with probability inversely proportional to its frequency.
    InverseFrequency,
}

/// `quiver load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The source the events belong to.
    #[arg(long)]
    pub source: String,
    /// The file: JSON lines (one object per event), CSV with a header row, or Parquet; or an
    /// object-store prefix (`s3://bucket/orders/`) or a local directory whose `*.parquet`
    /// objects are loaded as one.
    #[arg(long)]
    pub file: std::path::PathBuf,
    /// The file's format (default: from its extension).
    #[arg(long, value_enum)]
    pub format: Option<PushFormat>,
    /// The project (may be left out when the registry holds one).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// `quiver push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The source the events belong to.
    #[arg(long)]
    pub source: String,
    /// The file: JSON lines (one object per event), CSV with a header row, or Parquet.
    #[arg(long)]
    pub file: std::path::PathBuf,
    /// The file's format (default: from its extension).
    #[arg(long, value_enum)]
    pub format: Option<PushFormat>,
    /// The project (may be left out when the registry holds one).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Rows per pushed batch.
    #[arg(long, default_value_t = 5_000)]
    pub batch_size: usize,
    /// Concurrent producers (each with its own producer id and one batch in flight).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Output format of the summary (json: one object, no progress line).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// Input formats of `quiver push`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PushFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated with a header row.
    Csv,
    /// Apache Parquet, columns named like the source's.
    Parquet,
}

/// `quiver dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where every role keeps its state.
    #[arg(long, default_value = "./quiver-data")]
    pub data_dir: PathBuf,
    /// Ports: P registry, P+1 ingest, P+2 compute, P+3 online store, P+4 offline, P+5 HTTP,
    /// P+6 the online store's peer port (Raft).
    #[arg(long, default_value_t = 7070)]
    pub port_base: u16,
    /// Definitions (files or directories) to apply once the registry is up.
    #[arg(long)]
    pub apply: Vec<PathBuf>,
    /// With the example definitions applied: replay a generated transaction stream (two hours
    /// of history, then this many events a second, live). 0 turns the demo off.
    #[arg(long, default_value_t = 200)]
    pub demo_rate: u32,
    /// Turn auth and TLS on: every client RPC needs a token and TLS. An admin token is written
    /// to `<data-dir>/admin.token`, a CA and a certificate for 127.0.0.1/localhost under
    /// `<data-dir>/tls/` (clients: `--ca-cert <data-dir>/tls/ca.pem`); see docs/security.md.
    #[arg(long)]
    pub secure: bool,
}

/// `quiver serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The role to run.
    pub role: Role,
    /// A TOML config file; `QUIVER__SECTION__KEY` environment variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The roles a process can run.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Role {
    /// Definitions, versions, lineage.
    Registry,
    /// Producer-facing event intake.
    Ingest,
    /// Transforms and tile pre-aggregation.
    Compute,
    /// The Raft-replicated online store and GetFeatures.
    OnlineStore,
    /// Point-in-time snapshots.
    Offline,
}

/// `quiver apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Definition files or directories (every `.yaml`/`.yml` inside, recursively).
    #[arg(short = 'f', long = "file", required = true)]
    pub paths: Vec<PathBuf>,
    /// Validate and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format (json: the plan and its outcome as one object).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// The kinds `list` and `describe` take.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum KindArg {
    /// Entities.
    #[value(alias = "entities")]
    Entity,
    /// Sources.
    #[value(alias = "sources")]
    Source,
    /// Feature views.
    #[value(alias = "views", alias = "feature_view", alias = "feature-view")]
    View,
    /// Feature services.
    #[value(
        alias = "services",
        alias = "feature_service",
        alias = "feature-service"
    )]
    Service,
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// For scripts.
    Json,
}

/// `quiver list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// entities, sources, views or services.
    pub kind: KindArg,
    /// The project (optional when the registry holds one).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Include deleted objects.
    #[arg(long)]
    pub include_deleted: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// `quiver describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// entity, source, view or service.
    pub kind: KindArg,
    /// The object's name.
    pub name: String,
    /// A version; the latest by default.
    #[arg(long)]
    pub version: Option<u32>,
    /// The project (optional when the registry holds one).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// `quiver lineage`.
#[derive(Debug, Args)]
pub struct LineageArgs {
    /// `view:feature`, or `<kind>/<name>` (kind: entity, source, transform, view, feature,
    /// service, consumer), e.g. `source/transactions`, `transform/user_txn.note_tokens`.
    pub node: String,
    /// The project (optional when the registry holds one).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// `quiver watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Start after this revision; 0 starts with a snapshot of everything.
    #[arg(long, default_value_t = 0)]
    pub from_revision: u64,
    /// Only this project.
    #[arg(long, default_value = "")]
    pub project: String,
    /// Output format (json: one object per event, one line each).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// `quiver get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Feature refs, comma-separated: `view:feature` or `view@N:feature`.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "service",
        required_unless_present = "service"
    )]
    pub features: Vec<String>,
    /// A feature service name.
    #[arg(long)]
    pub service: Option<String>,
    /// Entity keys: `join_key=v1,v2,...`; repeat for composite keys (same count each).
    #[arg(long = "entity", required = true)]
    pub entities: Vec<String>,
    /// Read as of this time (RFC 3339, e.g. 2026-01-01T00:00:00Z); now by default.
    #[arg(long)]
    pub as_of: Option<String>,
    /// `eventual` (any replica) or `strong` (linearizable, through the leader).
    #[arg(long, value_enum, default_value_t = ConsistencyArg::Eventual)]
    pub consistency: ConsistencyArg,
    /// Name this caller (recorded as a consumer in lineage).
    #[arg(long)]
    pub model: Option<String>,
    /// The project (optional when the registry holds one).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Where the services are.
    #[command(flatten)]
    pub addresses: Addresses,
}

/// Read consistency.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ConsistencyArg {
    /// Any replica; may lag slightly.
    Eventual,
    /// Linearizable through the leader.
    Strong,
}

/// `quiver cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
    /// Output format.
    #[arg(long, value_enum, default_value_t, global = true)]
    pub output: Output,
    /// Where the services are (`--online` is the node asked; leader-only changes follow the
    /// leader hint).
    #[command(flatten)]
    pub addresses: Addresses,
}

/// Cluster administration.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// This node's view: role, leader, term, log and membership.
    Status,
    /// Initialise a new cluster with its first voters (`--members 1=host:port,2=host:port`;
    /// `id=host:port@peerhost:peerport` gives a peer address, otherwise each node is asked for
    /// the one it advertises).
    Init {
        /// The first voters, `id=host:port`, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
    },
    /// Add a node as a learner (it replicates and serves EVENTUAL reads, but does not vote).
    AddLearner {
        /// A node id never used in this cluster before, or `auto` to have the leader allocate
        /// one (printed; with `--output json`, as `node_id`).
        #[arg(long, value_parser = parse_node_id)]
        node_id: u64,
        /// The node's client gRPC address, host:port.
        #[arg(long)]
        address: String,
        /// The node's peer address (host:port), where Raft reaches it. Default: the one the
        /// node advertises (`online_store.peer_advertise`), asked of it at `--address`.
        #[arg(long)]
        peer_address: Option<String>,
        /// Return only once the learner has caught up.
        #[arg(long)]
        wait: bool,
    },
    /// Make a caught-up learner a voter.
    Promote {
        /// The learner's node id.
        #[arg(long)]
        node_id: u64,
    },
    /// Remove a voter or learner.
    Remove {
        /// The node id.
        #[arg(long)]
        node_id: u64,
    },
    /// Snapshot now and purge the log the snapshot covers.
    Compact,
}

/// A node id, or `auto` (0: allocate).
fn parse_node_id(text: &str) -> Result<u64, String> {
    if text == "auto" {
        return Ok(0);
    }
    match text.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("{text:?} is not a node id (1 or more) or auto")),
        Ok(id) => Ok(id),
    }
}
