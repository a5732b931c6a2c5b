//! The online store's Raft layer. Every openraft name stays inside this module (openraft is an
//! alpha; an upgrade should touch nothing else).

mod apply_events;
mod apply_export;
mod codec;
pub mod command;
pub mod log_store;
pub mod network;
mod positions;
mod producers;
pub mod server;
pub(crate) mod snapshot_file;
pub mod source_clock;
pub mod state_machine;
pub mod streamed_views;
pub mod views;

use std::fmt;

use serde::{Deserialize, Serialize};

pub(crate) use apply_events::{backfill_position, log_position};
pub use log_store::LogStore;
pub use state_machine::StateMachine;

/// A command in the Raft log: one encoded `quiver.online.v1.LogCommand` (see `command`).
/// Keeping the payload in protobuf makes the log's format the proto's, whose field numbers
/// never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The encoded command (serialized as one byte string, not byte by byte).
    #[serde(with = "serde_bytes")]
    pub write: Vec<u8>,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write({} bytes)", self.write.len())
    }
}

/// What applying a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Rows stored.
    pub applied: u64,
    /// Rows not newer than the stored row (or with an unusable key).
    pub stale: u64,
    /// The batch had been applied before.
    pub duplicate: bool,
    /// Per event batch of the command, in order.
    pub events: Vec<EventOutcome>,
}

/// What applying one producer's event batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOutcome {
    /// Rows admitted.
    pub accepted: u64,
    /// Rows rejected as late.
    pub late: u64,
    /// Row-view pairs excluded as anomalous.
    pub anomalous: u64,
    /// The batch had been applied before; nothing changed.
    pub duplicate: bool,
    /// The producer's epoch was below a stored one; nothing changed.
    pub fenced: bool,
    /// The producer's epoch and last sequence after the batch (the stored ones when it was a
    /// duplicate or fenced).
    pub epoch: u64,
    /// See `epoch`.
    pub last_sequence: u64,
    /// Versions of its source the batch lacked (`view@version`): refused, nothing changed.
    pub missing_views: Vec<String>,
}

openraft::declare_raft_types!(
    /// Quiver's Raft types: u64 node ids, nodes addressed by host:port.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A Raft node of the online store.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// openraft's types, under names the rest of the crate may use.
pub mod types {
    use super::TypeConfig;

    /// A log id.
    pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
    /// A vote.
    pub type Vote = openraft::alias::VoteOf<TypeConfig>;
    /// A log entry.
    pub type Entry = openraft::alias::EntryOf<TypeConfig>;
    /// The membership as applied.
    pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
    /// Snapshot metadata.
    pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
    /// A snapshot.
    pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, std::fs::File>;
    /// Metrics.
    pub type Metrics = openraft::RaftMetrics<TypeConfig>;
    /// A node's address.
    pub type Node = openraft::BasicNode;
    /// Raft's tunables.
    pub type Config = openraft::Config;
    /// Server states.
    pub type ServerState = openraft::ServerState;
    /// Membership change requests.
    pub type ChangeMembers = openraft::ChangeMembers<u64, openraft::BasicNode>;
    /// Write errors.
    pub type ClientWriteError = openraft::error::ClientWriteError<TypeConfig>;
    /// Raft API errors.
    pub type RaftError<E = std::convert::Infallible> = openraft::error::RaftError<TypeConfig, E>;
    /// Read policies for linearizable reads.
    pub type ReadPolicy = openraft::ReadPolicy;
}
