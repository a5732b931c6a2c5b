//! `quiver.online.v1.ClusterAdminService`: initialise, add learners, promote, remove, status,
//! compact. Membership changes run on the leader, one at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::online::cluster_admin_service_server::ClusterAdminService;
use quiver_proto::online::{
    AddLearnerRequest, CompactRequest, CompactResponse, InitializeRequest, InitializeResponse,
    Member, MembershipResponse, PromoteRequest, RemoveRequest, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::error::OnlineStoreError;
use crate::member_address::{is_host_port, MemberAddress};
use crate::node::Node;
use crate::raft::types::{ChangeMembers, Node as NodeAddress, ServerState};

/// The admin service of one node.
#[derive(Clone)]
pub struct Admin {
    node: Arc<Node>,
}

impl Admin {
    /// Administers `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    fn require_leader(&self) -> Result<(), OnlineStoreError> {
        if self.node.is_leader() {
            Ok(())
        } else {
            Err(self.node.not_leader())
        }
    }

    fn membership_response(&self, log_index: u64, node_id: u64) -> MembershipResponse {
        let (voters, learners) = self.node.members();
        MembershipResponse {
            voters: to_members(&voters),
            learners: to_members(&learners),
            log_index,
            node_id,
        }
    }

    /// Waits until no membership change is in flight (the last one is committed).
    async fn wait_membership_settled(&self) -> Result<(), OnlineStoreError> {
        self.node
            .raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| m.membership_config.log_id() == m.committed_membership_config.log_id(),
                "membership settled",
            )
            .await
            .map(|_| ())
            .map_err(|_| {
                OnlineStoreError::Unavailable(
                    "a previous membership change is still in progress".into(),
                )
            })
    }

    /// The addresses and store id of `member`, to be node `id`, asked of the member itself
    /// (this node answers from its config): nodes advertise their peer port and store id in
    /// `Status`. A `peer_address` given explicitly wins over the advertised one, and lets a
    /// member that is not running yet be added; its store id is then learned later.
    async fn resolve_member(
        &self,
        id: u64,
        member: &Member,
    ) -> Result<MemberAddress, OnlineStoreError> {
        Self::check_address("member.address", &member.address, member.node_id)?;
        if !member.peer_address.is_empty() {
            Self::check_address("member.peer_address", &member.peer_address, member.node_id)?;
        }
        let (peer, store) = if member.node_id == self.node.config.node_id
            && member.address == self.node.config.advertise
        {
            (
                self.node.config.peer_advertise.clone(),
                self.node.store_id.clone(),
            )
        } else if !member.peer_address.is_empty() && ask_member(&member.address).await.is_err() {
            // Not running yet (a read replica joins before it starts, to learn its id): its
            // store id is learned once it answers (`store_identity::learn_store_ids`).
            (member.peer_address.clone(), String::new())
        } else {
            let status = ask_member(&member.address).await?;
            if status.node_id != id {
                return Err(OnlineStoreError::InvalidArgument(format!(
                    "member.node_id: the node at {} is configured as node {}, not {id}",
                    member.address, status.node_id
                )));
            }
            (status.peer_address, status.store_id)
        };
        let peer = match member.peer_address.as_str() {
            "" => peer,
            given => given.to_string(),
        };
        if peer.is_empty() {
            return Err(OnlineStoreError::Unavailable(format!(
                "the node at {} advertises no peer address (an older version?)",
                member.address
            )));
        }
        Ok(MemberAddress {
            client: member.address.clone(),
            peer,
            store,
        })
    }

    fn check_address(field: &str, address: &str, node_id: u64) -> Result<(), OnlineStoreError> {
        if !is_host_port(address) {
            return Err(OnlineStoreError::InvalidArgument(format!(
                "{field}: {address:?} is not host:port (node {node_id})"
            )));
        }
        Ok(())
    }
}

/// Asks the node at `address` (its client port) for its status: its id, the peer address it
/// advertises and its store id.
pub(crate) async fn ask_member(address: &str) -> Result<StatusResponse, OnlineStoreError> {
    let unreachable = |e: &dyn std::fmt::Display| {
        OnlineStoreError::Unavailable(format!(
            "cannot ask the node at {address} for its peer address and store id ({e}); start it \
             first"
        ))
    };
    let channel = quiver_common::client_channel::endpoint(address)
        .map_err(|e| OnlineStoreError::InvalidArgument(e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| unreachable(&e))?;
    let status = ClusterAdminServiceClient::new(quiver_common::client_channel::authorized(channel))
        .status(StatusRequest {})
        .await
        .map_err(|e| unreachable(&e.message()))?
        .into_inner();
    Ok(status)
}

fn to_members(nodes: &BTreeMap<u64, NodeAddress>) -> Vec<Member> {
    nodes
        .iter()
        .map(|(id, n)| {
            let address = MemberAddress::of(n);
            Member {
                node_id: *id,
                address: address.client,
                peer_address: address.peer,
                store_id: address.store,
            }
        })
        .collect()
}

fn internal(e: impl std::fmt::Display) -> OnlineStoreError {
    OnlineStoreError::Internal(e.to_string())
}

#[tonic::async_trait]
impl ClusterAdminService for Admin {
    async fn initialize(
        &self,
        request: Request<InitializeRequest>,
    ) -> Result<Response<InitializeResponse>, Status> {
        let request = request.into_inner();
        if request.members.is_empty() {
            return Err(OnlineStoreError::InvalidArgument(
                "members: at least one member is required".into(),
            )
            .into());
        }
        let mut ids = BTreeSet::new();
        for member in &request.members {
            if member.node_id == 0 {
                return Err(OnlineStoreError::InvalidArgument(
                    "member.node_id: must be 1 or more".into(),
                )
                .into());
            }
            Admin::check_address("member.address", &member.address, member.node_id)?;
            if !ids.insert(member.node_id) {
                return Err(OnlineStoreError::InvalidArgument(format!(
                    "members: node id {} is listed twice",
                    member.node_id
                ))
                .into());
            }
        }
        if !ids.contains(&self.node.config.node_id) {
            return Err(OnlineStoreError::InvalidArgument(format!(
                "members: must include this node ({})",
                self.node.config.node_id
            ))
            .into());
        }
        if self.node.raft.is_initialized().await.map_err(internal)? {
            let (voters, _) = self.node.members();
            let same = voters.keys().copied().collect::<BTreeSet<_>>() == ids;
            return if same {
                Ok(Response::new(InitializeResponse { initialized: false }))
            } else {
                Err(OnlineStoreError::FailedPrecondition(format!(
                    "the cluster is already initialised with voters {:?}",
                    voters.keys().collect::<Vec<_>>()
                ))
                .into())
            };
        }
        // Only a new cluster needs the members' peer addresses (asked of them when not given).
        let mut members = BTreeMap::new();
        for member in &request.members {
            let address = self.resolve_member(member.node_id, member).await?;
            members.insert(member.node_id, address.to_node());
        }
        self.node.raft.initialize(members).await.map_err(internal)?;
        tracing::info!(members = request.members.len(), "cluster initialised");
        Ok(Response::new(InitializeResponse { initialized: true }))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let request = request.into_inner();
        let member = request
            .member
            .ok_or_else(|| OnlineStoreError::InvalidArgument("member: required".into()))?;
        Admin::check_address("member.address", &member.address, member.node_id)?;
        self.require_leader()?;
        self.wait_membership_settled().await?;
        let (voters, learners) = self.node.members();
        let current = voters
            .get(&member.node_id)
            .or_else(|| learners.get(&member.node_id));
        let known = current.map(MemberAddress::of);
        if let Some(known) = known.as_ref().filter(|k| !k.store.is_empty()) {
            // The same id on another store is a wiped disk, never the old member.
            if let Ok(status) = ask_member(&member.address).await {
                if status.node_id == member.node_id && status.store_id != known.store {
                    return Err(OnlineStoreError::FailedPrecondition(format!(
                        "node {} is a member with store {}, but the node at {} has store {}: its \
                         disk was wiped or replaced. Remove node {} and add this node with a new \
                         id",
                        member.node_id,
                        known.store,
                        member.address,
                        status.store_id,
                        member.node_id
                    ))
                    .into());
                }
            }
        }
        if known.is_some_and(|known| {
            known.client == member.address
                && (member.peer_address.is_empty() || known.peer == member.peer_address)
        }) {
            // Already a member at this address (e.g. a restarted replica): nothing to do.
            let index = self
                .node
                .metrics()
                .membership_config
                .log_id()
                .map(|l| l.index)
                .unwrap_or(0);
            return Ok(Response::new(
                self.membership_response(index, member.node_id),
            ));
        }
        let id = match member.node_id {
            // Allocated from the replicated record of every id ever used, so never reused.
            0 => self.node.state.max_known_node().map_err(internal)?.max(voters.keys().chain(learners.keys()).copied().max().unwrap_or(0)) + 1,
            id if self.node.state.was_ever_member(id).map_err(internal)? => {
                return Err(OnlineStoreError::FailedPrecondition(format!(
                    "node id {id} was already used in this cluster; node ids are never reused, pick a new one (or `--node-id auto` to allocate one)"
                ))
                .into())
            }
            id => id,
        };
        let address = self.resolve_member(id, &member).await?;
        let node = address.to_node();
        let response = self
            .node
            .raft
            .add_learner(id, node, request.wait_caught_up)
            .await
            .map_err(|e| self.node.write_error(e))?;
        tracing::info!(node = id, "learner added");
        Ok(Response::new(
            self.membership_response(response.log_id.index, id),
        ))
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let id = request.into_inner().node_id;
        self.require_leader()?;
        let (voters, learners) = self.node.members();
        if voters.contains_key(&id) {
            return Err(OnlineStoreError::FailedPrecondition(format!(
                "node {id} is already a voter"
            ))
            .into());
        }
        if !learners.contains_key(&id) {
            return Err(OnlineStoreError::NotFound(format!(
                "node {id} is not a learner; add it first"
            ))
            .into());
        }
        self.wait_membership_settled().await?;
        let response = self
            .node
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
            .await
            .map_err(|e| self.node.write_error(e))?;
        tracing::info!(node = id, "learner promoted to voter");
        Ok(Response::new(
            self.membership_response(response.log_id.index, id),
        ))
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let id = request.into_inner().node_id;
        self.require_leader()?;
        let (voters, learners) = self.node.members();
        let change = if voters.contains_key(&id) {
            if voters.len() == 1 {
                return Err(OnlineStoreError::FailedPrecondition(format!(
                    "node {id} is the last voter"
                ))
                .into());
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if learners.contains_key(&id) {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(OnlineStoreError::NotFound(format!("node {id} is not a member")).into());
        };
        self.wait_membership_settled().await?;
        let response = self
            .node
            .raft
            .change_membership(change, false)
            .await
            .map_err(|e| self.node.write_error(e))?;
        tracing::info!(node = id, "member removed");
        Ok(Response::new(
            self.membership_response(response.log_id.index, id),
        ))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let metrics = self.node.metrics();
        let (voters, learners) = self.node.members();
        let state = match metrics.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Learner => "Learner",
            ServerState::Candidate => "Candidate",
            ServerState::Shutdown => "Shutdown",
        };
        let replication = metrics
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, log)| (*id, log.as_ref().map(|l| l.index).unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(StatusResponse {
            node_id: metrics.id,
            state: state.to_string(),
            leader_id: metrics.current_leader.unwrap_or(0),
            leader_address: self.node.leader_address().unwrap_or_default(),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            last_applied: metrics.last_applied.as_ref().map(|l| l.index).unwrap_or(0),
            snapshot_index: metrics.snapshot.as_ref().map(|l| l.index).unwrap_or(0),
            purged_index: metrics.purged.as_ref().map(|l| l.index).unwrap_or(0),
            voters: to_members(&voters),
            learners: to_members(&learners),
            replication,
            initialized: self.node.raft.is_initialized().await.map_err(internal)?,
            committed_index: metrics
                .local_committed
                .as_ref()
                .map(|l| l.index)
                .unwrap_or(0),
            exported_through: self
                .node
                .state
                .export_state()
                .map_err(internal)?
                .exported_through,
            peer_address: self.node.config.peer_advertise.clone(),
            store_id: self.node.store_id.clone(),
            admission_rules: crate::raft::source_clock::RULES,
        }))
    }

    async fn compact(
        &self,
        _request: Request<CompactRequest>,
    ) -> Result<Response<CompactResponse>, Status> {
        let applied = self
            .node
            .metrics()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0);
        self.node
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(internal)?;
        let index = |l: &Option<crate::raft::types::LogId>| l.as_ref().map(|l| l.index);
        let built = self
            .node
            .raft
            .wait(Some(Duration::from_secs(60)))
            .metrics(
                |m| index(&m.snapshot).is_some_and(|i| i >= applied),
                "snapshot built",
            )
            .await
            .ok()
            .and_then(|m| index(&m.snapshot))
            .ok_or_else(|| {
                OnlineStoreError::Unavailable("the snapshot did not complete within 60s".into())
            })?;
        self.node
            .raft
            .trigger()
            .purge_log(built)
            .await
            .map_err(internal)?;
        // Purging is asynchronous: answer once the log really is gone up to the snapshot.
        self.node
            .raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(
                |m| index(&m.purged).is_some_and(|i| i >= built),
                "log purged",
            )
            .await
            .map_err(|_| {
                OnlineStoreError::Unavailable(format!(
                    "snapshot at {built} built, but the log was not purged within 30s"
                ))
            })?;
        Ok(Response::new(CompactResponse {
            snapshot_index: built,
        }))
    }
}
