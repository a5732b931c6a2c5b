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
        let key = keys::export_state_key(self.group());
        let mut state = self
            .read_through(overlay, &key)?
            .and_then(|v| ExportState::decode(v.as_slice()).ok())
            .unwrap_or_default();
        match step {
            Step::Begin(begin) => {
                // One range at a time; a second begin (another leader's) changes nothing.
                if state.pending_to != 0 {
                    return Ok(());
                }
                let from = state.exported_through + 1;
                let span = begin.max_entries.max(1);
                let to = log_index
                    .saturating_sub(1)
                    .min(from.saturating_add(span - 1));
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
            }
        }
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

    /// The first `limit` staged entries with log indexes in `[from, to]`, in log order.
    pub fn staged_entries(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> io::Result<Vec<(u64, StagedEntry)>> {
        let data = self.cf(keys::CF_SM_DATA)?;
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(keys::staged_key(self.group(), from));
        options.set_iterate_upper_bound(keys::staged_key(self.group(), to.saturating_add(1)));
        let mut entries = Vec::new();
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
            let entry = StagedEntry::decode(value.as_ref()).map_err(io_err)?;
            entries.push((index, entry));
        }
        Ok(entries)
    }
}
