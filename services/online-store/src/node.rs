//! One online-store node: its RocksDB, its Raft member of group 1, and the registry cache the
//! request handlers validate and resolve against.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use anyhow::Context;
use quiver_common::registry_cache::RegistryCache;

use crate::config::OnlineStoreConfig;
use openraft::async_runtime::WatchReceiver;

use crate::disk_guard::DiskGuard;
use crate::error::OnlineStoreError;
use crate::member_address::MemberAddress;
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
    /// This node's store id ([`crate::store_identity`]).
    pub store_id: String,
    /// The free space of its disk ([`crate::disk_guard`]).
    pub disk: Arc<DiskGuard>,
    /// Definitions from the registry.
    pub registry: RegistryCache,
    /// The leader's committed index as last polled by this (non-leader) node; 0 until then.
    leader_committed: AtomicU64,
    /// When that poll answered: milliseconds since `started`.
    leader_heard_at: AtomicU64,
    /// The admission rules every member runs, as last asked ([`crate::admission_rules`]).
    pub(crate) admission_rules: AtomicU32,
    started: std::time::Instant,
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
        let store_id = crate::store_identity::load_or_create(&db)
            .context("cannot read or make the store id")?;
        let disk = DiskGuard::new(
            &config.data_dir,
            config.min_free_disk_bytes,
            config.disk_ballast_bytes,
        );
        let state = StateMachine::open(db.clone(), GROUP, config.data_dir.join("snapshots"))?
            .guarded_by(disk.clone());
        let log = LogStore::new(db, GROUP).guarded_by(disk.clone());
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
            Network {
                max_append_bytes: config.max_append_bytes,
            },
            log,
            state.clone(),
        )
        .await
        .context("cannot start raft")?;
        let node = Arc::new(Self {
            raft,
            state,
            config,
            store_id,
            disk,
            registry,
            leader_committed: AtomicU64::new(0),
            leader_heard_at: AtomicU64::new(0),
            admission_rules: AtomicU32::new(crate::admission_rules::OLDEST),
            started: std::time::Instant::now(),
        });
        poll_leader_commit(Arc::downgrade(&node));
        crate::admission_rules::spawn(Arc::downgrade(&node));
        crate::store_identity::learn_store_ids(Arc::downgrade(&node));
        // Low on disk: never campaign, and as leader stop heartbeats so a node with room takes
        // over (its heartbeats still reach this one, which steps down).
        let weak = Arc::downgrade(&node);
        // Exported from the start (0), so a dashboard and an alert see the series before the
        // first low disk or write.
        crate::metrics::set_disk_low(false);
        crate::metrics::count_write(0, 0, 0);
        DiskGuard::watch(&node.disk, move |low| {
            if let Some(node) = weak.upgrade() {
                node.raft.runtime_config().elect(!low);
                node.raft.runtime_config().heartbeat(!low);
                crate::metrics::set_disk_low(low);
            }
        });
        Ok(node)
    }

    /// Refuses a proposal while the disk is low ([`crate::disk_guard`]): `UNAVAILABLE`, as
    /// during an election, since a node with room takes over the leadership.
    pub fn check_disk(&self) -> Result<(), OnlineStoreError> {
        if self.disk.check() {
            return Err(OnlineStoreError::Unavailable(self.disk.refusal()));
        }
        Ok(())
    }

    /// Why this node cannot answer clients yet, or `None` when it can: it has the registry's
    /// definitions, the group has a leader, and this node has applied what it knows is
    /// committed (a non-leader: within `max_read_lag_entries` of the leader's commit).
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.disk.is_low() {
            // It takes no entries, so what it would serve falls behind.
            return Some(self.disk.refusal());
        }
        if !self.registry.is_loaded() {
            return Some(format!(
                "loading definitions from the registry at {}",
                self.registry.registry_address()
            ));
        }
        let metrics = self.metrics();
        if metrics.current_leader.is_none() {
            return Some(
                "no Raft leader: the node is not a member of an initialised cluster yet, or an \
                 election is under way"
                    .into(),
            );
        }
        let applied = metrics.last_applied.as_ref().map_or(0, |l| l.index);
        let committed = metrics.local_committed.as_ref().map_or(0, |l| l.index);
        if applied < committed {
            return Some(format!(
                "applying committed entries ({applied} of {committed})"
            ));
        }
        self.check_read_lag().err().map(|e| e.to_string())
    }

    /// Keeps `readiness` equal to [`Node::not_ready_reason`] while the node lives.
    pub fn track_readiness(self: &Arc<Self>, readiness: quiver_common::Readiness) {
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = node.upgrade() else { return };
                match this.not_ready_reason() {
                    None => readiness.set_ready(),
                    Some(reason) => readiness.set_not_ready(reason),
                }
                drop(this);
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        });
    }

    /// Whether this node may answer an EVENTUAL read: the leader always; another member once
    /// it knows the leader's committed index, heard it within `max_read_staleness`, and has
    /// applied within `max_read_lag_entries` of it. A replica cut off from the leader (a
    /// partition) stops answering after `max_read_staleness` instead of serving stale values
    /// for as long as the partition lasts.
    pub fn check_read_lag(&self) -> Result<(), OnlineStoreError> {
        let metrics = self.metrics();
        if metrics.state == ServerState::Leader {
            return Ok(());
        }
        let applied = metrics.last_applied.as_ref().map(|l| l.index).unwrap_or(0);
        let leader = self.leader_committed.load(Ordering::Relaxed);
        let heard_at =
            std::time::Duration::from_millis(self.leader_heard_at.load(Ordering::Relaxed));
        let heard = Heard {
            committed: leader,
            ago: self.started.elapsed().saturating_sub(heard_at),
        };
        read_lag_verdict(
            applied,
            &heard,
            self.config.max_read_lag_entries,
            self.config.max_read_staleness,
        )
        .map_err(|reason| OnlineStoreError::NotLeader {
            leader: self.leader_address(),
            reason: Some(reason),
        })
    }

    /// The latest metrics.
    pub fn metrics(&self) -> Metrics {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The current leader's client address, if known.
    pub fn leader_address(&self) -> Option<String> {
        self.leader_addresses().map(|a| a.client)
    }

    /// The current leader's client and peer addresses, if known.
    pub fn leader_addresses(&self) -> Option<MemberAddress> {
        let metrics = self.metrics();
        let leader = metrics.current_leader?;
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(MemberAddress::of)
    }

    /// Whether this node is the leader now.
    pub fn is_leader(&self) -> bool {
        self.metrics().state == ServerState::Leader
    }

    /// "Not the leader", pointing at the leader if known.
    pub fn not_leader(&self) -> OnlineStoreError {
        OnlineStoreError::NotLeader {
            leader: self.leader_address(),
            reason: None,
        }
    }

    /// Maps a failed Raft write to the client's error.
    pub fn write_error(&self, error: RaftError<ClientWriteError>) -> OnlineStoreError {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
                OnlineStoreError::NotLeader {
                    leader: forward
                        .leader_node
                        .map(|n| MemberAddress::of(&n).client)
                        .or_else(|| self.leader_address()),
                    reason: None,
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

/// What a non-leader last heard from the leader.
struct Heard {
    /// The leader's committed index (0: never heard).
    committed: u64,
    /// How long ago.
    ago: std::time::Duration,
}

/// The verdict for an EVENTUAL read on a non-leader that has applied `applied`.
fn read_lag_verdict(
    applied: u64,
    heard: &Heard,
    max_lag: u64,
    max_staleness: std::time::Duration,
) -> Result<(), String> {
    if heard.committed == 0 {
        return Err("this replica has not heard how far the leader has committed yet".into());
    }
    if heard.ago > max_staleness {
        return Err(format!(
            "this replica has not reached the leader for {} ms (over max_read_staleness, {} \
             ms): it may be cut off, and its values may be old",
            heard.ago.as_millis(),
            max_staleness.as_millis()
        ));
    }
    let lag = heard.committed.saturating_sub(applied);
    if lag > max_lag {
        return Err(format!(
            "this replica is {lag} log entries behind the leader"
        ));
    }
    Ok(())
}

/// Keeps `leader_committed` current on non-leaders by asking the leader's admin service on its
/// peer port; stops when the node is dropped.
fn poll_leader_commit(node: Weak<Node>) {
    tokio::spawn(async move {
        loop {
            let Some(this) = node.upgrade() else { return };
            let interval = this.config.read_lag_poll_interval;
            let leader = (!this.is_leader())
                .then(|| this.leader_addresses())
                .flatten()
                .map(|a| a.peer);
            drop(this);
            if let Some(leader) = leader {
                if let Some(committed) = leader_committed_index(&leader).await {
                    let Some(this) = node.upgrade() else { return };
                    this.leader_committed.store(committed, Ordering::Relaxed);
                    let now = u64::try_from(this.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    this.leader_heard_at.store(now, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(interval).await;
        }
    });
}

async fn leader_committed_index(leader: &str) -> Option<u64> {
    use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
    let channel = quiver_common::client_channel::endpoint(leader)
        .ok()?
        .connect_timeout(std::time::Duration::from_secs(1))
        .timeout(std::time::Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let status = ClusterAdminServiceClient::new(quiver_common::client_channel::authorized(channel))
        .status(quiver_proto::online::StatusRequest {})
        .await
        .ok()?
        .into_inner();
    (status.state == "Leader").then_some(status.committed_index)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{read_lag_verdict, Heard};

    #[test]
    fn reads_wait_for_the_first_poll_a_bounded_lag_and_a_recent_poll() {
        let second = Duration::from_secs(1);
        let verdict = |applied, committed, ago| {
            read_lag_verdict(applied, &Heard { committed, ago }, 1_000, 5 * second)
        };
        assert!(
            verdict(0, 0, second).is_err(),
            "never heard from the leader"
        );
        assert!(verdict(10, 1_010, second).is_ok());
        let behind = verdict(10, 1_011, second).unwrap_err();
        assert!(behind.contains("1001 log entries behind"), "{behind}");
        assert!(
            verdict(2_000, 1_500, second).is_ok(),
            "ahead of an old poll"
        );
        let cut_off = verdict(2_000, 1_500, 6 * second).unwrap_err();
        assert!(
            cut_off.contains("not reached the leader for 6000 ms"),
            "{cut_off}"
        );
    }
}
