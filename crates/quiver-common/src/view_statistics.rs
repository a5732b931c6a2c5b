//! The running statistics a view's `standardize`/`zscore` transforms score rows against, as the
//! feeding of a batch carries them.
//!
//! A row is scored against the statistics of the window that ends with the tile its own event
//! time falls in (windows are tile-aligned, `quiver-core::tiling`, so every row of one tile
//! reads the same stored statistics): as the online store holds them when the batch is fed,
//! plus the rows kept before it in the same batch that fall in that window. Lifetime statistics
//! (no `window`) are one running figure. Reading at the row's event time, not at the
//! wall-clock present, is what lets a history load or a backfill score a row from long ago
//! against its own time's window, as a live batch at that time would have.

use std::collections::{BTreeMap, HashMap};

use quiver_core::aggregate::{Partial, Stamp};
use quiver_core::definitions::Window;
use quiver_core::tiling::{self, covering};
use quiver_core::{Aggregation, Scalar, TransformOp};

/// Which stored statistics a row reads: the tile its window ends with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StatisticsWindow {
    /// Over every row so far: one figure for all rows.
    Lifetime,
    /// Over a sliding window, laid out in tiles of `tile_micros`.
    Sliding {
        /// The window, as the store reads it.
        window: Window,
        /// Its tile size.
        tile_micros: i64,
    },
}

impl StatisticsWindow {
    /// The window of a stateful transform (`None` for a stateless one).
    pub(crate) fn of(op: &TransformOp) -> Option<Self> {
        let window = match op {
            TransformOp::Standardize { window } | TransformOp::ZScore { window, .. } => *window,
            TransformOp::TokenCount | TransformOp::NgramHash { .. } => return None,
        };
        Some(match window {
            None => Self::Lifetime,
            Some(length) => {
                let window = Window::Sliding(length);
                Self::Sliding {
                    window,
                    tile_micros: tiling::tile_micros(window).unwrap_or(1),
                }
            }
        })
    }

    /// The key of the statistics a row at `event_micros` reads (its tile).
    pub(crate) fn key(self, event_micros: i64) -> i64 {
        match self {
            Self::Lifetime => 0,
            Self::Sliding { tile_micros, .. } => tiling::bucket(event_micros, tile_micros),
        }
    }

    /// The instant whose store read answers with the statistics of `key`.
    pub(crate) fn moment(self, key: i64) -> Option<i64> {
        match self {
            Self::Lifetime => None,
            Self::Sliding { tile_micros, .. } => Some(key.saturating_mul(tile_micros)),
        }
    }

    /// The keys whose window holds a row of tile `key`.
    fn holding(self, key: i64) -> std::ops::RangeInclusive<i64> {
        match self {
            Self::Lifetime => 0..=0,
            Self::Sliding {
                window,
                tile_micros,
            } => {
                let (first, last) = covering(window, tile_micros, 0);
                let tiles = last - first + 1;
                key..=key.saturating_add(tiles - 1)
            }
        }
    }

    /// The tiles the window of `key` covers.
    fn covers(self, key: i64) -> std::ops::RangeInclusive<i64> {
        match self {
            Self::Lifetime => i64::MIN..=i64::MAX,
            Self::Sliding {
                window,
                tile_micros,
            } => {
                let (first, last) = covering(window, tile_micros, key.saturating_mul(tile_micros));
                first..=last
            }
        }
    }
}

/// One stateful transform's statistics while a batch is fed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Carried {
    /// By key: the statistics rows of that tile read (as stored, plus the batch's kept rows).
    read: BTreeMap<i64, Partial>,
    /// By tile: the rows kept so far, for statistics read later in the batch.
    kept: BTreeMap<i64, Partial>,
}

impl Carried {
    /// Records the stored statistics of `key` (kept: a key already there carries rows the store
    /// does not have yet), with the rows kept so far in its window.
    fn insert(&mut self, window: StatisticsWindow, key: i64, stored: Partial) {
        if self.read.contains_key(&key) {
            return;
        }
        let mut statistics = stored;
        for (_, kept) in self.kept.range(window.covers(key)) {
            statistics.merge(kept);
        }
        self.read.insert(key, statistics);
    }

    /// The statistics a row of tile `key` reads (the rows kept so far when none were read).
    pub(crate) fn at(&mut self, window: StatisticsWindow, key: i64) -> &Partial {
        if !self.read.contains_key(&key) {
            self.insert(window, key, empty());
        }
        &self.read[&key]
    }

    /// Adds a kept row of tile `key` with value `x` to every statistic whose window holds it.
    pub(crate) fn keep(&mut self, window: StatisticsWindow, key: i64, x: f64, event_micros: i64) {
        let value = Scalar::Float64(x);
        let stamp = Stamp {
            event_micros,
            sequence: 0,
        };
        self.kept
            .entry(key)
            .or_insert_with(empty)
            .update(Some(&value), stamp);
        for (_, statistics) in self.read.range_mut(window.holding(key)) {
            statistics.update(Some(&value), stamp);
        }
    }
}

/// The running statistics of a view's stateful transforms while rows are fed, by transform
/// output name: what was read from the online store for the rows' tiles, carried forward with
/// every row kept.
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    by_transform: HashMap<String, Carried>,
}

fn empty() -> Partial {
    Partial::empty(Aggregation::Stddev, true, None)
}

impl Statistics {
    /// No statistics: every transform starts from nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the statistics of `key` for `transform` are there already.
    pub(crate) fn holds(&self, transform: &str, key: i64) -> bool {
        self.by_transform
            .get(transform)
            .is_some_and(|c| c.read.contains_key(&key))
    }

    /// Records the stored statistics of `key` for `transform`.
    pub(crate) fn insert(
        &mut self,
        transform: &str,
        window: StatisticsWindow,
        key: i64,
        stored: Partial,
    ) {
        self.of(transform).insert(window, key, stored);
    }

    /// What `transform` carries.
    pub(crate) fn of(&mut self, transform: &str) -> &mut Carried {
        self.by_transform.entry(transform.to_string()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quiver_core::transform::standardize;

    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn daily() -> StatisticsWindow {
        StatisticsWindow::of(&TransformOp::Standardize {
            window: Some(Duration::from_secs(86_400)),
        })
        .unwrap()
    }

    fn stored(values: &[f64]) -> Partial {
        let mut p = empty();
        for v in values {
            p.update(
                Some(&Scalar::Float64(*v)),
                Stamp {
                    event_micros: 0,
                    sequence: 0,
                },
            );
        }
        p
    }

    /// A daily window is 48 half-hour tiles: the key of a row is its half hour, and a read at
    /// a key's moment reads the window ending with that half hour.
    #[test]
    fn a_row_reads_the_window_ending_with_its_own_tile() {
        let w = daily();
        assert_eq!(w.key(10 * HOUR), 20);
        assert_eq!(w.key(10 * HOUR + HOUR / 2 - 1), 20);
        assert_eq!(w.moment(20), Some(10 * HOUR));
        assert_eq!(w.key(w.moment(20).unwrap()), 20);
        assert_eq!(w.covers(20), -27..=20);
        assert_eq!(w.holding(20), 20..=67);
    }

    /// A kept row updates the statistics of every window holding it, and statistics read later
    /// in the batch start with the rows kept before them in their window, not the others.
    #[test]
    fn kept_rows_reach_every_window_that_holds_them_and_no_other() {
        let w = daily();
        let mut s = Statistics::new();
        s.insert("z", w, 20, stored(&[1.0, 3.0]));
        s.of("z").keep(w, 20, 5.0, 10 * HOUR);
        // The window of key 20 has the stored values and the kept one.
        assert_eq!(standardize(3.0, s.of("z").at(w, 20)), Some(0.0));
        // Key 60 (20 hours later) holds tile 20; key 100 (30 hours later) does not.
        s.insert("z", w, 60, stored(&[]));
        s.insert("z", w, 100, stored(&[7.0, 9.0]));
        assert_eq!(
            standardize(6.0, s.of("z").at(w, 60)),
            Some(0.0),
            "only the kept 5.0"
        );
        assert_eq!(standardize(8.0, s.of("z").at(w, 100)), Some(0.0));
        // A row kept at tile 60 reaches key 100 (its window covers 53..=100) but not key 20.
        s.of("z").keep(w, 60, 11.0, 30 * HOUR);
        assert_eq!(
            standardize(8.0, s.of("z").at(w, 60)),
            Some(0.0),
            "5.0 and 11.0"
        );
        assert_eq!(standardize(9.0, s.of("z").at(w, 100)), Some(0.0));
        assert_eq!(standardize(3.0, s.of("z").at(w, 20)), Some(0.0));
        // A key inserted again keeps what it carries.
        s.insert("z", w, 20, stored(&[]));
        assert_eq!(standardize(3.0, s.of("z").at(w, 20)), Some(0.0));
    }

    /// Lifetime statistics are one figure, whatever the rows' times.
    #[test]
    fn lifetime_statistics_hold_every_kept_row() {
        let w = StatisticsWindow::of(&TransformOp::Standardize { window: None }).unwrap();
        let mut s = Statistics::new();
        s.of("z").keep(w, w.key(0), 1.0, 0);
        s.of("z").keep(w, w.key(1_000 * HOUR), 3.0, 1_000 * HOUR);
        assert_eq!(standardize(2.0, s.of("z").at(w, w.key(-HOUR))), Some(0.0));
        assert_eq!(w.moment(0), None);
    }
}
