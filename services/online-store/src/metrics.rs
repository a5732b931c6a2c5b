//! Prometheus metrics of a node: its Raft state (kept current from openraft's metrics watch)
//! and what writes did. Served on the process's HTTP `/metrics` with everything else.

use std::sync::LazyLock;

use openraft::async_runtime::WatchReceiver;
use prometheus::{
    register_histogram, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    Histogram, IntCounterVec, IntGauge, IntGaugeVec,
};
use quiver_common::Shutdown;

use crate::raft::types::ServerState;
use crate::raft::Raft;

// Registration fails only on a duplicate name, which these fixed names cannot cause.
macro_rules! gauge {
    ($name:expr, $help:expr) => {
        LazyLock::new(|| {
            #[allow(clippy::expect_used)]
            register_int_gauge!($name, $help).expect("metric registers once")
        })
    };
}

static TERM: LazyLock<IntGauge> = gauge!("quiver_raft_term", "Current Raft term.");
static IS_LEADER: LazyLock<IntGauge> =
    gauge!("quiver_raft_is_leader", "1 on the leader, 0 elsewhere.");
static LEADER: LazyLock<IntGauge> = gauge!(
    "quiver_raft_leader_id",
    "The node id of the current leader (0: none known)."
);
static LAST_LOG: LazyLock<IntGauge> =
    gauge!("quiver_raft_last_log_index", "Last log index on this node.");
static COMMITTED: LazyLock<IntGauge> = gauge!(
    "quiver_raft_committed_index",
    "Last log index known committed."
);
static APPLIED: LazyLock<IntGauge> = gauge!(
    "quiver_raft_applied_index",
    "Last log index applied to the state machine."
);
static APPLY_LAG: LazyLock<IntGauge> = gauge!(
    "quiver_raft_apply_lag_entries",
    "Committed but not yet applied entries (committed - applied); reads here are this far behind."
);
static SNAPSHOT: LazyLock<IntGauge> = gauge!(
    "quiver_raft_snapshot_index",
    "Last log index covered by this node's snapshot."
);
static PURGED: LazyLock<IntGauge> = gauge!("quiver_raft_purged_index", "Last purged log index.");
static VOTERS: LazyLock<IntGauge> =
    gauge!("quiver_raft_voters", "Voters in the current membership.");
static LEARNERS: LazyLock<IntGauge> = gauge!(
    "quiver_raft_learners",
    "Learners in the current membership."
);

#[allow(clippy::expect_used)]
static REPLICATION_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_raft_replication_lag_entries",
        "Leader only: entries a member has not matched yet (last log index - matched index).",
        &["node"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static WRITE_ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_online_write_rows_total",
        "Rows written through this node, by result: applied, stale (not newer than stored), duplicate (batch retried).",
        &["result"]
    )
    .expect("metric registers once")
});

/// Counts the rows of one acknowledged write.
pub fn count_write(applied: u64, stale: u64, duplicate_rows: u64) {
    WRITE_ROWS.with_label_values(&["applied"]).inc_by(applied);
    WRITE_ROWS.with_label_values(&["stale"]).inc_by(stale);
    WRITE_ROWS
        .with_label_values(&["duplicate"])
        .inc_by(duplicate_rows);
}

#[allow(clippy::expect_used)]
static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_online_events_total",
        "Streaming events applied on this node, by result: accepted, late (rejected, quarantined), anomalous (row-view pairs excluded by a zscore transform, quarantined).",
        &["result"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static FRESHNESS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "quiver_online_event_freshness_seconds",
        "Event time to servable (applied on this node), seconds; sampled per apply. Assumes producers stamp events with a synchronised clock; replayed history shows its age.",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static WATERMARK: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_online_source_watermark_seconds",
        "Per source: its watermark (Unix seconds), the event-time progress of its slowest active producer. It decides tile retention and which tiles are sealed; see docs/streaming.md for which rows are late.",
        &["project", "source"]
    )
    .expect("metric registers once")
});

/// Records what one apply admitted: the freshness of a sample of event times, counters, and
/// the sources' watermarks.
pub fn record_events(
    event_micros: &[i64],
    accepted: u64,
    late: u64,
    anomalous: u64,
    watermarks: &std::collections::HashMap<(String, String), i64>,
) {
    let now = quiver_common::clock::now_micros();
    for at in event_micros {
        FRESHNESS.observe(now.saturating_sub(*at).max(0) as f64 / 1e6);
    }
    EVENTS.with_label_values(&["accepted"]).inc_by(accepted);
    EVENTS.with_label_values(&["late"]).inc_by(late);
    EVENTS.with_label_values(&["anomalous"]).inc_by(anomalous);
    for ((project, source), micros) in watermarks {
        WATERMARK
            .with_label_values(&[project, source])
            .set(micros.div_euclid(1_000_000));
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Keeps the Raft gauges current until `shutdown`.
pub fn export_raft_metrics(raft: Raft, shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut watch = raft.metrics();
        loop {
            {
                let m = watch.borrow_watched();
                let index = |l: &Option<crate::raft::types::LogId>| {
                    l.as_ref().map(|l| l.index).unwrap_or(0)
                };
                TERM.set(gauge_value(m.current_term));
                IS_LEADER.set(i64::from(m.state == ServerState::Leader));
                LEADER.set(gauge_value(m.current_leader.unwrap_or(0)));
                let last_log = m.last_log_index.unwrap_or(0);
                LAST_LOG.set(gauge_value(last_log));
                COMMITTED.set(gauge_value(index(&m.local_committed)));
                APPLIED.set(gauge_value(index(&m.last_applied)));
                APPLY_LAG.set(gauge_value(
                    index(&m.local_committed).saturating_sub(index(&m.last_applied)),
                ));
                SNAPSHOT.set(gauge_value(index(&m.snapshot)));
                PURGED.set(gauge_value(index(&m.purged)));
                let membership = m.membership_config.membership();
                let voters = membership.voter_ids().count();
                VOTERS.set(gauge_value(voters as u64));
                LEARNERS.set(gauge_value(membership.learner_ids().count() as u64));
                REPLICATION_LAG.reset();
                if let Some(replication) = &m.replication {
                    for (node, matched) in replication.iter() {
                        let lag = last_log.saturating_sub(index(matched));
                        REPLICATION_LAG
                            .with_label_values(&[&node.to_string()])
                            .set(gauge_value(lag));
                    }
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                changed = watch.changed() => if changed.is_err() { return },
            }
        }
    });
}

static EXPORT_LAG: LazyLock<IntGauge> = gauge!(
    "quiver_export_lag_seconds",
    "Leader only: how long ago the oldest row not yet in the offline store was ingested (0: nothing waiting)."
);
static EXPORTED_INDEX: LazyLock<IntGauge> = gauge!(
    "quiver_export_exported_index",
    "The log index through which staged rows are in the offline store and released."
);
#[allow(clippy::expect_used)]
static EXPORTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_export_total",
        "What the offline export wrote, by kind: files, rows (aggregated rows), bytes, errors (failed rounds, retried), refused_writes (event writes refused over max_staged_bytes).",
        &["kind"]
    )
    .expect("metric registers once")
});

/// Counts one exported range (the exported index follows with [`set_export_lag`]).
pub fn count_export(files: usize, rows: u64, bytes: u64) {
    EXPORTS.with_label_values(&["files"]).inc_by(files as u64);
    EXPORTS.with_label_values(&["rows"]).inc_by(rows);
    EXPORTS.with_label_values(&["bytes"]).inc_by(bytes);
}

/// Counts a failed export round.
pub fn count_export_error() {
    EXPORTS.with_label_values(&["errors"]).inc();
}

static DISK_LOW: LazyLock<IntGauge> = gauge!(
    "quiver_online_disk_low",
    "1 while this node's free disk space is under min_free_disk_bytes: it takes no writes and does not lead."
);

/// Records whether the disk is low.
pub fn set_disk_low(low: bool) {
    DISK_LOW.set(i64::from(low));
}

/// Counts an event write refused because too much waits for export.
pub fn count_staged_refusal() {
    EXPORTS.with_label_values(&["refused_writes"]).inc();
}

static STAGED_BYTES: LazyLock<IntGauge> = gauge!(
    "quiver_export_staged_bytes",
    "Bytes of applied events waiting for the offline export; event writes are refused past max_staged_bytes."
);

/// Sets the export lag and progress.
pub fn set_export_lag(lag: std::time::Duration, exported_index: u64, staged_bytes: u64) {
    EXPORT_LAG.set(i64::try_from(lag.as_secs()).unwrap_or(i64::MAX));
    EXPORTED_INDEX.set(i64::try_from(exported_index).unwrap_or(i64::MAX));
    STAGED_BYTES.set(i64::try_from(staged_bytes).unwrap_or(i64::MAX));
}

#[allow(clippy::expect_used)]
static VIEW_PHASE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_online_view_phase",
        "Each view version's phase in the online store: 0 backfilling, 1 serving, 2 retired.",
        &["project", "view", "version"]
    )
    .expect("metric registers once")
});
#[allow(clippy::expect_used)]
static VIEW_BACKFILL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_online_view_backfill_events",
        "A view version's backfill: events folded so far (done) and events to fold (total).",
        &["project", "view", "version", "kind"]
    )
    .expect("metric registers once")
});

/// Sets the view-version gauges from the applied state.
pub fn record_views(node: &crate::node::Node) {
    let Ok(states) = node.state.view_states() else {
        return;
    };
    for ((project, view, version), state) in states {
        let version = version.to_string();
        let labels = [project.as_str(), view.as_str(), version.as_str()];
        VIEW_PHASE
            .with_label_values(&labels)
            .set(i64::from(state.phase));
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        VIEW_BACKFILL
            .with_label_values(&[labels[0], labels[1], labels[2], "done"])
            .set(count(state.backfilled_rows));
        VIEW_BACKFILL
            .with_label_values(&[labels[0], labels[1], labels[2], "total"])
            .set(count(state.backfill_total));
    }
}

/// A cache's lookups by `result`: the `hit` counter, then the `miss` one.
#[allow(clippy::expect_used)]
fn hits_and_misses(name: &str, help: &str) -> [prometheus::IntCounter; 2] {
    let reads = register_int_counter_vec!(name, help, &["result"]).expect("metric registers once");
    [
        reads.with_label_values(&["hit"]),
        reads.with_label_values(&["miss"]),
    ]
}

static SEALED_TILE_READS: LazyLock<[prometheus::IntCounter; 2]> = LazyLock::new(|| {
    hits_and_misses(
        "quiver_online_sealed_tile_reads_total",
        "Windowed reads of one entity's tile family near the present, by whether the merged sealed tiles came from memory (hit) or were read (miss).",
    )
});

/// Counts one lookup of the sealed-tile cache.
pub fn count_sealed_tile_read(hit: bool) {
    SEALED_TILE_READS[usize::from(!hit)].inc();
}

static OPEN_TILE_READS: LazyLock<[prometheus::IntCounter; 2]> = LazyLock::new(|| {
    hits_and_misses(
        "quiver_online_open_tile_reads_total",
        "Windowed reads whose sealed tiles came from memory, by whether the tiles after them came from memory too (hit: nothing was folded into the entity since they were read) or were read (miss).",
    )
});

/// Counts one read whose sealed tiles came from the cache: whether its open tiles did too.
pub fn count_open_tile_read(hit: bool) {
    OPEN_TILE_READS[usize::from(!hit)].inc();
}
