//! The one reader of the served state (`sm_data`): serving, the statistics reads of compute and
//! backfills (`ReadAggregates`), the sealed-tile cache and the streamed-view check read rows,
//! running records, tiles and watermarks through it, so the column family and how each value
//! decodes are known in one place (the keys themselves are built by `keys.rs`). Apply writes
//! through its own batch and overlay (`raft/state_machine.rs`), which readers never see half
//! done: a write batch commits whole.

use prost::Message;
use quiver_core::aggregate::TileRecord;
use quiver_proto::online::StoredRow;
use rocksdb::{ColumnFamily, IteratorMode, ReadOptions, DB};

use crate::error::OnlineStoreError;
use crate::keys;

fn failed(e: rocksdb::Error) -> OnlineStoreError {
    OnlineStoreError::Internal(format!("read failed: {e}"))
}

/// Reads of one node's served state, from its latest committed write.
#[derive(Clone, Copy)]
pub struct StoreReader<'a> {
    db: &'a DB,
    cf: &'a ColumnFamily,
}

impl<'a> StoreReader<'a> {
    /// A reader of `db`'s served state.
    pub fn new(db: &'a DB) -> Result<Self, OnlineStoreError> {
        let cf = db
            .cf_handle(keys::CF_SM_DATA)
            .ok_or_else(|| OnlineStoreError::Internal("column family sm_data is missing".into()))?;
        Ok(Self { db, cf })
    }

    /// The running records of `entities` in the view version whose `Running` prefix is
    /// `prefix`, in their order (one batched lookup). A record that does not decode reads as
    /// none, as it would on every replica.
    pub fn running_records(
        &self,
        prefix: &[u8],
        entities: &[Vec<u8>],
    ) -> Result<Vec<Option<TileRecord>>, OnlineStoreError> {
        let keys: Vec<Vec<u8>> = entities
            .iter()
            .map(|entity| keys::running_key(prefix, entity))
            .collect();
        self.get_many(&keys)
            .into_iter()
            .map(|found| {
                Ok(found
                    .map_err(failed)?
                    .and_then(|bytes| TileRecord::decode(bytes.as_ref()).ok()))
            })
            .collect()
    }

    /// The values under `keys`, in their order: one key is a plain lookup, which skips the
    /// batching a multi-get sets up (sorting, per-file key ranges) for nothing.
    fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Vec<Result<Option<rocksdb::DBPinnableSlice<'a>>, rocksdb::Error>> {
        match keys {
            [key] => vec![self.db.get_pinned_cf(self.cf, key)],
            _ => self.db.batched_multi_get_cf(self.cf, keys, false),
        }
    }

    /// One entity's running record (see [`Self::running_records`]).
    pub fn running_record(
        &self,
        prefix: &[u8],
        entity: &[u8],
    ) -> Result<Option<TileRecord>, OnlineStoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf, keys::running_key(prefix, entity))
            .map_err(failed)?
            .and_then(|bytes| TileRecord::decode(bytes.as_ref()).ok()))
    }

    /// The rows written directly under `row_keys`, in their order (one batched lookup). A row
    /// that does not decode reads as none.
    pub fn rows<K: AsRef<[u8]>>(
        &self,
        row_keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<StoredRow>>, OnlineStoreError> {
        let row_keys: Vec<K> = row_keys.into_iter().collect();
        self.get_many(&row_keys)
            .into_iter()
            .map(|found| {
                Ok(found
                    .map_err(failed)?
                    .and_then(|bytes| StoredRow::decode(bytes.as_ref()).ok()))
            })
            .collect()
    }

    /// The source watermark under `watermark_key` (`keys::watermark_key`); none before the
    /// source's first admitted event.
    pub fn watermark(&self, watermark_key: &[u8]) -> Result<Option<i64>, OnlineStoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf, watermark_key)
            .map_err(failed)?
            .and_then(|v| v.as_ref().try_into().ok().map(keys::from_ordered_i64)))
    }

    /// Visits `entity`'s tiles under `epoch_prefix` (one tile size and epoch,
    /// `keys::tile_epoch_prefix`) with buckets `from..=to`, in bucket order, as (bucket,
    /// record). A record that does not decode is skipped (it would be on every replica).
    pub fn for_each_tile(
        &self,
        epoch_prefix: &[u8],
        entity: &[u8],
        (from, to): (i64, i64),
        mut visit: impl FnMut(i64, TileRecord),
    ) -> Result<(), OnlineStoreError> {
        let mut options = ReadOptions::default();
        // Every key of the range shares the seek key's prefix (entity in this tile size and
        // epoch): the prefix bloom filter may skip files without it.
        options.set_prefix_same_as_start(true);
        options.set_iterate_lower_bound(keys::tile_key(epoch_prefix, entity, from));
        options.set_iterate_upper_bound(keys::tile_key(epoch_prefix, entity, to.saturating_add(1)));
        for item in self
            .db
            .iterator_cf_opt(self.cf, options, IteratorMode::Start)
        {
            let (key, value) = item.map_err(failed)?;
            let Some(bucket) = key
                .len()
                .checked_sub(8)
                .and_then(|at| key[at..].try_into().ok())
                .map(keys::from_ordered_i64)
            else {
                continue;
            };
            match TileRecord::decode(&value) {
                Ok(record) => visit(bucket, record),
                Err(_) => tracing::error!("a stored tile does not decode; skipped"),
            }
        }
        Ok(())
    }

    /// Whether any key starts with `prefix`. An iterator error reads as yes (the caller then
    /// looks, as if it had found one).
    pub fn any_under(&self, prefix: &[u8]) -> bool {
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        let mut iter = self.db.raw_iterator_cf_opt(self.cf, options);
        iter.seek(prefix);
        iter.key().is_some_and(|k| k.starts_with(prefix)) || iter.status().is_err()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prost::Message;

    use super::*;
    use crate::keys::Space;

    fn record(max_event_micros: i64) -> TileRecord {
        TileRecord {
            max_event_micros,
            partials: Vec::new(),
        }
    }

    #[test]
    fn reads_decode_what_is_stored_and_pass_over_what_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open_db(dir.path(), 1 << 20).unwrap();
        let cf = db.cf_handle(keys::CF_SM_DATA).unwrap();
        let store = StoreReader::new(&db).unwrap();

        let running = keys::view_prefix(1, Space::Running, "p", "v", 1);
        db.put_cf(cf, keys::running_key(&running, b"a"), record(7).encode())
            .unwrap();
        db.put_cf(cf, keys::running_key(&running, b"b"), b"not a record")
            .unwrap();
        let entities = [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let found: Vec<Option<i64>> = store
            .running_records(&running, &entities)
            .unwrap()
            .into_iter()
            .map(|r| r.map(|r| r.max_event_micros))
            .collect();
        assert_eq!(found, [Some(7), None, None]);
        assert_eq!(
            store
                .running_record(&running, b"a")
                .unwrap()
                .map(|r| r.max_event_micros),
            Some(7)
        );

        let row = keys::row_key(1, "p", "v", 1, b"a");
        let stored = StoredRow {
            event_time_micros: 5,
            values: Vec::new(),
        };
        db.put_cf(cf, &row, stored.encode_to_vec()).unwrap();
        let missing = keys::row_key(1, "p", "v", 1, b"z");
        assert_eq!(store.rows([&row, &missing]).unwrap(), [Some(stored), None]);

        let watermark = keys::watermark_key(1, "p", "s");
        assert_eq!(store.watermark(&watermark).unwrap(), None);
        db.put_cf(cf, &watermark, keys::ordered_i64(-3)).unwrap();
        assert_eq!(store.watermark(&watermark).unwrap(), Some(-3));

        // Buckets 1..=4 of entity "a" in one epoch, bucket 3 unreadable, a neighbour's tiles
        // beside them: a read of 2..=4 sees 2 and 4.
        let epoch = keys::tile_epoch_prefix(&keys::tiles_prefix(1, "p", "v", 1, false), 60, 0);
        for bucket in 1..=4 {
            let value = if bucket == 3 {
                b"corrupt".to_vec()
            } else {
                record(bucket * 10).encode()
            };
            db.put_cf(cf, keys::tile_key(&epoch, b"a", bucket), value)
                .unwrap();
            db.put_cf(cf, keys::tile_key(&epoch, b"b", bucket), record(0).encode())
                .unwrap();
        }
        let mut seen = Vec::new();
        store
            .for_each_tile(&epoch, b"a", (2, 4), |bucket, r| {
                seen.push((bucket, r.max_event_micros))
            })
            .unwrap();
        assert_eq!(seen, [(2, 20), (4, 40)]);

        assert!(store.any_under(&running));
        assert!(!store.any_under(&keys::view_prefix(1, Space::Running, "p", "w", 1)));
    }
}
