//! GetFeatures and Write semantics against a real single-node online store and registry:
//! statuses, TTL, column order, latest-value wins, versioned reads, consumers in lineage, and
//! bad requests answered with INVALID_ARGUMENT naming the culprit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use std::path::Path;
use std::time::{Duration, SystemTime};

use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{FeatureRow, WriteRequest};
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::{ApplyRequest, DefinitionDocument, GetLineageRequest};
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use quiver_proto::serving::{
    get_features_request, FeatureList, GetFeaturesRequest, GetFeaturesResponse,
};
use quiver_proto::types::{
    value::Kind, EntityColumn, EntityKey, FieldStatus, RepeatedValue, Value,
};
use quiver_tests::cluster::{channel, int, Cluster};
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_quiver");

const DEFS: &str = r#"
project: shop
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
  - name: merchant
    join_keys: [{name: merchant_id, type: string}]
sources:
  - name: events
    entity: user
    timestamp_field: ts
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: score, type: float64}
      - {name: label, type: string}
  - name: visits
    entity: merchant
    timestamp_field: ts
    schema:
      - {name: merchant_id, type: string}
      - {name: ts, type: timestamp}
      - {name: n, type: int64}
feature_views:
  - name: profile
    entity: user
    source: events
    ttl: 1h
    features:
      - {name: score, column: score, aggregation: last}
      - {name: label, column: label, aggregation: last}
  - name: shop
    entity: merchant
    source: visits
    features:
      - {name: visits, column: n, aggregation: last}
feature_services:
  - name: svc
    features: [profile:label, profile:score]
"#;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn float(v: f64) -> Value {
    Value {
        kind: Some(Kind::Float64Value(v)),
    }
}

fn string(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

fn null() -> Value {
    Value { kind: None }
}

fn profile_row(user: i64, at: i64, score: Value, label: Value) -> FeatureRow {
    FeatureRow {
        project: String::new(),
        view: "profile".into(),
        view_version: 0,
        entity: Some(EntityKey {
            join_keys: vec![],
            values: vec![int(user)],
        }),
        event_time: Some(ts(at)),
        values: vec![score, label],
    }
}

struct Store {
    cluster: Cluster,
    address: String,
    sequence: u64,
}

impl Store {
    async fn start() -> Self {
        let cluster = Cluster::start(Path::new(BIN), DEFS, 1).await;
        let address = cluster.address(1);
        Self {
            cluster,
            address,
            sequence: 0,
        }
    }

    async fn write(
        &mut self,
        rows: Vec<FeatureRow>,
    ) -> Result<quiver_proto::online::WriteResponse, tonic::Status> {
        self.sequence += 1;
        let mut client = OnlineStoreServiceClient::new(channel(&self.address).await.unwrap());
        client
            .write(WriteRequest {
                producer_id: "test".into(),
                sequence: self.sequence,
                rows,
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn get(&self, request: GetFeaturesRequest) -> Result<GetFeaturesResponse, tonic::Status> {
        let mut client = ServingServiceClient::new(channel(&self.address).await.unwrap());
        client.get_features(request).await.map(|r| r.into_inner())
    }
}

fn request(refs: &[&str], columns: Vec<(&str, Vec<Value>)>) -> GetFeaturesRequest {
    GetFeaturesRequest {
        project: String::new(),
        features: Some(get_features_request::Features::FeatureList(FeatureList {
            refs: refs.iter().map(|r| r.to_string()).collect(),
        })),
        entities: columns
            .into_iter()
            .map(|(name, values)| EntityColumn {
                name: name.into(),
                values: Some(RepeatedValue { values }),
            })
            .collect(),
        as_of: None,
        consistency: 0,
        full_feature_names: false,
    }
}

fn statuses(response: &GetFeaturesResponse, column: usize) -> Vec<FieldStatus> {
    response.results[column]
        .statuses
        .iter()
        .map(|s| FieldStatus::try_from(*s).unwrap())
        .collect()
}

/// The registry's catalog reaches the store through Watch: wait until a write is accepted.
async fn wait_until_writable(store: &mut Store) {
    for _ in 0..100 {
        if store
            .write(vec![profile_row(999_999, 1, float(0.0), null())])
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never accepted writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_ttl_order_and_latest_value() {
    let mut store = Store::start().await;
    wait_until_writable(&mut store).await;
    let now = now_secs();
    store
        .write(vec![
            profile_row(1, now - 10, float(1.5), string("a")),
            profile_row(2, now - 10, float(2.5), null()),
            profile_row(3, now - 7_200, float(3.5), string("old")),
        ])
        .await
        .unwrap();

    let users = vec![int(1), int(2), int(3), int(4)];
    let response = store
        .get(request(
            &["profile:label", "profile:score"],
            vec![("user_id", users.clone())],
        ))
        .await
        .unwrap();
    let names = &response.metadata.as_ref().unwrap().feature_names;
    assert_eq!(
        names,
        &["user_id", "profile:label", "profile:score"],
        "requested order, entity first"
    );
    use FieldStatus::*;
    assert_eq!(
        statuses(&response, 1),
        [Present, NullValue, OutsideTtl, NotFound]
    );
    assert_eq!(
        statuses(&response, 2),
        [Present, Present, OutsideTtl, NotFound]
    );
    assert_eq!(response.results[2].values[0], float(1.5));
    assert_eq!(
        response.results[2].values[2],
        null(),
        "an expired value is not served"
    );
    assert_eq!(
        response.results[2].event_timestamps[2],
        ts(now - 7_200),
        "its age is visible"
    );
    assert_eq!(
        response.results[2].event_timestamps[3],
        ts(0),
        "no row, no timestamp"
    );

    // A feature service serves its declared order.
    let mut by_service = request(&[], vec![("user_id", vec![int(1)])]);
    by_service.features = Some(get_features_request::Features::FeatureService("svc".into()));
    let response = store.get(by_service).await.unwrap();
    assert_eq!(
        response.metadata.unwrap().feature_names,
        ["user_id", "profile:label", "profile:score"]
    );

    // as_of moves the TTL clock; a row newer than as_of cannot answer for it.
    let mut later = request(&["profile:score"], vec![("user_id", vec![int(1)])]);
    later.as_of = Some(ts(now + 1_800));
    assert_eq!(
        statuses(&store.get(later.clone()).await.unwrap(), 1),
        [Present]
    );
    later.as_of = Some(ts(now + 7_200));
    assert_eq!(
        statuses(&store.get(later.clone()).await.unwrap(), 1),
        [OutsideTtl]
    );
    later.as_of = Some(ts(now - 3_600));
    assert_eq!(statuses(&store.get(later).await.unwrap(), 1), [Invalid]);

    // Latest event time wins, whatever the arrival order.
    let stale = store
        .write(vec![profile_row(1, now - 100, float(9.0), string("older"))])
        .await
        .unwrap();
    assert_eq!((stale.applied, stale.stale), (0, 1));
    let newer = store
        .write(vec![profile_row(1, now - 5, float(7.0), string("newer"))])
        .await
        .unwrap();
    assert_eq!(newer.applied, 1);
    let response = store
        .get(request(&["profile:score"], vec![("user_id", vec![int(1)])]))
        .await
        .unwrap();
    assert_eq!(response.results[1].values[0], float(7.0));

    // The view's first streamed event: reads have so far skipped running records (the view had
    // none), and from now on find them; the written rows still answer.
    let streaming = store.cluster.spawn_streaming().await;
    let event = quiver_proto::ingest::Row {
        values: vec![
            int(4),
            Value {
                kind: Some(Kind::TimestampValue(ts(now - 1))),
            },
            float(4.5),
            string("streamed"),
        ],
    };
    quiver_tests::stream::push(
        &streaming.ingest.to_string(),
        quiver_proto::ingest::PushRequest {
            project: "shop".into(),
            source: "events".into(),
            columns: ["user_id", "ts", "score", "label"]
                .map(String::from)
                .to_vec(),
            rows: vec![event],
            producer_id: "serving-test".into(),
            sequence: 1,
            ..Default::default()
        },
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = store
            .get(request(
                &["profile:label"],
                vec![("user_id", vec![int(1), int(4)])],
            ))
            .await
            .unwrap();
        if statuses(&response, 1) == [Present, Present] {
            assert_eq!(
                response.results[1].values,
                [string("newer"), string("streamed")]
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the streamed event is never served: {:?}",
            statuses(&response, 1)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_culprit_and_bad_writes_change_nothing() {
    let mut store = Store::start().await;
    wait_until_writable(&mut store).await;
    let cases: Vec<(GetFeaturesRequest, &str)> = vec![
        (
            request(&["nope:score"], vec![("user_id", vec![int(1)])]),
            r#"feature_list.refs[0]: unknown feature view "nope""#,
        ),
        (
            request(&["profile:nope"], vec![("user_id", vec![int(1)])]),
            r#"feature_list.refs[0]: feature view "profile" has no feature "nope""#,
        ),
        (
            request(&["profile"], vec![("user_id", vec![int(1)])]),
            "feature_list.refs[0]: invalid feature reference",
        ),
        (
            request(&["profile:score"], vec![("user_id", vec![string("1")])]),
            r#"entities[0] ("user_id") row 0: expected int64, got string"#,
        ),
        (
            request(&["profile:score"], vec![("merchant_id", vec![string("m")])]),
            r#"entities: missing join key "user_id""#,
        ),
        (
            request(&["profile:score"], vec![]),
            "entities: at least one join key column is required",
        ),
        (
            request(&["profile:score"], vec![("user_id", vec![])]),
            "entities: no entity rows given",
        ),
        (
            request(
                &["profile:score"],
                vec![("user_id", (0..1_001).map(int).collect())],
            ),
            "entities: 1001 rows is over the limit of 1000",
        ),
        (
            request(
                &["profile:score"],
                vec![("user_id", vec![int(1)]), ("shoe_size", vec![int(1)])],
            ),
            r#"entities[1]: "shoe_size" is not a join key"#,
        ),
        (
            request(&[], vec![("user_id", vec![int(1)])]),
            "feature_list.refs: no features requested",
        ),
        (
            GetFeaturesRequest {
                consistency: 99,
                ..request(&["profile:score"], vec![("user_id", vec![int(1)])])
            },
            "consistency: 99 is not a level (0 eventual, 1 strong)",
        ),
        (
            GetFeaturesRequest {
                as_of: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: -1,
                }),
                ..request(&["profile:score"], vec![("user_id", vec![int(1)])])
            },
            "as_of: nanos -1 is not within a second",
        ),
    ];
    for (bad, expected) in cases {
        let error = store.get(bad).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        assert!(
            error.message().contains(expected),
            "{:?} should contain {expected:?}",
            error.message()
        );
    }

    let now = now_secs();
    let bad_writes: Vec<(FeatureRow, &str)> = vec![
        (
            profile_row(5, now, string("x"), null()),
            r#"rows[1].values[0]: feature "score" is float64, got string"#,
        ),
        (
            FeatureRow {
                values: vec![float(1.0)],
                ..profile_row(5, now, null(), null())
            },
            "rows[1].values: view \"profile\" v1 has 2 features, the row has 1 values",
        ),
        (
            FeatureRow {
                event_time: None,
                ..profile_row(5, now, null(), null())
            },
            "rows[1].event_time: required",
        ),
        (
            FeatureRow {
                view: "nope".into(),
                ..profile_row(5, now, null(), null())
            },
            r#"rows[1].view: unknown feature view "nope""#,
        ),
        (
            FeatureRow {
                entity: Some(EntityKey {
                    join_keys: vec![],
                    values: vec![string("5")],
                }),
                ..profile_row(5, now, null(), null())
            },
            r#"rows[1].entity.values[0]: join key "user_id" is int64, got string"#,
        ),
    ];
    for (bad, expected) in bad_writes {
        // A good row first: the whole batch must be refused, the good row included.
        let error = store
            .write(vec![profile_row(6, now, float(6.0), null()), bad])
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        assert!(
            error.message().contains(expected),
            "{:?} should contain {expected:?}",
            error.message()
        );
    }
    let response = store
        .get(request(
            &["profile:score"],
            vec![("user_id", vec![int(5), int(6)])],
        ))
        .await
        .unwrap();
    assert_eq!(
        statuses(&response, 1),
        [FieldStatus::NotFound, FieldStatus::NotFound]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_views_versions_and_consumers() {
    let mut store = Store::start().await;
    wait_until_writable(&mut store).await;
    let now = now_secs();
    store
        .write(vec![profile_row(1, now, float(1.0), string("a"))])
        .await
        .unwrap();
    store
        .write(vec![FeatureRow {
            project: String::new(),
            view: "shop".into(),
            view_version: 0,
            entity: Some(EntityKey {
                join_keys: vec![],
                values: vec![string("m1")],
            }),
            event_time: Some(ts(now)),
            values: vec![int(42)],
        }])
        .await
        .unwrap();
    // One request, two entities' views, composite columns.
    let mut both = request(
        &["shop:visits", "profile:score"],
        vec![
            ("user_id", vec![int(1)]),
            ("merchant_id", vec![string("m1")]),
        ],
    );
    let metadata = tonic::metadata::MetadataValue::from_static("fraud-scorer");
    let mut call = tonic::Request::new(both.clone());
    call.metadata_mut().insert("model", metadata);
    let mut client = ServingServiceClient::new(channel(&store.address).await.unwrap());
    let response = client.get_features(call).await.unwrap().into_inner();
    assert_eq!(response.results[2].values[0], int(42));
    assert_eq!(response.results[3].values[0], float(1.0));

    // The consumer shows up in lineage.
    let mut registry =
        RegistryServiceClient::new(channel(&store.cluster.registry.to_string()).await.unwrap());
    let mut found = false;
    for _ in 0..50 {
        let lineage = registry
            .get_lineage(GetLineageRequest {
                project: String::new(),
                node: "profile:score".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if lineage
            .downstream
            .iter()
            .any(|n| n.id == "consumer:fraud-scorer")
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the model was not recorded as a consumer");

    // A new view version is read separately; the old one stays readable with view@N.
    registry
        .apply(ApplyRequest {
            documents: vec![DefinitionDocument {
                name: "defs.yaml".into(),
                yaml: DEFS.replace("ttl: 1h", "ttl: 2h"),
            }],
            dry_run: false,
            expected_revision: None,
        })
        .await
        .unwrap();
    let mut latest_is_v2 = false;
    for _ in 0..50 {
        let response = store
            .get(request(&["profile:score"], vec![("user_id", vec![int(1)])]))
            .await
            .unwrap();
        if response.metadata.as_ref().unwrap().views[0].version == 2 {
            assert_eq!(
                statuses(&response, 1),
                [FieldStatus::NotFound],
                "v2 has no rows yet"
            );
            latest_is_v2 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(latest_is_v2);
    both = request(&["profile@1:score"], vec![("user_id", vec![int(1)])]);
    let response = store.get(both).await.unwrap();
    assert_eq!(response.results[1].values[0], float(1.0));
    assert_eq!(
        response.metadata.unwrap().feature_names[1],
        "profile@1:score"
    );
}
