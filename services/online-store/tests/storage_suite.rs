//! openraft's storage conformance suite against the RocksDB log store and state machine, flat
//! and as one group among others in a shared database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use quiver_online_store::keys;
use quiver_online_store::raft::{LogStore, StateMachine, TypeConfig};
use quiver_online_store::storage::open_db;
use tempfile::TempDir;

/// Builds a fresh store for group `group`; with `neighbours`, groups `group - 1` and
/// `group + 1` already hold logs and data that must stay untouched and invisible.
struct Builder {
    group: u32,
    neighbours: bool,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(&dir.path().join("db"), 8 << 20).unwrap();
        if self.neighbours {
            for other in [self.group - 1, self.group + 1] {
                let log = db.cf_handle(keys::CF_RAFT_LOG).unwrap();
                for index in [0u64, 1, 5, u64::MAX] {
                    db.put_cf(log, keys::log_key(other, index), b"not an entry")
                        .unwrap();
                }
                let data = db.cf_handle(keys::CF_SM_DATA).unwrap();
                db.put_cf(
                    data,
                    keys::row_key(other, "p", "v", 1, b"k"),
                    b"other group",
                )
                .unwrap();
            }
        }
        let log_store = LogStore::new(db.clone(), self.group);
        let sm = StateMachine::open(db, self.group, dir.path().join("snapshots")).unwrap();
        Ok((dir, log_store, sm))
    }
}

#[test]
fn conformance_suite_single_group() {
    TypeConfig::run(Suite::test_all(Builder {
        group: 1,
        neighbours: false,
    }))
    .unwrap();
}

#[test]
fn conformance_suite_group_among_neighbours() {
    TypeConfig::run(Suite::test_all(Builder {
        group: 7,
        neighbours: true,
    }))
    .unwrap();
}
