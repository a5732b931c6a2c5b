//! A member's two addresses and store id as the Raft membership records them.
//!
//! Clients reach a node on its client port (GetFeatures, writes, leader hints); other nodes
//! reach it on its peer port (Raft, node-to-node status). openraft's node type holds one
//! string, so all travel in it as `client|peer|store`. A string without `|` (a membership
//! written before the peer port existed) is a node whose peer address is its client address;
//! one without a store id (written before store ids existed) names no store
//! ([`crate::store_identity`]).

use crate::raft::types::Node as RaftNode;

/// Where clients and peers reach one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddress {
    /// The client gRPC address (host:port).
    pub client: String,
    /// The peer gRPC address (host:port).
    pub peer: String,
    /// The member's store id; empty if recorded before store ids existed.
    pub store: String,
}

const SEPARATOR: char = '|';

impl MemberAddress {
    /// Reads what [`MemberAddress::to_node`] wrote.
    pub fn of(node: &RaftNode) -> Self {
        let mut parts = node.addr.splitn(3, SEPARATOR);
        let client = parts.next().unwrap_or_default().to_string();
        let peer = parts.next().map_or_else(|| client.clone(), str::to_string);
        let store = parts.next().unwrap_or_default().to_string();
        Self {
            client,
            peer,
            store,
        }
    }

    /// The membership's form.
    pub fn to_node(&self) -> RaftNode {
        let mut addr = format!("{}{SEPARATOR}{}", self.client, self.peer);
        if !self.store.is_empty() {
            addr = format!("{addr}{SEPARATOR}{}", self.store);
        }
        RaftNode { addr }
    }
}

/// Whether `address` looks like host:port (and cannot be confused with the separator).
pub fn is_host_port(address: &str) -> bool {
    !address.trim().is_empty() && address.contains(':') && !address.contains(SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_addresses_round_trip_and_old_entries_mean_one_port() {
        let address = MemberAddress {
            client: "node-1:7070".into(),
            peer: "node-1:7076".into(),
            store: "5f3a".into(),
        };
        assert_eq!(MemberAddress::of(&address.to_node()), address);
        let before_store_ids = MemberAddress::of(&RaftNode {
            addr: "node-1:7070|node-1:7076".into(),
        });
        assert_eq!(before_store_ids.peer, "node-1:7076");
        assert_eq!(before_store_ids.store, "");
        let old = MemberAddress::of(&RaftNode {
            addr: "node-1:7070".into(),
        });
        assert_eq!(old.client, "node-1:7070");
        assert_eq!(old.peer, "node-1:7070");
        assert!(is_host_port("a:1"));
        assert!(!is_host_port("a:1|b:2"));
        assert!(!is_host_port(" "));
    }
}
