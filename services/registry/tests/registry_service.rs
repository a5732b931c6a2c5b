//! The registry over real gRPC on 127.0.0.1: versioning, no-op re-applies, deletes,
//! optimistic concurrency, lineage with consumers, and the Watch stream.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use std::time::Duration;

use quiver_common::{GrpcConfig, Shutdown};
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::{
    ApplyRequest, ApplyResponse, DefinitionDocument, DescribeRequest, GetLineageRequest,
    ListRequest, ObjectKind, PlanAction, RecordConsumerRequest, WatchEvent, WatchRequest,
};
use quiver_registry::RegistryConfig;
use tonic::transport::Channel;
use tonic::Code;

const DEFS: &str = r#"
project: fraud
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: transactions
    entity: user
    timestamp_field: ts
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
      - {name: note, type: string}
feature_views:
  - name: user_txn
    entity: user
    source: transactions
    ttl: 7d
    transforms:
      - {name: note_tokens, op: token_count, input: note}
    features:
      - {name: last_amount, column: amount, aggregation: last}
      - {name: amount_sum_24h, column: amount, aggregation: sum, window: 24h}
feature_services:
  - name: fraud_model_v1
    features: [user_txn:amount_sum_24h, user_txn:last_amount]
"#;

struct Server {
    client: RegistryServiceClient<Channel>,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let config = RegistryConfig {
        data_dir: dir.path().join("registry"),
    };
    let grpc = GrpcConfig {
        shutdown_grace: Duration::from_millis(100),
        ..GrpcConfig::default()
    };
    let server_shutdown = shutdown.clone();
    tokio::spawn(
        async move { quiver_registry::serve(&config, &grpc, listener, server_shutdown).await },
    );
    let client = loop {
        match RegistryServiceClient::connect(format!("http://{address}")).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    Server {
        client,
        shutdown,
        _dir: dir,
    }
}

fn request(yaml: &str) -> ApplyRequest {
    ApplyRequest {
        documents: vec![DefinitionDocument {
            name: "defs.yaml".into(),
            yaml: yaml.into(),
        }],
        dry_run: false,
        expected_revision: None,
    }
}

async fn apply(client: &mut RegistryServiceClient<Channel>, yaml: &str) -> ApplyResponse {
    client.apply(request(yaml)).await.unwrap().into_inner()
}

/// The plan action and versions of one object.
fn item(response: &ApplyResponse, name: &str) -> (PlanAction, u32, u32) {
    let item = response.plan.iter().find(|i| i.name == name).unwrap();
    (
        PlanAction::try_from(item.action).unwrap(),
        item.from_version,
        item.to_version,
    )
}

async fn describe(
    client: &mut RegistryServiceClient<Channel>,
    kind: ObjectKind,
    name: &str,
    version: u32,
) -> (quiver_proto::registry::RegistryObject, Vec<u32>) {
    let response = client
        .describe(DescribeRequest {
            project: String::new(),
            kind: kind as i32,
            name: name.into(),
            version,
        })
        .await
        .unwrap()
        .into_inner();
    (response.object.unwrap(), response.versions)
}

fn window_of(object: &quiver_proto::registry::RegistryObject, feature: &str) -> i64 {
    let Some(quiver_proto::registry::registry_object::Spec::FeatureView(view)) = &object.spec
    else {
        panic!("not a view")
    };
    view.features
        .iter()
        .find(|f| f.name == feature)
        .unwrap()
        .window
        .unwrap()
        .seconds
}

#[tokio::test]
async fn a_changed_view_gets_a_new_version_and_the_old_one_stays_readable() {
    let mut server = start().await;
    let first = apply(&mut server.client, DEFS).await;
    assert!(first.applied);
    assert_eq!((first.base_revision, first.revision), (0, 1));
    assert_eq!(item(&first, "user_txn"), (PlanAction::Create, 0, 1));

    let changed = DEFS.replace("window: 24h", "window: 48h");
    let second = apply(&mut server.client, &changed).await;
    assert_eq!(second.revision, 2);
    assert_eq!(item(&second, "user_txn"), (PlanAction::Change, 1, 2));
    let view_item = second.plan.iter().find(|i| i.name == "user_txn").unwrap();
    assert_eq!(
        view_item.changes,
        ["features[amount_sum_24h].window: 1d -> 2d"],
        "durations are shown in canonical units"
    );
    assert_eq!(item(&second, "user"), (PlanAction::Unchanged, 1, 1));
    assert_eq!(
        item(&second, "fraud_model_v1"),
        (PlanAction::Unchanged, 1, 1)
    );

    let (v1, versions) = describe(&mut server.client, ObjectKind::FeatureView, "user_txn", 1).await;
    assert_eq!(versions, [1, 2]);
    assert_eq!(window_of(&v1, "amount_sum_24h"), 86_400);
    let (latest, _) = describe(&mut server.client, ObjectKind::FeatureView, "user_txn", 0).await;
    assert_eq!(latest.meta.as_ref().unwrap().version, 2);
    assert_eq!(window_of(&latest, "amount_sum_24h"), 172_800);

    let missing = server
        .client
        .describe(DescribeRequest {
            project: String::new(),
            kind: ObjectKind::FeatureView as i32,
            name: "user_txn".into(),
            version: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing
            .message()
            .contains("has no version 9 (versions: 1, 2)"),
        "{}",
        missing.message()
    );
}

#[tokio::test]
async fn re_applying_identical_definitions_changes_nothing() {
    let mut server = start().await;
    apply(&mut server.client, DEFS).await;
    let again = apply(&mut server.client, DEFS).await;
    assert!(!again.applied);
    assert_eq!((again.base_revision, again.revision), (1, 1));
    assert!(
        again
            .plan
            .iter()
            .all(|i| i.action == PlanAction::Unchanged as i32),
        "{:?}",
        again.plan
    );
}

#[tokio::test]
async fn a_new_entity_version_bumps_its_dependents_but_not_services() {
    let mut server = start().await;
    apply(&mut server.client, DEFS).await;
    let described = DEFS.replace(
        "  - name: user\n",
        "  - name: user\n    description: a card holder\n",
    );
    let response = apply(&mut server.client, &described).await;
    assert_eq!(item(&response, "user"), (PlanAction::Change, 1, 2));
    assert_eq!(item(&response, "transactions"), (PlanAction::Change, 1, 2));
    assert_eq!(item(&response, "user_txn"), (PlanAction::Change, 1, 2));
    assert_eq!(
        item(&response, "fraud_model_v1"),
        (PlanAction::Unchanged, 1, 1)
    );
    let source = response
        .plan
        .iter()
        .find(|i| i.name == "transactions")
        .unwrap();
    assert_eq!(source.changes, ["entity user is now v2"]);
}

#[tokio::test]
async fn objects_left_out_are_deleted_and_a_recreated_name_continues_its_versions() {
    let mut server = start().await;
    apply(&mut server.client, DEFS).await;
    let (without_service, _) = DEFS.split_once("feature_services:").unwrap();
    let response = apply(&mut server.client, without_service).await;
    assert_eq!(
        item(&response, "fraud_model_v1"),
        (PlanAction::Delete, 1, 1)
    );

    let list = |include_deleted| ListRequest {
        project: "fraud".into(),
        kind: ObjectKind::FeatureService as i32,
        include_deleted,
    };
    let live = server.client.list(list(false)).await.unwrap().into_inner();
    assert!(live.objects.is_empty());
    let all = server.client.list(list(true)).await.unwrap().into_inner();
    assert!(all.objects[0].meta.as_ref().unwrap().deleted);
    let (v1, _) = describe(
        &mut server.client,
        ObjectKind::FeatureService,
        "fraud_model_v1",
        1,
    )
    .await;
    assert!(!v1.meta.unwrap().deleted, "old versions stay readable");

    let response = apply(&mut server.client, DEFS).await;
    assert_eq!(
        item(&response, "fraud_model_v1"),
        (PlanAction::Create, 1, 2)
    );
}

#[tokio::test]
async fn invalid_definitions_and_dry_runs_write_nothing() {
    let mut server = start().await;
    let bad = DEFS.replace(
        "column: amount, aggregation: sum",
        "column: note, aggregation: sum",
    );
    let error = server.client.apply(request(&bad)).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains(r#"defs.yaml: feature_views[0].features[1].column: sum needs a numeric column; "note" is string"#),
        "{}",
        error.message()
    );
    let dry = server
        .client
        .apply(ApplyRequest {
            dry_run: true,
            ..request(DEFS)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!dry.applied);
    assert_eq!(item(&dry, "user_txn"), (PlanAction::Create, 0, 1));
    let projects = server
        .client
        .list_projects(quiver_proto::registry::ListProjectsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(projects.projects.is_empty());
    assert_eq!(projects.revision, 0);
}

#[tokio::test]
async fn concurrent_applies_from_one_revision_let_exactly_one_win() {
    let mut server = start().await;
    apply(&mut server.client, DEFS).await;
    let a = DEFS.replace("ttl: 7d", "ttl: 1d");
    let b = DEFS.replace("ttl: 7d", "ttl: 2d");
    let pinned = |yaml: &str| ApplyRequest {
        expected_revision: Some(1),
        ..request(yaml)
    };
    let (mut ca, mut cb) = (server.client.clone(), server.client.clone());
    let (ra, rb) = tokio::join!(ca.apply(pinned(&a)), cb.apply(pinned(&b)));
    let (winner, loser) = match (ra, rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w.into_inner(), l),
        other => panic!("expected one winner and one conflict, got {other:?}"),
    };
    assert_eq!(winner.revision, 2);
    assert_eq!(loser.code(), Code::Aborted);
    assert!(
        loser
            .message()
            .contains("another apply changed the registry"),
        "{}",
        loser.message()
    );
    let (view, versions) =
        describe(&mut server.client, ObjectKind::FeatureView, "user_txn", 0).await;
    assert_eq!(versions, [1, 2], "the loser wrote nothing");
    assert_eq!(view.meta.unwrap().revision, 2);

    // Unpinned applies racing each other are also caught by the revision check.
    let results = futures_join_all(&server, &["ttl: 3d", "ttl: 4d", "ttl: 5d"]).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let aborted = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::Aborted))
        .count();
    assert!(won >= 1 && won + aborted == 3, "{results:?}");
}

async fn futures_join_all(
    server: &Server,
    ttls: &[&str],
) -> Vec<Result<ApplyResponse, tonic::Status>> {
    let handles: Vec<_> = ttls
        .iter()
        .map(|ttl| {
            let mut client = server.client.clone();
            let yaml = DEFS.replace("ttl: 7d", ttl);
            tokio::spawn(async move { client.apply(request(&yaml)).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test]
async fn pinned_feature_refs_must_name_an_existing_version() {
    let mut server = start().await;
    apply(&mut server.client, DEFS).await;
    let v2 = DEFS.replace("ttl: 7d", "ttl: 1d");
    apply(&mut server.client, &v2).await;
    let pinned_old = v2.replace("[user_txn:amount_sum_24h,", "[user_txn@1:amount_sum_24h,");
    let response = apply(&mut server.client, &pinned_old).await;
    assert_eq!(
        item(&response, "fraud_model_v1"),
        (PlanAction::Change, 1, 2)
    );
    let pinned_missing = v2.replace("[user_txn:amount_sum_24h,", "[user_txn@7:amount_sum_24h,");
    let error = server
        .client
        .apply(request(&pinned_missing))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains(r#"defs.yaml: feature_services[0].features[0]: feature view "user_txn" has no version 7 (latest is 2)"#),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn lineage_runs_from_source_to_consumers() {
    let mut server = start().await;
    apply(&mut server.client, DEFS).await;
    server
        .client
        .record_consumer(RecordConsumerRequest {
            project: String::new(),
            consumer: "fraud-scorer".into(),
            feature_service: "fraud_model_v1".into(),
            features: vec![],
        })
        .await
        .unwrap();
    server
        .client
        .record_consumer(RecordConsumerRequest {
            project: String::new(),
            consumer: "analyst-notebook".into(),
            feature_service: String::new(),
            features: vec!["user_txn:last_amount".into()],
        })
        .await
        .unwrap();
    let lineage = |node: &str| GetLineageRequest {
        project: String::new(),
        node: node.into(),
    };
    let ids = |nodes: &[quiver_proto::registry::LineageNode]| {
        let mut ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        ids.sort();
        ids
    };
    let feature = server
        .client
        .get_lineage(lineage("user_txn:amount_sum_24h"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(&feature.upstream),
        [
            "entity:user",
            "source:transactions",
            "transform:user_txn.note_tokens",
            "view:user_txn"
        ]
    );
    assert_eq!(
        ids(&feature.downstream),
        ["consumer:fraud-scorer", "service:fraud_model_v1"]
    );
    assert!(feature
        .edges
        .iter()
        .any(|e| e.from == "view:user_txn" && e.to == "feature:user_txn:amount_sum_24h"));

    let source = server
        .client
        .get_lineage(lineage("source/transactions"))
        .await
        .unwrap()
        .into_inner();
    let downstream = ids(&source.downstream);
    for expected in [
        "consumer:analyst-notebook",
        "consumer:fraud-scorer",
        "feature:user_txn:last_amount",
        "service:fraud_model_v1",
        "view:user_txn",
    ] {
        assert!(
            downstream.contains(&expected.to_string()),
            "{expected} missing from {downstream:?}"
        );
    }
    let consumer = server
        .client
        .get_lineage(lineage("consumer/fraud-scorer"))
        .await
        .unwrap()
        .into_inner();
    assert!(consumer.root.unwrap().last_seen.is_some());
    assert!(ids(&consumer.upstream).contains(&"feature:user_txn:amount_sum_24h".to_string()));

    let unknown = server
        .client
        .get_lineage(lineage("user_txn:nope"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = server
        .client
        .get_lineage(lineage("what"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let bad_consumer = server
        .client
        .record_consumer(RecordConsumerRequest {
            project: String::new(),
            consumer: "x".into(),
            feature_service: "no_such_service".into(),
            features: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_consumer.code(), Code::NotFound);
}

async fn next(stream: &mut tonic::Streaming<WatchEvent>) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a watch event within 10s")
        .unwrap()
        .expect("the stream stays open")
}

#[tokio::test]
async fn watch_delivers_a_snapshot_then_every_change_in_order() {
    let mut server = start().await;
    apply(&mut server.client, DEFS).await;
    let mut from_start = server
        .client
        .watch(WatchRequest {
            from_revision: 0,
            project: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let snapshot = next(&mut from_start).await;
    assert!(snapshot.snapshot);
    assert_eq!(snapshot.revision, 1);
    assert_eq!(snapshot.objects.len(), 4);

    apply(&mut server.client, &DEFS.replace("ttl: 7d", "ttl: 1d")).await;
    apply(&mut server.client, &DEFS.replace("ttl: 7d", "ttl: 2d")).await;
    for revision in [2, 3] {
        let change = next(&mut from_start).await;
        assert!(!change.snapshot);
        assert_eq!(change.revision, revision);
        let names: Vec<_> = change
            .objects
            .iter()
            .map(|o| o.meta.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["user_txn"]);
    }

    // A watcher resuming from revision 1 replays 2 and 3 from storage, then follows live.
    let mut resumed = server
        .client
        .watch(WatchRequest {
            from_revision: 1,
            project: "fraud".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut resumed).await.revision, 2);
    assert_eq!(next(&mut resumed).await.revision, 3);
    apply(&mut server.client, DEFS).await;
    assert_eq!(next(&mut resumed).await.revision, 4);
    assert_eq!(next(&mut from_start).await.revision, 4);

    // Other projects' changes are filtered out of a project watch.
    let mut other = server
        .client
        .watch(WatchRequest {
            from_revision: 4,
            project: "ads".into(),
        })
        .await
        .unwrap()
        .into_inner();
    apply(
        &mut server.client,
        &DEFS.replace("project: fraud", "project: ads"),
    )
    .await;
    let ads = next(&mut other).await;
    assert_eq!(ads.revision, 5);
    assert!(ads
        .objects
        .iter()
        .all(|o| o.meta.as_ref().unwrap().project == "ads"));

    let ahead = server
        .client
        .watch(WatchRequest {
            from_revision: 99,
            project: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(ahead.code(), Code::InvalidArgument);
}
