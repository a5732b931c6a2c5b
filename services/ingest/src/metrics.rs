//! Ingest's Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{register_int_counter_vec, register_int_gauge, IntCounterVec, IntGauge};

#[allow(clippy::expect_used)]
static ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_ingest_rows_total",
        "Pushed rows by result: accepted, late (rejected by the watermark), anomalous (row-view pairs excluded), duplicate (a retried batch), invalid (the batch was rejected), saturated (refused for backpressure), failed (downstream unavailable; the producer retries).",
        &["result"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static INFLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "quiver_ingest_inflight_rows",
        "Rows validated and waiting for their commit."
    )
    .expect("metric registers once")
});

/// Counts `n` rows with `result`.
pub fn count(result: &str, n: u64) {
    ROWS.with_label_values(&[result]).inc_by(n);
}

/// Moves the in-flight gauge.
pub fn inflight(delta: i64) {
    INFLIGHT.add(delta);
}
