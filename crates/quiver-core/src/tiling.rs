//! Tiling: how a view's aggregations are laid out in time buckets, and which buckets a read at
//! `as_of` merges. The online store, compute and the offline path all use these functions, so
//! a window means the same thing everywhere.
//!
//! The rule (documented in `docs/streaming.md`): a sliding window of length `W` over tiles of
//! size `T` answers at `as_of` with the `W / T` whole tiles ending with the tile that contains
//! `as_of`, i.e. events with `floor(e / T) in (floor(as_of / T) - W / T, floor(as_of / T)]`.
//! Windows are exact at tile granularity. A tumbling window answers with its last complete
//! bucket. Lifetime aggregates (and `first`/`last` without a window) live in one running
//! record per entity.

use std::time::Duration;

use crate::definitions::{Aggregation, Feature, FeatureView, Transform, TransformOp, Window};
use crate::ValueType;

/// Microseconds per second.
const SECOND: i64 = 1_000_000;

/// Tile sizes a sliding window may use, in seconds, smallest first.
const TILE_SECONDS: [i64; 17] = [
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400,
    604_800,
];

/// A sliding window is cut into at least this many tiles (so the tail is at most 1/30 of it).
const MIN_TILES_PER_WINDOW: i64 = 30;

/// One aggregation the store keeps for a view: a feature, or the running statistics a
/// `standardize`/`zscore` transform compares with.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {
    /// What is aggregated.
    pub aggregation: Aggregation,
    /// The input column (`None`: counting rows).
    pub column: Option<String>,
    /// Over which window.
    pub window: Window,
    /// The served type (decides e.g. whether a sum stays an integer).
    pub value_type: ValueType,
}

impl AggregateSpec {
    /// The spec of a feature.
    pub fn of_feature(feature: &Feature) -> Self {
        Self {
            aggregation: feature.aggregation,
            column: feature.column.clone(),
            window: feature.window,
            value_type: feature.value_type,
        }
    }
}

/// Where a view's aggregates live: tile families (one per tile size) and the running record.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Families of windowed aggregates, by tile size.
    pub families: Vec<Family>,
    /// Indexes (into the spec list) of lifetime aggregates, kept in the running record.
    pub running: Vec<usize>,
    /// The longest window of any family, microseconds (0 without windows): with the source's
    /// lateness it sets how far back windowed reads can go (see [`retention_start`]).
    pub longest_micros: i64,
}

/// Windowed aggregates sharing one tile size: one record per (entity, bucket) holds a partial
/// for each of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The tile size, microseconds.
    pub tile_micros: i64,
    /// Tiles per key-space epoch: at least the longest window's tile count, so a read touches
    /// at most two epochs, and old epochs are dropped as whole key ranges.
    pub epoch_tiles: i64,
    /// Indexes (into the spec list) of the aggregates in this family, in record order.
    pub members: Vec<usize>,
    /// How far back from a read's time the family's windows reach, microseconds (the longest
    /// sliding window, or twice the longest tumbling one): what retention must keep.
    pub longest_micros: i64,
}

/// Everything the store aggregates for one view version: its features, then the running
/// statistics of its `standardize`/`zscore` transforms (one set per view, under the
/// column-statistics key rather than per entity), each with its layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewAggregates {
    /// Features first (in declared order), then statistics.
    pub specs: Vec<AggregateSpec>,
    /// How many of `specs` are features.
    pub feature_count: usize,
    /// The layout of `specs[..feature_count]` (per entity).
    pub features: Layout,
    /// The layout of `specs[feature_count..]` (indexes relative to that slice).
    pub statistics: Layout,
}

impl ViewAggregates {
    /// The aggregates of `view`.
    pub fn of_view(view: &FeatureView) -> Self {
        let mut specs: Vec<AggregateSpec> = view
            .features
            .iter()
            .map(AggregateSpec::of_feature)
            .collect();
        let feature_count = specs.len();
        specs.extend(view.transforms.iter().filter_map(statistics_spec));
        Self::from_specs(specs, feature_count)
    }

    /// Lays out `specs` whose first `feature_count` are features.
    pub fn from_specs(specs: Vec<AggregateSpec>, feature_count: usize) -> Self {
        let feature_count = feature_count.min(specs.len());
        let features = layout(&specs[..feature_count]);
        let statistics = layout(&specs[feature_count..]);
        Self {
            specs,
            feature_count,
            features,
            statistics,
        }
    }

    /// The statistics specs.
    pub fn statistics_specs(&self) -> &[AggregateSpec] {
        &self.specs[self.feature_count..]
    }

    /// The feature specs.
    pub fn feature_specs(&self) -> &[AggregateSpec] {
        &self.specs[..self.feature_count]
    }
}

/// The running statistics a stateful transform compares with: mean and deviation of its input
/// over its window.
pub fn statistics_spec(transform: &Transform) -> Option<AggregateSpec> {
    let window = match transform.op {
        TransformOp::Standardize { window } | TransformOp::ZScore { window, .. } => window,
        TransformOp::TokenCount | TransformOp::NgramHash { .. } => return None,
    };
    Some(AggregateSpec {
        aggregation: Aggregation::Stddev,
        column: Some(transform.input.clone()),
        window: window.map(Window::Sliding).unwrap_or(Window::Lifetime),
        value_type: ValueType::Float64,
    })
}

/// A duration in microseconds, saturating.
pub fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The tile size of a window, microseconds: a tumbling window is one tile per bucket; a sliding
/// one the largest standard size that divides it into at least 30 tiles (a window that is not
/// a whole number of seconds is one tile).
pub fn tile_micros(window: Window) -> Option<i64> {
    match window {
        Window::Lifetime => None,
        Window::Tumbling(length) => Some(micros(length).max(1)),
        Window::Sliding(length) => {
            let w = micros(length).max(1);
            if w % SECOND != 0 {
                return Some(w);
            }
            let seconds = w / SECOND;
            let size = TILE_SECONDS
                .iter()
                .rev()
                .find(|t| seconds % **t == 0 && seconds / **t >= MIN_TILES_PER_WINDOW)
                .copied()
                .unwrap_or(1);
            Some(size * SECOND)
        }
    }
}

/// Lays out `specs` (features first, then transform statistics) into families and the
/// running record. Deterministic: the same specs always give the same layout.
pub fn layout(specs: &[AggregateSpec]) -> Layout {
    let mut families: Vec<Family> = Vec::new();
    let mut running = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let Some(tile) = tile_micros(spec.window) else {
            running.push(index);
            continue;
        };
        let length = spec.window.length().map(micros).unwrap_or(tile);
        let tiles = (length / tile).max(1);
        // How far back from a read's time its window can start: a tumbling window's last
        // complete bucket starts up to two lengths back.
        let reach = match spec.window {
            Window::Tumbling(_) => length.saturating_mul(2),
            _ => length,
        };
        match families.iter_mut().find(|f| f.tile_micros == tile) {
            Some(family) => {
                family.members.push(index);
                family.epoch_tiles = family.epoch_tiles.max(tiles);
                family.longest_micros = family.longest_micros.max(reach);
            }
            None => families.push(Family {
                tile_micros: tile,
                epoch_tiles: tiles,
                members: vec![index],
                longest_micros: reach,
            }),
        }
    }
    families.sort_by_key(|f| f.tile_micros);
    let longest_micros = families.iter().map(|f| f.longest_micros).max().unwrap_or(0);
    Layout {
        families,
        running,
        longest_micros,
    }
}

/// The bucket (tile index) of an event time.
pub fn bucket(event_micros: i64, tile_micros: i64) -> i64 {
    event_micros.div_euclid(tile_micros)
}

/// The epoch of a bucket.
pub fn epoch(bucket: i64, epoch_tiles: i64) -> i64 {
    bucket.div_euclid(epoch_tiles)
}

/// The buckets (inclusive) a read of `window` at `as_of` merges, for tiles of `tile_micros`.
pub fn covering(window: Window, tile_micros: i64, as_of_micros: i64) -> (i64, i64) {
    let head = bucket(as_of_micros, tile_micros);
    match window {
        Window::Tumbling(_) => (head - 1, head - 1),
        Window::Sliding(length) => {
            let tiles = (micros(length) / tile_micros).max(1);
            (head - tiles + 1, head)
        }
        Window::Lifetime => (i64::MIN, head),
    }
}

/// The oldest event time a windowed read may still need when the source's watermark is
/// `watermark_micros`: events older than the watermark minus the lateness are never admitted,
/// and no admissible read's window reaches further back than the longest window. A read whose
/// window starts earlier cannot be answered online (its tiles may be gone).
pub fn retention_start(watermark_micros: i64, lateness_micros: i64, longest_micros: i64) -> i64 {
    watermark_micros
        .saturating_sub(lateness_micros)
        .saturating_sub(longest_micros)
}

/// Where the window a read of `window` at `as_of` covers starts (microseconds).
pub fn window_start(window: Window, tile_micros: i64, as_of_micros: i64) -> i64 {
    covering(window, tile_micros, as_of_micros)
        .0
        .saturating_mul(tile_micros)
}

/// The first epoch of `family` still kept (older ones are dropped) when the retention starts
/// at `retention_start_micros`: the epoch holding that instant's tile, and one spare before.
pub fn first_kept_epoch(family: &Family, retention_start_micros: i64) -> i64 {
    epoch(
        bucket(retention_start_micros, family.tile_micros),
        family.epoch_tiles,
    ) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60 * SECOND;
    const HOUR: i64 = 60 * MINUTE;

    fn spec(aggregation: Aggregation, window: Window) -> AggregateSpec {
        AggregateSpec {
            aggregation,
            column: None,
            window,
            value_type: ValueType::Int64,
        }
    }

    #[test]
    fn tile_sizes_bound_the_tiles_a_read_merges() {
        let hours = |h: u64| Window::Sliding(Duration::from_secs(h * 3600));
        assert_eq!(tile_micros(hours(1)), Some(MINUTE));
        assert_eq!(tile_micros(hours(24)), Some(30 * MINUTE));
        assert_eq!(tile_micros(hours(24 * 7)), Some(3 * HOUR));
        assert_eq!(
            tile_micros(Window::Sliding(Duration::from_secs(900))),
            Some(30 * SECOND)
        );
        assert_eq!(
            tile_micros(Window::Tumbling(Duration::from_secs(3600))),
            Some(HOUR)
        );
        assert_eq!(tile_micros(Window::Lifetime), None);
        assert_eq!(
            tile_micros(Window::Sliding(Duration::from_millis(1500))),
            Some(1_500_000)
        );
        for h in 1..=24 * 30 {
            let tiles = micros(Duration::from_secs(h * 3600)) / tile_micros(hours(h)).unwrap();
            assert!((30..=3600).contains(&tiles), "{h}h -> {tiles} tiles");
        }
    }

    #[test]
    fn layout_groups_by_tile_size_and_keeps_lifetime_apart() {
        let specs = [
            spec(Aggregation::Last, Window::Lifetime),
            spec(
                Aggregation::Count,
                Window::Sliding(Duration::from_secs(3600)),
            ),
            spec(
                Aggregation::Sum,
                Window::Sliding(Duration::from_secs(86_400)),
            ),
            spec(Aggregation::Max, Window::Tumbling(Duration::from_secs(60))),
            spec(Aggregation::Count, Window::Lifetime),
        ];
        let layout = layout(&specs);
        assert_eq!(layout.running, vec![0, 4]);
        // 1h sliding and 1m tumbling share 1-minute tiles.
        assert_eq!(layout.families.len(), 2);
        assert_eq!(layout.families[0].tile_micros, MINUTE);
        assert_eq!(layout.families[0].members, vec![1, 3]);
        assert_eq!(layout.families[0].epoch_tiles, 60);
        assert_eq!(layout.families[1].members, vec![2]);
    }

    #[test]
    fn sliding_windows_cover_whole_tiles_ending_with_as_of() {
        let w = Window::Sliding(Duration::from_secs(3600));
        // as_of 10:30:15 -> tiles 09:31 .. 10:30 (60 one-minute tiles).
        let as_of = 10 * HOUR + 30 * MINUTE + 15 * SECOND;
        assert_eq!(covering(w, MINUTE, as_of), (9 * 60 + 31, 10 * 60 + 30));
        // Tumbling: the last complete bucket.
        let t = Window::Tumbling(Duration::from_secs(3600));
        assert_eq!(covering(t, HOUR, as_of), (9, 9));
        // Before the epoch, buckets floor towards minus infinity.
        assert_eq!(bucket(-1, MINUTE), -1);
    }

    #[test]
    fn retention_keeps_everything_an_admitted_read_can_need() {
        let family = Family {
            tile_micros: MINUTE,
            epoch_tiles: 60,
            members: vec![0],
            longest_micros: HOUR,
        };
        let watermark = 100 * HOUR;
        let lateness = 5 * MINUTE;
        let start = retention_start(watermark, lateness, HOUR);
        let kept = first_kept_epoch(&family, start);
        // The oldest event still admissible, and the window a read at its time needs.
        let window = Window::Sliding(Duration::from_secs(3600));
        let oldest_read = covering(window, MINUTE, watermark - lateness).0;
        assert!(epoch(oldest_read, family.epoch_tiles) >= kept);
        assert!(window_start(window, MINUTE, watermark - lateness) >= start);
        assert_eq!(
            window_start(window, MINUTE, watermark - lateness) - start,
            MINUTE - lateness % MINUTE
        );
    }
}
