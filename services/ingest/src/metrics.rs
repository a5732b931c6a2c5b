//! Ingest's Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec, IntCounterVec, IntGauge,
    IntGaugeVec,
};

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

#[allow(clippy::expect_used)]
static KAFKA_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_kafka_lag_messages",
        "Per owned Kafka partition: its log end offset minus the offset committed to Quiver (messages not yet committed). Summed over pods it is a source's backlog; the chart's HPAs scale on it.",
        &["project", "source", "topic", "partition"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static KAFKA_COMMITTED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_kafka_committed_offset",
        "Per owned Kafka partition: the next offset to consume, committed in Quiver's replicated state with the events before it.",
        &["project", "source", "topic", "partition"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static KAFKA_MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_kafka_messages_total",
        "Kafka messages committed, by result: accepted, late (quarantined by the watermark), rejected (poison: quarantined with partition, offset and reason), duplicate (already committed by another consumer).",
        &["project", "source", "result"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static KAFKA_PARTITIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_kafka_partitions",
        "Partitions of a Kafka source's topic as last seen in the brokers' metadata (owned: this process's share).",
        &["project", "source", "topic", "scope"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static KAFKA_UP: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_kafka_consumer_up",
        "1 while a Kafka source's consumer reaches its brokers and topic, 0 while it reports a problem (see quiver describe source).",
        &["project", "source"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static KAFKA_PROBLEMS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_kafka_problems_total",
        "Problems a Kafka consumer met, by kind: broker_unreachable, topic_missing, partitions_changed, offsets_reset (a topic recreated: a new epoch from its start), expired (messages deleted by retention before they were consumed), resume_failed (Quiver's stored offsets could not be read), config.",
        &["project", "source", "kind"]
    )
    .expect("metric registers once")
});

/// Sets one partition's lag and committed offset.
pub fn kafka_partition(
    project: &str,
    source: &str,
    topic: &str,
    partition: i32,
    committed: u64,
    lag: u64,
) {
    let p = partition.to_string();
    let labels = [project, source, topic, p.as_str()];
    KAFKA_LAG.with_label_values(&labels).set(lag as i64);
    KAFKA_COMMITTED
        .with_label_values(&labels)
        .set(committed as i64);
}

/// Forgets a partition this process no longer owns (so sums over pods count it once).
pub fn kafka_partition_gone(project: &str, source: &str, topic: &str, partition: i32) {
    let p = partition.to_string();
    let labels = [project, source, topic, p.as_str()];
    let _ = KAFKA_LAG.remove_label_values(&labels);
    let _ = KAFKA_COMMITTED.remove_label_values(&labels);
}

/// Counts committed Kafka messages by result.
pub fn kafka_messages(project: &str, source: &str, result: &str, n: u64) {
    if n > 0 {
        KAFKA_MESSAGES
            .with_label_values(&[project, source, result])
            .inc_by(n);
    }
}

/// Sets a source's partition counts (`topic`: all of them; `owned`: this process's).
pub fn kafka_partitions(project: &str, source: &str, topic: &str, scope: &str, n: usize) {
    KAFKA_PARTITIONS
        .with_label_values(&[project, source, topic, scope])
        .set(n as i64);
}

/// Sets whether a source's consumer is healthy.
pub fn kafka_up(project: &str, source: &str, up: bool) {
    KAFKA_UP
        .with_label_values(&[project, source])
        .set(i64::from(up));
}

/// Counts a problem of kind `kind`.
pub fn kafka_problem(project: &str, source: &str, kind: &str) {
    KAFKA_PROBLEMS
        .with_label_values(&[project, source, kind])
        .inc();
}
