//! The replicated state machine in RocksDB (`sm_data`, `sm_meta`).
//!
//! Apply is deterministic: it decides only from the log (event times, producer sequences),
//! never from a clock or local settings. One drained batch of entries is one synced
//! `WriteBatch` holding the data, `last_applied` and the membership, with an overlay so later
//! entries of the batch see earlier ones.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use prost::Message;
use quiver_common::view_feed::recompute_derived;
use quiver_proto::convert::timestamp_to_micros;
use quiver_proto::online::log_command::Kind;
use quiver_proto::online::{EventWrite, RowWrite, StagedBatch, StagedEntry, StoredRow};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use super::apply_events::{AppliedEvents, EntryFolds};
use super::codec::{decode, encode, io_err};
use super::producers::Sequencing;
use super::snapshot_file;
use super::types::{LogId, Snapshot, SnapshotMeta, StoredMembership};
use super::{Command, CommandResult, TypeConfig};
use crate::blocking::blocking;
use crate::entity_stamps::EntityStamps;
use crate::keys::{self, tag};
use crate::store_reader::StoreReader;

/// How many records, and at most how many bytes, an install writes per (unsynced) batch before
/// the final synced one: a batch is held whole in memory, twice (the batch and the memtable),
/// so a count alone let 64 KiB rows take 2.4 GiB to install a 2 GiB snapshot.
const INSTALL_BATCH: usize = 10_000;
const INSTALL_BATCH_BYTES: usize = 8 << 20;

/// One group's state machine in the node's shared RocksDB.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    group: u32,
    snapshot_dir: PathBuf,
    /// Serializes publishing snapshot files, so a slow build never replaces a newer one.
    publish: Arc<Mutex<()>>,
    /// Moves whenever view-version states may have changed (after the change is durable), so
    /// readers that cache decisions made from them know to make them again.
    views_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Moves after a write that may have changed a sealed tile (`sealed_tiles.rs`): rows
    /// admitted behind the source watermark minus the lateness, history, backfills, view
    /// changes and snapshot installs.
    tiles_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Per source (its watermark key), the largest allowed lateness of a batch applied since
    /// this process started: readers seal tiles behind the watermark minus at least this, so
    /// a lateness raised in the registry seals nothing a batch under it may still write.
    lateness_applied: Arc<std::sync::RwLock<HashMap<Vec<u8>, i64>>>,
    /// Which view versions hold running records (`streamed_views.rs`).
    streamed: Arc<super::streamed_views::StreamedViews>,
    /// Moves an entity's counter after each batch that folded into it (`entity_stamps.rs`).
    entity_stamps: Arc<EntityStamps>,
    /// Per source (its watermark key), its watermark after the last apply batch that admitted
    /// rows of it, published once that batch is written: windowed reads take it from here
    /// instead of a RocksDB lookup per request. A source nothing was applied to since this
    /// process started (or since a snapshot install) is read from the store.
    watermarks: Arc<std::sync::RwLock<HashMap<Vec<u8>, i64>>>,
    /// Read before every apply, so a full disk releases its ballast before RocksDB needs it.
    disk: Option<Arc<crate::disk_guard::DiskGuard>>,
}

impl StateMachine {
    /// This state machine, reading free space from `disk` before it writes.
    pub fn guarded_by(mut self, disk: Arc<crate::disk_guard::DiskGuard>) -> Self {
        self.disk = Some(disk);
        self
    }

    /// Opens `group`'s state machine; finishes a snapshot install a crash interrupted.
    pub fn open(db: Arc<DB>, group: u32, snapshot_dir: PathBuf) -> io::Result<Self> {
        let sm = Self {
            db,
            group,
            snapshot_dir,
            publish: Arc::new(Mutex::new(())),
            views_generation: Arc::default(),
            tiles_generation: Arc::default(),
            lateness_applied: Arc::default(),
            streamed: Arc::default(),
            entity_stamps: Arc::default(),
            watermarks: Arc::default(),
            disk: None,
        };
        snapshot_file::remove_leftovers(&sm.snapshot_dir)?;
        if let Some(name) = sm.get_meta::<String>(tag::INSTALLING)? {
            // The marker names the file inside the snapshot directory, so a node whose data
            // directory moved (or whose working directory changed) still finds it.
            let path = sm.snapshot_dir.join(&name);
            tracing::warn!(snapshot = %path.display(), "finishing an interrupted snapshot install");
            let meta = snapshot_file::verify(&path).map_err(|e| {
                io_err(format!(
                    "an interrupted snapshot install cannot be finished: {} does not verify \
                     ({e}); it verified before the install began, so the disk changed it. \
                     Remove this node's data directory and add it again as a new node",
                    path.display()
                ))
            })?;
            sm.load_snapshot(&meta, path)?;
        }
        Ok(sm)
    }

    /// The database, for reads that bypass Raft (served from applied state).
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// See `views_generation`.
    pub fn views_generation(&self) -> u64 {
        self.views_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn views_changed(&self) {
        self.views_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.sealed_tiles_changed();
    }

    /// Which view versions hold running records.
    pub fn streamed_views(&self) -> &super::streamed_views::StreamedViews {
        &self.streamed
    }

    /// Per entity, a counter that moves after every batch that folds into its tiles.
    pub fn entity_stamps(&self) -> &EntityStamps {
        &self.entity_stamps
    }

    /// The watermark of the source under `watermark_key` (see `watermarks`).
    pub fn watermark(
        &self,
        store: &StoreReader<'_>,
        watermark_key: &[u8],
    ) -> Result<Option<i64>, crate::error::OnlineStoreError> {
        let published = self
            .watermarks
            .read()
            .ok()
            .and_then(|m| m.get(watermark_key).copied());
        match published {
            Some(watermark) => Ok(Some(watermark)),
            None => store.watermark(watermark_key),
        }
    }

    /// See `tiles_generation`. A reader takes it before it reads what it caches.
    pub fn tiles_generation(&self) -> u64 {
        self.tiles_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The largest allowed lateness applied to the source whose watermark is under
    /// `watermark_key` (see `lateness_applied`).
    pub fn lateness_applied(&self, watermark_key: &[u8]) -> Option<i64> {
        self.lateness_applied
            .read()
            .ok()
            .and_then(|m| m.get(watermark_key).copied())
    }

    /// Notes a batch's lateness; a larger one than any before unseals tiles readers hold.
    pub(super) fn note_lateness(
        &self,
        watermark_key: &[u8],
        lateness: i64,
        applied: &mut AppliedEvents,
    ) {
        if self
            .lateness_applied(watermark_key)
            .is_some_and(|seen| seen >= lateness)
        {
            return;
        }
        if let Ok(mut m) = self.lateness_applied.write() {
            let seen = m.entry(watermark_key.to_vec()).or_insert(lateness);
            *seen = (*seen).max(lateness);
        }
        applied.sealed_tiles_written = true;
    }

    /// What follows an apply batch once it is written: its metrics, and the generations that
    /// tell readers their cached decisions may be stale.
    fn written(&self, applied: &AppliedEvents) {
        applied.record_metrics();
        self.entity_stamps.written(&applied.folded);
        if !applied.watermarks.is_empty() {
            if let Ok(mut published) = self.watermarks.write() {
                for ((project, source), watermark) in &applied.watermarks {
                    published.insert(keys::watermark_key(self.group, project, source), *watermark);
                }
            }
        }
        if applied.views_changed {
            self.views_changed();
        } else if applied.sealed_tiles_written {
            self.sealed_tiles_changed();
        }
    }

    fn sealed_tiles_changed(&self) {
        self.tiles_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The group id.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// Whether `node` was ever a member of this group (its id may not be used again).
    pub fn was_ever_member(&self, node: u64) -> io::Result<bool> {
        Ok(self
            .db
            .get_cf(
                self.cf(keys::CF_SM_DATA)?,
                keys::known_node_key(self.group, node),
            )
            .map_err(io_err)?
            .is_some())
    }

    /// The largest node id ever used in this group (0 if none).
    pub fn max_known_node(&self) -> io::Result<u64> {
        let prefix = keys::space_prefix(self.group, keys::Space::KnownNodes);
        // The space ends where the next space byte begins.
        let mut end = prefix.clone();
        if let Some(space) = end.last_mut() {
            *space += 1;
        }
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(prefix.clone());
        options.set_iterate_upper_bound(end);
        let mut iter =
            self.db
                .iterator_cf_opt(self.cf(keys::CF_SM_DATA)?, options, IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (key, _) = item.map_err(io_err)?;
                Ok(key[prefix.len()..]
                    .try_into()
                    .map(u64::from_be_bytes)
                    .unwrap_or(0))
            }
            None => Ok(0),
        }
    }

    pub(super) fn cf(&self, name: &str) -> io::Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| io_err(format!("column family {name} is missing")))
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, t: u8) -> io::Result<Option<T>> {
        match self
            .db
            .get_cf(self.cf(keys::CF_SM_META)?, keys::meta_key(self.group, t))
            .map_err(io_err)?
        {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn synced() -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        options
    }

    /// Reads `key` of `sm_data` through `overlay` (this apply batch's puts).
    pub(super) fn read_through(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        key: &[u8],
    ) -> io::Result<Option<Vec<u8>>> {
        match overlay.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None => self
                .db
                .get_cf(self.cf(keys::CF_SM_DATA)?, key)
                .map_err(io_err),
        }
    }

    /// Puts `key` into `batch` and the overlay.
    pub(super) fn put_through(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> io::Result<()> {
        batch.put_cf(self.cf(keys::CF_SM_DATA)?, &key, &value);
        overlay.insert(key, value);
        Ok(())
    }

    /// Applies one command (entry `log_index`) into `batch`, reading through `overlay`.
    fn apply_write(
        &self,
        log_index: u64,
        command: &Command,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        applied: &mut AppliedEvents,
    ) -> io::Result<CommandResult> {
        // A command that does not decode was still committed: skip it the same way everywhere.
        let Some(kind) = super::command::decode(&command.write) else {
            tracing::error!(log_index, "committed command does not decode; skipped");
            return Ok(CommandResult::default());
        };
        match kind {
            Kind::ViewBegin(begin) => {
                applied.views_changed = true;
                self.apply_view_begin(log_index, &begin, batch, overlay)?;
            }
            Kind::ViewEnd(end) => {
                applied.views_changed = true;
                self.apply_view_end(&end, batch, overlay)?;
            }
            Kind::Backfill(mut chunk) => {
                applied.views_changed = true;
                chunk.batches.iter_mut().for_each(recompute_derived);
                let staged = self.apply_backfill(log_index, &chunk, batch, overlay, applied)?;
                // Exported as the version's rows (the events are in the source log already)
                // and its exclusions. A version whose rows follow from the source log has
                // nothing to export but exclusions: without them, no copy is kept.
                let excluded = chunk
                    .batches
                    .iter()
                    .any(|b| b.views.iter().any(|v| !v.excluded.is_empty()));
                if !chunk.rows_from_source_log || excluded {
                    self.stage(log_index, command.write.clone(), staged, batch, overlay)?;
                }
            }
            Kind::Events(events) => {
                return self.apply_events(log_index, command, events, batch, overlay, applied)
            }
            Kind::Export(export) => {
                if let Some(step) = export.step {
                    self.apply_export_step(log_index, step, batch, overlay)?;
                }
            }
            Kind::Rows(rows) => return self.apply_rows(log_index, rows, batch, overlay),
        }
        Ok(CommandResult::default())
    }

    /// Keeps an entry's command and what apply decided about its batches for the offline
    /// export (released once exported), unless every batch was a duplicate.
    fn stage(
        &self,
        log_index: u64,
        command: Vec<u8>,
        batches: Vec<StagedBatch>,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<()> {
        if batches.iter().all(|b| b.duplicate) {
            return Ok(());
        }
        let staged = StagedEntry { command, batches }.encode_to_vec();
        self.count_staged(log_index, staged.len() as u64, batch, overlay)?;
        batch.put_cf(
            self.cf(keys::CF_SM_DATA)?,
            keys::staged_key(self.group, log_index),
            staged,
        );
        Ok(())
    }

    /// Applies producer event batches: each deduplicated by its producer, admitted against the
    /// watermarks and folded into the versions it carries.
    fn apply_events(
        &self,
        log_index: u64,
        command: &Command,
        mut write: EventWrite,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        applied: &mut AppliedEvents,
    ) -> io::Result<CommandResult> {
        let mut result = CommandResult::default();
        let mut row_base = 0u32;
        let mut folds = EntryFolds::for_rules(write.admission_rules);
        let mut staged = Vec::with_capacity(write.batches.len());
        // A batch that overlaps what its producer applied is applied from there on, and staged
        // as applied (the export then sees exactly the rows that counted).
        let mut trimmed = false;
        for events in &mut write.batches {
            recompute_derived(events);
            trimmed |= self.trim_applied_positions(overlay, events)?;
            let events = &*events;
            let mut decided = StagedBatch::default();
            let outcome = self.apply_event_batch(
                log_index,
                row_base,
                events,
                batch,
                overlay,
                applied,
                &mut folds,
                &mut decided,
                write.admission_rules,
            )?;
            row_base = row_base.saturating_add(events.rows.len() as u32);
            result.events.push(outcome);
            staged.push(decided);
        }
        self.write_folds(folds, batch, applied)?;
        let command = if trimmed {
            super::command::encode(Kind::Events(write))
        } else {
            command.write.clone()
        };
        self.stage(log_index, command, staged, batch, overlay)?;
        Ok(result)
    }

    /// Applies rows written directly: each kept if newer than the stored row of its entity.
    fn apply_rows(
        &self,
        log_index: u64,
        write: RowWrite,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<CommandResult> {
        let mut result = CommandResult::default();
        if write.rows.is_empty() {
            return Ok(result);
        }
        let sequencing = self.sequence_batch(
            &write.producer_id,
            0,
            write.sequence,
            0,
            log_index,
            batch,
            overlay,
        )?;
        if !matches!(sequencing, Sequencing::Fresh { .. }) {
            result.duplicate = true;
            return Ok(result);
        }
        for row in write.rows {
            let entity = row
                .entity
                .as_ref()
                .map(|e| e.values.as_slice())
                .unwrap_or_default();
            let Ok(entity) = keys::encode_entity(entity) else {
                result.stale += 1;
                continue;
            };
            let key = keys::row_key(
                self.group,
                &row.project,
                &row.view,
                row.view_version,
                &entity,
            );
            let event_time = row
                .event_time
                .map(|t| timestamp_to_micros(&t))
                .unwrap_or(i64::MIN);
            let newer = match self.read_through(overlay, &key)? {
                Some(stored) => StoredRow::decode(stored.as_slice())
                    .map(|s| event_time > s.event_time_micros)
                    .unwrap_or(true),
                None => true,
            };
            if !newer {
                result.stale += 1;
                continue;
            }
            let value = StoredRow {
                event_time_micros: event_time,
                values: row.values,
            }
            .encode_to_vec();
            self.put_through(batch, overlay, key, value)?;
            result.applied += 1;
        }
        Ok(result)
    }

    /// Replaces the group's state with the snapshot at `path` (already durable on disk).
    fn load_snapshot(&self, meta: &SnapshotMeta, path: PathBuf) -> io::Result<()> {
        let data = self.cf(keys::CF_SM_DATA)?;
        let sm_meta = self.cf(keys::CF_SM_META)?;
        // 1. Mark the install, so a crash part-way re-runs it at startup.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| io_err(format!("snapshot path {} has no file name", path.display())))?;
        self.db
            .put_cf_opt(
                sm_meta,
                keys::meta_key(self.group, tag::INSTALLING),
                encode(&name)?,
                &Self::synced(),
            )
            .map_err(io_err)?;
        // 2. Wipe the group's data, then load the snapshot's records.
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            data,
            keys::group_prefix(self.group).as_slice(),
            keys::group_end(self.group).as_slice(),
        );
        let (_, records) = snapshot_file::open(&path)?;
        let prefix = keys::group_prefix(self.group);
        for record in records {
            let (key, value) = record?;
            let mut full = prefix.to_vec();
            full.extend_from_slice(&key);
            batch.put_cf(data, full, value);
            if batch.len() >= INSTALL_BATCH || batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
                self.db.write(std::mem::take(&mut batch)).map_err(io_err)?;
            }
        }
        // 3. The applied state and the cleared marker land together, synced.
        batch.put_cf(
            sm_meta,
            keys::meta_key(self.group, tag::LAST_APPLIED),
            encode(&meta.last_log_id)?,
        );
        batch.put_cf(
            sm_meta,
            keys::meta_key(self.group, tag::MEMBERSHIP),
            encode(&meta.last_membership)?,
        );
        batch.delete_cf(sm_meta, keys::meta_key(self.group, tag::INSTALLING));
        self.db.write_opt(batch, &Self::synced()).map_err(io_err)?;
        self.streamed.forget();
        if let Ok(mut published) = self.watermarks.write() {
            published.clear();
        }
        self.views_changed();
        snapshot_file::remove_others(&self.snapshot_dir, &path)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = std::fs::File;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self.get_meta::<Option<LogId>>(tag::LAST_APPLIED)?.flatten();
        let membership = self.get_meta(tag::MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut batch = WriteBatch::default();
        let mut overlay = HashMap::new();
        let mut responses = Vec::new();
        let mut last_applied = None;
        let mut membership = None;
        let mut applied_events = AppliedEvents::default();
        if let Some(disk) = &self.disk {
            disk.check();
        }
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let result = match &entry.payload {
                EntryPayload::Blank => CommandResult::default(),
                EntryPayload::Normal(command) => blocking(|| {
                    self.apply_write(
                        entry.log_id.index,
                        command,
                        &mut batch,
                        &mut overlay,
                        &mut applied_events,
                    )
                })?,
                EntryPayload::Membership(m) => {
                    let data = self.cf(keys::CF_SM_DATA)?;
                    for (node, _) in m.nodes() {
                        batch.put_cf(data, keys::known_node_key(self.group, *node), []);
                    }
                    membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
                    CommandResult::default()
                }
            };
            last_applied = Some(entry.log_id);
            responses.push((responder, result));
        }
        let Some(last_applied) = last_applied else {
            return Ok(());
        };
        let sm_meta = self.cf(keys::CF_SM_META)?;
        batch.put_cf(
            sm_meta,
            keys::meta_key(self.group, tag::LAST_APPLIED),
            encode(&Some(last_applied))?,
        );
        if let Some(membership) = membership {
            batch.put_cf(
                sm_meta,
                keys::meta_key(self.group, tag::MEMBERSHIP),
                encode(&membership)?,
            );
        }
        // Not synced: the log shares this database's write-ahead log, and every log append
        // syncs it, so what is written here becomes durable with the next append. A crash
        // before then loses only applied state whose entries are durable in the log (the
        // batch carries `LAST_APPLIED`, so both roll back together) and Raft applies them
        // again. Syncing here put an fsync on every write's path twice.
        blocking(|| self.db.write(batch)).map_err(io_err)?;
        self.written(&applied_events);
        for (responder, result) in responses {
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.clone())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: std::fs::File,
    ) -> Result<(), io::Error> {
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            let _publish = this
                .publish
                .lock()
                .map_err(|_| io_err("snapshot lock poisoned"))?;
            // A copy that does not verify is refused before anything is replaced: the group's
            // data stays as it was and the leader sends the snapshot again.
            let path = snapshot_file::persist_copy(&this.snapshot_dir, &meta, snapshot)
                .inspect_err(|e| tracing::warn!(error = %e, "refused a received snapshot"))?;
            this.load_snapshot(&meta, path)
        })
        .await
        .map_err(io_err)?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let Some(path) = snapshot_file::latest(&self.snapshot_dir)? else {
            return Ok(None);
        };
        let (meta, _) = snapshot_file::open(&path)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: std::fs::File::open(&path)?,
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = std::fs::File;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build_blocking())
            .await
            .map_err(io_err)?
    }
}

impl StateMachine {
    /// Builds a snapshot from one consistent RocksDB snapshot: the data and the applied state
    /// it belongs to are read from the same point in time, while applies continue.
    fn build_blocking(&self) -> io::Result<Snapshot> {
        let view = self.db.snapshot();
        let sm_meta = self.cf(keys::CF_SM_META)?;
        let read_meta = |t: u8| -> io::Result<Option<Vec<u8>>> {
            view.get_cf(sm_meta, keys::meta_key(self.group, t))
                .map_err(io_err)
        };
        let last_log_id: Option<LogId> = match read_meta(tag::LAST_APPLIED)? {
            Some(bytes) => decode::<Option<LogId>>(&bytes)?,
            None => None,
        };
        let last_membership: StoredMembership = match read_meta(tag::MEMBERSHIP)? {
            Some(bytes) => decode(&bytes)?,
            None => StoredMembership::default(),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(keys::group_prefix(self.group).to_vec());
        options.set_iterate_upper_bound(keys::group_end(self.group));
        let prefix_len = keys::group_prefix(self.group).len();
        let records = view
            .iterator_cf_opt(self.cf(keys::CF_SM_DATA)?, options, IteratorMode::Start)
            .map(|item| {
                item.map(|(k, v)| (k[prefix_len..].to_vec().into_boxed_slice(), v))
                    .map_err(io_err)
            });
        let written = snapshot_file::write(&self.snapshot_dir, &meta, records)?;

        let _publish = self
            .publish
            .lock()
            .map_err(|_| io_err("snapshot lock poisoned"))?;
        let newest = snapshot_file::latest(&self.snapshot_dir)?;
        let file = std::fs::File::open(&written)?;
        if newest.as_deref() == Some(written.as_path()) {
            snapshot_file::remove_others(&self.snapshot_dir, &written)?;
        }
        Ok(Snapshot {
            meta,
            snapshot: file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::open_db;
    use quiver_proto::online::LegacyCommand;

    fn rows(db: &DB, group: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let cf = db.cf_handle(keys::CF_SM_DATA).unwrap();
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(keys::group_prefix(group).to_vec());
        options.set_iterate_upper_bound(keys::group_end(group));
        db.iterator_cf_opt(cf, options, IteratorMode::Start)
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect()
    }

    /// A crash after the install marker was written but before the install finished: the
    /// next open re-runs the install from the persisted file.
    #[tokio::test]
    async fn an_interrupted_install_is_finished_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let leader_db = open_db(&dir.path().join("leader"), 8 << 20).unwrap();
        let data = leader_db.cf_handle(keys::CF_SM_DATA).unwrap();
        for i in 0..100u32 {
            leader_db
                .put_cf(
                    data,
                    keys::row_key(1, "p", "v", 1, &i.to_be_bytes()),
                    i.to_be_bytes(),
                )
                .unwrap();
        }
        let mut leader =
            StateMachine::open(leader_db.clone(), 1, dir.path().join("leader-snapshots")).unwrap();
        let snapshot = leader.build_snapshot().await.unwrap();
        let expected = rows(&leader_db, 1);

        // The follower persisted the snapshot and set the marker, then "crashed" with only
        // stale data in place.
        let follower_dir = dir.path().join("follower-snapshots");
        let follower_db = open_db(&dir.path().join("follower"), 8 << 20).unwrap();
        let path =
            snapshot_file::persist_copy(&follower_dir, &snapshot.meta, snapshot.snapshot).unwrap();
        let sm_meta = follower_db.cf_handle(keys::CF_SM_META).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        follower_db
            .put_cf(
                sm_meta,
                keys::meta_key(1, tag::INSTALLING),
                encode(&name).unwrap(),
            )
            .unwrap();
        let stale = follower_db.cf_handle(keys::CF_SM_DATA).unwrap();
        follower_db
            .put_cf(stale, keys::row_key(1, "p", "v", 1, b"stale"), b"x")
            .unwrap();

        StateMachine::open(follower_db.clone(), 1, follower_dir).unwrap();
        assert_eq!(
            rows(&follower_db, 1),
            expected,
            "the snapshot's data, and nothing else"
        );
        assert!(follower_db
            .get_cf(sm_meta, keys::meta_key(1, tag::INSTALLING))
            .unwrap()
            .is_none());
    }

    /// A received snapshot that was cut short or corrupted in transit is refused before
    /// anything is replaced: the follower keeps its data and the leader sends it again.
    #[tokio::test]
    async fn a_corrupt_received_snapshot_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let leader_db = open_db(&dir.path().join("leader"), 8 << 20).unwrap();
        let data = leader_db.cf_handle(keys::CF_SM_DATA).unwrap();
        for i in 0..100u32 {
            leader_db
                .put_cf(
                    data,
                    keys::row_key(1, "p", "v", 1, &i.to_be_bytes()),
                    [7u8; 64],
                )
                .unwrap();
        }
        let mut leader =
            StateMachine::open(leader_db.clone(), 1, dir.path().join("leader-snapshots")).unwrap();
        let snapshot = leader.build_snapshot().await.unwrap();
        let mut bytes = Vec::new();
        let mut file = snapshot.snapshot;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).unwrap();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();

        let follower_db = open_db(&dir.path().join("follower"), 8 << 20).unwrap();
        let own = follower_db.cf_handle(keys::CF_SM_DATA).unwrap();
        follower_db
            .put_cf(own, keys::row_key(1, "p", "v", 1, b"mine"), b"kept")
            .unwrap();
        let mut follower = StateMachine::open(
            follower_db.clone(),
            1,
            dir.path().join("follower-snapshots"),
        )
        .unwrap();
        let before = rows(&follower_db, 1);
        let received = dir.path().join("received");
        for broken in [bytes[..bytes.len() / 2].to_vec(), {
            let mut flipped = bytes.clone();
            let at = flipped.len() / 2;
            flipped[at] ^= 1;
            flipped
        }] {
            std::fs::write(&received, &broken).unwrap();
            let file = std::fs::File::open(&received).unwrap();
            assert!(follower
                .install_snapshot(&snapshot.meta, file)
                .await
                .is_err());
            assert_eq!(rows(&follower_db, 1), before, "nothing replaced");
        }
        // The whole file installs.
        std::fs::write(&received, &bytes).unwrap();
        let file = std::fs::File::open(&received).unwrap();
        follower
            .install_snapshot(&snapshot.meta, file)
            .await
            .unwrap();
        assert_eq!(rows(&follower_db, 1), rows(&leader_db, 1));
    }

    /// A state machine of group 1 in a new database under `dir` (snapshots in `dir/snapshots`).
    fn state_machine_in(dir: &std::path::Path) -> StateMachine {
        let db = open_db(dir, 8 << 20).unwrap();
        StateMachine::open(db, 1, dir.join("snapshots")).unwrap()
    }

    /// Applies `write` as entry `index` the way `apply` does (one synced batch).
    fn apply_one(sm: &StateMachine, index: u64, write: LegacyCommand) -> CommandResult {
        let mut batch = WriteBatch::default();
        let mut overlay = HashMap::new();
        let mut applied = AppliedEvents::default();
        // Tests build the command's fields in one message (the legacy layout); the log holds the
        // typed command.
        let command = super::super::command::command(super::super::command::from_legacy(write));
        let result = sm
            .apply_write(index, &command, &mut batch, &mut overlay, &mut applied)
            .unwrap();
        sm.db.write(batch).unwrap();
        sm.written(&applied);
        result
    }

    /// One event of user 7 at `at` for a view counting over a sliding hour.
    fn event_batch(sequence: u64, at: i64) -> LegacyCommand {
        use quiver_core::tiling::AggregateSpec;
        use quiver_core::{Aggregation, ValueType, Window};
        use quiver_proto::convert::aggregate_spec_to_pb;
        use quiver_proto::ingest::Row;
        use quiver_proto::online::{EventBatch, ViewEvents};
        let count_1h = AggregateSpec {
            aggregation: Aggregation::Count,
            column: None,
            window: Window::Sliding(std::time::Duration::from_secs(3600)),
            value_type: ValueType::Int64,
        };
        LegacyCommand {
            event_batches: vec![EventBatch {
                producer_id: "p".into(),
                sequence,
                project: "shop".into(),
                source: "events".into(),
                allowed_lateness_micros: 60_000_000,
                columns: vec![],
                rows: vec![Row { values: vec![] }],
                event_micros: vec![at],
                entity_keys: vec![b"i-user-7".to_vec()],
                views: vec![ViewEvents {
                    view: "stats".into(),
                    version: 1,
                    aggregates: vec![aggregate_spec_to_pb(&count_1h, "count_1h")],
                    feature_count: 1,
                    inputs: vec![0],
                    ..ViewEvents::default()
                }],
                received_micros: 0,
                epoch: 0,
                history: false,
                ..EventBatch::default()
            }],
            ..LegacyCommand::default()
        }
    }

    /// Registers the view [`event_batch`] feeds (entry 0; its source has no events yet, so it
    /// serves at once): the store folds only versions it knows.
    fn register_view(sm: &StateMachine) {
        apply_one(sm, 0, view_begin(1, "events"));
    }

    /// The `ViewBegin` of `version` of the view [`event_batch`] feeds, reading `source`.
    fn view_begin(version: u32, source: &str) -> LegacyCommand {
        LegacyCommand {
            view_begin: Some(quiver_proto::online::ViewBegin {
                project: "shop".into(),
                view: "stats".into(),
                version,
                source: source.into(),
            }),
            ..LegacyCommand::default()
        }
    }

    /// A backfill chunk of `version` covering entries `from..=through`: [`event_batch`]'s event
    /// at `at`, without a producer (a chunk's events come from the source log).
    fn backfill_chunk(
        version: u32,
        from: u64,
        through: u64,
        at: i64,
    ) -> quiver_proto::online::BackfillChunk {
        let mut events = event_batch(0, at).event_batches.remove(0);
        events.producer_id.clear();
        events.views[0].version = version;
        quiver_proto::online::BackfillChunk {
            project: "shop".into(),
            view: "stats".into(),
            version,
            from,
            through,
            batches: vec![events],
            ..quiver_proto::online::BackfillChunk::default()
        }
    }

    /// `chunk` as a log command.
    fn backfill(chunk: quiver_proto::online::BackfillChunk) -> LegacyCommand {
        LegacyCommand {
            backfill: Some(chunk),
            ..LegacyCommand::default()
        }
    }

    /// [`event_batch`] of `producer` in `epoch`.
    fn producer_batch(producer: &str, epoch: u64, sequence: u64, at: i64) -> LegacyCommand {
        let mut write = event_batch(sequence, at);
        write.event_batches[0].producer_id = producer.into();
        write.event_batches[0].epoch = epoch;
        write
    }

    /// Applies `writes` as entries `first..` in one apply batch (as a replica that drained
    /// them together does).
    fn apply_together(sm: &StateMachine, first: u64, writes: Vec<LegacyCommand>) {
        let mut batch = WriteBatch::default();
        let mut overlay = HashMap::new();
        let mut applied = AppliedEvents::default();
        for (i, write) in writes.into_iter().enumerate() {
            let command = super::super::command::command(super::super::command::from_legacy(write));
            sm.apply_write(
                first + i as u64,
                &command,
                &mut batch,
                &mut overlay,
                &mut applied,
            )
            .unwrap();
        }
        sm.db.write(batch).unwrap();
    }

    /// A Kafka partition's batch: rows at `offsets`, sequence the offset after the last.
    fn positioned(offsets: &[u64], at: i64) -> LegacyCommand {
        let mut write = producer_batch("kafka:orders:0", 0, offsets[offsets.len() - 1] + 1, at);
        let events = &mut write.event_batches[0];
        let row = events.rows[0].clone();
        let key = events.entity_keys[0].clone();
        events.rows = vec![row; offsets.len()];
        events.entity_keys = vec![key; offsets.len()];
        events.event_micros = vec![at; offsets.len()];
        events.offsets = offsets.to_vec();
        events.input_end = offsets[offsets.len() - 1] + 1;
        events.views.clear();
        write
    }

    #[test]
    fn an_entrys_admission_rules_decide_how_far_behind_a_joining_producer_may_be() {
        let t = 1_000 * 3_600_000_000i64;
        // `behind` micros behind the live producer, into a view whose count is windowed (1 h)
        // or kept for its lifetime (no tiles).
        let joined = |rules: u32, behind: i64, lifetime: bool| {
            let dir = tempfile::tempdir().unwrap();
            let sm = state_machine_in(dir.path());
            register_view(&sm);
            let batch = |producer: &str, at: i64| {
                let mut write = producer_batch(producer, 0, 1, at);
                if lifetime {
                    let mut spec = quiver_proto::convert::aggregate_spec_from_pb(
                        &write.event_batches[0].views[0].aggregates[0],
                    )
                    .unwrap();
                    spec.window = quiver_core::Window::Lifetime;
                    write.event_batches[0].views[0].aggregates =
                        vec![quiver_proto::convert::aggregate_spec_to_pb(&spec, "count")];
                }
                write
            };
            apply_one(&sm, 1, batch("live", t));
            let Kind::Events(mut write) =
                super::super::command::from_legacy(batch("replay", t - behind))
            else {
                unreachable!("an events command");
            };
            write.admission_rules = rules;
            let command = super::super::command::command(Kind::Events(write));
            let mut batch = WriteBatch::default();
            let result = sm
                .apply_write(
                    2,
                    &command,
                    &mut batch,
                    &mut HashMap::new(),
                    &mut AppliedEvents::default(),
                )
                .unwrap();
            let outcome = &result.events[0];
            (outcome.accepted, outcome.late)
        };
        use super::super::source_clock::{HORIZON_RULES, TILELESS_RULES};
        // Half an hour behind: past the 1-minute lateness, within the 1-hour window.
        let half_hour = 1_800_000_000;
        // Proposed while some member runs the older rules: the floor is watermark - lateness.
        assert_eq!(joined(0, half_hour, false), (0, 1));
        assert_eq!(joined(HORIZON_RULES - 1, half_hour, false), (0, 1));
        // Under the horizon rules: kept, the tiles still hold its hour.
        assert_eq!(joined(HORIZON_RULES, half_hour, false), (1, 0));
        assert_eq!(joined(TILELESS_RULES, half_hour, false), (1, 0));
        // Thirty hours behind: past the window, so late while there are tiles...
        let thirty_hours = 60 * half_hour;
        assert_eq!(joined(TILELESS_RULES, thirty_hours, false), (0, 1));
        // ... and kept by a lifetime count once the rules know it keeps no tiles.
        assert_eq!(joined(HORIZON_RULES, thirty_hours, true), (0, 1));
        assert_eq!(joined(TILELESS_RULES, thirty_hours, true), (1, 0));
    }

    /// Reads take the watermark apply published: after every apply it is the stored one, as
    /// a producer behind the others, a disordered one and history move it or not.
    #[test]
    fn the_published_watermark_is_the_stored_one_after_every_apply() {
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        register_view(&sm);
        let store = crate::store_reader::StoreReader::new(sm.db()).unwrap();
        let key = keys::watermark_key(sm.group(), "shop", "events");
        assert_eq!(sm.watermark(&store, &key).unwrap(), None);
        let (second, mut now) = (1_000_000i64, 1_000 * 3_600 * 1_000_000i64);
        let mut seen = std::collections::BTreeSet::new();
        for index in 1..200u64 {
            now += (index % 7) as i64 * second;
            let (producer, at) = match index % 5 {
                0 => ("behind", now - 600 * second),
                1 => ("disordered", now - (index % 11) as i64 * second),
                _ => ("live", now),
            };
            let mut write = producer_batch(producer, 0, index, at);
            write.event_batches[0].history = index % 13 == 0;
            apply_one(&sm, index + 1, write);
            let stored = store.watermark(&key).unwrap();
            assert!(stored.is_some());
            assert_eq!(sm.watermark(&store, &key).unwrap(), stored, "entry {index}");
            seen.insert(stored);
        }
        assert!(seen.len() > 20, "the watermark moved {} times", seen.len());
    }

    /// A snapshot install replaces the stored watermark, and reads see the installed one, not
    /// the one apply published before.
    #[tokio::test]
    async fn after_an_install_reads_take_the_installed_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let hour = 3_600 * 1_000_000i64;
        let open = |name: &str| {
            let sm = state_machine_in(&dir.path().join(name));
            register_view(&sm);
            sm
        };
        let mut leader = open("leader");
        apply_one(&leader, 1, producer_batch("live", 0, 1, 1_000 * hour));
        let snapshot = leader.build_snapshot().await.unwrap();
        let mut follower = open("follower");
        apply_one(&follower, 1, producer_batch("live", 0, 1, 2_000 * hour));
        let key = keys::watermark_key(1, "shop", "events");
        let db = follower.db().clone();
        let store = crate::store_reader::StoreReader::new(&db).unwrap();
        let before = follower.watermark(&store, &key).unwrap();
        let mut file = snapshot.snapshot;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).unwrap();
        let received = dir.path().join("received");
        std::io::copy(&mut file, &mut std::fs::File::create(&received).unwrap()).unwrap();
        follower
            .install_snapshot(&snapshot.meta, std::fs::File::open(&received).unwrap())
            .await
            .unwrap();
        let installed = store.watermark(&key).unwrap();
        assert_ne!(installed, before);
        assert_eq!(follower.watermark(&store, &key).unwrap(), installed);
    }

    /// Whatever arrives — live rows, producers joining behind the watermark, history — a
    /// windowed read through the sealed-tile cache equals a read of every tile, and the cache
    /// is used.
    #[test]
    fn a_windowed_read_through_the_sealed_tile_cache_equals_a_read_of_every_tile() {
        cached_reads_equal_reads_of_every_tile(true);
        // One producer alone holds the watermark, with up to 50 s of disorder.
        cached_reads_equal_reads_of_every_tile(false);
    }

    fn cached_reads_equal_reads_of_every_tile(joining: bool) {
        use crate::entity_stamps::Slot;
        use crate::sealed_tiles::{watermark_and_sealing, SealedTiles, Sealing};
        use crate::tile_read::{read_entity, ViewTiles};
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        register_view(&sm);
        let aggregate = &event_batch(1, 0).event_batches[0].views[0].aggregates[0];
        let specs = [quiver_proto::convert::aggregate_spec_from_pb(aggregate).unwrap()];
        let layout = quiver_core::tiling::layout(&specs);
        let prefix = keys::tiles_prefix(sm.group(), "shop", "stats", 1, false);
        let view = ViewTiles {
            prefix: &prefix,
            specs: &specs,
            layout: &layout,
        };
        let watermark_key = keys::watermark_key(sm.group(), "shop", "events");
        let cache = SealedTiles::new(100);
        let (second, minute) = (1_000_000i64, 60_000_000i64);
        let mut now = 1_000 * 3_600 * second;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below) as i64
        };
        let store = crate::store_reader::StoreReader::new(sm.db()).unwrap();
        let running_prefix =
            keys::view_prefix(sm.group(), keys::Space::Running, "shop", "stats", 1);
        let mut sequences: HashMap<String, u64> = HashMap::new();
        for index in 1..1_500u64 {
            now += random(20) * second;
            let (producer, at, history) = match random(20) {
                // A producer joining behind the others, within the window: into sealed tiles.
                0..=2 if joining => (format!("replay-{index}"), now - random(50) * minute, false),
                // History, anywhere in the window and before it.
                3 if joining => ("load".to_string(), now - random(120) * minute, true),
                _ => ("live".to_string(), now - random(50) * second, false),
            };
            let sequence = sequences.entry(producer.clone()).or_insert(0);
            *sequence += 1;
            let mut write = producer_batch(&producer, 0, *sequence, at);
            write.event_batches[0].history = history;
            apply_one(&sm, index + 1, write);
            let running = store.running_record(&running_prefix, b"i-user-7").unwrap();
            assert!(running.is_some());
            // Now, a minute or two on, and two hours on (past every window of the entity).
            for as_of in [now, now + random(90) * second, now + 2 * 60 * minute] {
                // The definition read says 30 s, the batches were applied with a minute (the
                // registry changed it): tiles are sealed by the larger.
                let (_, sealing) =
                    watermark_and_sealing(&sm, &store, &cache, &watermark_key, minute / 2).unwrap();
                let entity_stamp = Some(sm.entity_stamps().get(Slot::of(b"i-user-7")));
                let sealing = sealing.map(|s| Sealing { entity_stamp, ..s });
                // The view has windows only: the running record just lets a read skip them.
                let read = |running, sealing| {
                    read_entity(&store, view, b"i-user-7", as_of, running, sealing)
                        .unwrap()
                        .into_iter()
                        .map(|r| (r.partial.finish(), r.max_event_micros))
                        .collect::<Vec<_>>()
                };
                let every_tile = read(None, None);
                // Twice: the second read takes the tiles after the sealed ones from the cache.
                for time in ["first", "second"] {
                    assert_eq!(
                        read(running.as_ref(), sealing),
                        every_tile,
                        "entry {index}, as of {as_of}, {time} read"
                    );
                }
            }
        }
        let (hits, misses) = cache.hits_and_misses();
        assert!(hits > 500 && misses > 100, "{hits} hits, {misses} misses");
        // Every second read found nothing folded since the first: its open tiles were cached.
        let (open_hits, open_misses) = cache.open_hits_and_misses();
        assert!(
            open_hits > 500 && open_misses > 100,
            "{open_hits} open-tile hits, {open_misses} misses"
        );
    }

    #[test]
    fn a_batch_straddling_the_stored_offset_applies_only_what_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        let t = 1_000 * 3_600_000_000i64;
        // One consumer commits offsets 0..=4; another, cut differently, sends 3..=7.
        assert_eq!(
            apply_one(&sm, 1, positioned(&[0, 1, 2, 3, 4], t)).events[0].accepted,
            5
        );
        let straddling = apply_one(&sm, 2, positioned(&[3, 4, 5, 6, 7], t));
        assert_eq!(straddling.events[0].accepted, 3, "offsets 5, 6, 7 only");
        assert!(!straddling.events[0].duplicate);
        assert_eq!(straddling.events[0].last_sequence, 8);
        // Wholly applied: a duplicate that changes nothing.
        let again = apply_one(&sm, 3, positioned(&[5, 6], t));
        assert!(again.events[0].duplicate);
        assert_eq!(
            (again.events[0].accepted, again.events[0].last_sequence),
            (0, 8)
        );
        // The staged entry is the trimmed batch: the export sees exactly what counted.
        let staged = sm
            .db
            .get_cf(sm.cf(keys::CF_SM_DATA).unwrap(), keys::staged_key(1, 2))
            .unwrap()
            .unwrap();
        let staged = StagedEntry::decode(staged.as_slice()).unwrap();
        let Some(Kind::Events(write)) = super::super::command::decode(&staged.command) else {
            panic!("the staged entry is not an events command");
        };
        assert_eq!(write.batches[0].offsets, [5, 6, 7]);
        assert_eq!(write.batches[0].rows.len(), 3);
        // The stored progress, as Kafka consumers read it.
        let stored = sm.producers_with_prefix("kafka:orders:").unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].1.sequence, stored[0].1.input_end), (8, 8));
    }

    #[test]
    fn a_version_reading_another_source_retires_the_old_one_when_it_serves() {
        use quiver_proto::online::ViewPhase;
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        let db = sm.db().clone();
        let t = 1_000 * 3_600_000_000i64;
        let phase = |version: u32| {
            sm.view_state("shop", "stats", version)
                .unwrap()
                .unwrap()
                .phase
        };
        let tiles = |version: u32| {
            let prefix = keys::view_prefix(1, keys::Space::Tiles, "shop", "stats", version);
            rows(&db, 1)
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .count()
        };
        register_view(&sm);
        apply_one(&sm, 1, event_batch(1, t));
        assert_eq!(tiles(1), 1);
        // Version 2 reads `other`, which has no events: it serves at once, and version 1 (of
        // `events`) retires, so batches of `events` stop requiring it and its tiles are gone.
        apply_one(&sm, 2, view_begin(2, "other"));
        assert_eq!(
            (phase(1), phase(2)),
            (ViewPhase::Retired as i32, ViewPhase::Serving as i32)
        );
        assert_eq!(tiles(1), 0);
        let mut bare = event_batch(2, t);
        bare.event_batches[0].views.clear();
        assert!(apply_one(&sm, 3, bare).events[0].missing_views.is_empty());

        // Version 3 reads `events` again, which has events: it backfills, and when it serves,
        // version 2 (of `other`) retires too.
        apply_one(&sm, 4, view_begin(3, "events"));
        assert_eq!(phase(3), ViewPhase::Backfilling as i32);
        assert_eq!(phase(2), ViewPhase::Serving as i32, "until 3 serves");
        apply_one(&sm, 5, backfill(backfill_chunk(3, 1, 3, t)));
        assert_eq!(
            (phase(2), phase(3)),
            (ViewPhase::Retired as i32, ViewPhase::Serving as i32)
        );
    }

    /// [`event_batch`] turned into one event of `amount` for a view keeping the `last` and
    /// `first` amount (running records).
    fn amount_batch(sequence: u64, at: i64, amount: f64) -> LegacyCommand {
        use quiver_core::tiling::AggregateSpec;
        use quiver_core::{Aggregation, ValueType, Window};
        use quiver_proto::convert::aggregate_spec_to_pb;
        use quiver_proto::types::{value, Value};
        let mut write = event_batch(sequence, at);
        let events = &mut write.event_batches[0];
        events.columns = vec!["amount".into()];
        events.rows[0].values = vec![Value {
            kind: Some(value::Kind::Float64Value(amount)),
        }];
        let spec = |aggregation| AggregateSpec {
            aggregation,
            column: Some("amount".into()),
            window: Window::Lifetime,
            value_type: ValueType::Float64,
        };
        let view = &mut events.views[0];
        view.aggregates = vec![
            aggregate_spec_to_pb(&spec(Aggregation::Last), "last_amount"),
            aggregate_spec_to_pb(&spec(Aggregation::First), "first_amount"),
        ];
        view.feature_count = 2;
        view.inputs = vec![1, 1];
        write
    }

    #[test]
    fn a_backfilled_event_ties_with_a_live_one_by_where_each_was_first_admitted() {
        use quiver_core::aggregate::TileRecord;
        use quiver_core::Scalar;
        let t = 1_000 * 3_600_000_000i64;
        // Entry 1 (before the view): 1.0 at t. Entry 2 registers the view, which backfills
        // entry 1; entry 3, live, folds 2.0 at the same t; entry 4 is the backfill chunk.
        // Ingest order decides the tie: `last` is entry 3's 2.0, `first` entry 1's 1.0, as
        // for a view that existed all along and in every snapshot.
        let served = |rules: u32| {
            let dir = tempfile::tempdir().unwrap();
            let sm = state_machine_in(dir.path());
            apply_one(&sm, 1, amount_batch(1, t, 1.0));
            apply_one(&sm, 2, view_begin(1, "events"));
            apply_one(&sm, 3, amount_batch(2, t, 2.0));
            let mut chunk = backfill_chunk(1, 1, 1, t);
            let mut events = amount_batch(0, t, 1.0).event_batches.remove(0);
            events.producer_id.clear();
            chunk.batches = vec![events];
            chunk.admission_rules = rules;
            chunk.positions = vec![1 << 32];
            apply_one(&sm, 4, backfill(chunk));
            let prefix = keys::view_prefix(1, keys::Space::Running, "shop", "stats", 1);
            let stored = sm
                .db()
                .get_cf(
                    sm.db().cf_handle(keys::CF_SM_DATA).unwrap(),
                    keys::running_key(&prefix, b"i-user-7"),
                )
                .unwrap()
                .unwrap();
            let record = TileRecord::decode(&stored).unwrap();
            let value = |i: usize| record.partials[i].finish();
            (value(0), value(1))
        };
        assert_eq!(
            served(super::super::source_clock::ORIGINAL_ORDER_RULES),
            (Some(Scalar::Float64(2.0)), Some(Scalar::Float64(1.0)))
        );
        // Under older rules the chunk's own position stamped the backfilled event (later than
        // entry 3): still folded that way, so replicas on either binary agree.
        assert_eq!(
            served(super::super::source_clock::RECOMPUTE_RULES),
            (Some(Scalar::Float64(1.0)), Some(Scalar::Float64(2.0)))
        );
    }

    #[test]
    fn a_backfill_chunk_is_kept_for_the_export_only_with_something_to_export() {
        use quiver_proto::online::Exclusion;
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        let db = sm.db().clone();
        let t = 1_000 * 3_600_000_000i64;
        let staged = |index: u64| {
            db.get_cf(
                db.cf_handle(keys::CF_SM_DATA).unwrap(),
                keys::staged_key(1, index),
            )
            .unwrap()
            .is_some()
        };
        apply_one(&sm, 1, event_batch(1, t));
        let begin = |version: u32| view_begin(version, "events");
        let chunk = |version: u32, through: u64, from_source_log: bool, excluded: bool| {
            let mut chunk = backfill_chunk(version, 1, through, t);
            chunk.rows_from_source_log = from_source_log;
            if excluded {
                chunk.batches[0].views[0].excluded.push(Exclusion {
                    row: 0,
                    reason: "zscore 9.0 of amount is above 4".into(),
                });
            }
            backfill(chunk)
        };
        // Rows that follow from the source log and nothing excluded: nothing to export.
        apply_one(&sm, 2, begin(1));
        apply_one(&sm, 3, chunk(1, 1, true, false));
        assert!(!staged(3));
        // An exclusion is quarantined by the export: kept.
        apply_one(&sm, 4, begin(2));
        apply_one(&sm, 5, chunk(2, 3, true, true));
        assert!(staged(5));
        // A version whose rows are exported (or a chunk from an older leader): kept.
        apply_one(&sm, 6, begin(3));
        apply_one(&sm, 7, chunk(3, 5, false, false));
        assert!(staged(7));
    }

    #[test]
    fn view_versions_are_required_folded_backfilled_once_and_retired() {
        use quiver_proto::online::ViewPhase;
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        let db = sm.db().clone();
        let t = 1_000 * 3_600_000_000i64;
        let tiles = |version: u32| {
            let prefix = keys::view_prefix(1, keys::Space::Tiles, "shop", "stats", version);
            rows(&db, 1)
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .count()
        };
        let begin = |version: u32| view_begin(version, "events");
        // Before any registration, a batch's events for the version are not folded.
        assert_eq!(apply_one(&sm, 1, event_batch(1, t)).events[0].accepted, 1);
        assert_eq!(tiles(1), 0);
        // Registered after an event: backfilling, and batches must carry it.
        apply_one(&sm, 2, begin(1));
        let state = sm.view_state("shop", "stats", 1).unwrap().unwrap();
        assert_eq!(
            (state.phase, state.registered_at, state.backfill_total),
            (ViewPhase::Backfilling as i32, 2, 1)
        );
        let mut lacking = event_batch(2, t);
        lacking.event_batches[0].views.clear();
        let refused = apply_one(&sm, 3, lacking);
        assert_eq!(refused.events[0].missing_views, vec!["stats@1".to_string()]);
        // Refused changes nothing, not even the sequence: the same batch with the view applies.
        let retried = apply_one(&sm, 4, event_batch(2, t));
        assert_eq!(
            (retried.events[0].accepted, retried.events[0].duplicate),
            (1, false)
        );
        assert_eq!(tiles(1), 1);
        // The backfill of entry 1: a chunk that does not continue the progress changes nothing.
        let chunk = |from: u64| backfill(backfill_chunk(1, from, 1, t));
        apply_one(&sm, 5, chunk(2));
        assert_eq!(
            sm.view_state("shop", "stats", 1)
                .unwrap()
                .unwrap()
                .backfilled_rows,
            0
        );
        apply_one(&sm, 6, chunk(1));
        let state = sm.view_state("shop", "stats", 1).unwrap().unwrap();
        assert_eq!(
            (state.phase, state.backfilled_rows),
            (ViewPhase::Serving as i32, 1)
        );
        // Replayed (a leader retrying), it changes nothing.
        let before = rows(&db, 1);
        apply_one(&sm, 7, chunk(1));
        let after: Vec<_> = rows(&db, 1)
            .into_iter()
            .filter(|(k, _)| k[4] != keys::Space::Staged as u8)
            .collect();
        let before: Vec<_> = before
            .into_iter()
            .filter(|(k, _)| k[4] != keys::Space::Staged as u8)
            .collect();
        assert_eq!(before, after);
        // Version 2 of a source with events backfills; version 1 still required meanwhile.
        apply_one(&sm, 8, begin(2));
        let mut only_v1 = event_batch(3, t);
        only_v1.event_batches[0].views[0].version = 1;
        let refused = apply_one(&sm, 9, only_v1);
        assert_eq!(refused.events[0].missing_views, vec!["stats@2".to_string()]);
        // Its backfill (everything before entry 8) done in one chunk: it serves, 1 is retired
        // and its tiles are gone.
        apply_one(&sm, 10, backfill(backfill_chunk(2, 1, 7, t)));
        assert_eq!(
            sm.view_state("shop", "stats", 2).unwrap().unwrap().phase,
            ViewPhase::Serving as i32
        );
        assert_eq!(
            sm.view_state("shop", "stats", 1).unwrap().unwrap().phase,
            ViewPhase::Retired as i32
        );
        assert_eq!(tiles(1), 0);
        assert_eq!(tiles(2), 1);
        // Version 1 is no longer required.
        let mut only_v2 = event_batch(4, t);
        only_v2.event_batches[0].views[0].version = 2;
        assert!(apply_one(&sm, 11, only_v2).events[0]
            .missing_views
            .is_empty());
        // The view deleted: every version retires, nothing is required, its data is gone.
        apply_one(
            &sm,
            12,
            LegacyCommand {
                view_end: Some(quiver_proto::online::ViewEnd {
                    project: "shop".into(),
                    view: "stats".into(),
                }),
                ..LegacyCommand::default()
            },
        );
        assert_eq!(
            sm.view_state("shop", "stats", 2).unwrap().unwrap().phase,
            ViewPhase::Retired as i32
        );
        assert_eq!(tiles(2), 0);
        let mut none = event_batch(5, t);
        none.event_batches[0].views.clear();
        let applied = apply_one(&sm, 13, none);
        assert_eq!(
            (
                applied.events[0].accepted,
                applied.events[0].missing_views.len()
            ),
            (1, 0)
        );
    }

    #[test]
    fn epochs_reset_or_fence_a_producer() {
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        let t = 1_000 * 3_600_000_000i64;
        let outcome = |r: CommandResult| r.events[0].clone();
        let first = outcome(apply_one(&sm, 1, producer_batch("p", 0, 7, t)));
        assert_eq!(
            (first.accepted, first.epoch, first.last_sequence),
            (1, 0, 7)
        );
        // A producer that lost its sequence and starts again at 1 is told what is stored.
        let again = outcome(apply_one(&sm, 2, producer_batch("p", 0, 1, t)));
        assert!(again.duplicate && !again.fenced);
        assert_eq!((again.epoch, again.last_sequence), (0, 7));
        // A new epoch starts it again: applied, whatever the sequence.
        let reset = outcome(apply_one(&sm, 3, producer_batch("p", 5, 1, t)));
        assert_eq!((reset.accepted, reset.duplicate), (1, false));
        // The old incarnation is fenced; the new one deduplicates as usual.
        let old = outcome(apply_one(&sm, 4, producer_batch("p", 0, 8, t)));
        assert!(old.fenced && !old.duplicate && old.accepted == 0);
        assert_eq!((old.epoch, old.last_sequence), (5, 1));
        assert!(outcome(apply_one(&sm, 5, producer_batch("p", 5, 1, t))).duplicate);
        assert_eq!(
            outcome(apply_one(&sm, 6, producer_batch("p", 5, 2, t))).accepted,
            1
        );
    }

    #[test]
    fn the_least_recently_written_producers_are_forgotten_the_same_way_on_every_replica() {
        let t = 1_000 * 3_600_000_000i64;
        let max = super::super::producers::MAX_PRODUCERS;
        let writes = || -> Vec<LegacyCommand> {
            let mut writes: Vec<LegacyCommand> = (0..max + 3)
                .map(|p| producer_batch(&format!("p{p}"), 0, 1, t))
                .collect();
            // p1 writes again, so p0, p2 and p3 are the least recent.
            writes.insert(4, producer_batch("p1", 0, 2, t));
            writes
        };
        // One replica applies entry by entry, another in two drained batches.
        let dir = tempfile::tempdir().unwrap();
        let one_by_one = StateMachine::open(
            open_db(&dir.path().join("a"), 8 << 20).unwrap(),
            1,
            dir.path().join("a-snapshots"),
        )
        .unwrap();
        for (i, write) in writes().into_iter().enumerate() {
            apply_one(&one_by_one, 1 + i as u64, write);
        }
        let together = StateMachine::open(
            open_db(&dir.path().join("b"), 8 << 20).unwrap(),
            1,
            dir.path().join("b-snapshots"),
        )
        .unwrap();
        let mut all = writes();
        let rest = all.split_off(5);
        apply_together(&together, 1, all);
        apply_together(&together, 6, rest);
        assert_eq!(rows(&one_by_one.db, 1), rows(&together.db, 1));
        let next = 2 + max + 3;
        // p1 and the newest are remembered; p0 was forgotten: its retried batch applies again.
        assert!(apply_one(&one_by_one, next, producer_batch("p1", 0, 2, t)).events[0].duplicate);
        let newest = format!("p{}", max + 2);
        assert!(
            apply_one(&one_by_one, next + 1, producer_batch(&newest, 0, 1, t)).events[0].duplicate
        );
        assert!(
            !apply_one(&one_by_one, next + 2, producer_batch("p0", 0, 1, t)).events[0].duplicate
        );
        let producers = rows(&one_by_one.db, 1)
            .into_iter()
            .filter(|(k, _)| k[4] == keys::Space::Producers as u8)
            .count() as u64;
        assert_eq!(producers, max);
    }

    /// Tiles are collected by the replicated watermark, not a clock: once the source's
    /// watermark is past an epoch's retention (window + lateness), the next batch deletes it;
    /// a late event is rejected and quarantined, and a retried batch changes nothing.
    #[test]
    fn watermark_moves_collect_expired_tiles_and_reject_late_events() {
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine_in(dir.path());
        let db = sm.db().clone();
        let tiles = |db: &DB| {
            rows(db, 1)
                .into_iter()
                .filter(|(k, _)| k[4] == keys::Space::Tiles as u8)
                .count()
        };
        // The late rows staged for the quarantine log, with their reasons.
        let quarantined = |db: &DB| {
            rows(db, 1)
                .into_iter()
                .filter(|(k, _)| k[4] == keys::Space::Staged as u8)
                .map(|(_, v)| StagedEntry::decode(v.as_slice()).unwrap())
                .flat_map(|e| e.batches)
                .flat_map(|b| b.late_reasons)
                .collect::<Vec<_>>()
        };
        let hour = 3_600_000_000i64;
        let start = 1_000 * hour;
        register_view(&sm);
        let first = apply_one(&sm, 1, event_batch(1, start));
        assert_eq!(first.events[0].accepted, 1);
        assert_eq!(tiles(&db), 1);
        // An hour later: a second tile; the first is still within a 1h window + 1m lateness.
        apply_one(&sm, 2, event_batch(2, start + hour));
        assert_eq!(tiles(&db), 2);
        // A retry of batch 2 is a duplicate: nothing changes.
        let retry = apply_one(&sm, 3, event_batch(2, start + hour));
        assert!(retry.events[0].duplicate);
        assert_eq!(tiles(&db), 2);
        // An event older than watermark - lateness is rejected and quarantined.
        let late = apply_one(&sm, 4, event_batch(3, start + hour - 2 * 60_000_000));
        assert_eq!((late.events[0].accepted, late.events[0].late), (0, 1));
        let reasons = quarantined(&db);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("late: event time"), "{reasons:?}");
        assert_eq!(tiles(&db), 2);
        // Five hours on, both earlier tiles are behind the retention horizon (watermark minus
        // lateness minus the window, rounded down to an epoch): only the new tile remains.
        apply_one(&sm, 5, event_batch(4, start + 5 * hour));
        let remaining: Vec<i64> = rows(&db, 1)
            .into_iter()
            .filter(|(k, _)| k[4] == keys::Space::Tiles as u8)
            .map(|(k, _)| keys::from_ordered_i64(k[k.len() - 8..].try_into().unwrap()))
            .collect();
        let minute = 60_000_000;
        assert_eq!(remaining, vec![(start + 5 * hour) / minute]);
    }

    /// Hostile entries: commands mutated at random (bit flips, overwritten, inserted and cut
    /// bytes) applied to two replicas in the same order must never panic and must leave both
    /// byte-identical. A seeded generator of our own (no coverage guidance): it runs on stable
    /// Rust in every `cargo test`; `QUIVER_FUZZ_CASES` and `QUIVER_FUZZ_SEED` run it longer and
    /// elsewhere (`make fuzz`).
    mod fuzz {
        use super::*;

        use quiver_core::mutation::{self, mutate, Rng};

        #[test]
        fn mutated_commands_never_panic_and_replicas_stay_identical() {
            let cases = mutation::cases(1_500);
            let dir = tempfile::tempdir().unwrap();
            let replicas: Vec<(Arc<DB>, StateMachine)> = ["a", "b"]
                .iter()
                .map(|name| {
                    let db = open_db(&dir.path().join(name), 8 << 20).unwrap();
                    let sm =
                        StateMachine::open(db.clone(), 1, dir.path().join(format!("{name}-s")))
                            .unwrap();
                    (db, sm)
                })
                .collect();
            let t = 1_000 * 3_600_000_000i64;
            let seeds: Vec<Vec<u8>> = seed_commands(t)
                .into_iter()
                .map(|c| crate::raft::command::encode(crate::raft::command::from_legacy(c)))
                .collect();
            /// One command of each kind, as the tests above build them.
            fn seed_commands(t: i64) -> Vec<LegacyCommand> {
                use quiver_proto::online::{
                    export_step, ExportBegin, ExportStep, FeatureRow, ViewEnd,
                };
                vec![
                    view_begin(1, "events"),
                    view_begin(2, "events"),
                    event_batch(1, t),
                    event_batch(2, t + 1_000_000),
                    producer_batch("q", 3, 1, t - 3_600_000_000),
                    positioned(&[5, 6, 7], t),
                    backfill(backfill_chunk(2, 1, 3, t)),
                    LegacyCommand {
                        view_end: Some(ViewEnd {
                            project: "shop".into(),
                            view: "stats".into(),
                        }),
                        ..LegacyCommand::default()
                    },
                    LegacyCommand {
                        export: Some(ExportStep {
                            step: Some(export_step::Step::Begin(ExportBegin::default())),
                        }),
                        ..LegacyCommand::default()
                    },
                    LegacyCommand {
                        producer_id: "w".into(),
                        sequence: 1,
                        rows: vec![FeatureRow {
                            project: "shop".into(),
                            view: "stats".into(),
                            view_version: 1,
                            ..FeatureRow::default()
                        }],
                        ..LegacyCommand::default()
                    },
                ]
            }
            let mut rng = Rng::from_env(0x9E37_79B9_7F4A_7C15);
            for index in 1..=cases as u64 {
                let seed = rng.pick(&seeds).clone();
                // Some valid entries between the hostile ones keep the state interesting.
                let bytes = if rng.below(4) == 0 {
                    seed
                } else {
                    mutate(&mut rng, seed)
                };
                let command = Command { write: bytes };
                for (db, sm) in &replicas {
                    let mut batch = WriteBatch::default();
                    let mut overlay = HashMap::new();
                    let mut applied = AppliedEvents::default();
                    sm.apply_write(index, &command, &mut batch, &mut overlay, &mut applied)
                        .unwrap();
                    db.write(batch).unwrap();
                }
            }
            let dump = |db: &DB| -> Vec<(Vec<u8>, Vec<u8>)> {
                let cf = db.cf_handle(keys::CF_SM_DATA).unwrap();
                db.iterator_cf(cf, IteratorMode::Start)
                    .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
                    .collect()
            };
            let (a, b) = (dump(&replicas[0].0), dump(&replicas[1].0));
            assert!(!a.is_empty());
            assert!(a == b, "replicas differ after {cases} hostile entries");
        }
    }
}
