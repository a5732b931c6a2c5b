//! `quiver-bench backfill`: history in, then a view over it. In a fresh project holding only
//! the example `transactions` source (no view yet) it
//!
//! 1. loads `--events` generated transactions spread over `--days` of event time with
//!    `quiver load`'s path (history batches through ingest, compute and the store): the history
//!    load rate, end to end;
//! 2. waits until the offline export has written them to the source log;
//! 3. applies the example `user_txn` view (12 features, text and z-score transforms, four tile
//!    sizes) and times its backfill from the source log until the version serves: backfilled
//!    events per second of wall clock, and per CPU-second of the server when `--server-pid`
//!    names it (a one-process `quiver dev`).
//!
//! Throughout, a live producer pushes `--live-rate` events/s of current transactions; its
//! event-to-acknowledged latency is reported for the idle stretch before the view is applied,
//! for the backfill, and for an idle stretch once the view serves (live events then feed the
//! view's transforms and tiles, which they did not before it existed): the backfill's cost to
//! freshness is the ratio of the backfill's figure to that last one, measured, not assumed.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use quiver::addresses::{connect, Addresses};

use quiver::demo::{transaction_row, Generator, TRANSACTION_COLUMNS};
use quiver::producer::Producer;
use quiver::rpc_error;
use quiver::send::{send, Plan, Share};
use quiver_common::clock::now_micros;
use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{StatusRequest, ViewPhase, ViewStatesRequest};
use tokio::sync::Mutex;

use crate::definitions::apply;

/// The view the bench backfills.
const VIEW: &str = "user_txn";
/// History producers and batch size (as `quiver load` uses).
const PARTS: usize = 4;
const BATCH: usize = 5_000;
/// Live batches per second (the live rate is spread over them).
const LIVE_BATCHES_PER_SECOND: u64 = 20;
/// How long each idle freshness figure is measured: 200 batches, so its p99 is not one
/// batch's luck (5 s, 100 batches, moved 11-30 ms between runs of one build).
const IDLE: Duration = Duration::from_secs(10);

/// The bench's shape (its flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// History events to load and backfill.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Distinct users.
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Days of event time the history spans (ending now).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Live events per second pushed throughout (0: none).
    #[arg(long, default_value_t = 1_000)]
    pub live_rate: u64,
    /// The server's process id, to report events per CPU-second (one-process `quiver dev`).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Drop the `window` of `user_txn`'s zscore (statistics over the whole stream instead of
    /// the last day): the view's rows then follow from the source log, so the backfill exports
    /// none of them, as for any view without a windowed statistic.
    #[arg(long)]
    pub lifetime_zscore: bool,
}

/// Which latency histogram a live acknowledgement goes to.
const UNMEASURED: u8 = 0;
const MEASURING_IDLE: u8 = 1;
const MEASURING_BACKFILL: u8 = 2;
const MEASURING_AFTER: u8 = 3;
const STOP: u8 = 4;

/// Runs the bench.
pub async fn run(addresses: &Addresses, shape: Shape) -> anyhow::Result<()> {
    let project = format!("backfill_bench_{}", now_micros() / 1_000_000);
    let (source_only, with_view) = definitions(&project, shape.lifetime_zscore)?;
    apply(addresses, &format!("{project}.yaml"), &source_only).await?;

    let phase = Arc::new(AtomicU8::new(UNMEASURED));
    let histograms = Arc::new(Mutex::new([
        Histogram::<u64>::new(3)?,
        Histogram::new(3)?,
        Histogram::new(3)?,
    ]));
    let live = (shape.live_rate > 0).then(|| {
        tokio::spawn(live_producer(
            addresses.ingest.clone(),
            project.clone(),
            shape.live_rate,
            shape.users,
            phase.clone(),
            histograms.clone(),
        ))
    });

    // 1. The history load.
    let rows = history(&shape);
    let total = rows.len();
    let shares = rows
        .chunks(total.div_ceil(PARTS).max(1))
        .enumerate()
        .map(|(part, rows)| {
            Share::of_rows(format!("{project}-history-{part}"), rows.to_vec(), BATCH)
        })
        .collect();
    let plan = Plan {
        ingest: addresses.ingest.clone(),
        register: false,
        progress: true,
        what: "load",
    };
    let request_project = project.clone();
    let (totals, failure, load_took) = send(&plan, shares, total as u64, move |rows| PushRequest {
        project: request_project.clone(),
        source: "transactions".into(),
        columns: TRANSACTION_COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows,
        history: true,
        ..PushRequest::default()
    })
    .await?;
    if let Some(failure) = failure {
        return Err(failure.context("the history load failed"));
    }
    let load_secs = load_took.as_secs_f64().max(1e-9);
    println!(
        "history load: {} events in {load_secs:.2}s = {:.0} events/s end to end ({PARTS} \
         producers x {BATCH}-event batches, acknowledged once committed and applied)",
        totals.accepted,
        totals.accepted as f64 / load_secs
    );

    // 2. Into the source log.
    let exported = wait_for_export(&addresses.online).await?;
    println!("source log: exported through entry {exported}");

    // Idle freshness.
    phase.store(MEASURING_IDLE, Ordering::Relaxed);
    tokio::time::sleep(IDLE).await;

    // 3. The backfill.
    let cpu_before = shape.server_pid.map(cpu_seconds).transpose()?;
    phase.store(MEASURING_BACKFILL, Ordering::Relaxed);
    let started = Instant::now();
    apply(addresses, &format!("{project}.yaml"), &with_view).await?;
    let backfilled = wait_for_serving(&addresses.online, &project).await?;
    let took = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = match (shape.server_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };
    // Idle again, now with the view serving.
    phase.store(MEASURING_AFTER, Ordering::Relaxed);
    if live.is_some() {
        tokio::time::sleep(IDLE).await;
    }
    phase.store(STOP, Ordering::Relaxed);
    println!(
        "backfill of {VIEW} (12 features): {backfilled} events in {took:.2}s = {:.0} events/s{}",
        backfilled as f64 / took,
        cpu.map(|cpu| format!(
            "; server CPU {cpu:.2}s = {:.0} events per CPU-second",
            backfilled as f64 / cpu.max(1e-9)
        ))
        .unwrap_or_default()
    );
    if let Some(live) = live {
        live.await.context("the live producer panicked")??;
        let h = histograms.lock().await;
        let ms = |v: u64| v as f64 / 1000.0;
        let names = [
            "idle, no view yet",
            "during the backfill",
            "idle, the view serving",
        ];
        for (name, h) in names.iter().zip(h.iter()) {
            println!(
                "live freshness {name} (event -> acknowledged, {} events/s), ms: p50 {:.1}  p99 \
                 {:.1}  max {:.1}  ({} batches)",
                shape.live_rate,
                ms(h.value_at_quantile(0.50)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
                h.len()
            );
        }
        let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99).max(1) as f64;
        println!(
            "live freshness p99 during the backfill: {:.1}x idle with the view serving, {:.1}x \
             idle before it existed",
            p99(&h[1]) / p99(&h[2]),
            p99(&h[1]) / p99(&h[0])
        );
    }
    Ok(())
}

/// The bench project's documents: the example `transactions` source alone, then with `user_txn`
/// (its zscore over the whole stream if `lifetime_zscore`).
fn definitions(project: &str, lifetime_zscore: bool) -> anyhow::Result<(String, String)> {
    let pick = crate::definitions::example;
    let mut document = serde_yaml::Mapping::new();
    document.insert("project".into(), project.into());
    document.insert("entities".into(), vec![pick("entities", "user")?].into());
    document.insert(
        "sources".into(),
        vec![pick("sources", "transactions")?].into(),
    );
    let source_only = serde_yaml::to_string(&document)?;
    let mut view = pick("feature_views", VIEW)?;
    if lifetime_zscore {
        let transforms = view
            .get_mut("transforms")
            .and_then(|t| t.as_sequence_mut())
            .context("the example view has no transforms")?;
        for transform in transforms.iter_mut().filter_map(|t| t.as_mapping_mut()) {
            if transform.get("op").and_then(|op| op.as_str()) == Some("zscore") {
                transform.remove("window");
            }
        }
    }
    document.insert("feature_views".into(), vec![view].into());
    Ok((source_only, serde_yaml::to_string(&document)?))
}

/// `--events` transactions, time-ordered over `--days` ending now.
fn history(shape: &Shape) -> Vec<Row> {
    let mut generator = Generator::new(shape.users, 7).clean();
    let span = i64::from(shape.days.max(1)) * 86_400_000_000;
    let start = now_micros() - span;
    let n = shape.events.max(1) as i64;
    (0..n)
        .map(|i| transaction_row(&generator.transaction(start + span * i / n)))
        .collect()
}

/// Waits until the export covers every entry applied now; its log index.
async fn wait_for_export(online: &str) -> anyhow::Result<u64> {
    let mut admin = ClusterAdminServiceClient::new(connect(online, "online").await?);
    let target = admin
        .status(StatusRequest {})
        .await
        .map_err(|s| rpc_error("reading the store's status", s))?
        .into_inner()
        .last_applied;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = admin
            .status(StatusRequest {})
            .await
            .map_err(|s| rpc_error("reading the store's status", s))?
            .into_inner();
        if status.exported_through >= target {
            return Ok(status.exported_through);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the export did not reach entry {target} in 5 minutes (at {}); is an offline store \
             configured?",
            status.exported_through
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the bench view's version serves; the events its backfill folded.
async fn wait_for_serving(online: &str, project: &str) -> anyhow::Result<u64> {
    let mut client = OnlineStoreServiceClient::new(connect(online, "online").await?);
    let deadline = Instant::now() + Duration::from_secs(3_600);
    loop {
        let states = client
            .view_states(ViewStatesRequest {
                project: project.to_string(),
                view: VIEW.to_string(),
            })
            .await
            .map_err(|s| rpc_error("reading view states", s))?
            .into_inner()
            .versions;
        if let Some(state) = states.iter().find_map(|v| v.state.as_ref()) {
            if state.phase == ViewPhase::Serving as i32 {
                return Ok(state.backfilled_rows);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the backfill did not end in an hour"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pushes current transactions at `rate` until the phase says stop, recording each batch's
/// latency from its scheduled time (open loop) in the phase's histogram.
async fn live_producer(
    ingest: String,
    project: String,
    rate: u64,
    users: u64,
    phase: Arc<AtomicU8>,
    histograms: Arc<Mutex<[Histogram<u64>; 3]>>,
) -> anyhow::Result<()> {
    let mut producer = Producer::connect(&ingest, format!("{project}-live")).await?;
    let mut generator = Generator::new(users, 11).clean();
    let per_batch = rate.div_ceil(LIVE_BATCHES_PER_SECOND).max(1) as usize;
    let interval = Duration::from_secs_f64(per_batch as f64 / rate as f64);
    let mut next = Instant::now();
    loop {
        let measuring = phase.load(Ordering::Relaxed);
        if measuring == STOP {
            return Ok(());
        }
        tokio::time::sleep_until(next.into()).await;
        let scheduled = next;
        next += interval;
        let now = now_micros();
        let rows = (0..per_batch)
            .map(|_| transaction_row(&generator.transaction(now)))
            .collect();
        let pushed = producer
            .push(PushRequest {
                project: project.clone(),
                source: "transactions".into(),
                columns: TRANSACTION_COLUMNS.iter().map(|c| c.to_string()).collect(),
                rows,
                ..PushRequest::default()
            })
            .await;
        match pushed {
            // The project was applied a moment ago: ingest knows it from its next registry
            // refresh on. Before anything is measured, wait for that.
            Err(status)
                if measuring == UNMEASURED && status.code() == tonic::Code::InvalidArgument =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                next = Instant::now();
                continue;
            }
            pushed => pushed.map_err(|s| rpc_error("live push", s))?,
        };
        if let Some(i) = match measuring {
            MEASURING_IDLE => Some(0),
            MEASURING_BACKFILL => Some(1),
            MEASURING_AFTER => Some(2),
            _ => None,
        } {
            let took = scheduled.elapsed().as_micros() as u64;
            histograms.lock().await[i].record(took.max(1))?;
        }
    }
}

/// The CPU seconds (user + system) process `pid` has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("--server-pid {pid}: no such process"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        anyhow::bail!("/proc/{pid}/stat has no CPU times");
    };
    // In USER_HZ ticks, which Linux fixes at 100 for what it shows user space.
    Ok((user + system) / 100.0)
}
