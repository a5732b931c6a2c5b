//! A member's two addresses as the Raft membership records them.
//!
//! Clients reach a node on its client port (GetFeatures, writes, leader hints); other nodes
//! reach it on its peer port (Raft, node-to-node status). openraft's node type holds one
//! string, so both travel in it as `client|peer`. A string without `|` (a membership written
//! before the peer port existed) is a node whose peer address is its client address.

use crate::raft::types::Node as RaftNode;

/// Where clients and peers reach one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddress {
    /// The client gRPC address (host:port).
    pub client: String,
    /// The peer gRPC address (host:port).
    pub peer: String,
}

const SEPARATOR: char = '|';

impl MemberAddress {
    /// Reads what [`MemberAddress::to_node`] wrote.
    pub fn of(node: &RaftNode) -> Self {
        match node.addr.split_once(SEPARATOR) {
            Some((client, peer)) => Self {
                client: client.to_string(),
                peer: peer.to_string(),
            },
            None => Self {
                client: node.addr.clone(),
                peer: node.addr.clone(),
            },
        }
    }

    /// The membership's form.
    pub fn to_node(&self) -> RaftNode {
        RaftNode {
            addr: format!("{}{SEPARATOR}{}", self.client, self.peer),
        }
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
        };
        assert_eq!(MemberAddress::of(&address.to_node()), address);
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
