//! The one gRPC server builder every Quiver service uses.
//!
//! It wires the cross-cutting layers once: a tracing span per request, per-RPC metrics, a
//! request timeout and a process-wide concurrency limit; `grpc.health.v1` health for every
//! service added; server reflection of Quiver's and the health protos; and a graceful shutdown
//! that flips health to NOT_SERVING, stops accepting, and drains within a deadline. When the
//! process has turned auth on ([`crate::auth::install`]), every request is authenticated first
//! (client ports: per-method roles; peer ports: the cluster-internal credential only).

use std::convert::Infallible;

use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Service, ServiceBuilder};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::telemetry::traces_enabled;
use crate::trace_context::continue_remote_trace;
use tracing::Level;

use crate::auth::AuthLayer;
use crate::config::GrpcConfig;
use crate::metrics::RpcMetricsLayer;
use crate::readiness::Readiness;
use crate::Shutdown;

/// A gRPC server under construction.
pub struct GrpcServer {
    role: &'static str,
    config: GrpcConfig,
    routes: RoutesBuilder,
    /// Client services: SERVING only while the role is ready.
    service_names: Vec<&'static str>,
    /// Peer services (Raft, cluster admin): SERVING while the server runs, ready or not.
    peer_service_names: Vec<&'static str>,
    readiness: Option<Readiness>,
    /// A peer port: only other Quiver processes may call it.
    peer_port: bool,
}

impl GrpcServer {
    /// A server for `role` (used in logs) with the given settings.
    pub fn new(role: &'static str, config: &GrpcConfig) -> Self {
        Self {
            role,
            config: config.clone(),
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            peer_service_names: Vec::new(),
            readiness: None,
            peer_port: false,
        }
    }

    /// Makes this server a peer port: with auth on, every RPC but health needs the
    /// cluster-internal credential.
    pub fn peer_port(mut self) -> Self {
        self.peer_port = true;
        self
    }

    /// Reports the client services (and `""`) SERVING only while `readiness` says ready.
    /// Without it they are SERVING as soon as the server listens.
    pub fn ready_when(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// Adds a service other Quiver processes call (Raft, cluster admin): it must answer before
    /// the role is ready (a node waiting for `cluster init` or catching up), so its health is
    /// SERVING while the server runs.
    pub fn add_peer_service<S>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.peer_service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Adds a generated tonic service; its health is reported under its full name.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Serves on `listener` until `shutdown` triggers, then drains for at most the configured
    /// grace period.
    pub async fn serve(mut self, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.config.concurrency_limit > 0,
            "grpc.concurrency_limit must be at least 1"
        );
        anyhow::ensure!(
            !self.config.request_timeout.is_zero(),
            "grpc.request_timeout must be longer than zero"
        );
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in self.peer_service_names.iter().copied() {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        let readiness = self
            .readiness
            .take()
            .unwrap_or_else(|| Readiness::ready(self.role));
        let gated: Vec<&'static str> = self.service_names.iter().copied().chain([""]).collect();
        let mirror = tokio::spawn(mirror_readiness(
            readiness.clone(),
            health.clone(),
            gated.clone(),
            shutdown.clone(),
        ));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(quiver_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        self.routes.add_service(health_service);
        self.routes.add_service(reflection);

        let layers = ServiceBuilder::new()
            // Client errors are not server failures: log them at debug; `ServiceError` logs
            // internal errors at error level with their cause.
            .layer(
                TraceLayer::new_for_grpc()
                    .make_span_with(request_span)
                    .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
            )
            .layer(RpcMetricsLayer)
            .layer(GlobalConcurrencyLimitLayer::new(
                self.config.concurrency_limit,
            ))
            .layer(if self.peer_port {
                AuthLayer::peers(crate::auth::installed())
            } else {
                AuthLayer::clients(crate::auth::installed())
            })
            .into_inner();
        let address = listener.local_addr()?;
        tracing::info!(role = self.role, %address, "grpc server listening");

        let names: Vec<&'static str> = gated
            .into_iter()
            .chain(self.peer_service_names.iter().copied())
            .collect();
        let draining = shutdown.clone();
        let stop_mirroring = mirror.abort_handle();
        let stop_accepting = async move {
            draining.wait().await;
            stop_mirroring.abort();
            for name in names {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
        };
        let mut builder = Server::builder();
        if let Some(tls) = crate::tls::server_config(self.peer_port) {
            builder = builder.tls_config(tls)?;
        }
        // A peer port has no server-side request timeout: peers set a deadline on each RPC
        // (`grpc-timeout`, honoured here), and a snapshot stream of a large state must be allowed
        // to take as long as it takes.
        if !self.peer_port {
            builder = builder.timeout(self.config.request_timeout);
        }
        let server = builder
            .layer(layers)
            .add_routes(self.routes.routes())
            // Small request/response pairs must not wait for Nagle's algorithm (a 40 ms stall
            // per exchange with delayed ACKs).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                stop_accepting,
            );

        let grace = self.config.shutdown_grace;
        let role = self.role;
        tokio::select! {
            result = server => result?,
            _ = async { shutdown.wait().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(role, ?grace, "grace period over; closing remaining connections");
            }
        }
        mirror.abort();
        drop(readiness);
        tracing::info!(role, "grpc server stopped");
        Ok(())
    }
}

/// Keeps the health of `names` equal to the role's readiness until shutdown (after which the
/// drain reports NOT_SERVING).
async fn mirror_readiness(
    readiness: Readiness,
    health: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    shutdown: Shutdown,
) {
    let mut state = readiness.subscribe();
    loop {
        let status = if state.borrow_and_update().is_none() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if shutdown.is_triggered() {
            return;
        }
        for name in &names {
            health.set_service_status(*name, status).await;
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}

/// The span of one request: at INFO, child of the caller's trace, when traces are exported;
/// otherwise at DEBUG (disabled by default, so it costs nothing on the hot path).
fn request_span<B>(request: &tonic::codegen::http::Request<B>) -> tracing::Span {
    let method = request.uri().path();
    if traces_enabled() {
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = method,
            otel.kind = "server",
            rpc.system = "grpc"
        );
        continue_remote_trace(&span, request.headers());
        span
    } else {
        tracing::debug_span!("grpc.server", rpc.method = method)
    }
}
