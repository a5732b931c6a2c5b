//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, one pushed batch yields spans from ingest,
//! compute and the online store sharing the producer's trace id (W3C `traceparent` carried over
//! gRPC metadata), and a GetFeatures call continues its caller's trace in the store. The
//! receiver is a real OTLP/gRPC trace service on 127.0.0.1, written here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use quiver_proto::serving::{get_features_request, FeatureList, GetFeaturesRequest};
use quiver_proto::types::value::Kind;
use quiver_proto::types::{EntityColumn, RepeatedValue, Value};
use quiver_tests::cluster::{channel, Cluster, DEFS};
use quiver_tests::free_address;

/// (service.name, trace id, span name) of every span received.
type Received = Arc<Mutex<Vec<(String, Vec<u8>, String)>>>;

struct Receiver(Received);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push((service.clone(), span.trace_id, span.name));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn traceparent(trace: &str) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
    format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until spans of `trace` arrived from every one of `services`.
async fn wait_for(received: &Received, trace: &str, services: &[&str]) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen: BTreeSet<String> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, id, _)| hex(id) == trace)
            .map(|(service, _, _)| service.clone())
            .collect();
        if services.iter().all(|s| seen.contains(*s)) || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_pushed_batch_is_one_trace_across_ingest_compute_and_the_store() {
    let received: Received = Arc::default();
    let receiver = free_address();
    let server = TraceServiceServer::new(Receiver(received.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve(receiver),
    );
    // Every process started below inherits these (the standard OTEL_* variables).
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver}"));
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");

    let bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let cluster = Cluster::start(bin, DEFS, 1).await;
    let (compute, ingest) = (free_address(), free_address());
    let _compute = cluster
        .spawn_role("compute", compute, compute, "compute", &[])
        .await;
    let _ingest = cluster
        .spawn_role("ingest", ingest, compute, "ingest", &[])
        .await;

    // The producer starts the trace.
    let push_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let now = prost_types::Timestamp::from(std::time::SystemTime::now());
    let mut request = tonic::Request::new(PushRequest {
        project: "shop".into(),
        source: "events".into(),
        columns: vec!["user_id".into(), "ts".into(), "amount".into()],
        rows: vec![Row {
            values: vec![
                Value {
                    kind: Some(Kind::Int64Value(7)),
                },
                Value {
                    kind: Some(Kind::TimestampValue(now)),
                },
                Value {
                    kind: Some(Kind::Int64Value(42)),
                },
            ],
        }],
        producer_id: "traced".into(),
        sequence: 1,
        ..PushRequest::default()
    });
    request
        .metadata_mut()
        .insert("traceparent", traceparent(push_trace));
    let mut client = IngestServiceClient::new(channel(&ingest.to_string()).await.unwrap());
    let pushed = client.push(request).await.unwrap().into_inner();
    assert_eq!(pushed.accepted, 1);

    let services = ["quiver-ingest", "quiver-compute", "quiver-online-store"];
    let seen = wait_for(&received, push_trace, &services).await;
    assert!(
        services.iter().all(|s| seen.contains(*s)),
        "spans of trace {push_trace} came from {seen:?}; all spans: {:?}",
        received.lock().unwrap()
    );

    // A model server's trace continues into the store.
    let read_trace = "0af7651916cd43dd8448eb211c80319c";
    let mut read = tonic::Request::new(GetFeaturesRequest {
        project: "shop".into(),
        features: Some(get_features_request::Features::FeatureList(FeatureList {
            refs: vec!["stats:last_amount".into()],
        })),
        entities: vec![EntityColumn {
            name: "user_id".into(),
            values: Some(RepeatedValue {
                values: vec![Value {
                    kind: Some(Kind::Int64Value(7)),
                }],
            }),
        }],
        ..Default::default()
    });
    read.metadata_mut()
        .insert("traceparent", traceparent(read_trace));
    ServingServiceClient::new(channel(&cluster.address(1)).await.unwrap())
        .get_features(read)
        .await
        .unwrap();
    let seen = wait_for(&received, read_trace, &["quiver-online-store"]).await;
    assert!(
        seen.contains("quiver-online-store"),
        "read trace came from {seen:?}"
    );
}
