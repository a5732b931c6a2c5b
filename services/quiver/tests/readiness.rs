//! Readiness through real processes: a role reports NOT_SERVING (gRPC health `""` and its client
//! services) and `/readyz` 503 with the reason until it can answer its clients, and SERVING
//! after; liveness (`/healthz`) is 200 all along, and an online store's peer services answer
//! before it is ready (it must accept `cluster init`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::online::{InitializeRequest, Member};
use quiver_tests::cluster::{channel, PEER_SERVICE};
use quiver_tests::{
    free_address, health_status, http_get, wait_for_serving, QuiverProcess, ServingStatus,
};

async fn health(address: &str, service: &str) -> ServingStatus {
    health_status(address.parse().unwrap(), service)
        .await
        .unwrap()
}

fn registry(bin: &Path, dir: &Path, grpc: std::net::SocketAddr) -> QuiverProcess {
    QuiverProcess::spawn(
        bin,
        &["serve", "registry"],
        &[
            ("QUIVER__GRPC__LISTEN", grpc.to_string()),
            ("QUIVER__HTTP__LISTEN", free_address().to_string()),
            (
                "QUIVER__REGISTRY__DATA_DIR",
                dir.join("registry").display().to_string(),
            ),
        ],
        dir.join("registry.log"),
    )
    .unwrap()
}

#[tokio::test]
async fn roles_are_not_ready_until_they_can_answer() {
    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let dir = tempfile::tempdir().unwrap();
    let registry_address = free_address();

    // Ingest starts before the registry exists: alive, not ready, and it says why.
    let (ingest, ingest_http) = (free_address(), free_address());
    let _ingest = QuiverProcess::spawn(
        bin,
        &["serve", "ingest"],
        &[
            ("QUIVER__GRPC__LISTEN", ingest.to_string()),
            ("QUIVER__HTTP__LISTEN", ingest_http.to_string()),
            ("QUIVER__ENDPOINTS__REGISTRY", registry_address.to_string()),
            ("QUIVER__ENDPOINTS__COMPUTE", free_address().to_string()),
        ],
        dir.path().join("ingest.log"),
    )
    .unwrap();
    wait_for_http(ingest_http).await;
    let ingest = ingest.to_string();
    assert_eq!(health(&ingest, "").await, ServingStatus::NotServing);
    assert_eq!(
        health(&ingest, "quiver.ingest.v1.IngestService").await,
        ServingStatus::NotServing
    );
    let (code, body) = http_get(ingest_http, "/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("ingest: not ready: loading definitions from the registry"),
        "{body}"
    );
    assert_eq!(http_get(ingest_http, "/healthz").unwrap().0, 200);

    // An online-store node before `cluster init`: peer services up, clients not served.
    let _registry = registry(bin, dir.path(), registry_address);
    wait_for_serving(registry_address, "", Duration::from_secs(30))
        .await
        .unwrap();
    let (node, node_http, node_peer) = (free_address(), free_address(), free_address());
    let _node = QuiverProcess::spawn(
        bin,
        &["serve", "online-store"],
        &[
            ("QUIVER__GRPC__LISTEN", node.to_string()),
            ("QUIVER__HTTP__LISTEN", node_http.to_string()),
            ("QUIVER__ENDPOINTS__REGISTRY", registry_address.to_string()),
            ("QUIVER__ONLINE_STORE__NODE_ID", "1".into()),
            ("QUIVER__ONLINE_STORE__ADVERTISE", node.to_string()),
            ("QUIVER__ONLINE_STORE__PEER_LISTEN", node_peer.to_string()),
            (
                "QUIVER__ONLINE_STORE__PEER_ADVERTISE",
                node_peer.to_string(),
            ),
            (
                "QUIVER__ONLINE_STORE__DATA_DIR",
                dir.path().join("node").display().to_string(),
            ),
        ],
        dir.path().join("node.log"),
    )
    .unwrap();
    wait_for_serving(node, PEER_SERVICE, Duration::from_secs(30))
        .await
        .unwrap();
    let node = node.to_string();
    // The registry is up, so the node's remaining reason is the missing leader.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = http_get(node_http, "/readyz").unwrap();
        assert_eq!(code, 503, "{body}");
        if body.contains("no Raft leader") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for service in ["", "quiver.serving.v1.ServingService"] {
        assert_eq!(
            health(&node, service).await,
            ServingStatus::NotServing,
            "{service}"
        );
    }
    // Raft answers on the peer port, and only there.
    assert_eq!(
        health(&node_peer.to_string(), "quiver.raft.v1.RaftService").await,
        ServingStatus::Serving
    );
    let unknown = health_status(node.parse().unwrap(), "quiver.raft.v1.RaftService")
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("service not registered"), "{unknown}");
    assert_eq!(http_get(node_http, "/healthz").unwrap().0, 200);

    ClusterAdminServiceClient::new(channel(&node).await.unwrap())
        .initialize(InitializeRequest {
            members: vec![Member {
                node_id: 1,
                address: node.clone(),
                peer_address: String::new(),
                store_id: String::new(),
            }],
        })
        .await
        .unwrap();
    let node_address: std::net::SocketAddr = node.parse().unwrap();
    wait_for_serving(node_address, "", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        health(&node, "quiver.serving.v1.ServingService").await,
        ServingStatus::Serving
    );
    let (code, body) = http_get(node_http, "/readyz").unwrap();
    assert_eq!((code, body.as_str()), (200, "online-store: ready\n"));

    // Ingest has loaded the (empty) registry by now.
    wait_for_serving(ingest.parse().unwrap(), "", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        http_get(ingest_http, "/readyz").unwrap(),
        (200, "ingest: ready\n".to_string())
    );
}

async fn wait_for_http(address: std::net::SocketAddr) {
    for _ in 0..300 {
        if http_get(address, "/healthz").is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{address} never answered /healthz");
}
