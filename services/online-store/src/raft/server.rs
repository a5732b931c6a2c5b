//! The receiving side of the Raft transport: `quiver.raft.v1.RaftService` handed to openraft.

use std::io::Write;
use std::path::PathBuf;

use futures::StreamExt;
use quiver_proto::raft::raft_service_server::RaftService;
use quiver_proto::raft::{RaftPayload, SnapshotChunk};
use tonic::{Request, Response, Status, Streaming};

use super::codec::{decode, encode};
use super::types::{Snapshot, SnapshotMeta, Vote};
use super::Raft;

/// Serves Raft RPCs from peers to the local node.
#[derive(Clone)]
pub struct RaftServer {
    raft: Raft,
    /// Where received snapshots are staged before openraft installs them.
    incoming_dir: PathBuf,
}

impl RaftServer {
    /// Serves `raft`; received snapshots are staged under `incoming_dir`.
    pub fn new(raft: Raft, incoming_dir: PathBuf) -> Self {
        Self { raft, incoming_dir }
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
        let rpc = decode(&request.into_inner().data).map_err(bad_payload)?;
        let response = self.raft.append_entries(rpc).await.map_err(stopped)?;
        payload(&response)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(&request.into_inner().data).map_err(bad_payload)?;
        let response = self.raft.vote(rpc).await.map_err(stopped)?;
        payload(&response)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
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
