//! The receiving side of the Raft transport: `quiver.raft.v1.RaftService` handed to openraft.

use std::io::Write;
use std::path::PathBuf;

use futures::StreamExt;
use quiver_proto::raft::raft_service_server::RaftService;
use quiver_proto::raft::{RaftPayload, SnapshotChunk};
use tonic::{Request, Response, Status, Streaming};

use openraft::async_runtime::WatchReceiver;
use openraft::raft::AppendEntriesRequest;
use openraft::vote::RaftLeaderId;
use openraft::LogIdOptionExt;

use super::codec::{decode, encode};
use super::types::{LogId, Snapshot, SnapshotMeta, Vote};
use super::{Raft, TypeConfig};
use crate::disk_guard::DiskGuard;
use crate::store_identity;
use std::sync::Arc;

/// Serves Raft RPCs from peers to the local node.
#[derive(Clone)]
pub struct RaftServer {
    raft: Raft,
    /// Where received snapshots are staged before openraft installs them.
    incoming_dir: PathBuf,
    /// This node's id and store id: messages meant for another store are refused.
    node_id: u64,
    store_id: String,
    /// While the disk is low, every message is refused, so nothing makes this node write.
    disk: Arc<DiskGuard>,
}

impl RaftServer {
    /// Serves `raft` of node `node_id` with store `store_id`; received snapshots are staged
    /// under `incoming_dir`.
    pub fn new(
        raft: Raft,
        incoming_dir: PathBuf,
        node_id: u64,
        store_id: String,
        disk: Arc<DiskGuard>,
    ) -> Self {
        Self {
            raft,
            incoming_dir,
            node_id,
            store_id,
            disk,
        }
    }

    fn check_disk(&self) -> Result<(), Status> {
        if self.disk.check() {
            return Err(Status::unavailable(self.disk.refusal()));
        }
        Ok(())
    }

    fn check_store<T>(&self, request: &Request<T>) -> Result<(), Status> {
        store_identity::check(request.metadata(), &self.store_id, self.node_id)
    }
}

/// Numbers the snapshot streams received, for their files' names.
static NEXT_STREAM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A received stream's file, removed when the stream's handling ends.
struct Incoming(std::path::PathBuf);

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// openraft trusts its peers: it asserts on messages no leader following the protocol could
/// send (an uncommitted vote in AppendEntries, entries that do not follow `prev_log_id`, log ids
/// beyond the sender's vote), and one such assertion stops the node's Raft core. A forged or
/// corrupted message must be an error for its sender instead.
fn check_append(rpc: &AppendEntriesRequest<TypeConfig>) -> Result<(), String> {
    if !rpc.vote.is_committed() {
        return Err(format!(
            "vote {} is not a leader's (not committed)",
            rpc.vote
        ));
    }
    let leader = rpc.vote.leader_id().to_committed();
    let beyond = |what: &str, id: &LogId| -> Result<(), String> {
        if *id.committed_leader_id() > leader {
            return Err(format!(
                "{what} {id} is beyond the sender's vote {}",
                rpc.vote
            ));
        }
        Ok(())
    };
    if let Some(prev) = &rpc.prev_log_id {
        beyond("prev_log_id", prev)?;
    }
    let mut last = rpc.prev_log_id;
    let due = rpc.prev_log_id.next_index()..;
    for (next, (i, entry)) in due.zip(rpc.entries.iter().enumerate()) {
        if entry.log_id.index != next {
            return Err(format!(
                "entries[{i}]: index {} where {next} follows prev_log_id",
                entry.log_id.index
            ));
        }
        if last.is_some_and(|l| entry.log_id.committed_leader_id() < l.committed_leader_id()) {
            return Err(format!(
                "entries[{i}]: log id {} goes back in term",
                entry.log_id
            ));
        }
        beyond(&format!("entries[{i}]"), &entry.log_id)?;
        last = Some(entry.log_id);
    }
    if let Some(commit) = &rpc.leader_commit {
        beyond("leader_commit", commit)?;
    }
    Ok(())
}

/// The same for a snapshot's header: a leader's committed vote, and a last log id within it
/// and past what this node has committed at a greater index (openraft asserts both).
fn check_snapshot(vote: &Vote, meta: &SnapshotMeta, raft: &Raft) -> Result<(), String> {
    if !vote.is_committed() {
        return Err(format!("vote {vote} is not a leader's (not committed)"));
    }
    let Some(last) = &meta.last_log_id else {
        return Ok(());
    };
    if *last.committed_leader_id() > vote.leader_id().to_committed() {
        return Err(format!(
            "last log id {last} is beyond the sender's vote {vote}"
        ));
    }
    let metrics = raft.metrics().borrow_watched().clone();
    if let Some(committed) = metrics.last_applied {
        if *last > committed && last.index <= committed.index {
            return Err(format!(
                "last log id {last} contradicts this node's applied {committed}"
            ));
        }
    }
    Ok(())
}

fn bad_payload(e: std::io::Error) -> Status {
    Status::invalid_argument(format!("undecodable raft payload: {e}"))
}

fn stopped(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft is not running: {e}"))
}

fn payload<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    encode(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_store(&request)?;
        let rpc = decode(&request.into_inner().data).map_err(bad_payload)?;
        check_append(&rpc).map_err(|e| Status::invalid_argument(format!("append_entries: {e}")))?;
        self.check_disk()?;
        let response = self.raft.append_entries(rpc).await.map_err(stopped)?;
        payload(&response)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_store(&request)?;
        self.check_disk()?;
        let rpc = decode(&request.into_inner().data).map_err(bad_payload)?;
        let response = self.raft.vote(rpc).await.map_err(stopped)?;
        payload(&response)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_store(&request)?;
        self.check_disk()?;
        let mut chunks = request.into_inner();
        std::fs::create_dir_all(&self.incoming_dir).map_err(|e| Status::internal(e.to_string()))?;
        // Each stream its own file (a retry may overlap the stream it replaces), removed
        // however the stream ends.
        let incoming = Incoming(self.incoming_dir.join(format!(
            "incoming-{}-{}.snap.tmp",
            std::process::id(),
            NEXT_STREAM.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )));
        let path = &incoming.0;
        let mut file = std::fs::File::create(path).map_err(|e| Status::internal(e.to_string()))?;
        let mut header: Option<(Vote, SnapshotMeta)> = None;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if header.is_none() {
                header = Some(decode(&chunk.header).map_err(bad_payload)?);
            }
            file.write_all(&chunk.data)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let (vote, meta) =
            header.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        check_snapshot(&vote, &meta, &self.raft)
            .map_err(|e| Status::invalid_argument(format!("install_snapshot: {e}")))?;
        file.sync_all()
            .map_err(|e| Status::internal(e.to_string()))?;
        let snapshot = Snapshot {
            meta,
            snapshot: std::fs::File::open(path).map_err(|e| Status::internal(e.to_string()))?,
        };
        let response = self
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(stopped);
        payload(&response?)
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::testing::log_id;

    use super::*;
    use crate::raft::types::Entry;

    fn request(
        vote: Vote,
        prev: Option<u64>,
        entries: &[(u64, u64)],
    ) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote,
            prev_log_id: prev.map(|i| log_id::<TypeConfig>(2, 1, i)),
            entries: entries
                .iter()
                .map(|(term, index)| Entry::new_blank(log_id::<TypeConfig>(*term, 1, *index)))
                .collect(),
            leader_commit: None,
        }
    }

    /// Found by sending a crafted AppendEntries to a node: an uncommitted vote stopped its Raft
    /// core on an openraft assertion. Messages no leader could send are refused first.
    #[test]
    fn append_entries_no_leader_could_send_are_refused() {
        let leader = Vote::new_committed(3, 1);
        assert!(check_append(&request(leader, Some(4), &[(2, 5), (3, 6)])).is_ok());
        assert!(check_append(&request(leader, None, &[(3, 0)])).is_ok());
        let uncommitted = check_append(&request(Vote::new(3, 1), Some(4), &[])).unwrap_err();
        assert!(uncommitted.contains("not committed"), "{uncommitted}");
        let gap = check_append(&request(leader, Some(4), &[(3, 6)])).unwrap_err();
        assert!(gap.contains("entries[0]: index 6 where 5"), "{gap}");
        let beyond = check_append(&request(leader, Some(4), &[(4, 5)])).unwrap_err();
        assert!(beyond.contains("beyond the sender's vote"), "{beyond}");
        let back = check_append(&request(leader, Some(4), &[(3, 5), (2, 6)])).unwrap_err();
        assert!(back.contains("goes back in term"), "{back}");
    }

    /// Hostile AppendEntries against a real Raft core (our log store and state machine in a
    /// temp dir): mutations of what a leader of a higher term would send are decoded, checked
    /// as the peer port does, and handed to openraft; none may stop the core.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fuzz_mutated_append_entries_never_stop_the_raft_core() {
        use std::collections::BTreeMap;
        use std::sync::Arc;

        use quiver_core::mutation::{self, mutate, Rng};

        use crate::raft::codec::encode;
        use crate::raft::network::Network;
        use crate::raft::types::{Config, Node};
        use crate::raft::{LogStore, StateMachine};
        use crate::storage::open_db;

        let dir = tempfile::tempdir().unwrap();
        let db = open_db(&dir.path().join("db"), 8 << 20).unwrap();
        let state = StateMachine::open(db.clone(), 1, dir.path().join("snapshots")).unwrap();
        let config = Config {
            heartbeat_interval: 100,
            election_timeout_min: 5_000,
            election_timeout_max: 10_000,
            ..Default::default()
        }
        .validate()
        .unwrap();
        let raft = Raft::new(
            1,
            Arc::new(config),
            Network {
                max_append_bytes: 1 << 20,
            },
            LogStore::new(db, 1),
            state,
        )
        .await
        .unwrap();
        let members: BTreeMap<u64, Node> = [(1, Node::new("127.0.0.1:1"))].into();
        raft.initialize(members).await.unwrap();

        let valid: Vec<Vec<u8>> = [
            request(Vote::new_committed(5, 2), Some(0), &[(5, 1), (5, 2)]),
            request(Vote::new_committed(6, 2), None, &[(6, 0)]),
            request(Vote::new_committed(7, 3), Some(3), &[]),
        ]
        .iter()
        .map(|r| encode(r).unwrap())
        .collect();
        let mut rng = Rng::from_env(0xAB1E_0000_0000_0005);
        let mut handed = 0;
        for _ in 0..mutation::cases(300) {
            let seed = rng.pick(&valid).clone();
            let bytes = mutate(&mut rng, seed);
            let Ok(rpc) = decode::<AppendEntriesRequest<TypeConfig>>(&bytes) else {
                continue;
            };
            if check_append(&rpc).is_err() {
                continue;
            }
            handed += 1;
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), raft.append_entries(rpc))
                    .await;
            let running = raft.metrics().borrow_watched().running_state.clone();
            assert!(running.is_ok(), "the Raft core stopped: {running:?}");
        }
        eprintln!("fuzz: {handed} hostile AppendEntries reached openraft");
        assert!(
            handed > 0,
            "some mutations pass the check and reach openraft"
        );
        raft.shutdown().await.unwrap();
    }
}
