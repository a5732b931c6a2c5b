//! The configuration of a `quiver` process: the shared sections plus each role's own.
//! See `config/quiver.example.toml` for every key.

use quiver_common::{AuthConfig, Endpoints, GrpcConfig, HttpConfig, LogConfig};
use quiver_compute::ComputeConfig;
use quiver_ingest::IngestConfig;
use quiver_offline::OfflineConfig;
use quiver_online_store::OnlineStoreConfig;
use quiver_registry::RegistryConfig;
use serde::{Deserialize, Serialize};

/// Everything a process reads from its config file and `QUIVER__…` environment variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuiverConfig {
    /// `[grpc]`: the role's gRPC server.
    pub grpc: GrpcConfig,
    /// `[http]`: `/metrics` and `/healthz`.
    pub http: HttpConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[auth]`: tokens and the cluster-internal credential.
    pub auth: AuthConfig,
    /// `[tls]`: TLS on every port, mutual TLS on peer ports.
    pub tls: quiver_common::tls::TlsConfig,
    /// `[endpoints]`: where this process reaches the other roles.
    pub endpoints: Endpoints,
    /// `[registry]`: the registry role.
    pub registry: RegistryConfig,
    /// `[online_store]`: the online-store role.
    pub online_store: OnlineStoreConfig,
    /// `[ingest]`: the ingest role.
    pub ingest: IngestConfig,
    /// `[compute]`: the compute role.
    pub compute: ComputeConfig,
    /// `[offline]`: the snapshot service.
    pub offline: OfflineConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example names every key the binary reads, with its default: it must load through
    /// the real loader (no key unknown, none mistyped) and state the defaults, so it stays a
    /// true reference.
    #[test]
    fn the_example_config_loads_and_states_the_defaults() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/quiver.example.toml"
        ));
        let example: QuiverConfig = quiver_common::config::load_config(Some(path))
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert_eq!(
            format!("{:?}", example.online_store),
            format!("{:?}", QuiverConfig::default().online_store),
            "[online_store] in the example differs from the defaults"
        );
    }
}
