//! Trust boundaries through real processes (docs/security.md): a registry, three online-store
//! nodes (Raft on their peer ports), compute, ingest and the snapshot service, every one with
//! auth on. Every client RPC family is called with no token, a token of too weak a role, a
//! token for another project and the right token; cluster-internal RPCs and the peer port
//! refuse every client token; the internal path (ingest -> compute -> online store -> Raft)
//! works under auth; a revoked token is refused by every node within seconds. And `quiver dev
//! --secure` hands out an admin token that the CLI uses.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail loudly

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
use futures::TryStreamExt;
use quiver_common::tls::DevPki;
use quiver_proto::auth::token_service_client::TokenServiceClient;
use quiver_proto::auth::{
    CreateTokenRequest, ListTokensRequest, RevokeTokenRequest, TokenDigestsRequest,
};
use quiver_proto::compute::compute_service_client::ComputeServiceClient;
use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{
    EventBatch, FeatureRow, InitializeRequest, Member, StatusRequest, ViewStatesRequest,
    WriteEventsRequest, WriteRequest,
};
use quiver_proto::raft::raft_service_client::RaftServiceClient;
use quiver_proto::raft::RaftPayload;
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::{
    ApplyRequest, DefinitionDocument, ListRequest, ObjectKind, RecordConsumerRequest,
};
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use quiver_proto::serving::{get_features_request, Consistency, FeatureList, GetFeaturesRequest};
use quiver_proto::types::value::Kind;
use quiver_proto::types::{EntityColumn, EntityKey, FieldStatus, RepeatedValue, Value};
use quiver_tests::cluster::{channel, int, DEFS, PEER_SERVICE};
use quiver_tests::offline_stack::entity_table;
use quiver_tests::{free_address, free_port_block, QuiverProcess, ServingStatus};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const BIN: &str = env!("CARGO_BIN_EXE_quiver");

/// Adds `authorization: Bearer <token>` when there is a token.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// A TLS channel to `address` trusting the test's CA (and presenting a certificate when `tls`
/// carries one).
async fn tls_channel(tls: &ClientTlsConfig, address: &str) -> Result<Channel, Status> {
    Endpoint::from_shared(format!("https://{address}"))
        .map_err(|e| Status::internal(e.to_string()))?
        .tls_config(tls.clone())
        .map_err(|e| Status::internal(e.to_string()))?
        .connect_timeout(Duration::from_millis(1_000))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("{e}: {:?}", std::error::Error::source(&e))))
}

async fn authed(
    tls: &ClientTlsConfig,
    address: &str,
    token: Option<&str>,
) -> Result<Authed, Status> {
    let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().unwrap()));
    Ok(InterceptedService::new(
        tls_channel(tls, address).await?,
        bearer,
    ))
}

/// `authed` over TLS, or plaintext without `tls`.
async fn connect(
    tls: Option<&ClientTlsConfig>,
    address: &str,
    token: Option<&str>,
) -> Result<Authed, Status> {
    match tls {
        Some(tls) => authed(tls, address, token).await,
        None => {
            let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().unwrap()));
            Ok(InterceptedService::new(channel(address).await?, bearer))
        }
    }
}

/// What clients of a TLS cluster use: the CA, no certificate of their own.
fn client_tls(ca: &Path) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
}

/// What a Quiver process uses on peer ports: the CA and its certificate.
fn peer_tls(pki: &DevPki) -> ClientTlsConfig {
    client_tls(&pki.ca).identity(Identity::from_pem(
        std::fs::read(&pki.cert).unwrap(),
        std::fs::read(&pki.key).unwrap(),
    ))
}

/// The health of `service` at `address`, over TLS.
async fn health(
    tls: &ClientTlsConfig,
    address: &str,
    service: &str,
) -> Result<ServingStatus, Status> {
    let response = HealthClient::new(tls_channel(tls, address).await?)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?;
    Ok(ServingStatus::try_from(response.get_ref().status).unwrap())
}

/// Waits until `service` at `address` reports SERVING (over TLS).
async fn wait_serving(tls: &ClientTlsConfig, address: &str, service: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match health(tls, address, service).await {
            Ok(ServingStatus::Serving) => return,
            other => assert!(
                Instant::now() < deadline,
                "{address} {service:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The definitions of a second project, to scope tokens against.
fn other_defs() -> String {
    DEFS.replace("project: shop", "project: other")
}

/// The processes of a secured cluster and where they listen.
struct Secured {
    _dir: tempfile::TempDir,
    /// Clients' TLS: the CA only.
    tls: ClientTlsConfig,
    /// The cluster's certificates.
    pki: DevPki,
    _processes: Vec<QuiverProcess>,
    internal: String,
    registry: String,
    ingest: String,
    compute: String,
    offline: String,
    nodes: BTreeMap<u64, (String, String)>,
}

impl Secured {
    /// Starts every role with auth on, bootstraps an admin token with the internal credential,
    /// applies two projects and initialises the three nodes.
    async fn start() -> (Self, String) {
        let dir = tempfile::tempdir().unwrap();
        let internal = quiver_common::auth::token::random_secret().unwrap();
        let pki =
            quiver_common::tls::generate_dev_pki(&dir.path().join("tls"), &["127.0.0.1"]).unwrap();
        let tls = client_tls(&pki.ca);
        let (registry, ingest, compute, offline) = (
            free_address(),
            free_address(),
            free_address(),
            free_address(),
        );
        let nodes: BTreeMap<u64, (SocketAddr, SocketAddr)> = (1..=3)
            .map(|id| (id, (free_address(), free_address())))
            .collect();
        let offline_store = dir.path().join("offline").display().to_string();
        let common = |grpc: SocketAddr| -> Vec<(&'static str, String)> {
            vec![
                ("QUIVER__AUTH__ENABLED", "true".into()),
                ("QUIVER__AUTH__INTERNAL_TOKEN", internal.clone()),
                ("QUIVER__TLS__ENABLED", "true".into()),
                ("QUIVER__TLS__CERT", pki.cert.display().to_string()),
                ("QUIVER__TLS__KEY", pki.key.display().to_string()),
                ("QUIVER__TLS__CA", pki.ca.display().to_string()),
                ("QUIVER__GRPC__LISTEN", grpc.to_string()),
                ("QUIVER__HTTP__LISTEN", free_address().to_string()),
                ("QUIVER__ENDPOINTS__REGISTRY", registry.to_string()),
                ("QUIVER__ENDPOINTS__COMPUTE", compute.to_string()),
                ("QUIVER__ENDPOINTS__ONLINE_STORE", nodes[&1].0.to_string()),
                ("QUIVER__ONLINE_STORE__OFFLINE_STORE", offline_store.clone()),
                ("QUIVER__OFFLINE__STORE", offline_store.clone()),
            ]
        };
        let spawn = |name: &str, role: &str, env: Vec<(&'static str, String)>| {
            QuiverProcess::spawn(
                Path::new(BIN),
                &["serve", role],
                &env,
                dir.path().join(format!("{name}.log")),
            )
            .unwrap()
        };
        let mut processes = Vec::new();
        let mut env = common(registry);
        env.push((
            "QUIVER__REGISTRY__DATA_DIR",
            dir.path().join("registry").display().to_string(),
        ));
        processes.push(spawn("registry", "registry", env));
        wait_serving(&tls, &registry.to_string(), "", Duration::from_secs(30)).await;
        for (id, (grpc, peer)) in &nodes {
            let mut env = common(*grpc);
            env.extend([
                ("QUIVER__ONLINE_STORE__NODE_ID", id.to_string()),
                ("QUIVER__ONLINE_STORE__ADVERTISE", grpc.to_string()),
                ("QUIVER__ONLINE_STORE__PEER_LISTEN", peer.to_string()),
                ("QUIVER__ONLINE_STORE__PEER_ADVERTISE", peer.to_string()),
                (
                    "QUIVER__ONLINE_STORE__DATA_DIR",
                    dir.path().join(format!("node-{id}")).display().to_string(),
                ),
                ("QUIVER__ONLINE_STORE__HEARTBEAT_INTERVAL", "100ms".into()),
                ("QUIVER__ONLINE_STORE__ELECTION_TIMEOUT_MIN", "700ms".into()),
                (
                    "QUIVER__ONLINE_STORE__ELECTION_TIMEOUT_MAX",
                    "1400ms".into(),
                ),
            ]);
            processes.push(spawn(&format!("node-{id}"), "online-store", env));
        }
        for (grpc, _) in nodes.values() {
            wait_serving(
                &tls,
                &grpc.to_string(),
                PEER_SERVICE,
                Duration::from_secs(30),
            )
            .await;
        }

        // Phase: bootstrap. Whoever holds the internal credential (the cluster's Secret) makes
        // the first admin token; everything after uses tokens.
        let admin = create_token(&tls, &registry.to_string(), &internal, "admin", &[]).await;
        for defs in [DEFS.to_string(), other_defs()] {
            RegistryServiceClient::new(
                authed(&tls, &registry.to_string(), Some(&admin))
                    .await
                    .unwrap(),
            )
            .apply(ApplyRequest {
                documents: vec![DefinitionDocument {
                    name: "defs.yaml".into(),
                    yaml: defs,
                }],
                dry_run: false,
                expected_revision: None,
            })
            .await
            .unwrap();
        }
        let members = nodes
            .iter()
            .map(|(id, (grpc, peer))| Member {
                node_id: *id,
                address: grpc.to_string(),
                peer_address: peer.to_string(),
                store_id: String::new(),
            })
            .collect();
        ClusterAdminServiceClient::new(
            authed(&tls, &nodes[&1].0.to_string(), Some(&admin))
                .await
                .unwrap(),
        )
        .initialize(InitializeRequest { members })
        .await
        .unwrap();
        processes.push(spawn("compute", "compute", common(compute)));
        processes.push(spawn("ingest", "ingest", common(ingest)));
        processes.push(spawn("offline", "offline", common(offline)));
        for address in [compute, ingest, offline] {
            wait_serving(&tls, &address.to_string(), "", Duration::from_secs(30)).await;
        }
        let secured = Self {
            _dir: dir,
            tls,
            pki,
            _processes: processes,
            internal,
            registry: registry.to_string(),
            ingest: ingest.to_string(),
            compute: compute.to_string(),
            offline: offline.to_string(),
            nodes: nodes
                .into_iter()
                .map(|(id, (grpc, peer))| (id, (grpc.to_string(), peer.to_string())))
                .collect(),
        };
        secured.wait_until_serving(&admin).await;
        (secured, admin)
    }

    fn node(&self, id: u64) -> &str {
        &self.nodes[&id].0
    }

    fn peer(&self, id: u64) -> &str {
        &self.nodes[&id].1
    }

    /// Waits until every node is ready and the leader has registered both projects' views.
    async fn wait_until_serving(&self, admin: &str) {
        for (grpc, _) in self.nodes.values() {
            wait_serving(&self.tls, grpc, "", Duration::from_secs(60)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut known = 0;
            for id in self.nodes.keys() {
                let states = OnlineStoreServiceClient::new(
                    authed(&self.tls, self.node(*id), Some(admin))
                        .await
                        .unwrap(),
                )
                .view_states(ViewStatesRequest::default())
                .await;
                known = known.max(states.map(|s| s.into_inner().versions.len()).unwrap_or(0));
            }
            if known >= 2 {
                return;
            }
            assert!(Instant::now() < deadline, "views not registered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn create_token(
    tls: &ClientTlsConfig,
    registry: &str,
    with: &str,
    role: &str,
    projects: &[&str],
) -> String {
    TokenServiceClient::new(authed(tls, registry, Some(with)).await.unwrap())
        .create(CreateTokenRequest {
            role: role.into(),
            projects: projects.iter().map(|p| p.to_string()).collect(),
            ttl_seconds: 3_600,
            description: format!("{role} test token"),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// The client RPC families, each called on project `shop`.
#[derive(Debug, Clone, Copy)]
enum Family {
    RegistryList,
    RegistryApply,
    IngestPush,
    ServingGetFeatures,
    OnlineWrite,
    OfflineSnapshot,
    ClusterStatus,
    TokenList,
}

impl Family {
    const ALL: [Family; 8] = [
        Family::RegistryList,
        Family::RegistryApply,
        Family::IngestPush,
        Family::ServingGetFeatures,
        Family::OnlineWrite,
        Family::OfflineSnapshot,
        Family::ClusterStatus,
        Family::TokenList,
    ];

    /// The role it needs and whether it acts on a project.
    fn needs(self) -> (&'static str, bool) {
        match self {
            Family::RegistryList | Family::ServingGetFeatures | Family::OfflineSnapshot => {
                ("reader", true)
            }
            Family::IngestPush | Family::OnlineWrite => ("writer", true),
            Family::RegistryApply => ("editor", true),
            Family::ClusterStatus | Family::TokenList => ("admin", false),
        }
    }

    async fn call(self, s: &Secured, token: Option<&str>) -> Result<(), Status> {
        self.call_via(s, Some(&s.tls), token).await
    }

    /// `call` over TLS (`tls`) or plaintext (`None`).
    async fn call_via(
        self,
        s: &Secured,
        tls: Option<&ClientTlsConfig>,
        token: Option<&str>,
    ) -> Result<(), Status> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ts = Value {
            kind: Some(Kind::TimestampValue(prost_types::Timestamp {
                seconds: now.as_secs() as i64,
                nanos: 0,
            })),
        };
        match self {
            Family::RegistryList => {
                RegistryServiceClient::new(connect(tls, &s.registry, token).await?)
                    .list(ListRequest {
                        project: "shop".into(),
                        kind: ObjectKind::FeatureView as i32,
                        include_deleted: false,
                    })
                    .await
                    .map(drop)
            }
            Family::RegistryApply => {
                RegistryServiceClient::new(connect(tls, &s.registry, token).await?)
                    .apply(ApplyRequest {
                        documents: vec![DefinitionDocument {
                            name: "defs.yaml".into(),
                            yaml: DEFS.into(),
                        }],
                        dry_run: true,
                        expected_revision: None,
                    })
                    .await
                    .map(drop)
            }
            Family::IngestPush => IngestServiceClient::new(connect(tls, &s.ingest, token).await?)
                .push(PushRequest {
                    project: "shop".into(),
                    source: "events".into(),
                    columns: vec!["user_id".into(), "ts".into(), "amount".into()],
                    rows: vec![Row {
                        values: vec![int(1), ts, int(10)],
                    }],
                    ..PushRequest::default()
                })
                .await
                .map(drop),
            Family::ServingGetFeatures => {
                ServingServiceClient::new(connect(tls, s.node(1), token).await?)
                    .get_features(get_features(&[1]))
                    .await
                    .map(drop)
            }
            Family::OnlineWrite => {
                // Writes go to the leader; any node answers the auth question first.
                let leader = leader(s).await;
                OnlineStoreServiceClient::new(connect(tls, s.node(leader), token).await?)
                    .write(WriteRequest {
                        producer_id: String::new(),
                        sequence: 0,
                        rows: vec![FeatureRow {
                            project: "shop".into(),
                            view: "stats".into(),
                            view_version: 0,
                            entity: Some(EntityKey {
                                join_keys: vec![],
                                values: vec![int(2)],
                            }),
                            event_time: Some(prost_types::Timestamp {
                                seconds: now.as_secs() as i64,
                                nanos: 0,
                            }),
                            values: vec![int(20)],
                        }],
                    })
                    .await
                    .map(drop)
            }
            Family::OfflineSnapshot => {
                let mut client = FlightClient::new(match tls {
                    Some(tls) => tls_channel(tls, &s.offline).await?,
                    None => channel(&s.offline).await?,
                });
                if let Some(token) = token {
                    client
                        .add_header("authorization", &format!("Bearer {token}"))
                        .unwrap();
                }
                let command = r#"{"project": "shop", "features": ["stats:last_amount"]}"#;
                let request = FlightDataEncoderBuilder::new()
                    .with_flight_descriptor(Some(FlightDescriptor::new_cmd(
                        command.as_bytes().to_vec(),
                    )))
                    .build(futures::stream::iter([Ok(entity_table(&[(
                        1,
                        now.as_micros() as i64,
                    )]))]));
                let answer = client.do_exchange(request).await.map_err(flight_status)?;
                answer
                    .try_collect::<Vec<_>>()
                    .await
                    .map(drop)
                    .map_err(flight_status)
            }
            Family::ClusterStatus => {
                ClusterAdminServiceClient::new(connect(tls, s.node(1), token).await?)
                    .status(StatusRequest {})
                    .await
                    .map(drop)
            }
            Family::TokenList => TokenServiceClient::new(connect(tls, &s.registry, token).await?)
                .list(ListTokensRequest {})
                .await
                .map(drop),
        }
    }
}

fn flight_status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => Status::internal(other.to_string()),
    }
}

fn get_features(users: &[i64]) -> GetFeaturesRequest {
    GetFeaturesRequest {
        project: "shop".into(),
        features: Some(get_features_request::Features::FeatureList(FeatureList {
            refs: vec!["stats:last_amount".into()],
        })),
        entities: vec![EntityColumn {
            name: "user_id".into(),
            values: Some(RepeatedValue {
                values: users.iter().map(|u| int(*u)).collect(),
            }),
        }],
        as_of: None,
        consistency: Consistency::Eventual as i32,
        full_feature_names: false,
    }
}

async fn leader(s: &Secured) -> u64 {
    let status =
        ClusterAdminServiceClient::new(authed(&s.tls, s.node(1), Some(&s.internal)).await.unwrap())
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
    status.leader_id
}

/// Retries `call` while a fresh token has not reached every process's cache yet.
async fn eventually(family: Family, s: &Secured, token: &str) -> Result<(), Status> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match family.call(s, Some(token)).await {
            Err(e)
                if Instant::now() < deadline
                    && (e.code() == Code::Unavailable || e.message().contains("is not valid")) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

fn expect_code(result: Result<(), Status>, code: Code, contains: &str, what: &str) {
    match result {
        Ok(()) => panic!("{what}: succeeded, expected {code:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: {e:?}");
            assert!(
                e.message().contains(contains),
                "{what}: {:?} does not contain {contains:?}",
                e.message()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_family_answers_by_token_role_and_project_and_revocation_reaches_every_node() {
    let (s, admin) = Secured::start().await;
    let mut tokens: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for role in ["reader", "writer", "editor", "admin"] {
        for project in ["shop", "other"] {
            tokens.insert(
                (role, project),
                create_token(&s.tls, &s.registry, &admin, role, &[project]).await,
            );
        }
    }

    // Phase: the table. Every family x {no token, too weak a role, another project, right}.
    for family in Family::ALL {
        let (role, scoped) = family.needs();
        let what = |case: &str| format!("{family:?} with {case}");
        // A family that acts on the whole cluster (tokens, membership) needs every project.
        let right = if scoped {
            &tokens[&(role, "shop")]
        } else {
            &admin
        };
        eventually(family, &s, right)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("the right token")));
        let plaintext = family.call_via(&s, None, Some(right)).await;
        assert!(
            matches!(&plaintext, Err(e) if matches!(e.code(), Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled)),
            "{}: {plaintext:?}",
            what("the right token without TLS")
        );
        expect_code(
            family.call(&s, None).await,
            Code::Unauthenticated,
            "no credential",
            &what("no token"),
        );
        expect_code(
            family.call(&s, Some("t_00000000.bogus")).await,
            Code::Unauthenticated,
            "is not valid",
            &what("an unknown token"),
        );
        if role != "reader" {
            let reader = &tokens[&("reader", "shop")];
            expect_code(
                family.call(&s, Some(reader)).await,
                Code::PermissionDenied,
                &format!("has role reader; {} needs {role}", method(family)),
                &what("a reader token"),
            );
        }
        if !scoped {
            // An admin of one project cannot mint an admin of every project, list every
            // project's tokens, or change the cluster's membership.
            expect_code(
                family.call(&s, Some(&tokens[&(role, "shop")])).await,
                Code::PermissionDenied,
                &format!(
                    "has role {role} on project \"shop\"; {} needs {role} on every project",
                    method(family)
                ),
                &what("an admin token of one project"),
            );
        }
        if scoped {
            expect_code(
                family.call(&s, Some(&tokens[&(role, "other")])).await,
                Code::PermissionDenied,
                &format!(
                    "on project \"other\"; {} needs {role} on project \"shop\"",
                    method(family)
                ),
                &what("a token for project other"),
            );
        }
        // A stronger role includes the weaker ones.
        family
            .call(&s, Some(&admin))
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("the admin token")));
    }

    // Phase: a token learns nothing of a project it does not cover: not whether it exists,
    // not its sources' columns (validation messages name them).
    let ghost = RegistryServiceClient::new(
        connect(
            Some(&s.tls),
            &s.registry,
            Some(&tokens[&("reader", "other")]),
        )
        .await
        .unwrap(),
    )
    .list(ListRequest {
        project: "ghost".into(),
        kind: ObjectKind::FeatureView as i32,
        include_deleted: false,
    })
    .await
    .unwrap_err();
    assert_eq!(ghost.code(), Code::PermissionDenied, "{ghost:?}");
    let pushed = IngestServiceClient::new(
        connect(Some(&s.tls), &s.ingest, Some(&tokens[&("writer", "other")]))
            .await
            .unwrap(),
    )
    .push(PushRequest {
        project: "shop".into(),
        source: "events".into(),
        columns: vec!["colour".into()],
        ..PushRequest::default()
    })
    .await
    .unwrap_err();
    assert_eq!(pushed.code(), Code::PermissionDenied, "{pushed:?}");
    assert!(!pushed.message().contains("columns"), "{pushed:?}");

    // Phase: cluster-internal RPCs and the peer port take no client token, not even admin.
    let internal_only: Vec<(&str, Result<(), Status>)> = vec![
        (
            "WriteEvents",
            OnlineStoreServiceClient::new(authed(&s.tls, s.node(1), Some(&admin)).await.unwrap())
                .write_events(WriteEventsRequest::default())
                .await
                .map(drop),
        ),
        (
            "compute Process",
            ComputeServiceClient::new(authed(&s.tls, &s.compute, Some(&admin)).await.unwrap())
                .process(EventBatch::default())
                .await
                .map(drop),
        ),
        (
            "RecordConsumer",
            RegistryServiceClient::new(authed(&s.tls, &s.registry, Some(&admin)).await.unwrap())
                .record_consumer(RecordConsumerRequest::default())
                .await
                .map(drop),
        ),
        (
            "token Digests",
            TokenServiceClient::new(authed(&s.tls, &s.registry, Some(&admin)).await.unwrap())
                .digests(TokenDigestsRequest {})
                .await
                .map(drop),
        ),
        (
            "Raft AppendEntries on the peer port",
            RaftServiceClient::new(
                authed(&peer_tls(&s.pki), s.peer(1), Some(&admin))
                    .await
                    .unwrap(),
            )
            .append_entries(RaftPayload {
                data: vec![1, 2, 3],
            })
            .await
            .map(drop),
        ),
        (
            "cluster Status on the peer port",
            ClusterAdminServiceClient::new(
                authed(&peer_tls(&s.pki), s.peer(1), Some(&admin))
                    .await
                    .unwrap(),
            )
            .status(StatusRequest {})
            .await
            .map(drop),
        ),
    ];
    for (what, result) in internal_only {
        expect_code(result, Code::PermissionDenied, "cluster-internal", what);
    }
    expect_code(
        RaftServiceClient::new(authed(&peer_tls(&s.pki), s.peer(2), None).await.unwrap())
            .vote(RaftPayload { data: vec![] })
            .await
            .map(drop),
        Code::Unauthenticated,
        "no credential",
        "Raft Vote on the peer port without a credential",
    );
    // Raft is not served on the client port at all; health stays open for probes.
    let unimplemented =
        RaftServiceClient::new(authed(&s.tls, s.node(1), Some(&s.internal)).await.unwrap())
            .vote(RaftPayload { data: vec![] })
            .await
            .unwrap_err();
    assert_eq!(
        unimplemented.code(),
        Code::Unimplemented,
        "{unimplemented:?}"
    );
    assert_eq!(
        health(&peer_tls(&s.pki), s.peer(1), "quiver.raft.v1.RaftService")
            .await
            .unwrap(),
        ServingStatus::Serving
    );
    // Without a certificate from the cluster's CA no connection to the peer port opens, with
    // any token; with one and the internal credential, it answers.
    for token in [None, Some(admin.as_str()), Some(s.internal.as_str())] {
        let refused = match authed(&s.tls, s.peer(1), token).await {
            Err(e) => e,
            Ok(channel) => ClusterAdminServiceClient::new(channel)
                .status(StatusRequest {})
                .await
                .unwrap_err(),
        };
        assert!(
            matches!(
                refused.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "peer port without a client certificate: {refused:?}"
        );
    }
    ClusterAdminServiceClient::new(
        authed(&peer_tls(&s.pki), s.peer(1), Some(&s.internal))
            .await
            .unwrap(),
    )
    .status(StatusRequest {})
    .await
    .unwrap();

    // Phase: the internal path under auth. A push (writer) goes ingest -> compute -> the
    // leader (WriteEvents) -> Raft over the peer ports; every node serves it to a reader.
    let reader = tokens[&("reader", "shop")].clone();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    IngestServiceClient::new(
        authed(&s.tls, &s.ingest, Some(&tokens[&("writer", "shop")]))
            .await
            .unwrap(),
    )
    .push(PushRequest {
        project: "shop".into(),
        source: "events".into(),
        columns: vec!["user_id".into(), "ts".into(), "amount".into()],
        rows: vec![Row {
            values: vec![
                int(7),
                Value {
                    kind: Some(Kind::TimestampValue(prost_types::Timestamp {
                        seconds: now.as_secs() as i64,
                        nanos: 0,
                    })),
                },
                int(70),
            ],
        }],
        producer_id: "security-test".into(),
        sequence: 1,
        ..PushRequest::default()
    })
    .await
    .unwrap();
    for id in s.nodes.keys() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = ServingServiceClient::new(
                authed(&s.tls, s.node(*id), Some(&reader)).await.unwrap(),
            )
            .get_features(get_features(&[7]))
            .await;
            if let Ok(r) = &response {
                let column = &r.get_ref().results[1];
                if column.statuses[0] == FieldStatus::Present as i32 {
                    assert_eq!(column.values[0], int(70), "node {id}");
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} never served the push: {response:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Phase: revocation. Every node refuses the token within the refresh interval (2s) plus
    // one poll of the registry.
    let id = reader.split_once('.').unwrap().0.to_string();
    TokenServiceClient::new(authed(&s.tls, &s.registry, Some(&admin)).await.unwrap())
        .revoke(RevokeTokenRequest { id: id.clone() })
        .await
        .unwrap();
    let revoked_at = Instant::now();
    // The registry reloads its own table when it revokes: refused at once, no polling.
    expect_code(
        Family::RegistryList.call(&s, Some(&reader)).await,
        Code::Unauthenticated,
        "revoked",
        "registry List with the revoked token, right after revoke returned",
    );
    for node in s.nodes.keys() {
        loop {
            let result = ServingServiceClient::new(
                authed(&s.tls, s.node(*node), Some(&reader)).await.unwrap(),
            )
            .get_features(get_features(&[7]))
            .await;
            match result {
                Err(e) if e.code() == Code::Unauthenticated => {
                    assert!(e.message().contains("revoked"), "{e:?}");
                    break;
                }
                other => {
                    assert!(
                        revoked_at.elapsed() < Duration::from_secs(10),
                        "node {node} still accepts the revoked token: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    println!(
        "revoked token {id} refused by all three nodes after {:?}",
        revoked_at.elapsed()
    );
}

fn method(family: Family) -> &'static str {
    match family {
        Family::RegistryList => "List",
        Family::RegistryApply => "Apply",
        Family::IngestPush => "Push",
        Family::ServingGetFeatures => "GetFeatures",
        Family::OnlineWrite => "Write",
        Family::OfflineSnapshot => "DoExchange",
        Family::ClusterStatus => "Status",
        Family::TokenList => "List",
    }
}

/// `quiver dev --secure`: prints an admin token and writes it to `<data-dir>/admin.token`; the
/// CLI without a token is refused, with `QUIVER_TOKEN` it works, and it manages tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_secure_hands_out_an_admin_token_that_the_cli_uses() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_block(7);
    let data = dir.path().join("quiver-data");
    let dev = QuiverProcess::spawn(
        Path::new(BIN),
        &[
            "dev",
            "--secure",
            "--data-dir",
            data.to_str().unwrap(),
            "--port-base",
            &base.to_string(),
            "--demo-rate",
            "0",
        ],
        &[],
        dir.path().join("dev.log"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dev.output().contains("Ready.") {
        assert!(
            Instant::now() < deadline,
            "dev never ready:\n{}",
            dev.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("t_"), "{token}");
    assert!(dev.output().contains(&token), "{}", dev.output());
    let registry = format!("127.0.0.1:{base}");
    let ca = data.join("tls").join("ca.pem");
    assert!(dev
        .output()
        .contains(&format!("QUIVER_CA_CERT={}", ca.display())));
    let cli = |args: &[&str], token: Option<&str>| {
        let mut command = Command::new(BIN);
        command.args(args).args(["--registry", &registry]);
        command
            .env_remove("QUIVER_TOKEN")
            .env("QUIVER_CA_CERT", &ca);
        if let Some(token) = token {
            command.env("QUIVER_TOKEN", token);
        }
        command.output().unwrap()
    };

    // Without the CA the CLI speaks plaintext to a TLS port: nothing is answered.
    let plaintext = Command::new(BIN)
        .args(["list", "views", "--registry", &registry, "--token", &token])
        .env_remove("QUIVER_CA_CERT")
        .output()
        .unwrap();
    assert!(!plaintext.status.success());
    assert!(
        !String::from_utf8_lossy(&plaintext.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&plaintext.stderr)
    );

    let refused = cli(&["list", "views"], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");

    let online = format!("127.0.0.1:{}", base + 3);
    let status = cli(&["cluster", "status", "--online", &online], Some(&token));
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("Leader"), "{shown}");
    // The store id the operations guide tells operators to read here.
    let store = shown
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("store:"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(!store.trim_start().starts_with('-'), "{shown}");

    let created = cli(
        &[
            "token",
            "create",
            "--role",
            "reader",
            "--project",
            "demo",
            "--ttl",
            "30d",
        ],
        Some(&token),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let reader = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let reader_id = reader.split_once('.').unwrap().0.to_string();
    let listed = cli(&["token", "list"], Some(&token));
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains(&reader_id) && table.contains("demo"),
        "{table}"
    );
    // A reader may not make tokens.
    let denied = cli(&["token", "list"], Some(&reader));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success());
    assert!(
        stderr.contains("PermissionDenied") || stderr.contains("Unauthenticated"),
        "{stderr}"
    );
    let revoked = cli(&["token", "revoke", &reader_id], Some(&token));
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let listed = cli(&["token", "list", "--output", "json"], Some(&token));
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let entry = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == reader_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["revoked"], true);
    assert_eq!(entry["status"], "revoked");
    // Lifetimes: under a second would read as "no expiry", beyond 100 years is a mistake (and
    // once overflowed the server's clock arithmetic); an expired token is listed as expired.
    for (ttl, says) in [
        ("0s", "at least 1s"),
        ("500ms", "at least 1s"),
        ("300000000000d", "longer than 100 years"),
    ] {
        let refused = cli(
            &["token", "create", "--role", "reader", "--ttl", ttl],
            Some(&token),
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(says),
            "{ttl}: {stderr}"
        );
    }
    // The server bounds it too, for a client that does not (u64::MAX once overflowed its
    // clock arithmetic: a panic in the handler).
    let refused = TokenServiceClient::new(
        authed(&client_tls(&ca), &registry, Some(&token))
            .await
            .unwrap(),
    )
    .create(CreateTokenRequest {
        role: "reader".into(),
        ttl_seconds: u64::MAX,
        ..CreateTokenRequest::default()
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("ttl_seconds"), "{refused:?}");
    let short = cli(
        &["token", "create", "--role", "reader", "--ttl", "1s"],
        Some(&token),
    );
    assert!(
        short.status.success(),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let short_id = String::from_utf8_lossy(&short.stdout)
        .trim()
        .split_once('.')
        .unwrap()
        .0
        .to_string();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let listed = cli(&["token", "list"], Some(&token));
    let table = String::from_utf8_lossy(&listed.stdout);
    let line = table.lines().find(|l| l.starts_with(&short_id)).unwrap();
    assert!(line.ends_with("expired"), "{table}");

    // The peer port answers health to anyone, and nothing else without the internal token.
    // The peer port answers only clients with a certificate from the dev CA (mutual TLS).
    let peer: SocketAddr = format!("127.0.0.1:{}", base + 6).parse().unwrap();
    let tls = client_tls(&ca);
    assert!(health(&tls, &peer.to_string(), "").await.is_err());
    let pki = quiver_common::tls::generate_dev_pki(&data.join("tls"), &[]).unwrap();
    let tls = peer_tls(&pki);
    assert_eq!(
        health(&tls, &peer.to_string(), "quiver.raft.v1.RaftService")
            .await
            .unwrap(),
        ServingStatus::Serving
    );
    let refused =
        RaftServiceClient::new(authed(&tls, &peer.to_string(), Some(&token)).await.unwrap())
            .vote(RaftPayload { data: vec![] })
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
}
