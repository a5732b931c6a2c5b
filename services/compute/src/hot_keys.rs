//! Hot-key detection: events per entity key over one-minute periods; the top keys of the last
//! complete period are exported as a gauge, so a skewed key shows up on the dashboard.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quiver_proto::convert::display_entity;
use quiver_proto::online::EventBatch;

/// The counting period.
const PERIOD: Duration = Duration::from_secs(60);

/// At most this many distinct keys are counted per period (memory bound); later new keys are
/// not counted, which cannot hide a key that is hot from the start of a period.
const MAX_KEYS: usize = 100_000;

/// Per-key counters of the current period.
pub struct HotKeys {
    top: usize,
    started: Instant,
    counts: HashMap<(String, String, Vec<u8>), u64>,
}

impl HotKeys {
    /// Reports the `top` busiest keys.
    pub fn new(top: usize) -> Self {
        Self {
            top,
            started: Instant::now(),
            counts: HashMap::new(),
        }
    }

    /// Counts a batch's events.
    pub fn count(&mut self, batch: &EventBatch) {
        if self.top == 0 {
            return;
        }
        for key in &batch.entity_keys {
            let id = (batch.project.clone(), batch.source.clone(), key.clone());
            let full = self.counts.len() >= MAX_KEYS;
            match self.counts.get_mut(&id) {
                Some(n) => *n += 1,
                None if !full => {
                    self.counts.insert(id, 1);
                }
                None => {}
            }
        }
    }

    /// At the end of a period: exports its top keys and starts the next.
    pub fn maybe_export(&mut self) {
        if self.started.elapsed() < PERIOD {
            return;
        }
        let mut counts: Vec<_> = std::mem::take(&mut self.counts).into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        crate::metrics::HOT_KEYS.reset();
        for ((project, source, key), n) in counts.into_iter().take(self.top) {
            crate::metrics::HOT_KEYS
                .with_label_values(&[&project, &source, &display_entity(&key)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.started = Instant::now();
    }
}
