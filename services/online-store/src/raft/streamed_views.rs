//! Which view versions hold running records at all, so a read of a view whose rows were only
//! ever written directly (`Write`) skips the running-record lookup: a `MultiGet` that misses
//! still walks the memtable and every level's filter, about an eighth of a node's CPU under
//! 1 x 8 `last` reads (`docs/benchmarks.md`).
//!
//! The answer may only err towards "yes": apply marks a version before the write batch that
//! holds its first running record commits, a reader that found none records its answer only if
//! no snapshot install (which replaces every record) happened while it looked, and versions are
//! never unmarked short of an install (a retired version's records are deleted; reading it is
//! then one wasted lookup).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use crate::store_reader::StoreReader;

/// Per running-record prefix (one view version), whether any record exists under it.
#[derive(Debug, Default)]
pub struct StreamedViews {
    known: RwLock<HashMap<Vec<u8>, bool>>,
    /// Moves on every install, so an answer looked up across one is not kept.
    installs: AtomicU64,
}

impl StreamedViews {
    /// Whether any running record exists under `prefix`: from memory, or one seek the first time.
    pub fn has_records(&self, store: &StoreReader<'_>, prefix: &[u8]) -> bool {
        if let Some(known) = self.known.read().ok().and_then(|m| m.get(prefix).copied()) {
            return known;
        }
        let installs = self.installs.load(Ordering::Acquire);
        // An iterator error reads as "yes": the read then looks, as it always did.
        let found = store.any_under(prefix);
        if let Ok(mut known) = self.known.write() {
            if self.installs.load(Ordering::Acquire) == installs {
                // A version apply marked meanwhile stays marked.
                known.entry(prefix.to_vec()).or_insert(found);
            }
        }
        found
    }

    /// Marks a version whose running records an apply is about to write.
    pub fn mark(&self, prefix: &[u8]) {
        let marked = self
            .known
            .read()
            .ok()
            .is_some_and(|m| m.get(prefix) == Some(&true));
        if !marked {
            if let Ok(mut known) = self.known.write() {
                known.insert(prefix.to_vec(), true);
            }
        }
    }

    /// Forgets every answer: an install replaced the records.
    pub fn forget(&self) {
        self.installs.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut known) = self.known.write() {
            known.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_version_is_streamed_once_a_record_is_marked_or_found_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open_db(dir.path(), 1 << 20).unwrap();
        let cf = db.cf_handle(crate::keys::CF_SM_DATA).unwrap();
        let store = StoreReader::new(&db).unwrap();
        let views = StreamedViews::default();

        assert!(!views.has_records(&store, b"r/a"));
        // Marked by apply before its batch commits: a reader that cached "no" learns it.
        views.mark(b"r/a");
        assert!(views.has_records(&store, b"r/a"));
        // Found on disk (a restart, or records another way): one seek, then from memory.
        db.put_cf(cf, b"r/b\x00entity", b"record").unwrap();
        assert!(views.has_records(&store, b"r/b"));
        assert!(
            !views.has_records(&store, b"r/c"),
            "a neighbouring prefix is not a match"
        );
        // An install replaces everything: answers are looked up again.
        db.put_cf(cf, b"r/c\x00entity", b"record").unwrap();
        assert!(!views.has_records(&store, b"r/c"), "remembered");
        views.forget();
        assert!(views.has_records(&store, b"r/c"));
    }
}
