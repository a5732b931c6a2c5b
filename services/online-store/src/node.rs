//! One online-store node: its RocksDB, its Raft member of group 1, and the registry cache the
//! request handlers validate and resolve against.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use quiver_common::registry_cache::RegistryCache;

use crate::config::OnlineStoreConfig;
use openraft::async_runtime::WatchReceiver;

use crate::error::OnlineStoreError;
use crate::raft::network::Network;
use crate::raft::types::{
    ClientWriteError, Config, Metrics, Node as NodeAddress, RaftError, ServerState,
};
use crate::raft::{LogStore, Raft, StateMachine};
use crate::storage::open_db;

/// The Raft group every node serves. Several groups can share the database later (sharding);
/// group 0 stays reserved for cluster metadata.
pub const GROUP: u32 = 1;

/// A running node.
pub struct Node {
    /// The Raft handle.
    pub raft: Raft,
    /// The state machine, for reads of applied state.
    pub state: StateMachine,
    /// Settings.
    pub config: OnlineStoreConfig,
    /// Definitions from the registry.
    pub registry: RegistryCache,
}

impl Node {
    /// Opens storage and starts Raft. The node serves nothing until a cluster is initialised
    /// (or it is added to one).
    pub async fn start(
        config: OnlineStoreConfig,
        registry: RegistryCache,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(config.node_id > 0, "online_store.node_id must be 1 or more");
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let db = open_db(&config.data_dir.join("db"), config.block_cache_mib << 20)
            .context("cannot open the online store's RocksDB")?;
        let state = StateMachine::open(db.clone(), GROUP, config.data_dir.join("snapshots"))?;
        let log = LogStore::new(db, GROUP);
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let raft_config = Config {
            cluster_name: "quiver-online-store".into(),
            heartbeat_interval: millis(config.heartbeat_interval),
            election_timeout_min: millis(config.election_timeout_min),
            election_timeout_max: millis(config.election_timeout_max),
            install_snapshot_timeout: 60_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: 1_000,
            ..Default::default()
        }
        .validate()
        .context("invalid raft timers in [online_store]")?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            Network,
            log,
            state.clone(),
        )
        .await
        .context("cannot start raft")?;
        Ok(Arc::new(Self {
            raft,
            state,
            config,
            registry,
        }))
    }

    /// The latest metrics.
    pub fn metrics(&self) -> Metrics {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The current leader's address, if known.
    pub fn leader_address(&self) -> Option<String> {
        let metrics = self.metrics();
        let leader = metrics.current_leader?;
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Whether this node is the leader now.
    pub fn is_leader(&self) -> bool {
        self.metrics().state == ServerState::Leader
    }

    /// "Not the leader", pointing at the leader if known.
    pub fn not_leader(&self) -> OnlineStoreError {
        OnlineStoreError::NotLeader {
            leader: self.leader_address(),
        }
    }

    /// Maps a failed Raft write to the client's error.
    pub fn write_error(&self, error: RaftError<ClientWriteError>) -> OnlineStoreError {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
                OnlineStoreError::NotLeader {
                    leader: forward
                        .leader_node
                        .map(|n| n.addr)
                        .or_else(|| self.leader_address()),
                }
            }
            RaftError::APIError(other) => OnlineStoreError::Unavailable(other.to_string()),
            RaftError::Fatal(fatal) => {
                OnlineStoreError::Unavailable(format!("raft stopped: {fatal}"))
            }
        }
    }

    /// The voters and learners of the current membership, with addresses.
    pub fn members(&self) -> (BTreeMap<u64, NodeAddress>, BTreeMap<u64, NodeAddress>) {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let mut v = BTreeMap::new();
        let mut l = BTreeMap::new();
        for (id, node) in membership.nodes() {
            if voters.contains(id) {
                v.insert(*id, node.clone());
            } else {
                l.insert(*id, node.clone());
            }
        }
        (v, l)
    }

    /// Stops Raft (after the servers stopped taking requests).
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown failed");
        }
    }
}
