//! The offline export's replicated bookkeeping. The exporting leader proposes `begin`, which
//! fixes the next range of staged entries as applied state; it writes that range's files, then
//! proposes `finish`, which releases the range. A leader that crashes in between leaves the
//! range pending, and whichever leader comes next writes exactly the same files again (their
//! names come from the range), so no row is lost or written twice.

use std::collections::HashMap;
use std::io;

use prost::Message;
use quiver_proto::online::export_step::Step;
use quiver_proto::online::{ExportState, StagedEntry};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use super::codec::io_err;
use super::StateMachine;
use crate::keys;

impl StateMachine {
    /// Applies one export step proposed as entry `log_index`.
    pub(super) fn apply_export_step(
        &self,
        log_index: u64,
        step: Step,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<()> {
        let mut state = self.export_state_through(overlay)?;
        match step {
            Step::Begin(begin) => {
                // One range at a time; a second begin (another leader's) changes nothing.
                if state.pending_to != 0 {
                    return Ok(());
                }
                let from = state.exported_through + 1;
                let span = begin.max_entries.max(1);
                let mut to = log_index
                    .saturating_sub(1)
                    .min(from.saturating_add(span - 1));
                if begin.through != 0 {
                    to = to.min(begin.through);
                }
                if to < from {
                    return Ok(());
                }
                state.pending_from = from;
                state.pending_to = to;
            }
            Step::Finish(finish) => {
                if state.pending_to == 0 || finish.through != state.pending_to {
                    return Ok(());
                }
                batch.delete_range_cf(
                    self.cf(keys::CF_SM_DATA)?,
                    keys::staged_key(self.group(), state.pending_from),
                    keys::staged_key(self.group(), state.pending_to.saturating_add(1)),
                );
                state.exported_through = state.pending_to;
                state.pending_from = 0;
                state.pending_to = 0;
                state.staged_bytes = if state.exported_through >= state.last_staged {
                    0
                } else {
                    state.staged_bytes.saturating_sub(finish.bytes)
                };
            }
        }
        self.put_export_state(batch, overlay, &state)
    }

    /// Counts a staged entry of `bytes` at `log_index` in the export state.
    pub(super) fn count_staged(
        &self,
        log_index: u64,
        bytes: u64,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<()> {
        let mut state = self.export_state_through(overlay)?;
        state.staged_bytes = state.staged_bytes.saturating_add(bytes);
        state.last_staged = log_index;
        self.put_export_state(batch, overlay, &state)
    }

    fn export_state_through(&self, overlay: &HashMap<Vec<u8>, Vec<u8>>) -> io::Result<ExportState> {
        Ok(self
            .read_through(overlay, &keys::export_state_key(self.group()))?
            .and_then(|v| ExportState::decode(v.as_slice()).ok())
            .unwrap_or_default())
    }

    fn put_export_state(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        state: &ExportState,
    ) -> io::Result<()> {
        let key = keys::export_state_key(self.group());
        self.put_through(batch, overlay, key, state.encode_to_vec())
    }

    /// The export progress as applied on this node.
    pub fn export_state(&self) -> io::Result<ExportState> {
        let key = keys::export_state_key(self.group());
        Ok(self
            .db()
            .get_cf(self.cf(keys::CF_SM_DATA)?, key)
            .map_err(io_err)?
            .and_then(|v| ExportState::decode(v.as_slice()).ok())
            .unwrap_or_default())
    }

    /// Where a range of staged entries starting at `from` ends: after `max_entries` entries or
    /// once they hold `max_bytes` (at least one entry). `None` when nothing is staged there.
    pub fn staged_extent(
        &self,
        from: u64,
        max_entries: usize,
        max_bytes: u64,
    ) -> io::Result<Option<(u64, u64)>> {
        let mut extent = None;
        let mut bytes = 0u64;
        self.each_staged(
            from,
            u64::MAX,
            |index, value| {
                bytes += value.len() as u64;
                extent = Some((index, bytes));
                bytes < max_bytes
            },
            max_entries,
        )?;
        Ok(extent)
    }

    /// Calls `visit` with each staged entry in `[from, to]` (at most `limit`), in log order,
    /// while it returns true.
    fn each_staged(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(u64, &[u8]) -> bool,
        limit: usize,
    ) -> io::Result<()> {
        let data = self.cf(keys::CF_SM_DATA)?;
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(keys::staged_key(self.group(), from));
        options.set_iterate_upper_bound(keys::staged_key(self.group(), to.saturating_add(1)));
        for item in self
            .db()
            .iterator_cf_opt(data, options, IteratorMode::Start)
            .take(limit)
        {
            let (key, value) = item.map_err(io_err)?;
            let index = key[key.len() - 8..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(io_err)?;
            if !visit(index, &value) {
                break;
            }
        }
        Ok(())
    }

    /// The first `limit` staged entries with log indexes in `[from, to]`, in log order.
    pub fn staged_entries(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> io::Result<Vec<(u64, StagedEntry)>> {
        let mut entries = Vec::new();
        let mut failed = None;
        self.each_staged(
            from,
            to,
            |index, value| match StagedEntry::decode(value) {
                Ok(entry) => {
                    entries.push((index, entry));
                    true
                }
                Err(e) => {
                    failed = Some(io_err(e));
                    false
                }
            },
            limit,
        )?;
        failed.map_or(Ok(entries), Err)
    }
}
