//! Compute's Prometheus metrics.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    register_histogram, register_int_counter, register_int_gauge_vec, Histogram, IntCounter,
    IntGaugeVec,
};

#[allow(clippy::expect_used)]
static BATCH_ROWS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "quiver_compute_micro_batch_rows",
        "Rows per micro-batch (one online-store write, one Raft entry).",
        vec![1.0, 10.0, 100.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static BATCH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "quiver_compute_micro_batch_seconds",
        "Time to transform and commit one micro-batch.",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static PRODUCER_BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "quiver_compute_producer_batches_total",
        "Producer batches written (coalesced into micro-batches)."
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static SATURATED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "quiver_compute_saturated_total",
        "Batches refused with RESOURCE_EXHAUSTED because the queue of uncommitted rows was full."
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
pub static HOT_KEYS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_compute_hot_key_events_per_minute",
        "The busiest entity keys by events in the last minute (top N per process), so skew is visible.",
        &["project", "source", "key"]
    )
    .expect("metric registers once")
});

/// Registers the counters alerts read, at 0, so a scrape shows them before their first event
/// (an absent series reads as "no data", not as zero).
pub fn export_from_start() {
    LazyLock::force(&SATURATED);
}

/// Records one written micro-batch.
pub fn record_micro_batch(rows: usize, producer_batches: usize, took: Duration) {
    BATCH_ROWS.observe(rows as f64);
    BATCH_SECONDS.observe(took.as_secs_f64());
    PRODUCER_BATCHES.inc_by(producer_batches as u64);
}

/// Counts a batch refused for lack of room.
pub fn count_saturated() {
    SATURATED.inc();
}
