//! A store's identity: a random id made when a node's database is created and kept in it, so it
//! dies with the disk. The membership records each member's store id next to its addresses;
//! peers put the id they expect on every Raft message (`quiver-store-id`), and a node refuses
//! messages meant for another store.
//!
//! Without it, a node restarted on an empty disk under its old id would be taken for the old
//! member: it would accept the leader's entries as if it had acknowledged them before, and grant
//! votes with a log it has lost, so a majority could elect a leader missing committed entries.
//! With it, such a node is refused until an operator removes the old member and adds the node
//! back under a new id.
//!
//! A member added before it runs (a read replica learns its id that way) has no store id yet;
//! the leader asks it for one as soon as it answers and records it in the membership
//! ([`learn_store_ids`]).

use std::collections::BTreeMap;
use std::io;
use std::sync::Weak;
use std::time::Duration;

use openraft::ChangeMembers;

use rocksdb::DB;
use tonic::Status;

use crate::keys::{self, tag};
use crate::member_address::MemberAddress;
use crate::node::Node;

/// The metadata key carrying the store id a Raft message is meant for.
pub const METADATA: &str = "quiver-store-id";

/// This database's store id, made (and durably written) on first use.
pub fn load_or_create(db: &DB) -> io::Result<String> {
    let to_io = |e: rocksdb::Error| io::Error::other(e.to_string());
    let cf = db
        .cf_handle(keys::CF_RAFT_META)
        .ok_or_else(|| io::Error::other("column family raft_meta is missing"))?;
    let key = keys::meta_key(0, tag::STORE_ID);
    if let Some(id) = db.get_cf(&cf, key).map_err(to_io)? {
        return String::from_utf8(id).map_err(|_| io::Error::other("store id is not UTF-8"));
    }
    let id = new_id()?;
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    db.put_cf_opt(&cf, key, id.as_bytes(), &options)
        .map_err(to_io)?;
    Ok(id)
}

/// 128 random bits, hex.
fn new_id() -> io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Refuses a message meant for another store than `own` (a message naming none comes from a
/// member recorded before store ids existed, and passes).
pub fn check(
    metadata: &tonic::metadata::MetadataMap,
    own: &str,
    node_id: u64,
) -> Result<(), Status> {
    let Some(expected) = metadata.get(METADATA) else {
        return Ok(());
    };
    let expected = expected.to_str().unwrap_or_default();
    if expected.is_empty() || expected == own {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "this is store {own}, but the cluster knows node {node_id} as store {expected}: the node's \
         disk was wiped or replaced. Remove node {node_id} from the cluster and add this node as a \
         new member (`quiver cluster remove`, then `quiver cluster add` with a new id)"
    )))
}

/// On the leader, every 2 s: asks members recorded without a store id for theirs, and records
/// the ids they answer with (same addresses, so the membership change moves nothing else).
pub fn learn_store_ids(node: Weak<Node>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let Some(this) = node.upgrade() else { return };
            if !this.is_leader() {
                continue;
            }
            let (voters, learners) = this.members();
            let mut learned = BTreeMap::new();
            for (id, member) in voters.iter().chain(&learners) {
                let mut address = MemberAddress::of(member);
                if !address.store.is_empty() {
                    continue;
                }
                let Ok(status) = crate::admin::ask_member(&address.client).await else {
                    continue;
                };
                if status.node_id == *id && !status.store_id.is_empty() {
                    address.store = status.store_id;
                    learned.insert(*id, address.to_node());
                }
            }
            if learned.is_empty() {
                continue;
            }
            let ids: Vec<u64> = learned.keys().copied().collect();
            match this
                .raft
                .change_membership(ChangeMembers::SetNodes(learned), true)
                .await
            {
                Ok(_) => tracing::info!(nodes = ?ids, "recorded the store ids of members"),
                Err(e) => tracing::warn!(nodes = ?ids, error = %e, "cannot record store ids yet"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_made_once_and_kept_with_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open_db(&dir.path().join("db"), 1 << 20).unwrap();
        let id = load_or_create(&db).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(load_or_create(&db).unwrap(), id);
        drop(db);
        let db = crate::storage::open_db(&dir.path().join("db"), 1 << 20).unwrap();
        assert_eq!(load_or_create(&db).unwrap(), id);
        let other = tempfile::tempdir().unwrap();
        let wiped = crate::storage::open_db(&other.path().join("db"), 1 << 20).unwrap();
        assert_ne!(load_or_create(&wiped).unwrap(), id);
    }

    #[test]
    fn messages_for_another_store_are_refused() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert!(check(&metadata, "a", 3).is_ok());
        metadata.insert(METADATA, "a".parse().unwrap());
        assert!(check(&metadata, "a", 3).is_ok());
        metadata.insert(METADATA, "b".parse().unwrap());
        let refused = check(&metadata, "a", 3).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(refused.message().contains("node 3"), "{refused:?}");
    }
}
