//! The snapshot service's metrics (beyond the per-RPC ones every server has).

use std::sync::LazyLock;

use prometheus::{register_int_counter_vec, IntCounterVec};

#[allow(clippy::expect_used)]
static SNAPSHOTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_offline_snapshots_total",
        "Snapshot requests by result (ok, error).",
        &["result"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_offline_snapshot_rows_total",
        "Entity rows answered by snapshots.",
        &["result"]
    )
    .expect("metric registers once")
});

/// Counts a finished snapshot of `rows` entity rows.
pub fn count_snapshot(result: &str, rows: u64) {
    SNAPSHOTS.with_label_values(&[result]).inc();
    ROWS.with_label_values(&[result]).inc_by(rows);
}

#[allow(clippy::expect_used)]
static LOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_offline_view_loads_total",
        "View rows a snapshot needed, by how they were had: cached (unchanged), extended (new export files merged in), full (read and indexed whole).",
        &["kind"]
    )
    .expect("metric registers once")
});

/// Counts how a snapshot had a view version's rows.
pub fn count_load(kind: &str) {
    LOADS.with_label_values(&[kind]).inc();
}
