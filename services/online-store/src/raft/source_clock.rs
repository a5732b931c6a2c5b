//! Event-time progress per producer, and the source watermark that follows the slowest active
//! producer (the rule stream processors use across inputs).
//!
//! A row is **late** when its event time is
//! - more than the source's allowed lateness behind its producer's watermark (the largest event
//!   time admitted from it, moving row by row): a producer's own disorder is bounded by the
//!   lateness whatever the batch size, and no other producer's clock or backlog can make its
//!   rows late; or
//! - older than anything the source still keeps online: its **horizon**, the source watermark
//!   minus the lateness minus the longest window of the views it feeds (the tiles' retention).
//!   A source whose views keep no tiles (no windows: running records keep every event) has no
//!   horizon. This is the only bound on a producer's first batch (one that has not written within the
//!   idleness bound), so a producer that joins hours behind the others — a backlog, a replay
//!   after an outage — loses nothing the tiles still hold; history older than that goes through
//!   `quiver load`.
//!
//! The source watermark is the smallest watermark of the source's *active* producers (never
//! moving back); it decides tile retention. A producer is active from its first batch (an empty
//! batch registers it without events, and holds the source watermark until it sends some) until
//! it has not written for [`IDLE_AFTER_BATCHES`] batches of its source: idleness is counted in
//! the log, never on a clock, so every replica decides the same.

use quiver_core::tiling;
use quiver_proto::online::{ProducerClock, SourceClock};

/// The admission rules that bound a first batch by the horizon. Under the rules before them
/// (an entry proposed by an older leader, or while some member runs an older binary), the
/// horizon has no window: the source watermark minus the lateness. An entry carries the rules
/// it was proposed under, so every replica that applies it decides the same.
pub const HORIZON_RULES: u32 = 2;

/// The admission rules under which a batch whose views keep no tiles has no horizon: before
/// them its horizon was the source watermark minus the lateness, so a Kafka partition the
/// consumer reached seconds after the others lost its oldest events.
pub const TILELESS_RULES: u32 = 3;

/// The admission rules under which a view's column statistics (what a windowed
/// `standardize`/`zscore` compares with) are kept for all time: before them their tiles were
/// collected with the features' and not written for history past retention.
pub const STATISTICS_RULES: u32 = 4;

/// The admission rules under which the leader leaves the values of stateless derived columns
/// (`token_count`, `ngram_hash` over a source column) out of event entries and backfill chunks:
/// apply and the export compute them again from the rows. A replica on older rules would read
/// the missing values as nulls, so none may see such an entry.
pub const RECOMPUTE_RULES: u32 = 5;

/// The admission rules under which a backfill chunk carries each event's original log position
/// (`BackfillChunk.positions`) and apply stamps the event with it: `first`/`last` then break a
/// tie between a backfilled event and one the version folded live by ingest order, as the
/// source log (and so every snapshot) does. Before them a backfilled event was stamped with
/// its chunk's position, later than every live event folded before the chunk.
pub const ORIGINAL_ORDER_RULES: u32 = 6;

/// The admission rules under which float `sum`, `mean` and `stddev` partials are exact sums
/// rounded once when read (`quiver_core::aggregate::ExactSum`): the same bits whatever the
/// grouping of the events (a backfill's chunks, serving's entries, a snapshot's files). Before
/// them the online store added f64s in apply order, and a binary without exact sums could not
/// read such a record, so none may see one.
pub const EXACT_SUMS_RULES: u32 = 7;

/// The newest admission rules this binary applies.
pub const RULES: u32 = EXACT_SUMS_RULES;

/// A producer that has not written for this many batches of its source stops holding the
/// source watermark back.
pub const IDLE_AFTER_BATCHES: u64 = 1_000;

/// At most this many producers of a source are active; beyond it the least recently written
/// one goes idle early.
pub const MAX_ACTIVE: usize = 1_000;

/// What admission decided about one batch.
#[derive(Debug, Default, PartialEq)]
pub struct Admission {
    /// Per row: admitted.
    pub admitted: Vec<bool>,
    /// The late rows and why, in row order.
    pub late: Vec<(u32, String)>,
    /// The source watermark after the batch.
    pub watermark: Option<i64>,
}

/// Admits one (fresh, not duplicate) batch of `producer` with these event times against the
/// source's `clock` and `watermark`, and advances both. `longest_window` is the longest window
/// of the views the batch feeds, `None` when none keeps tiles: with the lateness it sets the
/// horizon, and without tiles there is none.
pub fn admit(
    clock: &mut SourceClock,
    watermark: Option<i64>,
    producer: &str,
    lateness: i64,
    longest_window: Option<i64>,
    event_micros: &[i64],
) -> Admission {
    let lateness = lateness.max(0);
    clock.batches += 1;
    let position = clock.active.iter().position(|p| p.producer_id == producer);
    let mut own = position.and_then(|i| clock.active[i].watermark);
    let horizon = watermark
        .zip(longest_window)
        .map(|(w, window)| tiling::retention_start(w, lateness, window.max(0)));
    let mut admission = Admission {
        admitted: Vec::with_capacity(event_micros.len()),
        ..Admission::default()
    };
    for (row, &at) in event_micros.iter().enumerate() {
        // `None` orders first, so the floor is the higher of the two that exist.
        let own_floor = own.map(|o| o.saturating_sub(lateness));
        let floor = own_floor.max(horizon);
        if floor.is_none_or(|floor| at >= floor) {
            admission.admitted.push(true);
            own = Some(own.map_or(at, |o| o.max(at)));
            continue;
        }
        admission.admitted.push(false);
        let reason = match own {
            Some(o) if own_floor == floor => format!(
                "late: event time {} is more than the allowed lateness {} behind producer \
                 {producer:?}'s watermark {} (the latest event time admitted from it); load older \
                 events with `quiver load`",
                rfc3339(at),
                humanize(lateness),
                rfc3339(o)
            ),
            _ => format!(
                "late: event time {} is older than anything the source keeps online ({}: the \
                 watermark {} of its slowest active producer minus the allowed lateness {}{}); \
                 load history with `quiver load`",
                rfc3339(at),
                rfc3339(floor.unwrap_or_default()),
                rfc3339(watermark.unwrap_or_default()),
                humanize(lateness),
                match longest_window {
                    Some(window) if window > 0 =>
                        format!(" and the longest window {}", humanize(window)),
                    _ => String::new(),
                }
            ),
        };
        admission.late.push((row as u32, reason));
    }

    // A batch with rows of which none was admitted does not make a producer active (it would
    // hold the watermark without progress); an empty batch registers it.
    let progressed = event_micros.is_empty() || own.is_some();
    match position {
        Some(i) => {
            clock.active[i].watermark = own;
            clock.active[i].last_batch = clock.batches;
        }
        None if progressed => clock.active.push(ProducerClock {
            producer_id: producer.to_string(),
            watermark: own,
            last_batch: clock.batches,
        }),
        None => {}
    }
    let now = clock.batches;
    clock
        .active
        .retain(|p| now - p.last_batch < IDLE_AFTER_BATCHES);
    while clock.active.len() > MAX_ACTIVE {
        // The least recently written goes idle first (the first such, for a tie).
        let oldest = clock
            .active
            .iter()
            .enumerate()
            .min_by_key(|(i, p)| (p.last_batch, *i))
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            clock.active.remove(i);
        }
    }

    // The slowest active producer, if every active producer has progressed; never backwards.
    let slowest = clock
        .active
        .iter()
        .map(|p| p.watermark)
        .collect::<Option<Vec<i64>>>()
        .and_then(|w| w.into_iter().min());
    admission.watermark = match (watermark, slowest) {
        (Some(w), Some(s)) => Some(w.max(s)),
        (w, s) => w.or(s),
    };
    admission
}

/// Forgets a producer's progress (its epoch changed: it starts a new stream).
pub fn reset(clock: &mut SourceClock, producer: &str) {
    clock.active.retain(|p| p.producer_id != producer);
}

/// RFC 3339 with microseconds.
pub fn rfc3339(micros: i64) -> String {
    quiver_core::timestamp::format_rfc3339(micros, quiver_core::timestamp::Fraction::Micros)
}

fn humanize(micros: i64) -> String {
    humantime::format_duration(std::time::Duration::from_micros(
        u64::try_from(micros).unwrap_or(0),
    ))
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn run(clock: &mut SourceClock, w: &mut Option<i64>, p: &str, times: &[i64]) -> Vec<bool> {
        let a = admit(clock, *w, p, 10 * MIN, Some(0), times);
        *w = a.watermark;
        a.admitted
    }

    #[test]
    fn a_producers_own_disorder_is_bounded_row_by_row() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        // The 11-minute-late row is late within its own batch; batch size does not matter.
        let admitted = run(&mut clock, &mut w, "a", &[0, 30 * MIN, 19 * MIN, 21 * MIN]);
        assert_eq!(admitted, [true, true, false, true]);
        assert_eq!(w, Some(30 * MIN));
        let a = admit(&mut clock, w, "a", 10 * MIN, Some(0), &[5 * MIN]);
        assert!(
            a.late[0].1.contains("behind producer \"a\"'s watermark"),
            "{:?}",
            a.late
        );
        assert!(a.late[0].1.contains("quiver load"));
    }

    #[test]
    fn a_slow_producer_is_not_made_late_by_a_fast_one() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        // Both register, then the fast one runs an hour ahead.
        run(&mut clock, &mut w, "fast", &[]);
        run(&mut clock, &mut w, "slow", &[]);
        assert_eq!(
            run(&mut clock, &mut w, "fast", &[60 * MIN, 70 * MIN]),
            [true, true]
        );
        assert_eq!(w, None, "the slow producer has sent nothing yet");
        assert_eq!(run(&mut clock, &mut w, "slow", &[0, 1]), [true, true]);
        assert_eq!(w, Some(1), "the slowest active producer");
        // The slow producer's stream stays admissible at its own pace.
        for t in 1..50 {
            assert_eq!(run(&mut clock, &mut w, "slow", &[t * MIN]), [true]);
            assert_eq!(run(&mut clock, &mut w, "fast", &[(60 + t) * MIN]), [true]);
        }
        assert_eq!(w, Some(49 * MIN));
    }

    #[test]
    fn a_new_producer_is_judged_against_what_the_source_keeps() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        run(&mut clock, &mut w, "a", &[100 * MIN]);
        // Tiles without a window: nothing older than the watermark minus the lateness is kept.
        let a = admit(&mut clock, w, "b", 10 * MIN, Some(0), &[95 * MIN, 80 * MIN]);
        assert_eq!(a.admitted, [true, false]);
        assert!(
            a.late[0]
                .1
                .contains("older than anything the source keeps online"),
            "{:?}",
            a.late
        );
        assert!(a.late[0].1.contains("quiver load"));
        // A producer whose rows were all late does not become active (nor hold the watermark).
        let a = admit(&mut clock, w, "c", 10 * MIN, Some(0), &[0]);
        assert_eq!(a.admitted, [false]);
        assert!(!clock.active.iter().any(|p| p.producer_id == "c"));
    }

    #[test]
    fn without_tiles_a_joining_producer_is_bounded_only_by_its_own_progress() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        run(&mut clock, &mut w, "a", &[100 * MIN]);
        // Running records keep every event: a partition reached late keeps its oldest rows.
        let a = admit(&mut clock, w, "b", 10 * MIN, None, &[0, 30 * MIN, 15 * MIN]);
        assert_eq!(a.admitted, [true, true, false], "{:?}", a.late);
        assert!(a.late[0].1.contains("behind producer \"b\"'s watermark"));
        assert_eq!(a.watermark, Some(100 * MIN), "never moved back");
    }

    #[test]
    fn a_producer_joining_hours_behind_keeps_what_the_tiles_still_hold() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        const HOUR: i64 = 60 * MIN;
        let window = 24 * HOUR;
        let admit_at = |clock: &mut SourceClock, w: &mut Option<i64>, p: &str, times: &[i64]| {
            let a = admit(clock, *w, p, 10 * MIN, Some(window), times);
            *w = a.watermark;
            a
        };
        admit_at(&mut clock, &mut w, "live", &[48 * HOUR]);
        // A backlog 20 hours behind (far past the 10-minute lateness, within the 24 h window):
        // admitted, and from then on judged by its own progress alone.
        let a = admit_at(
            &mut clock,
            &mut w,
            "backlog",
            &[28 * HOUR, 27 * HOUR, 28 * HOUR + MIN],
        );
        assert_eq!(a.admitted, [true, false, true]);
        assert!(a.late[0]
            .1
            .contains("behind producer \"backlog\"'s watermark"));
        for t in 1..10 {
            let a = admit_at(&mut clock, &mut w, "backlog", &[(28 + t) * HOUR]);
            assert_eq!(a.admitted, [true], "hour {t} of the backlog");
            admit_at(&mut clock, &mut w, "live", &[48 * HOUR + t * MIN]);
        }
        assert_eq!(
            w,
            Some(48 * HOUR),
            "held while the backlog catches up, never moved back"
        );
        // Older than the watermark minus lateness minus the window: nothing keeps it online.
        let a = admit_at(&mut clock, &mut w, "older", &[23 * HOUR, 48 * HOUR]);
        assert_eq!(a.admitted, [false, true]);
        assert!(
            a.late[0].1.contains(
                "(1970-01-01T23:50:00.000000Z: the watermark 1970-01-03T00:00:00.000000Z"
            ) && a.late[0]
                .1
                .contains("lateness 10m and the longest window 1day)"),
            "{:?}",
            a.late
        );
        assert!(a.late[0].1.contains("quiver load"), "{:?}", a.late);
    }

    #[test]
    fn an_idle_producer_stops_holding_the_watermark_back() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        run(&mut clock, &mut w, "gone", &[0]);
        for t in 1..IDLE_AFTER_BATCHES as i64 {
            run(&mut clock, &mut w, "live", &[t * MIN]);
            assert_eq!(w, Some(0), "batch {t}: held by the quiet producer");
        }
        run(
            &mut clock,
            &mut w,
            "live",
            &[IDLE_AFTER_BATCHES as i64 * MIN],
        );
        assert_eq!(w, Some(IDLE_AFTER_BATCHES as i64 * MIN));
        assert_eq!(clock.active.len(), 1);
    }

    #[test]
    fn the_watermark_never_moves_back_and_active_producers_are_bounded() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        run(&mut clock, &mut w, "a", &[100 * MIN]);
        // A new producer within the lateness is admitted but cannot pull the watermark back.
        assert_eq!(run(&mut clock, &mut w, "b", &[95 * MIN]), [true]);
        assert_eq!(w, Some(100 * MIN));
        for i in 0..MAX_ACTIVE + 5 {
            run(&mut clock, &mut w, &format!("p{i}"), &[100 * MIN]);
        }
        assert_eq!(clock.active.len(), MAX_ACTIVE);
        assert!(clock
            .active
            .iter()
            .any(|p| p.producer_id == format!("p{}", MAX_ACTIVE + 4)));
        assert!(!clock.active.iter().any(|p| p.producer_id == "a"));
    }

    #[test]
    fn a_reset_producer_starts_a_new_stream() {
        let (mut clock, mut w) = (SourceClock::default(), None);
        run(&mut clock, &mut w, "a", &[100 * MIN]);
        run(&mut clock, &mut w, "b", &[100 * MIN]);
        reset(&mut clock, "a");
        // Judged like a new producer: against the source watermark, not its old progress.
        assert_eq!(
            run(&mut clock, &mut w, "a", &[91 * MIN, 89 * MIN]),
            [true, false]
        );
    }
}
