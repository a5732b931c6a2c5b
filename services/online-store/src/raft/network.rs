//! The sending side of the Raft transport: one lazily connected gRPC channel per peer, to its
//! peer port.

use std::future::Future;
use std::io::Read;
use std::time::Duration;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::RaftNetworkV2;
use quiver_common::client_channel::{authorized, endpoint, AuthChannel};
use quiver_proto::raft::raft_service_client::RaftServiceClient;
use quiver_proto::raft::{RaftPayload, SnapshotChunk};

use super::codec::{decode, encode};
use super::types::{Entry, Node, Snapshot, Vote};
use super::TypeConfig;
use crate::member_address::MemberAddress;
use crate::store_identity;
use tonic::metadata::{Ascii, MetadataValue};

/// Snapshot bytes per streamed chunk.
const CHUNK: usize = 1 << 20;

/// Keeps the longest prefix of `entries` whose commands fit in `max_bytes` (at least one);
/// the log id of the last one kept when some were cut.
fn cut_to_bytes(entries: &mut Vec<Entry>, max_bytes: usize) -> Option<super::types::LogId> {
    let mut bytes = 0usize;
    let keep = entries
        .iter()
        .position(|entry| {
            bytes += match &entry.payload {
                openraft::EntryPayload::Normal(command) => command.write.len(),
                _ => 0,
            } + 64;
            bytes > max_bytes
        })
        .map(|first_over| first_over.max(1))?;
    if keep >= entries.len() {
        return None;
    }
    entries.truncate(keep);
    entries.last().map(|e| e.log_id)
}

/// Creates peer clients for openraft.
#[derive(Clone)]
pub struct Network {
    /// The most command bytes one AppendEntries carries (at least one entry goes).
    pub max_append_bytes: usize,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &Node) -> Self::Network {
        let address = MemberAddress::of(node);
        let mut peer = Peer::new(target, &address.peer);
        peer.max_append_bytes = self.max_append_bytes;
        peer.store = address.store.parse().ok();
        peer
    }
}

/// A connection to one peer.
pub struct Peer {
    target: u64,
    client: Option<RaftServiceClient<AuthChannel>>,
    address: String,
    max_append_bytes: usize,
    /// The store the membership records for the target, sent with every message so a node
    /// on a wiped disk refuses what was meant for the old one (none: recorded before store ids).
    store: Option<MetadataValue<Ascii>>,
}

impl Peer {
    fn new(target: u64, address: &str) -> Self {
        let client = endpoint(address).ok().map(|endpoint| {
            let channel = endpoint
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .connect_lazy();
            RaftServiceClient::new(authorized(channel))
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20)
        });
        Self {
            target,
            client,
            address: address.to_string(),
            max_append_bytes: usize::MAX,
            store: None,
        }
    }

    /// `message` as a request to the target's store.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(store) = &self.store {
            request
                .metadata_mut()
                .insert(store_identity::METADATA, store.clone());
        }
        request
    }

    fn client(&self) -> Result<RaftServiceClient<AuthChannel>, RPCError<TypeConfig>> {
        self.client.clone().ok_or_else(|| {
            unreachable(format!(
                "invalid address {:?} of node {}",
                self.address, self.target
            ))
        })
    }
}

fn unreachable(message: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(message))
}

fn encode_rpc<T: serde::Serialize>(value: &T) -> Result<RaftPayload, RPCError<TypeConfig>> {
    encode(value)
        .map(|data| RaftPayload { data })
        .map_err(|e| RPCError::Network(openraft::error::NetworkError::new(&e)))
}

fn decode_rpc<T: serde::de::DeserializeOwned>(
    payload: RaftPayload,
) -> Result<T, RPCError<TypeConfig>> {
    decode(&payload.data).map_err(|e| RPCError::Network(openraft::error::NetworkError::new(&e)))
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = std::fs::File;

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let cut = cut_to_bytes(&mut rpc.entries, self.max_append_bytes);
        let mut request = self.request(encode_rpc(&rpc)?);
        request.set_timeout(option.hard_ttl());
        let response = self
            .client()?
            .append_entries(request)
            .await
            .map_err(|s| unreachable(s.message()))?;
        // Only a prefix went: openraft sends the rest from where it ended.
        Ok(match (decode_rpc(response.into_inner())?, cut) {
            (AppendEntriesResponse::Success, Some(last)) => {
                AppendEntriesResponse::PartialSuccess(Some(last))
            }
            (response, _) => response,
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut request = self.request(encode_rpc(&rpc)?);
        request.set_timeout(option.hard_ttl());
        let response = self
            .client()?
            .vote(request)
            .await
            .map_err(|s| unreachable(s.message()))?;
        decode_rpc(response.into_inner())
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = encode(&(vote, snapshot.meta.clone()))
            .map_err(|e| StreamingError::Network(openraft::error::NetworkError::new(&e)))?;
        let mut file = snapshot.snapshot;
        // Read the file on a blocking thread and feed chunks through a bounded channel.
        let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
        tokio::task::spawn_blocking(move || {
            use std::io::Seek;
            let mut first = Some(header);
            if file.seek(std::io::SeekFrom::Start(0)).is_err() {
                return;
            }
            loop {
                let mut data = vec![0u8; CHUNK];
                let n = match file.read(&mut data) {
                    Ok(n) => n,
                    Err(_) => return,
                };
                data.truncate(n);
                let header = first.take().unwrap_or_default();
                if (n == 0 && header.is_empty())
                    || tx.blocking_send(SnapshotChunk { header, data }).is_err()
                {
                    return;
                }
                if n == 0 {
                    return;
                }
            }
        });
        let client = self
            .client()
            .map_err(|e| StreamingError::Unreachable(Unreachable::from_string(e.to_string())))?;
        let chunks = self.request(tokio_stream::wrappers::ReceiverStream::new(rx));
        let send = async move {
            let mut client = client;
            client
                .install_snapshot(chunks)
                .await
                .map_err(|s| StreamingError::Unreachable(Unreachable::from_string(s.message())))
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            response = send => {
                let payload = response?.into_inner();
                decode(&payload.data).map_err(|e| StreamingError::Network(openraft::error::NetworkError::new(&e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;

    use super::*;
    use crate::raft::Command;

    fn entries(sizes: &[usize]) -> Vec<Entry> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                let log_id = openraft::testing::log_id::<TypeConfig>(1, 1, i as u64 + 1);
                match size {
                    0 => Entry::new_blank(log_id),
                    n => Entry::new_normal(log_id, Command { write: vec![0; *n] }),
                }
            })
            .collect()
    }

    #[test]
    fn append_entries_are_cut_to_a_byte_bound_but_always_carry_one() {
        let mut small = entries(&[100, 0, 100]);
        assert_eq!(cut_to_bytes(&mut small, 1_000), None);
        assert_eq!(small.len(), 3);
        let mut big = entries(&[600, 600, 600]);
        assert_eq!(cut_to_bytes(&mut big, 1_000).map(|l| l.index), Some(1));
        assert_eq!(big.len(), 1);
        let mut huge = entries(&[5_000, 10]);
        assert_eq!(cut_to_bytes(&mut huge, 1_000).map(|l| l.index), Some(1));
        assert_eq!(huge.len(), 1, "one entry goes whatever its size");
        let mut none = entries(&[]);
        assert_eq!(cut_to_bytes(&mut none, 1_000), None);
    }
}
