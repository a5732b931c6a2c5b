//! A whole Quiver stack for offline tests: registry, one online-store node exporting to an
//! offline store, compute, ingest and the snapshot service, as real processes; and the
//! trainer's and the oracle's helpers around it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failed step should fail loudly

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use quiver_proto::serving::{get_features_request, FeatureList, GetFeaturesRequest};
use quiver_proto::types::{EntityColumn, RepeatedValue};

use crate::cluster::{channel, int, Cluster};
use crate::flight::read_exported;
use crate::stream::{push, request, Event};
use crate::{free_address, QuiverProcess};

/// Now, microseconds since the epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A registry, one online-store node exporting to a local offline store, compute, ingest and
/// the snapshot service.
pub struct Stack {
    /// The registry and the online-store node.
    pub cluster: Cluster,
    /// The offline store's URL.
    pub store: String,
    /// Ingest's address.
    pub ingest: String,
    /// The snapshot service's address.
    pub offline: String,
    _roles: Vec<QuiverProcess>,
}

/// Starts a stack with `defs` applied; `node_env` configures the online-store node (an
/// `QUIVER__ONLINE_STORE__OFFLINE_STORE` there replaces the default local store).
pub async fn start(bin: &Path, defs: &str, node_env: Vec<(String, String)>) -> Stack {
    let store = Arc::new(Mutex::new(String::new()));
    let cell = store.clone();
    let cluster = Cluster::start_with(bin, defs, 1, move |dir| {
        let url = node_env
            .iter()
            .find(|(k, _)| k == "QUIVER__ONLINE_STORE__OFFLINE_STORE")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| dir.join("offline").display().to_string());
        *cell.lock().unwrap() = url.clone();
        let mut env = vec![
            ("QUIVER__ONLINE_STORE__OFFLINE_STORE".to_string(), url),
            (
                "QUIVER__ONLINE_STORE__EXPORT_INTERVAL".into(),
                "200ms".into(),
            ),
        ];
        env.extend(
            node_env
                .into_iter()
                .filter(|(k, _)| k != "QUIVER__ONLINE_STORE__OFFLINE_STORE"),
        );
        env
    })
    .await;
    let store = store.lock().unwrap().clone();
    let (compute, ingest, offline) = (free_address(), free_address(), free_address());
    let extra: Vec<(&str, String)> = aws_env();
    let roles = vec![
        cluster
            .spawn_role("compute", compute, compute, "compute", &[])
            .await,
        cluster
            .spawn_role("ingest", ingest, compute, "ingest", &[])
            .await,
        cluster
            .spawn_role(
                "offline",
                offline,
                compute,
                "offline",
                &[
                    vec![("QUIVER__OFFLINE__STORE", store.clone())],
                    extra.clone(),
                ]
                .concat(),
            )
            .await,
    ];
    Stack {
        cluster,
        store,
        ingest: ingest.to_string(),
        offline: offline.to_string(),
        _roles: roles,
    }
}

/// The S3 settings of this process's environment, passed on to child processes.
pub fn aws_env() -> Vec<(&'static str, String)> {
    [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ]
    .into_iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)))
    .collect()
}

/// Pushes `events` in batches of `batch` rows as one producer.
pub async fn push_all(ingest: &str, events: &[Event], batch: usize) {
    for (i, chunk) in events.chunks(batch).enumerate() {
        // A retry after a crash may find its batch already committed (`duplicate`): fine.
        push(ingest, request(chunk, "offline-producer", i as u64 + 1)).await;
    }
}

/// Waits until the source log of source `tx` holds `rows` events; returns their batches.
pub async fn wait_for_source_log(store: &str, rows: usize) -> Vec<RecordBatch> {
    let prefix = "sources/project=stream/source=tx/";
    wait_for_rows(store, prefix, rows, "events in the source log of tx").await
}

async fn wait_for_rows(store: &str, prefix: &str, rows: usize, what: &str) -> Vec<RecordBatch> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let batches = read_exported(store, prefix).await;
        let have: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if have >= rows || Instant::now() > deadline {
            assert_eq!(have, rows, "{what} in the offline store");
            return batches;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An entity table: one row per (user, t) pair, with a pass-through label.
pub fn entity_table(pairs: &[(i64, i64)]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("label", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(pairs.iter().map(|p| p.0))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(pairs.iter().map(|p| p.1))
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(
                (0..pairs.len() as i64).map(|i| i64::from(i % 10 == 0)),
            )),
        ],
    )
    .unwrap()
}

/// `GetFeatures` of `refs` for `users` of project `stream` at `as_of`.
pub async fn get_features(
    online: &str,
    users: &[i64],
    refs: &[String],
    as_of: i64,
) -> quiver_proto::serving::GetFeaturesResponse {
    read_features(online, "stream", "user_id", users, refs, Some(as_of)).await
}

/// `GetFeatures` of `refs` (now) for entities with one int64 join key `key` of `project`.
pub async fn get_features_of(
    online: &str,
    project: &str,
    key: &str,
    ids: &[i64],
    refs: &[String],
) -> quiver_proto::serving::GetFeaturesResponse {
    read_features(online, project, key, ids, refs, None).await
}

/// [`get_features_of`], or the status it failed with (a view still backfilling answers
/// `UNAVAILABLE`).
pub async fn try_get_features_of(
    online: &str,
    project: &str,
    key: &str,
    ids: &[i64],
    refs: &[String],
) -> Result<quiver_proto::serving::GetFeaturesResponse, tonic::Status> {
    try_read_features(online, project, key, ids, refs, None).await
}

async fn read_features(
    online: &str,
    project: &str,
    key: &str,
    ids: &[i64],
    refs: &[String],
    as_of: Option<i64>,
) -> quiver_proto::serving::GetFeaturesResponse {
    try_read_features(online, project, key, ids, refs, as_of)
        .await
        .unwrap()
}

async fn try_read_features(
    online: &str,
    project: &str,
    key: &str,
    ids: &[i64],
    refs: &[String],
    as_of: Option<i64>,
) -> Result<quiver_proto::serving::GetFeaturesResponse, tonic::Status> {
    let mut client = ServingServiceClient::new(channel(online).await.unwrap());
    client
        .get_features(GetFeaturesRequest {
            project: project.into(),
            features: Some(get_features_request::Features::FeatureList(FeatureList {
                refs: refs.to_vec(),
            })),
            entities: vec![EntityColumn {
                name: key.into(),
                values: Some(RepeatedValue {
                    values: ids.iter().map(|u| int(*u)).collect(),
                }),
            }],
            as_of: as_of.map(|t| prost_types::Timestamp {
                seconds: t.div_euclid(1_000_000),
                nanos: (t.rem_euclid(1_000_000) * 1000) as i32,
            }),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The pinned Python environment (pyarrow, pytest, moto), created on first use.
pub fn python_env(root: &Path) -> PathBuf {
    let output = std::process::Command::new(root.join("scripts/python-env.sh"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/python-env.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}
