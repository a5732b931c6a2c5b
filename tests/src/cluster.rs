//! A real online-store cluster for tests: a registry process with the given definitions and
//! `quiver serve online-store` processes on loopback, each with its own directory, plus
//! helpers to write rows (following leader hints), read them back, and inject faults.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failed step should fail loudly

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quiver_common::leader_hint::with_leader;
use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{
    CompactRequest, CompactResponse, FeatureRow, InitializeRequest, Member, StatusRequest,
    StatusResponse, ViewStatesRequest, WriteRequest, WriteResponse,
};
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::{ApplyRequest, DefinitionDocument, ListRequest, ObjectKind};
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use quiver_proto::serving::{get_features_request, Consistency, FeatureList, GetFeaturesRequest};
use quiver_proto::types::{
    value::Kind, EntityColumn, EntityKey, FieldStatus, RepeatedValue, Value,
};
use tonic::transport::Channel;
use tonic::Status;

use crate::netns::Network;
use crate::{free_address, free_address_on, wait_for_serving, QuiverProcess};

/// A service every online-store node serves from the start, ready or not.
pub const PEER_SERVICE: &str = "quiver.online.v1.ClusterAdminService";

/// Definitions with one int64 feature per user (`stats:last_amount`), used by the helpers.
pub const DEFS: &str = r#"
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

/// The peer (Raft) port of a node in a network namespace of its own (`Network::delay_port`
/// delays the replication between such nodes).
pub const NAMESPACED_PEER_PORT: u16 = 7006;

/// An int64 value.
pub fn int(v: i64) -> Value {
    Value {
        kind: Some(Kind::Int64Value(v)),
    }
}

/// A channel to `address` with short timeouts.
pub async fn channel(address: &str) -> Result<Channel, Status> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Status::internal(e.to_string()))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))
}

/// Reads `stats:last_amount` of `users` from the node at `address`.
pub async fn read_last_amount(
    address: &str,
    users: &[i64],
    consistency: Consistency,
) -> Result<Vec<(FieldStatus, Option<i64>)>, Status> {
    let mut client = ServingServiceClient::new(channel(address).await?);
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

/// A row of `stats:last_amount` for `user`: `value` at `at_micros`.
pub fn stats_row(user: i64, at_micros: i64, value: i64) -> FeatureRow {
    FeatureRow {
        project: String::new(),
        view: "stats".into(),
        view_version: 0,
        entity: Some(EntityKey {
            join_keys: vec![],
            values: vec![int(user)],
        }),
        event_time: Some(prost_types::Timestamp {
            seconds: at_micros.div_euclid(1_000_000),
            nanos: (at_micros.rem_euclid(1_000_000) * 1000) as i32,
        }),
        values: vec![int(value)],
    }
}

/// One node's process, address and directory.
struct NodeProcess {
    process: Option<QuiverProcess>,
    grpc: SocketAddr,
    peer: SocketAddr,
    http: SocketAddr,
    data: PathBuf,
}

/// Compute and ingest processes started by [`Cluster::spawn_streaming`], killed when dropped.
pub struct Streaming {
    /// Compute's address.
    pub compute: SocketAddr,
    /// Ingest's address.
    pub ingest: SocketAddr,
    _processes: Vec<QuiverProcess>,
}

/// A registry and a set of online-store nodes.
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    _registry: QuiverProcess,
    /// The registry's address.
    pub registry: SocketAddr,
    nodes: BTreeMap<u64, NodeProcess>,
    starts: usize,
    /// Extra environment (config) of every node.
    node_env: Vec<(String, String)>,
    /// Where nodes run when they have namespaces of their own (dropped last, after the
    /// processes in it).
    network: Option<Network>,
    /// Small filesystems mounted over node directories, unmounted on drop.
    mounts: Vec<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            node.process.take();
        }
        for mount in &self.mounts {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(mount)
                .status();
        }
    }
}

impl Cluster {
    /// A registry with the test definitions and `voters` initialised nodes (ids 1..=voters).
    pub async fn start(bin: &Path, defs: &str, voters: u64) -> Self {
        Self::start_with(bin, defs, voters, |_| Vec::new()).await
    }

    /// As [`Cluster::start`], every node with the extra environment `env(dir)` returns (`dir`:
    /// the cluster's temporary directory, e.g. for a shared offline store).
    pub async fn start_with(
        bin: &Path,
        defs: &str,
        voters: u64,
        env: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Self {
        Self::start_on(None, bin, defs, voters, env).await
    }

    /// As [`Cluster::start`], every node in a network namespace of its own on `network`
    /// (node `id` is host `id`), so [`Cluster::network`] can cut real links between them. The
    /// registry and the processes [`Cluster::spawn_role`] starts run in the test's namespace,
    /// on the bridge.
    pub async fn start_in_namespaces(
        network: Network,
        bin: &Path,
        defs: &str,
        voters: u64,
        env: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Self {
        Self::start_on(Some(network), bin, defs, voters, env).await
    }

    async fn start_on(
        network: Option<Network>,
        bin: &Path,
        defs: &str,
        voters: u64,
        env: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node_env = env(dir.path());
        let local = network
            .as_ref()
            .map_or(std::net::Ipv4Addr::LOCALHOST, Network::gateway);
        let (grpc, http) = (free_address_on(local), free_address_on(local));
        let registry_process = QuiverProcess::spawn(
            bin,
            &["serve", "registry"],
            &[
                ("QUIVER__GRPC__LISTEN", grpc.to_string()),
                ("QUIVER__HTTP__LISTEN", http.to_string()),
                (
                    "QUIVER__REGISTRY__DATA_DIR",
                    dir.path().join("registry").display().to_string(),
                ),
            ],
            dir.path().join("registry.log"),
        )
        .unwrap();
        wait_for_serving(grpc, "", Duration::from_secs(30))
            .await
            .unwrap();
        RegistryServiceClient::new(channel(&grpc.to_string()).await.unwrap())
            .apply(ApplyRequest {
                documents: vec![DefinitionDocument {
                    name: "defs.yaml".into(),
                    yaml: defs.into(),
                }],
                dry_run: false,
                expected_revision: None,
            })
            .await
            .unwrap();
        let mut cluster = Self {
            bin: bin.to_path_buf(),
            dir,
            _registry: registry_process,
            registry: grpc,
            nodes: BTreeMap::new(),
            starts: 0,
            node_env,
            network,
            mounts: Vec::new(),
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
                peer_address: n.peer.to_string(),
                store_id: String::new(),
            })
            .collect();
        cluster
            .admin(1)
            .await
            .initialize(InitializeRequest { members })
            .await
            .unwrap();
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
        cluster.wait_for_views(leader).await;
        cluster
    }

    /// Waits until the online store knows every feature view in the registry (its leader
    /// registers them shortly after they are applied). Events pushed before that race the
    /// registration, and a view registered after its source's first events backfills them
    /// before it serves, which a test reading at once would see as `UNAVAILABLE`.
    pub async fn wait_for_views(&self, leader: u64) {
        let listed = RegistryServiceClient::new(channel(&self.registry.to_string()).await.unwrap())
            .list(ListRequest {
                project: String::new(),
                kind: ObjectKind::FeatureView as i32,
                include_deleted: false,
            })
            .await;
        // Several projects (or none): nothing to wait for here.
        let Ok(listed) = listed else { return };
        let want = listed.into_inner().objects.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let known =
                OnlineStoreServiceClient::new(channel(&self.address(leader)).await.unwrap())
                    .view_states(ViewStatesRequest::default())
                    .await
                    .map(|r| r.into_inner().versions.len())
                    .unwrap_or(0);
            if known >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the online store registered {known} of {want} views"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a new node process with id `id` (not yet a member).
    pub async fn add_process(&mut self, id: u64) {
        self.add_process_on(id, None).await;
    }

    /// As [`Cluster::add_process`], on these client and peer addresses (loopback clusters).
    pub async fn add_process_at(&mut self, id: u64, grpc: SocketAddr, peer: SocketAddr) {
        self.add_process_on(id, Some((grpc, peer))).await;
    }

    async fn add_process_on(&mut self, id: u64, at: Option<(SocketAddr, SocketAddr)>) {
        let data = self.dir.path().join(format!("node-{id}"));
        let (grpc, peer, http) = match self.network.as_mut() {
            // Its own namespace: its own ports.
            Some(network) => {
                let ip = network.add_host(id).unwrap();
                (
                    SocketAddr::from((ip, 7000)),
                    SocketAddr::from((ip, NAMESPACED_PEER_PORT)),
                    SocketAddr::from((ip, 7080)),
                )
            }
            None => {
                let (grpc, peer) = at.unwrap_or_else(|| (free_address(), free_address()));
                (grpc, peer, free_address())
            }
        };
        self.nodes.insert(
            id,
            NodeProcess {
                process: None,
                grpc,
                peer,
                http,
                data,
            },
        );
        self.restart(id).await;
    }

    /// (Re)starts node `id` on its address and directory.
    pub async fn restart(&mut self, id: u64) {
        self.restart_with(id, &[]).await;
    }

    /// (Re)starts node `id` with extra environment `extra` (on top of every node's).
    pub async fn restart_with(&mut self, id: u64, extra: &[(&str, String)]) {
        self.starts += 1;
        let log = self
            .dir
            .path()
            .join(format!("node-{id}.{}.log", self.starts));
        let node = self.nodes.get_mut(&id).unwrap();
        let namespace = self.network.as_ref().map(|n| n.namespace(id));
        let process = QuiverProcess::spawn_in(
            namespace,
            Path::new(&self.bin),
            &["serve", "online-store"],
            &[
                ("QUIVER__GRPC__LISTEN", node.grpc.to_string()),
                ("QUIVER__HTTP__LISTEN", node.http.to_string()),
                ("QUIVER__ENDPOINTS__REGISTRY", self.registry.to_string()),
                ("QUIVER__ONLINE_STORE__NODE_ID", id.to_string()),
                ("QUIVER__ONLINE_STORE__ADVERTISE", node.grpc.to_string()),
                ("QUIVER__ONLINE_STORE__PEER_LISTEN", node.peer.to_string()),
                (
                    "QUIVER__ONLINE_STORE__PEER_ADVERTISE",
                    node.peer.to_string(),
                ),
                (
                    "QUIVER__ONLINE_STORE__DATA_DIR",
                    node.data.display().to_string(),
                ),
                ("QUIVER__ONLINE_STORE__HEARTBEAT_INTERVAL", "100ms".into()),
                ("QUIVER__ONLINE_STORE__ELECTION_TIMEOUT_MIN", "700ms".into()),
                (
                    "QUIVER__ONLINE_STORE__ELECTION_TIMEOUT_MAX",
                    "1400ms".into(),
                ),
                (
                    "QUIVER__ONLINE_STORE__SNAPSHOT_AFTER_ENTRIES",
                    "100000".into(),
                ),
                // Many nodes start at once in tests: a small ballast each.
                (
                    "QUIVER__ONLINE_STORE__DISK_BALLAST_BYTES",
                    (4u64 << 20).to_string(),
                ),
            ]
            .into_iter()
            .chain(self.node_env.iter().map(|(k, v)| (k.as_str(), v.clone())))
            .chain(extra.iter().cloned())
            .collect::<Vec<_>>(),
            log,
        )
        .unwrap();
        // The process is up once its peer services answer; the node is ready (health "")
        // only once the group has a leader, which a node waiting for `cluster init` has not.
        if let Err(e) = wait_for_serving(node.grpc, PEER_SERVICE, Duration::from_secs(30)).await {
            panic!("node {id}: {e}\n{}", process.output());
        }
        node.process = Some(process);
    }

    /// Starts a stateless streaming role (`compute` or `ingest`) serving on `grpc`, pointed at
    /// this cluster's registry, its nodes (writes follow the leader hint) and `compute`; waits
    /// until it is serving. `name` names its log file; `extra` adds environment (config).
    pub async fn spawn_role(
        &self,
        role: &str,
        grpc: SocketAddr,
        compute: SocketAddr,
        name: &str,
        extra: &[(&str, String)],
    ) -> QuiverProcess {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut env = vec![
            ("QUIVER__GRPC__LISTEN", grpc.to_string()),
            ("QUIVER__HTTP__LISTEN", free_address().to_string()),
            ("QUIVER__ENDPOINTS__REGISTRY", self.registry.to_string()),
            ("QUIVER__ENDPOINTS__ONLINE_STORE", self.addresses()),
            ("QUIVER__ENDPOINTS__COMPUTE", compute.to_string()),
        ];
        env.extend(extra.iter().cloned());
        let process =
            QuiverProcess::spawn(Path::new(&self.bin), &["serve", role], &env, log).unwrap();
        if let Err(e) = wait_for_serving(grpc, "", Duration::from_secs(30)).await {
            panic!("{role}: {e}\n{}", process.output());
        }
        process
    }

    /// Starts compute and ingest (defaults) against this cluster: the streaming path.
    pub async fn spawn_streaming(&self) -> Streaming {
        let (compute, ingest) = (free_address(), free_address());
        let processes = vec![
            self.spawn_role("compute", compute, compute, "compute", &[])
                .await,
            self.spawn_role("ingest", ingest, compute, "ingest", &[])
                .await,
        ];
        Streaming {
            compute,
            ingest,
            _processes: processes,
        }
    }

    /// Waits up to `timeout` for node `id`'s process to exit by itself (a crash).
    pub async fn wait_for_exit(
        &mut self,
        id: u64,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.nodes.get_mut(&id)?.process.as_mut()?.exited() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The cluster's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The nodes' network, for faults (only for a cluster started in namespaces).
    pub fn network(&mut self) -> &mut Network {
        self.network
            .as_mut()
            .expect("a cluster started with Cluster::start_in_namespaces")
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> &Path {
        &self.nodes[&id].data
    }

    /// Moves node `id`'s data onto a filesystem of its own of `bytes` (a tmpfs; needs root)
    /// and restarts it there, so [`Cluster::fill_disk`] can make its disk full.
    pub async fn move_to_small_disk(&mut self, id: u64, bytes: u64) {
        self.kill(id);
        let data = self.nodes[&id].data.clone();
        let aside = data.with_extension("moving");
        std::fs::rename(&data, &aside).unwrap();
        std::fs::create_dir(&data).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "cannot mount a tmpfs on {}",
            data.display()
        );
        self.mounts.push(data.clone());
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", aside.display()))
            .arg(&data)
            .status()
            .unwrap();
        assert!(copied.success(), "cannot copy node {id}'s data");
        std::fs::remove_dir_all(&aside).unwrap();
        self.restart(id).await;
    }

    /// Fills node `id`'s filesystem with a file (`filler` in its data directory) until at
    /// most `leave` bytes are free (0: until writes fail with "no space left", to the last
    /// byte); returns the file, whose removal frees the space again.
    pub fn fill_disk(&self, id: u64, leave: u64) -> PathBuf {
        use std::io::Write;
        let dir = &self.nodes[&id].data;
        let filler = dir.join("filler");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&filler)
            .unwrap();
        let free = || {
            let stat = rustix::fs::statvfs(dir).unwrap();
            stat.f_bavail * stat.f_frsize
        };
        let block = vec![0xa5u8; 1 << 16];
        while leave == 0 || free() > leave {
            let n = if leave == 0 {
                block.len()
            } else {
                block.len().min((free() - leave) as usize).max(1)
            };
            match file.write_all(&block[..n]) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        if leave == 0 {
            // Every last byte too, so even small writes fail.
            let byte = [0u8; 1];
            while file.write_all(&byte).is_ok() {}
        }
        filler
    }

    /// Node `id`'s process.
    pub fn process(&self, id: u64) -> &QuiverProcess {
        self.nodes[&id].process.as_ref().unwrap()
    }

    /// kill -9 node `id`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut process) = self.nodes.get_mut(&id).unwrap().process.take() {
            process.kill();
        }
    }

    /// Node `id`'s Prometheus metrics text.
    pub fn metrics(&self, id: u64) -> String {
        crate::http_get(self.nodes[&id].http, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Node `id`'s gRPC address.
    pub fn address(&self, id: u64) -> String {
        self.nodes[&id].grpc.to_string()
    }

    /// Every node's gRPC address, separated by commas (an `online_store` endpoint).
    pub fn addresses(&self) -> String {
        let all: Vec<String> = self.nodes.values().map(|n| n.grpc.to_string()).collect();
        all.join(",")
    }

    /// Node `id`'s peer address (Raft).
    pub fn peer_address(&self, id: u64) -> String {
        self.nodes[&id].peer.to_string()
    }

    /// The ids of running nodes.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.process.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// An admin client of node `id`.
    pub async fn admin(&self, id: u64) -> ClusterAdminServiceClient<Channel> {
        ClusterAdminServiceClient::new(channel(&self.address(id)).await.unwrap())
    }

    /// Node `id`'s status.
    pub async fn status(&self, id: u64) -> Result<StatusResponse, Status> {
        let mut client = ClusterAdminServiceClient::new(channel(&self.address(id)).await?);
        Ok(client.status(StatusRequest {}).await?.into_inner())
    }

    /// Makes node `id` snapshot its state and purge its log up to the snapshot.
    pub async fn compact(&self, id: u64) -> CompactResponse {
        self.admin(id)
            .await
            .compact(CompactRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// The leader every live node agrees on.
    pub async fn wait_for_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for id in self.live() {
                // Nodes not yet in any membership (a learner about to be added) have no say.
                match self.status(id).await {
                    Ok(status) if status.voters.is_empty() && status.learners.is_empty() => {}
                    Ok(status) => leaders.push((
                        status.leader_id,
                        status.state == "Leader" && status.node_id == id,
                    )),
                    Err(_) => {}
                }
            }
            let agreed = leaders
                .first()
                .map(|l| l.0)
                .filter(|l| *l != 0 && leaders.iter().all(|x| x.0 == *l));
            if let Some(leader) = agreed {
                if leaders.iter().any(|x| x.1) {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes through the live nodes (the next one when one is unavailable), following leader
    /// hints; retries keep the sequence.
    pub async fn write(
        &self,
        producer: &str,
        sequence: u64,
        users: &[i64],
    ) -> Result<WriteResponse, Status> {
        let rows = users
            .iter()
            .map(|u| stats_row(*u, (1_700_000_000 + *u) * 1_000_000, *u * 10))
            .collect();
        self.write_rows(producer, sequence, rows).await
    }

    /// Writes `rows` as batch `sequence` of `producer` through whichever live node leads.
    pub async fn write_rows(
        &self,
        producer: &str,
        sequence: u64,
        rows: Vec<FeatureRow>,
    ) -> Result<WriteResponse, Status> {
        let request = WriteRequest {
            producer_id: producer.into(),
            sequence,
            rows,
        };
        let live: Vec<String> = self.live().iter().map(|id| self.address(*id)).collect();
        with_leader(&live.join(","), 30, |target| {
            let request = request.clone();
            async move {
                let mut client = OnlineStoreServiceClient::new(channel(&target).await?);
                client.write(request).await.map(|r| r.into_inner())
            }
        })
        .await
    }

    /// Reads `stats:last_amount` of `users` from node `id`.
    pub async fn read(
        &self,
        id: u64,
        users: &[i64],
        consistency: Consistency,
    ) -> Result<Vec<(FieldStatus, Option<i64>)>, Status> {
        read_last_amount(&self.address(id), users, consistency).await
    }

    /// Waits until node `id` serves every user in `users` with its written value.
    pub async fn assert_has_all(&self, id: u64, users: &[i64]) {
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
