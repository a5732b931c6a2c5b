//! View versions in the online store: which versions of a source's views it folds, and each
//! version's phase (backfilling, serving, retired). All of it is replicated state, changed only
//! by log entries, so every replica folds the same events into the same versions.
//!
//! - `ViewBegin` makes a version known at its entry `B`. From then on every event batch of its
//!   source must carry the version's events: apply refuses a batch that does not (nothing
//!   changes; compute adds the version and writes the batch again). Events of the source in
//!   entries before `B` are the version's **backfill**: the leader reads them from the source
//!   log, runs the version's transforms and proposes them as `BackfillChunk`s, folded into that
//!   version only. A version whose source had no events is serving at once.
//! - When the backfill has covered everything before `B` the version serves, and the view's
//!   older versions are retired, whatever source they read: their tiles and running records are
//!   deleted as ranges, and their source stops requiring them. (A version that serves at once,
//!   its source never having had events, retires only older versions of another source.)
//! - A batch's events for a version the store does not know (or has retired) are not folded.
//! - `ViewEnd` (the view was deleted from the registry) retires all of its versions.

use std::collections::HashMap;
use std::io;

use prost::Message;
use quiver_proto::online::{
    BackfillChunk, EventBatch, SourceViews, ViewBegin, ViewEnd, ViewPhase, ViewState,
    ViewVersionRef,
};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use super::codec::io_err;
use super::StateMachine;
use crate::keys::{self, Space};

/// A view version: (project, view, version).
pub type VersionId = (String, String, u32);

impl StateMachine {
    /// The versions a source feeds, through this apply batch's overlay.
    pub(super) fn source_views(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        project: &str,
        source: &str,
    ) -> io::Result<SourceViews> {
        Ok(self
            .read_through(
                overlay,
                &keys::source_views_key(self.group(), project, source),
            )?
            .and_then(|v| SourceViews::decode(v.as_slice()).ok())
            .unwrap_or_default())
    }

    fn put_source_views(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        project: &str,
        source: &str,
        views: &SourceViews,
    ) -> io::Result<()> {
        let key = keys::source_views_key(self.group(), project, source);
        self.put_through(batch, overlay, key, views.encode_to_vec())
    }

    /// Counts `rows` admitted events of a source (a later version's backfill folds them).
    pub(super) fn count_admitted(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        project: &str,
        source: &str,
        rows: u64,
    ) -> io::Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let mut views = self.source_views(overlay, project, source)?;
        views.admitted_rows += rows;
        self.put_source_views(batch, overlay, project, source, &views)
    }

    /// The versions of its source a batch lacks (`view@version`), which the store requires.
    pub(super) fn missing_views(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        events: &EventBatch,
    ) -> io::Result<Vec<String>> {
        let required = self.source_views(overlay, &events.project, &events.source)?;
        Ok(required
            .active
            .iter()
            .filter(|r| {
                !events
                    .views
                    .iter()
                    .any(|v| v.view == r.view && v.version == r.version)
            })
            .map(|r| format!("{}@{}", r.view, r.version))
            .collect())
    }

    /// A version's state, through the overlay.
    pub(super) fn view_state_through(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        project: &str,
        view: &str,
        version: u32,
    ) -> io::Result<Option<ViewState>> {
        Ok(self
            .read_through(
                overlay,
                &keys::view_state_key(self.group(), project, view, version),
            )?
            .and_then(|v| ViewState::decode(v.as_slice()).ok()))
    }

    fn put_view_state(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        (project, view, version): (&str, &str, u32),
        state: &ViewState,
    ) -> io::Result<()> {
        let key = keys::view_state_key(self.group(), project, view, version);
        self.put_through(batch, overlay, key, state.encode_to_vec())
    }

    /// Applies `ViewBegin` at entry `log_index`. A version already known changes nothing.
    pub(super) fn apply_view_begin(
        &self,
        log_index: u64,
        begin: &ViewBegin,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<()> {
        let id = (begin.project.as_str(), begin.view.as_str(), begin.version);
        if begin.project.is_empty() || begin.view.is_empty() || begin.source.is_empty() {
            return Ok(());
        }
        if self
            .view_state_through(overlay, id.0, id.1, id.2)?
            .is_some()
        {
            return Ok(());
        }
        let mut views = self.source_views(overlay, &begin.project, &begin.source)?;
        let state = ViewState {
            source: begin.source.clone(),
            phase: if views.admitted_rows == 0 {
                ViewPhase::Serving
            } else {
                ViewPhase::Backfilling
            } as i32,
            registered_at: log_index,
            backfilled_through: 0,
            backfilled_rows: 0,
            backfill_total: views.admitted_rows,
            resume_row: 0,
            serving_from: if views.admitted_rows == 0 {
                log_index
            } else {
                0
            },
        };
        views.active.push(ViewVersionRef {
            view: begin.view.clone(),
            version: begin.version,
        });
        self.put_source_views(batch, overlay, &begin.project, &begin.source, &views)?;
        let serves_at_once = state.phase == ViewPhase::Serving as i32;
        self.put_view_state(batch, overlay, id, &state)?;
        // A version that serves at once (its source has no events) retires the older versions
        // that read another source: they would go on folding that source for nothing. Older
        // versions of the same source hold no streamed data to collect, and rows written to
        // them directly stay readable pinned (`view@N`).
        if serves_at_once {
            for (old, older) in self.live_versions(overlay, id.0, id.1)? {
                if old < id.2 && older.source != begin.source {
                    self.retire(batch, overlay, (id.0, id.1, old), older)?;
                }
            }
        }
        Ok(())
    }

    /// Checks a backfill chunk against its version's progress: `Some(state)` if it applies (the
    /// version is backfilling and the chunk continues exactly where the backfill stands).
    pub(super) fn backfill_applies(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        chunk: &BackfillChunk,
    ) -> io::Result<Option<ViewState>> {
        let Some(state) =
            self.view_state_through(overlay, &chunk.project, &chunk.view, chunk.version)?
        else {
            return Ok(None);
        };
        let applies = state.phase == ViewPhase::Backfilling as i32
            && chunk.from == state.backfilled_through + 1
            && chunk.from_row == state.resume_row
            && chunk.through >= chunk.from.saturating_sub(1)
            && chunk.through < state.registered_at
            // A chunk inside one entry must move forward within it.
            && (chunk.through >= chunk.from || chunk.next_row > chunk.from_row)
            // Rows of the entry after `through` only while there is one to backfill.
            && (chunk.next_row == 0 || chunk.through + 1 < state.registered_at)
            && chunk.batches.iter().all(|b| {
                b.views.len() == 1
                    && b.views[0].view == chunk.view
                    && b.views[0].version == chunk.version
                    && b.project == chunk.project
                    && b.source == state.source
            });
        Ok(applies.then_some(state))
    }

    /// Records a folded backfill chunk; the last one makes the version serve.
    pub(super) fn finish_backfill_chunk(
        &self,
        log_index: u64,
        chunk: &BackfillChunk,
        mut state: ViewState,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<()> {
        state.backfilled_through = chunk.through;
        state.resume_row = chunk.next_row;
        state.backfilled_rows += chunk
            .batches
            .iter()
            .map(|b| b.rows.len() as u64)
            .sum::<u64>();
        let id = (chunk.project.as_str(), chunk.view.as_str(), chunk.version);
        if state.backfilled_through + 1 >= state.registered_at {
            state.phase = ViewPhase::Serving as i32;
            state.serving_from = log_index;
            self.put_view_state(batch, overlay, id, &state)?;
            self.retire_older(batch, overlay, id)?;
        } else {
            self.put_view_state(batch, overlay, id, &state)?;
        }
        Ok(())
    }

    /// Retires every older, not yet retired version of the view (on whatever source: a new
    /// version may read another source than the one it replaces).
    fn retire_older(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        (project, view, version): (&str, &str, u32),
    ) -> io::Result<()> {
        for (old, state) in self.live_versions(overlay, project, view)? {
            if old < version {
                self.retire(batch, overlay, (project, view, old), state)?;
            }
        }
        Ok(())
    }

    /// The view's versions that are not retired, with their states, through the overlay.
    fn live_versions(
        &self,
        overlay: &HashMap<Vec<u8>, Vec<u8>>,
        project: &str,
        view: &str,
    ) -> io::Result<Vec<(u32, ViewState)>> {
        let mut versions: Vec<u32> = self
            .view_states()?
            .into_iter()
            .filter(|((p, v, _), _)| p == project && v == view)
            .map(|((_, _, version), _)| version)
            .collect();
        // Versions made earlier in this apply batch are only in the overlay.
        let prefix = keys::view_state_key(self.group(), project, view, 0);
        let prefix = &prefix[..prefix.len() - 4];
        for key in overlay.keys().filter(|k| k.len() == prefix.len() + 4) {
            if let (true, Ok(bytes)) = (key.starts_with(prefix), key[prefix.len()..].try_into()) {
                versions.push(u32::from_be_bytes(bytes));
            }
        }
        versions.sort_unstable();
        versions.dedup();
        let mut live = Vec::new();
        for version in versions {
            if let Some(state) = self.view_state_through(overlay, project, view, version)? {
                if state.phase != ViewPhase::Retired as i32 {
                    live.push((version, state));
                }
            }
        }
        Ok(live)
    }

    /// Retires one version: no longer required of event batches, not folded, its tiles and
    /// running records deleted as ranges.
    fn retire(
        &self,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
        (project, view, version): (&str, &str, u32),
        mut state: ViewState,
    ) -> io::Result<()> {
        let mut views = self.source_views(overlay, project, &state.source)?;
        views
            .active
            .retain(|r| !(r.view == view && r.version == version));
        self.put_source_views(batch, overlay, project, &state.source, &views)?;
        state.phase = ViewPhase::Retired as i32;
        self.put_view_state(batch, overlay, (project, view, version), &state)?;
        let data = self.cf(keys::CF_SM_DATA)?;
        for space in [Space::Tiles, Space::Running] {
            let prefix = keys::view_prefix(self.group(), space, project, view, version);
            let end = keys::prefix_end(&prefix);
            batch.delete_range_cf(data, prefix, end);
        }
        Ok(())
    }

    /// Applies `ViewEnd`: retires every version of the view that is not retired yet.
    pub(super) fn apply_view_end(
        &self,
        end: &ViewEnd,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> io::Result<()> {
        for (version, state) in self.live_versions(overlay, &end.project, &end.view)? {
            self.retire(batch, overlay, (&end.project, &end.view, version), state)?;
        }
        Ok(())
    }

    /// Every view version the store knows, with its state (applied state, for readers).
    pub fn view_states(&self) -> io::Result<Vec<(VersionId, ViewState)>> {
        let prefix = keys::space_prefix(self.group(), Space::Views);
        let mut end = prefix.clone();
        if let Some(space) = end.last_mut() {
            *space += 1;
        }
        let mut options = ReadOptions::default();
        options.set_total_order_seek(true);
        options.set_iterate_lower_bound(prefix.clone());
        options.set_iterate_upper_bound(end);
        let mut states = Vec::new();
        for item in
            self.db()
                .iterator_cf_opt(self.cf(keys::CF_SM_DATA)?, options, IteratorMode::Start)
        {
            let (key, value) = item.map_err(io_err)?;
            let (Some(id), Ok(state)) = (
                keys::parse_view_state(&key[prefix.len()..]),
                ViewState::decode(value.as_ref()),
            ) else {
                continue;
            };
            states.push((id, state));
        }
        Ok(states)
    }

    /// One version's state (applied state, for readers).
    pub fn view_state(
        &self,
        project: &str,
        view: &str,
        version: u32,
    ) -> io::Result<Option<ViewState>> {
        self.view_state_through(&HashMap::new(), project, view, version)
    }
}
