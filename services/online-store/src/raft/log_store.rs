//! The Raft log and vote in RocksDB (`raft_log`, `raft_meta`), following the durability rules:
//! vote, truncation and purge are synced writes; an append is readable on return and reported
//! flushed only after the WAL is synced; `last_purged` is written before logs are deleted.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use super::codec::{decode, encode, io_err};
use super::types::{Entry, LogId, Vote};
use super::TypeConfig;
use crate::keys::{self, tag};

/// One group's log in the node's shared RocksDB.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    group: u32,
    /// Read before every write, so a full disk releases its ballast before RocksDB needs it.
    disk: Option<Arc<crate::disk_guard::DiskGuard>>,
}

impl LogStore {
    /// The log of `group` in `db` (which has the online store's column families).
    pub fn new(db: Arc<DB>, group: u32) -> Self {
        Self {
            db,
            group,
            disk: None,
        }
    }

    /// This log, reading free space from `disk` before it writes.
    pub fn guarded_by(mut self, disk: Arc<crate::disk_guard::DiskGuard>) -> Self {
        self.disk = Some(disk);
        self
    }

    fn check_disk(&self) {
        if let Some(disk) = &self.disk {
            disk.check();
        }
    }

    fn cf(&self, name: &str) -> io::Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| io_err(format!("column family {name} is missing")))
    }

    fn synced() -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        options
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, t: u8) -> io::Result<Option<T>> {
        let cf = self.cf(keys::CF_RAFT_META)?;
        match self
            .db
            .get_cf(cf, keys::meta_key(self.group, t))
            .map_err(io_err)?
        {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn put_meta_synced<T: serde::Serialize>(&self, t: u8, value: &T) -> io::Result<()> {
        let cf = self.cf(keys::CF_RAFT_META)?;
        self.db
            .put_cf_opt(
                cf,
                keys::meta_key(self.group, t),
                encode(value)?,
                &Self::synced(),
            )
            .map_err(io_err)
    }

    /// The last entry's log id, if any log is stored.
    fn last_stored_log_id(&self) -> io::Result<Option<LogId>> {
        let cf = self.cf(keys::CF_RAFT_LOG)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(keys::group_prefix(self.group).to_vec());
        options.set_iterate_upper_bound(keys::group_end(self.group));
        let mut iter = self.db.iterator_cf_opt(cf, options, IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (_, value) = item.map_err(io_err)?;
                let entry: Entry = decode(&value)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    /// Deletes log entries with index in `[from, to)`, synced.
    fn delete_logs(&self, from: u64, to_exclusive: Option<u64>) -> io::Result<()> {
        let cf = self.cf(keys::CF_RAFT_LOG)?;
        let start = keys::log_key(self.group, from);
        let end = match to_exclusive {
            Some(to) => keys::log_key(self.group, to).to_vec(),
            None => keys::group_end(self.group),
        };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, start.as_slice(), end.as_slice());
        self.db.write_opt(batch, &Self::synced()).map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i.saturating_add(1)),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        let cf = self.cf(keys::CF_RAFT_LOG)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(keys::log_key(self.group, start).to_vec());
        options.set_iterate_upper_bound(match end {
            Some(end) => keys::log_key(self.group, end).to_vec(),
            None => keys::group_end(self.group),
        });
        let mut entries = Vec::new();
        for item in self.db.iterator_cf_opt(cf, options, IteratorMode::Start) {
            let (_, value) = item.map_err(io_err)?;
            entries.push(decode(&value)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(tag::VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.get_meta(tag::LAST_PURGED)?;
        let last_log_id = self.last_stored_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.check_disk();
        self.put_meta_synced(tag::VOTE, vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Unsynced is enough: after a crash the committed id is re-learned from the leader; this
        // only lets a restarted node apply what it knew was committed before serving; so it
        // is skipped on a low disk.
        if self.disk.as_ref().is_some_and(|d| d.check()) {
            return Ok(());
        }
        let cf = self.cf(keys::CF_RAFT_META)?;
        self.db
            .put_cf(
                cf,
                keys::meta_key(self.group, tag::COMMITTED),
                encode(&committed)?,
            )
            .map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.get_meta::<Option<LogId>>(tag::COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.check_disk();
        let cf = self.cf(keys::CF_RAFT_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                cf,
                keys::log_key(self.group, entry.log_id.index),
                encode(&entry)?,
            );
        }
        self.db.write(batch).map_err(io_err)?;
        // Readable now; durable once the WAL is synced. The fsync runs off the Raft task, and
        // concurrent appends share it.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            callback.io_completed(db.flush_wal(true).map_err(io_err));
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id
            .map(|id| id.index.saturating_add(1))
            .unwrap_or(0);
        self.delete_logs(from, None)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Record the purge point first: a crash between the two leaves it ahead of the deleted
        // range, never behind it.
        self.put_meta_synced(tag::LAST_PURGED, &log_id)?;
        self.delete_logs(0, Some(log_id.index.saturating_add(1)))
    }
}
