//! Fault campaigns against a 3-voter cluster whose nodes run in network namespaces of their own
//! (`quiver_tests::netns`): real partitions (majority/minority, bridges), packet loss and
//! `kill -9`, while workloads run and record what was acknowledged. `make test` runs a short
//! campaign; `make chaos` a long one (`QUIVER_CHAOS_ROUNDS`, `QUIVER_CHAOS_KILLS`, release).
//!
//! - **register**: direct writes of a `last` feature and STRONG reads from every node; the
//!   history must be linearizable (`quiver_tests::linearizability`), and no STRONG read may be
//!   answered by a node cut off from a majority.
//! - **counter and set**: retrying producers push through ingest while leaders are killed; every
//!   acknowledged event is counted exactly once online (`count` per user) and appears exactly
//!   once in the exported source log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_common::leader_hint::with_leader;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{FeatureRow, WriteRequest};
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use quiver_proto::serving::{get_features_request, Consistency, FeatureList, GetFeaturesRequest};
use quiver_proto::types::{value::Kind, EntityColumn, EntityKey, FieldStatus, RepeatedValue};
use quiver_tests::cluster::{channel, int, Cluster, DEFS};
use quiver_tests::linearizability::{self, Call, Op};
use quiver_tests::netns::{self, Network};
use quiver_tests::stream::Rng;

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
        rows: vec![FeatureRow {
            project: String::new(),
            view: "stats".into(),
            view_version: 0,
            entity: Some(EntityKey {
                join_keys: vec![],
                values: vec![int(key)],
            }),
            event_time: Some(prost_types::Timestamp {
                seconds: at / 1_000_000,
                nanos: (at % 1_000_000) as i32 * 1000,
            }),
            values: vec![int(at)],
        }],
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
    let call = async {
        let mut client = ServingServiceClient::new(channel(address).await?);
        client
            .get_features(GetFeaturesRequest {
                project: String::new(),
                features: Some(get_features_request::Features::FeatureList(FeatureList {
                    refs: vec!["stats:last_amount".into()],
                })),
                entities: vec![EntityColumn {
                    name: "user_id".into(),
                    values: Some(RepeatedValue {
                        values: vec![int(key)],
                    }),
                }],
                as_of: None,
                consistency: Consistency::Strong as i32,
                full_feature_names: false,
            })
            .await
            .map(|r| r.into_inner())
    };
    let response = tokio::time::timeout(Duration::from_secs(4), call)
        .await
        .ok()?
        .ok()?;
    let column = response.results.get(1)?;
    match FieldStatus::try_from(*column.statuses.first()?).ok()? {
        FieldStatus::Present => match column.values.first()?.kind {
            Some(Kind::Int64Value(v)) => Some(Some(v)),
            _ => None,
        },
        FieldStatus::NotFound => Some(None),
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
            if client % 2 == 0 {
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
    eprintln!("register campaign: {rounds} rounds, seed {seed}");
    let network = Network::create().unwrap();
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
