//! What every Quiver process shares: typed configuration, logging, graceful shutdown, the one
//! gRPC server builder (tracing, metrics, timeouts, a concurrency limit, health, reflection),
//! the HTTP endpoint for `/metrics` and `/healthz`, and the mapping from errors to gRPC codes.
//!
//! Services depend on this crate; it must never depend on a service or on storage engines.

pub mod auth;
pub mod client_channel;
pub mod clock;
pub mod config;
pub mod error;
pub mod feature_selection;
pub mod grpc_server;
pub mod http_endpoint;
pub mod json_event;
pub mod leader_hint;
pub mod metrics;
pub mod readiness;
pub mod registry_cache;
pub mod shutdown;
pub mod status_message;
pub mod telemetry;
pub mod tls;
pub mod trace_context;
pub mod uri;
pub mod view_feed;
pub mod view_statistics;

pub use config::{load_config, AuthConfig, Endpoints, GrpcConfig, HttpConfig, LogConfig};
pub use error::{ErrorCode, ServiceError};
pub use grpc_server::GrpcServer;
pub use readiness::Readiness;
pub use shutdown::Shutdown;
