//! Fault campaigns against a 3-voter cluster whose nodes run in network namespaces of their own
//! (`quiver_tests::netns`): real partitions (majority/minority, bridges), packet loss and
//! `kill -9`, while workloads run and record what was acknowledged. `make test` runs a short
//! campaign; `make chaos` a long one (`QUIVER_CHAOS_ROUNDS`, `QUIVER_CHAOS_KILLS`, release).
//!
//! - **register**: direct writes of a `last` feature and STRONG reads from every node, with
//!   every Raft message between the nodes delayed (`QUIVER_CHAOS_DELAY_MS`, 20 ms each way); the
//!   history must be linearizable (`quiver_tests::linearizability`), and no STRONG read may be
//!   answered by a node cut off from a majority.
//! - **counter and set**: retrying producers whose clocks run at different speeds push through
//!   ingest while leaders are killed; none of their events is late, every acknowledged event is
//!   counted exactly once online (`count` per user) and appears exactly once in the exported
//!   source log.
//! - **full disk**: a follower's, then the leader's, small filesystem is filled under its
//!   minimum while rows are written: no process exits, writes go on, all heal when freed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use quiver_common::leader_hint::with_leader;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::WriteRequest;
use quiver_proto::serving::Consistency;
use quiver_proto::types::{value::Kind, FieldStatus};
use quiver_tests::cluster::{
    channel, read_last_amount, stats_row, Cluster, DEFS, NAMESPACED_PEER_PORT,
};
use quiver_tests::linearizability::{self, Call, Op};
use quiver_tests::netns::{self, Network};
use quiver_tests::offline_stack::{get_features_of, now_micros, wait_for_source_log};
use quiver_tests::stream::{push, request, Event, Rng, MINUTE};

const BIN: &str = env!("CARGO_BIN_EXE_quiver");

/// A number from the environment, or `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Calls per register key: keys change as the history grows, so each stays small enough for
/// the checker while many clients still race on the same key.
const CALLS_PER_KEY: u64 = 40;

/// What the faults were at some moment: cut links and nodes down.
#[derive(Debug, Clone, Default)]
struct Faults {
    cuts: BTreeSet<(u64, u64)>,
    down: BTreeSet<u64>,
}

impl Faults {
    /// Whether node `id` reaches no majority of the 3 voters (itself included).
    fn in_minority(&self, id: u64) -> bool {
        let reach = (1..=3)
            .filter(|other| {
                *other == id
                    || (!self.down.contains(other)
                        && !self.cuts.contains(&(id.min(*other), id.max(*other))))
            })
            .count();
        reach < 2
    }
}

/// The fault timeline: each entry holds from its time until the next entry's.
#[derive(Default)]
struct Timeline(Mutex<Vec<(u64, Faults)>>);

impl Timeline {
    fn record(&self, at: u64, faults: Faults) {
        self.0.lock().unwrap().push((at, faults));
    }

    /// Whether node `id` was in a minority for the whole of `[from, to]`.
    fn minority_throughout(&self, id: u64, from: u64, to: u64) -> bool {
        let timeline = self.0.lock().unwrap();
        let start = timeline
            .iter()
            .rposition(|(at, _)| *at <= from)
            .unwrap_or(0);
        timeline[start..]
            .iter()
            .take_while(|(at, _)| *at <= to)
            .all(|(_, faults)| faults.in_minority(id))
    }
}

/// One successful STRONG read: which node answered, and when.
struct StrongRead {
    node: u64,
    invoked: u64,
    returned: u64,
}

/// The register workload's record.
#[derive(Default)]
struct History {
    calls: Mutex<Vec<Call>>,
    strong_reads: Mutex<Vec<StrongRead>>,
    failed_reads: AtomicU64,
}

async fn write_register(
    addresses: &[String],
    producer: &str,
    sequence: u64,
    key: i64,
    at: i64,
) -> bool {
    let request = WriteRequest {
        producer_id: producer.into(),
        sequence,
        rows: vec![stats_row(key, at, at)],
    };
    let start = &addresses[sequence as usize % addresses.len()];
    let attempt = with_leader(start, 5, |target| {
        let request = request.clone();
        async move {
            let mut client = OnlineStoreServiceClient::new(channel(&target).await?);
            client.write(request).await.map(|r| r.into_inner())
        }
    });
    matches!(
        tokio::time::timeout(Duration::from_secs(4), attempt).await,
        Ok(Ok(_))
    )
}

/// A STRONG read of register `key` on `address`: `Some(value)` on an answer.
async fn read_register(address: &str, key: i64) -> Option<Option<i64>> {
    let keys = [key];
    let read = read_last_amount(address, &keys, Consistency::Strong);
    let cells = tokio::time::timeout(Duration::from_secs(4), read)
        .await
        .ok()?
        .ok()?;
    match cells.first()? {
        (FieldStatus::Present, Some(value)) => Some(Some(*value)),
        (FieldStatus::NotFound, _) => Some(None),
        _ => None,
    }
}

/// Runs one register client until `stop`: writes from even clients, reads from odd ones, each
/// on the key of the moment.
fn spawn_register_client(
    client: u64,
    addresses: Vec<String>,
    started: Instant,
    calls: Arc<AtomicU64>,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let now = move || started.elapsed().as_nanos() as u64;
    tokio::spawn(async move {
        let producer = format!("register-{client}");
        let mut sequence = 0;
        while !stop.load(Ordering::Relaxed) {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            let key = (n / CALLS_PER_KEY) as i64;
            let invoked = now();
            if client.is_multiple_of(2) {
                sequence += 1;
                // Event times are unique and grow with the call number.
                let at = 1_700_000_000_000_000 + n as i64;
                let ok = write_register(&addresses, &producer, sequence, key, at).await;
                history.calls.lock().unwrap().push(Call {
                    key,
                    op: Op::Write {
                        event_time: at,
                        value: at,
                    },
                    invoked,
                    returned: ok.then(now),
                });
            } else {
                let node = 1 + (n % 3);
                match read_register(&addresses[node as usize - 1], key).await {
                    Some(value) => {
                        let returned = now();
                        history.calls.lock().unwrap().push(Call {
                            key,
                            op: Op::Read { value },
                            invoked,
                            returned: Some(returned),
                        });
                        history.strong_reads.lock().unwrap().push(StrongRead {
                            node,
                            invoked,
                            returned,
                        });
                    }
                    None => {
                        history.failed_reads.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    })
}

/// The leader, asked of every live node (0 when none answers).
async fn leader_of(cluster: &Cluster) -> u64 {
    for id in cluster.live() {
        if let Ok(status) = cluster.status(id).await {
            if status.leader_id != 0 {
                return status.leader_id;
            }
        }
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_histories_under_partitions_loss_and_kills_are_linearizable() {
    if !netns::can_run("register_histories_under_partitions_loss_and_kills_are_linearizable") {
        return;
    }
    let rounds = setting("QUIVER_CHAOS_ROUNDS", 5);
    let seed = setting("QUIVER_CHAOS_SEED", 20261206);
    // Every Raft message between the nodes travels this much later, each way.
    let delay = Duration::from_millis(setting("QUIVER_CHAOS_DELAY_MS", 20));
    eprintln!("register campaign: {rounds} rounds, seed {seed}, {delay:?} between nodes");
    let mut network = Network::create().unwrap();
    network.delay_port(NAMESPACED_PEER_PORT, delay).unwrap();
    let mut cluster =
        Cluster::start_in_namespaces(network, Path::new(BIN), DEFS, 3, |_| Vec::new()).await;
    let addresses: Vec<String> = (1..=3).map(|id| cluster.address(id)).collect();

    let started = Instant::now();
    let now = || started.elapsed().as_nanos() as u64;
    let history = Arc::new(History::default());
    let timeline = Timeline::default();
    timeline.record(0, Faults::default());
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            spawn_register_client(
                c,
                addresses.clone(),
                started,
                calls.clone(),
                history.clone(),
                stop.clone(),
            )
        })
        .collect();

    let mut rng = Rng(seed);
    let mut kinds = BTreeMap::<&str, u64>::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let leader = leader_of(&cluster).await;
        let victim = 1 + rng.below(3);
        let mut faults = Faults::default();
        // The first rounds take each kind in turn; later ones at random.
        let kind = if round < 5 { round } else { rng.below(5) };
        let name = match kind {
            0 if leader != 0 => {
                cluster.network().isolate(leader).unwrap();
                "leader cut off"
            }
            0 | 1 => {
                cluster.network().isolate(victim).unwrap();
                "one node cut off"
            }
            2 => {
                let middle = victim;
                let ends: Vec<u64> = (1..=3).filter(|n| *n != middle).collect();
                cluster.network().cut(ends[0], ends[1]).unwrap();
                "bridge"
            }
            3 => {
                let killed = if leader != 0 && rng.below(2) == 0 {
                    leader
                } else {
                    victim
                };
                cluster.kill(killed);
                faults.down.insert(killed);
                "kill -9"
            }
            _ => {
                cluster.network().loss(victim, 30).unwrap();
                cluster.network().isolate(1 + victim % 3).unwrap();
                "30% loss on one node, another cut off"
            }
        };
        *kinds.entry(name).or_default() += 1;
        faults.cuts = cluster.network().cuts().clone();
        timeline.record(now(), faults);
        tokio::time::sleep(Duration::from_secs(3)).await;

        timeline.record(now(), Faults::default());
        cluster.network().heal().unwrap();
        for id in 1..=3 {
            cluster.network().loss(id, 0).unwrap();
        }
        for id in 1..=3 {
            if !cluster.live().contains(&id) {
                cluster.restart(id).await;
            }
        }
        timeline.record(now(), Faults::default());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let calls = history.calls.lock().unwrap().clone();
    let writes = calls.iter().filter(|c| matches!(c.op, Op::Write { .. }));
    let (acked, unknown) = writes.fold((0, 0), |(a, u), c| {
        if c.returned.is_some() {
            (a + 1, u)
        } else {
            (a, u + 1)
        }
    });
    let reads = calls.len() - acked - unknown;
    let minority_reads = history
        .strong_reads
        .lock()
        .unwrap()
        .iter()
        .filter(|r| timeline.minority_throughout(r.node, r.invoked, r.returned))
        .count();
    eprintln!(
        "register campaign: faults {kinds:?}; {acked} writes acknowledged, {unknown} of unknown \
         outcome, {reads} STRONG reads answered, {} refused or timed out, {minority_reads} \
         answered by a minority",
        history.failed_reads.load(Ordering::Relaxed)
    );
    let checked = Instant::now();
    let linearizable = linearizability::check(&calls);
    eprintln!(
        "linearizable: {} ({} calls checked in {:?})",
        linearizable.is_ok(),
        calls.len(),
        checked.elapsed()
    );
    assert!(acked > 20 && reads > 20, "the workload made no progress");
    assert_eq!(
        minority_reads, 0,
        "STRONG reads answered by a node cut off from a majority"
    );
    linearizable.unwrap();
}

/// A source of the streaming test schema and one view counting events per user.
const COUNTER_DEFS: &str = r#"
project: stream
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: tx
    entity: user
    timestamp_field: ts
    allowed_lateness: 10s
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
      - {name: merchant, type: string}
      - {name: note, type: string}
feature_views:
  - name: c
    entity: user
    source: tx
    features:
      - {name: events, aggregation: count}
"#;

/// Users the counter workload spreads its events over.
const COUNTER_USERS: i64 = 200;

/// One acknowledged push: its events and when it was invoked and acknowledged.
struct Ack {
    events: Vec<Event>,
    invoked: Instant,
    returned: Instant,
}

/// A producer pushing batches of `batch` time-ordered events through ingest until `stop`,
/// retrying each batch (same sequence) until it is acknowledged, as a real producer does. All
/// start at the same event time, but their clocks run at different speeds (producer `p`
/// advances `(p % 4 + 1) * step` per event; `QUIVER_CHAOS_CLOCK_STEP_US`, 10 ms, and 1 ms in
/// the long campaign, which pushes a thousand times more): they drift apart by far more than
/// the source's 10 s of lateness, so a watermark shared by all producers would make the slow
/// ones' events late, and the counts wrong.
fn spawn_producer(
    ingest: String,
    started_at: i64,
    producer: u64,
    batch: usize,
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = Rng(producer * 7919 + 1);
        let step = (producer % 4 + 1) as i64 * setting("QUIVER_CHAOS_CLOCK_STEP_US", 10_000) as i64;
        let mut at = started_at;
        let mut sequence = 0;
        while !stop.load(Ordering::Relaxed) {
            sequence += 1;
            let events: Vec<Event> = (0..batch)
                .map(|_| {
                    at += step;
                    Event {
                        user: rng.below(COUNTER_USERS as u64) as i64,
                        at,
                        amount: 1.0,
                        merchant: format!("p{producer}"),
                        note: format!("s{sequence}"),
                    }
                })
                .collect();
            let invoked = Instant::now();
            let response = push(
                &ingest,
                request(&events, &format!("producer-{producer}"), sequence),
            )
            .await;
            assert_eq!(response.late, 0, "producer {producer}: {response:?}");
            acks.lock().unwrap().push(Ack {
                events,
                invoked,
                returned: Instant::now(),
            });
        }
    })
}

/// Percentile `p` (0..=100) of `values` (sorted in place).
fn percentile(values: &mut [Duration], p: usize) -> Duration {
    values.sort();
    values
        .get((values.len() * p / 100).min(values.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kills_under_streamed_load_count_and_export_every_acknowledged_event_once() {
    if !netns::can_run(
        "leader_kills_under_streamed_load_count_and_export_every_acknowledged_event_once",
    ) {
        return;
    }
    let kills = setting("QUIVER_CHAOS_KILLS", 2);
    let batch = setting("QUIVER_CHAOS_BATCH", 50) as usize;
    let producers = setting("QUIVER_CHAOS_PRODUCERS", 4);
    let network = Network::create().unwrap();
    let mut cluster =
        Cluster::start_in_namespaces(network, Path::new(BIN), COUNTER_DEFS, 3, |dir| {
            vec![
                (
                    "QUIVER__ONLINE_STORE__OFFLINE_STORE".into(),
                    dir.join("offline").display().to_string(),
                ),
                (
                    "QUIVER__ONLINE_STORE__EXPORT_INTERVAL".into(),
                    "200ms".into(),
                ),
            ]
        })
        .await;
    let store = cluster.dir().join("offline").display().to_string();
    let streaming = cluster.spawn_streaming().await;
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let started_at = now_micros() - 2 * 60 * MINUTE;
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            spawn_producer(
                streaming.ingest.to_string(),
                started_at,
                p,
                batch,
                acks.clone(),
                stop.clone(),
            )
        })
        .collect();

    let started = Instant::now();
    let mut failovers = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
        let killed_at = Instant::now();
        cluster.kill(leader);
        // Failover: from the kill to the first acknowledgement of a push invoked after it.
        let deadline = killed_at + Duration::from_secs(60);
        let failover = loop {
            let first = acks
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.invoked > killed_at)
                .map(|a| a.returned)
                .min();
            if let Some(first) = first {
                break first - killed_at;
            }
            assert!(
                Instant::now() < deadline,
                "no push acknowledged within 60 s of killing the leader"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        failovers.push(failover);
        cluster.restart(leader).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let acked: Vec<&Event> = acks.iter().flat_map(|a| &a.events).collect();
    let mut expected = vec![0i64; COUNTER_USERS as usize];
    for event in &acked {
        expected[event.user as usize] += 1;
    }
    let mut sorted = failovers.clone();
    eprintln!(
        "counter campaign: {kills} leader kills, {} events acknowledged in {elapsed:?} ({:.0}/s); \
         failover p50 {:?}, p99 {:?}, max {:?}",
        acked.len(),
        acked.len() as f64 / elapsed.as_secs_f64(),
        percentile(&mut sorted, 50),
        percentile(&mut sorted, 99),
        sorted.last().copied().unwrap_or_default(),
    );

    // Counter: every acknowledged event counted exactly once, on the leader.
    let users: Vec<i64> = (0..COUNTER_USERS).collect();
    let refs = ["c:events".to_string()];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
        let response =
            get_features_of(&cluster.address(leader), "stream", "user_id", &users, &refs).await;
        let counted: Vec<i64> = response.results[1]
            .values
            .iter()
            .map(|v| match v.kind {
                Some(Kind::Int64Value(n)) => n,
                _ => 0,
            })
            .collect();
        if counted == expected {
            break;
        }
        let off: Vec<(usize, i64, i64)> = counted
            .iter()
            .zip(&expected)
            .enumerate()
            .filter(|(_, (c, e))| c != e)
            .map(|(u, (c, e))| (u, *c, *e))
            .collect();
        assert!(
            Instant::now() < deadline,
            "{} users counted wrong (user, counted, acknowledged): {:?}",
            off.len(),
            &off[..off.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Set: the exported source log holds exactly the acknowledged events.
    let batches = wait_for_source_log(&store, acked.len()).await;
    let mut exported = Vec::new();
    for batch in &batches {
        let users = batch
            .column_by_name("user_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let times = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        exported.extend(
            users
                .values()
                .iter()
                .zip(times.values())
                .map(|(u, t)| (*u, *t)),
        );
    }
    let mut expected: Vec<(i64, i64)> = acked.iter().map(|e| (e.user, e.at)).collect();
    exported.sort_unstable();
    expected.sort_unstable();
    assert!(
        exported == expected,
        "the source log differs from the acknowledged events"
    );
}

/// Writes batches of 20 fresh users (sequence `s`: users `20s..20s+20`) until `stop`, each
/// retried until acknowledged; returns the acknowledged users.
fn spawn_row_writer(
    cluster: Arc<tokio::sync::RwLock<Cluster>>,
    stop: Arc<AtomicBool>,
    batches: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut sequence = 0;
        while !stop.load(Ordering::Relaxed) {
            sequence += 1;
            let users: Vec<i64> = (0..20).map(|k| (sequence * 20 + k) as i64).collect();
            while cluster
                .read()
                .await
                .write("disk", sequence, &users)
                .await
                .is_err()
            {
                if stop.load(Ordering::Relaxed) {
                    return acked;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            acked.extend(users);
            batches.fetch_add(1, Ordering::Relaxed);
        }
        acked
    })
}

/// Panics with the end of node `id`'s log if its process has exited.
async fn assert_running(cluster: &mut Cluster, id: u64, when: &str) {
    if let Some(status) = cluster.wait_for_exit(id, Duration::from_millis(10)).await {
        let output = cluster.process(id).output();
        let tail: Vec<&str> = output.lines().rev().take(15).collect();
        panic!("node {id} exited ({when}): {status:?}\n{}", tail.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_on_a_follower_and_on_the_leader_stops_no_process_and_heals_when_freed() {
    if !netns::can_run(
        "a_full_disk_on_a_follower_and_on_the_leader_stops_no_process_and_heals_when_freed",
    ) {
        return;
    }
    let mut cluster = Cluster::start_with(Path::new(BIN), DEFS, 3, |_| {
        vec![
            (
                "QUIVER__ONLINE_STORE__MIN_FREE_DISK_BYTES".into(),
                (32u64 << 20).to_string(),
            ),
            (
                "QUIVER__ONLINE_STORE__DISK_BALLAST_BYTES".into(),
                (16u64 << 20).to_string(),
            ),
        ]
    })
    .await;
    for id in 1..=3 {
        cluster.move_to_small_disk(id, 192 << 20).await;
        cluster.wait_for_leader(Duration::from_secs(30)).await;
    }
    let cluster = Arc::new(tokio::sync::RwLock::new(cluster));
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let writer = spawn_row_writer(cluster.clone(), stop.clone(), batches.clone());
    for role in ["follower", "leader"] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let leader = cluster
            .read()
            .await
            .wait_for_leader(Duration::from_secs(30))
            .await;
        let full = match role {
            "leader" => leader,
            _ => [1, 2, 3].into_iter().find(|id| *id != leader).unwrap(),
        };
        // Something else fills the disk to 8 MiB free, under the node's 32 MiB minimum: it
        // stops writing and releases its 16 MiB ballast, and writes go to the nodes with room.
        let filler = cluster.read().await.fill_disk(full, 8 << 20);
        let low = Instant::now() + Duration::from_secs(10);
        while !cluster
            .read()
            .await
            .metrics(full)
            .contains("quiver_online_disk_low 1")
        {
            assert!(
                Instant::now() < low,
                "node {full} never noticed its disk was full"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("disk of node {full} ({role}) full");
        // Writes go on: a full follower is not needed, a full leader hands over (an election
        // and the writer's retries; 20 s leaves room for a loaded CI machine).
        let before = batches.load(Ordering::Relaxed);
        let handed_over = Instant::now() + Duration::from_secs(20);
        while batches.load(Ordering::Relaxed) <= before {
            assert!(
                Instant::now() < handed_over,
                "no write was acknowledged while the {role}'s disk was full"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // And keep going for a while on the full disk.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_running(
            &mut *cluster.write().await,
            full,
            &format!("{role}, disk full"),
        )
        .await;
        std::fs::remove_file(filler).unwrap();
        eprintln!("disk of node {full} ({role}) freed");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(!acked.is_empty());
    let mut cluster = cluster.write().await;
    for id in 1..=3 {
        assert_running(&mut cluster, id, "after the disks were freed").await;
    }
    for id in 1..=3 {
        cluster.assert_has_all(id, &acked).await;
    }
}
