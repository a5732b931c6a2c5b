//! The online store as a real cluster: `quiver serve online-store` processes on 127.0.0.1 with
//! their own directories, a real registry, and real faults (kill -9, SIGSTOP, restarts).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_common::leader_hint::with_leader;
use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{
    AddLearnerRequest, CompactRequest, FeatureRow, InitializeRequest, Member, PromoteRequest, RemoveRequest,
    StatusRequest, StatusResponse, WriteRequest, WriteResponse,
};
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::{ApplyRequest, DefinitionDocument};
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use quiver_proto::serving::{get_features_request, Consistency, FeatureList, GetFeaturesRequest};
use quiver_proto::types::{value::Kind, EntityColumn, EntityKey, FieldStatus, RepeatedValue, Value};
use quiver_tests::{free_address, wait_for_serving, QuiverProcess};
use tonic::transport::Channel;
use tonic::Status;

const BIN: &str = env!("CARGO_BIN_EXE_quiver");

const DEFS: &str = r#"
project: shop
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: events
    entity: user
    timestamp_field: ts
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: int64}
feature_views:
  - name: stats
    entity: user
    source: events
    features:
      - {name: last_amount, column: amount, aggregation: last}
"#;

fn int(v: i64) -> Value {
    Value { kind: Some(Kind::Int64Value(v)) }
}

async fn channel(address: &str) -> Result<Channel, Status> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Status::internal(e.to_string()))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))
}

struct NodeProcess {
    process: Option<QuiverProcess>,
    grpc: SocketAddr,
    data: PathBuf,
}

struct Cluster {
    dir: tempfile::TempDir,
    _registry: QuiverProcess,
    registry: SocketAddr,
    nodes: BTreeMap<u64, NodeProcess>,
    starts: usize,
}

impl Cluster {
    /// A registry with the test definitions and `voters` initialised nodes (ids 1..=voters).
    async fn start(voters: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http) = (free_address(), free_address());
        let registry_process = QuiverProcess::spawn(
            Path::new(BIN),
            &["serve", "registry"],
            &[
                ("QUIVER__GRPC__LISTEN", grpc.to_string()),
                ("QUIVER__HTTP__LISTEN", http.to_string()),
                ("QUIVER__REGISTRY__DATA_DIR", dir.path().join("registry").display().to_string()),
            ],
            dir.path().join("registry.log"),
        )
        .unwrap();
        wait_for_serving(grpc, "", Duration::from_secs(30)).await.unwrap();
        RegistryServiceClient::new(channel(&grpc.to_string()).await.unwrap())
            .apply(ApplyRequest {
                documents: vec![DefinitionDocument {
                    name: "defs.yaml".into(),
                    yaml: DEFS.into(),
                }],
                dry_run: false,
                expected_revision: None,
            })
            .await
            .unwrap();
        let mut cluster = Self {
            dir,
            _registry: registry_process,
            registry: grpc,
            nodes: BTreeMap::new(),
            starts: 0,
        };
        for id in 1..=voters {
            cluster.add_process(id).await;
        }
        let members: Vec<Member> = cluster
            .nodes
            .iter()
            .map(|(id, n)| Member {
                node_id: *id,
                address: n.grpc.to_string(),
            })
            .collect();
        cluster
            .admin(1)
            .await
            .initialize(InitializeRequest { members })
            .await
            .unwrap();
        cluster.wait_for_leader(Duration::from_secs(30)).await;
        cluster
    }

    /// Starts a new node process with id `id` (not yet a member).
    async fn add_process(&mut self, id: u64) {
        let grpc = free_address();
        let data = self.dir.path().join(format!("node-{id}"));
        self.nodes.insert(id, NodeProcess { process: None, grpc, data });
        self.restart(id).await;
    }

    /// (Re)starts node `id` on its address and directory.
    async fn restart(&mut self, id: u64) {
        self.starts += 1;
        let log = self.dir.path().join(format!("node-{id}.{}.log", self.starts));
        let node = self.nodes.get_mut(&id).unwrap();
        let process = QuiverProcess::spawn(
            Path::new(BIN),
            &["serve", "online-store"],
            &[
                ("QUIVER__GRPC__LISTEN", node.grpc.to_string()),
                ("QUIVER__HTTP__LISTEN", free_address().to_string()),
                ("QUIVER__ENDPOINTS__REGISTRY", self.registry.to_string()),
                ("QUIVER__ONLINE_STORE__NODE_ID", id.to_string()),
                ("QUIVER__ONLINE_STORE__ADVERTISE", node.grpc.to_string()),
                ("QUIVER__ONLINE_STORE__DATA_DIR", node.data.display().to_string()),
                ("QUIVER__ONLINE_STORE__HEARTBEAT_INTERVAL", "100ms".into()),
                ("QUIVER__ONLINE_STORE__ELECTION_TIMEOUT_MIN", "700ms".into()),
                ("QUIVER__ONLINE_STORE__ELECTION_TIMEOUT_MAX", "1400ms".into()),
                ("QUIVER__ONLINE_STORE__SNAPSHOT_AFTER_ENTRIES", "100000".into()),
            ],
            log,
        )
        .unwrap();
        if let Err(e) = wait_for_serving(node.grpc, "", Duration::from_secs(30)).await {
            panic!("node {id}: {e}\n{}", process.output());
        }
        node.process = Some(process);
    }

    fn process(&self, id: u64) -> &QuiverProcess {
        self.nodes[&id].process.as_ref().unwrap()
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut process) = self.nodes.get_mut(&id).unwrap().process.take() {
            process.kill();
        }
    }

    fn address(&self, id: u64) -> String {
        self.nodes[&id].grpc.to_string()
    }

    fn live(&self) -> Vec<u64> {
        self.nodes.iter().filter(|(_, n)| n.process.is_some()).map(|(id, _)| *id).collect()
    }

    async fn admin(&self, id: u64) -> ClusterAdminServiceClient<Channel> {
        ClusterAdminServiceClient::new(channel(&self.address(id)).await.unwrap())
    }

    async fn status(&self, id: u64) -> Result<StatusResponse, Status> {
        let mut client = ClusterAdminServiceClient::new(channel(&self.address(id)).await?);
        Ok(client.status(StatusRequest {}).await?.into_inner())
    }

    /// The leader every live node agrees on.
    async fn wait_for_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for id in self.live() {
                if let Ok(status) = self.status(id).await {
                    leaders.push((status.leader_id, status.state == "Leader" && status.node_id == id));
                }
            }
            let agreed = leaders.first().map(|l| l.0).filter(|l| *l != 0 && leaders.iter().all(|x| x.0 == *l));
            if let Some(leader) = agreed {
                if leaders.iter().any(|x| x.1) {
                    return leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader within {timeout:?}: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes through any live node, following leader hints; retries keep the sequence.
    async fn write(&self, producer: &str, sequence: u64, users: &[i64]) -> Result<WriteResponse, Status> {
        let request = WriteRequest {
            producer_id: producer.into(),
            sequence,
            rows: users
                .iter()
                .map(|u| FeatureRow {
                    project: String::new(),
                    view: "stats".into(),
                    view_version: 0,
                    entity: Some(EntityKey {
                        join_keys: vec![],
                        values: vec![int(*u)],
                    }),
                    event_time: Some(prost_types::Timestamp { seconds: 1_700_000_000 + *u, nanos: 0 }),
                    values: vec![int(*u * 10)],
                })
                .collect(),
        };
        let start = self.address(*self.live().first().unwrap());
        with_leader(&start, 30, |target| {
            let request = request.clone();
            async move {
                let mut client = OnlineStoreServiceClient::new(channel(&target).await?);
                client.write(request).await.map(|r| r.into_inner())
            }
        })
        .await
    }

    async fn read(&self, id: u64, users: &[i64], consistency: Consistency) -> Result<Vec<(FieldStatus, Option<i64>)>, Status> {
        let mut client = ServingServiceClient::new(channel(&self.address(id)).await?);
        let mut out = Vec::new();
        for chunk in users.chunks(500) {
            let response = client
                .get_features(GetFeaturesRequest {
                    project: String::new(),
                    features: Some(get_features_request::Features::FeatureList(FeatureList {
                        refs: vec!["stats:last_amount".into()],
                    })),
                    entities: vec![EntityColumn {
                        name: "user_id".into(),
                        values: Some(RepeatedValue {
                            values: chunk.iter().map(|u| int(*u)).collect(),
                        }),
                    }],
                    as_of: None,
                    consistency: consistency as i32,
                    full_feature_names: false,
                })
                .await?
                .into_inner();
            let column = &response.results[1];
            for (value, status) in column.values.iter().zip(&column.statuses) {
                let value = match value.kind {
                    Some(Kind::Int64Value(v)) => Some(v),
                    _ => None,
                };
                out.push((FieldStatus::try_from(*status).unwrap(), value));
            }
        }
        Ok(out)
    }

    /// Waits until node `id` serves every user in `users` with its written value.
    async fn assert_has_all(&self, id: u64, users: &[i64]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let missing: Vec<i64> = match self.read(id, users, Consistency::Eventual).await {
                Ok(cells) => users
                    .iter()
                    .zip(cells)
                    .filter(|(u, cell)| *cell != (FieldStatus::Present, Some(**u * 10)))
                    .map(|(u, _)| *u)
                    .collect(),
                Err(_) => users.to_vec(),
            };
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} is missing {} acknowledged rows (first {:?})",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The 20 users of batch `sequence`.
fn batch(sequence: u64) -> Vec<i64> {
    (0..20).map(|k| (sequence * 20 + k) as i64).collect()
}

/// Writes batches of 20 fresh users in a loop until stopped; returns the acknowledged users.
fn spawn_writer(cluster: Arc<tokio::sync::RwLock<Cluster>>, stop: Arc<AtomicBool>, first_sequence: u64) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let mut sequence = first_sequence;
        while !stop.load(Ordering::Relaxed) {
            let users = batch(sequence);
            // Retry the same batch (same sequence) until it is acknowledged.
            loop {
                let result = cluster.read().await.write("writer", sequence, &users).await;
                match result {
                    Ok(_) => break,
                    Err(_) if !stop.load(Ordering::Relaxed) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(_) => return acked.lock().unwrap().clone(),
                }
            }
            acked.lock().unwrap().extend(users);
            sequence += 1;
        }
        let acked = acked.lock().unwrap().clone();
        acked
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_write_load_loses_nothing_acknowledged() {
    let cluster = Arc::new(tokio::sync::RwLock::new(Cluster::start(3).await));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(cluster.clone(), stop.clone(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let old_leader = cluster.read().await.wait_for_leader(Duration::from_secs(10)).await;
    cluster.write().await.kill(old_leader);
    let new_leader = cluster.read().await.wait_for_leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, old_leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(acked.len() >= 100, "the writer made too little progress: {}", acked.len());

    let cluster = cluster.read().await;
    for id in cluster.live() {
        cluster.assert_has_all(id, &acked).await;
    }
    // A batch retried after its acknowledgement is recognised and not applied again.
    let again = cluster.write("writer", 1, &[20, 21]).await.unwrap();
    assert!(again.duplicate && again.applied == 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_catches_up_by_log_and_by_snapshot() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = cluster.live().into_iter().find(|id| *id != leader).unwrap();
    let mut acked = Vec::new();

    // By log: down while a few batches commit, then restarted.
    cluster.kill(follower);
    for seq in 1..=10 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    cluster.restart(follower).await;
    cluster.assert_has_all(follower, &acked).await;

    // By snapshot: down while the leader compacts its log past what the follower has.
    cluster.kill(follower);
    for seq in 11..=40 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let compacted = cluster.admin(leader).await.compact(CompactRequest {}).await.unwrap().into_inner();
    assert!(compacted.snapshot_index > 0);
    let leader_status = cluster.status(leader).await.unwrap();
    assert!(leader_status.purged_index >= compacted.snapshot_index, "{leader_status:?}");
    cluster.restart(follower).await;
    cluster.assert_has_all(follower, &acked).await;
    let follower_status = cluster.status(follower).await.unwrap();
    assert!(
        follower_status.snapshot_index >= compacted.snapshot_index,
        "the follower should have installed the leader's snapshot: {follower_status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_serves_reads_is_promoted_and_an_old_voter_leaves() {
    let mut cluster = Cluster::start(3).await;
    let mut acked = Vec::new();
    for seq in 1..=5u64 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    cluster.add_process(4).await;
    let learner = Member {
        node_id: 4,
        address: cluster.address(4),
    };
    let leader_address = cluster.address(cluster.wait_for_leader(Duration::from_secs(10)).await);
    let added = with_leader(&leader_address, 20, |target| {
        let learner = learner.clone();
        async move {
            let mut client = ClusterAdminServiceClient::new(channel(&target).await?);
            client
                .add_learner(AddLearnerRequest {
                    member: Some(learner),
                    wait_caught_up: true,
                })
                .await
                .map(|r| r.into_inner())
        }
    })
    .await
    .unwrap();
    assert!(added.learners.iter().any(|m| m.node_id == 4));
    cluster.assert_has_all(4, &acked).await;
    assert_eq!(cluster.status(4).await.unwrap().state, "Learner");

    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let promoted = cluster.admin(leader).await.promote(PromoteRequest { node_id: 4 }).await.unwrap().into_inner();
    assert!(promoted.voters.iter().any(|m| m.node_id == 4));
    let old_voter = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let removed = cluster.admin(leader).await.remove(RemoveRequest { node_id: old_voter }).await.unwrap().into_inner();
    let voters: Vec<u64> = removed.voters.iter().map(|m| m.node_id).collect();
    assert!(!voters.contains(&old_voter) && voters.contains(&4), "{voters:?}");
    cluster.kill(old_voter);

    // The cluster still commits, and a removed id can never come back.
    cluster.write("w", 6, &[1_000_001]).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let reused = cluster
        .admin(leader)
        .await
        .add_learner(AddLearnerRequest {
            member: Some(Member {
                node_id: old_voter,
                address: "127.0.0.1:1".into(),
            }),
            wait_caught_up: false,
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), tonic::Code::FailedPrecondition, "{reused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_minority_cannot_commit_or_serve_strong_reads() {
    let cluster = Cluster::start(3).await;
    cluster.write("w", 1, &[1, 2, 3]).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    // Freeze the two followers: the leader is alone.
    let followers: Vec<u64> = cluster.live().into_iter().filter(|id| *id != leader).collect();
    for id in &followers {
        cluster.process(*id).pause().unwrap();
    }
    let mut writer = OnlineStoreServiceClient::new(channel(&cluster.address(leader)).await.unwrap());
    let mut request = tonic::Request::new(WriteRequest {
        producer_id: "w".into(),
        sequence: 2,
        rows: vec![FeatureRow {
            project: String::new(),
            view: "stats".into(),
            view_version: 0,
            entity: Some(EntityKey {
                join_keys: vec![],
                values: vec![int(9)],
            }),
            event_time: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
            values: vec![int(90)],
        }],
    });
    request.set_timeout(Duration::from_secs(4));
    assert!(writer.write(request).await.is_err(), "a minority must not commit");
    let strong = cluster.read(leader, &[1], Consistency::Strong).await;
    assert!(strong.is_err(), "a STRONG read without a quorum must fail, got {strong:?}");

    for id in &followers {
        cluster.process(*id).resume().unwrap();
    }
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster.write("w", 3, &[4]).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let cells = cluster.read(leader, &[1, 2, 3, 4], Consistency::Strong).await.unwrap();
    assert!(cells.iter().all(|c| c.0 == FieldStatus::Present), "{cells:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(3).await;
    let mut acked = Vec::new();
    for seq in 1..=10u64 {
        let users: Vec<i64> = (0..50).map(|k| (seq * 50 + k) as i64).collect();
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    for id in cluster.live() {
        cluster.kill(id);
    }
    for id in [1, 2, 3] {
        cluster.restart(id).await;
    }
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    for id in [1, 2, 3] {
        cluster.assert_has_all(id, &acked).await;
    }
}
