//! Where client commands find the services: `--registry`, `--ingest`, `--online`, `--offline`
//! (host:port), defaulting to the ports `quiver dev` uses.

use clap::Args;
use quiver_common::client_channel::{authorized, AuthChannel};
use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::serving::serving_service_client::ServingServiceClient;
use tonic::transport::Channel;

/// Service addresses shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Addresses {
    /// The registry (host:port).
    #[arg(
        long,
        global = true,
        env = "QUIVER_REGISTRY",
        default_value = "127.0.0.1:7070"
    )]
    pub registry: String,
    /// The ingest service (host:port).
    #[arg(
        long,
        global = true,
        env = "QUIVER_INGEST",
        default_value = "127.0.0.1:7071"
    )]
    pub ingest: String,
    /// The online store's serving endpoint (host:port).
    #[arg(
        long,
        global = true,
        env = "QUIVER_ONLINE",
        default_value = "127.0.0.1:7073"
    )]
    pub online: String,
    /// The offline snapshot service (host:port).
    #[arg(
        long,
        global = true,
        env = "QUIVER_OFFLINE",
        default_value = "127.0.0.1:7074"
    )]
    pub offline: String,
}

impl Addresses {
    /// A client of the registry.
    pub async fn registry(&self) -> anyhow::Result<RegistryServiceClient<AuthChannel>> {
        let channel = connect(&self.registry, "registry").await?;
        // Definitions documents can be large; allow generous messages.
        Ok(RegistryServiceClient::new(channel).max_decoding_message_size(64 << 20))
    }
}

/// A client of the online store's cluster admin service at `address`.
pub async fn admin_client(address: &str) -> anyhow::Result<ClusterAdminServiceClient<AuthChannel>> {
    Ok(ClusterAdminServiceClient::new(
        connect(address, "online").await?,
    ))
}

/// A client of the serving API at `address`.
pub async fn serving_client(address: &str) -> anyhow::Result<ServingServiceClient<AuthChannel>> {
    Ok(ServingServiceClient::new(connect(address, "online").await?)
        .max_decoding_message_size(256 << 20))
}

/// Connects to `address`, explaining what to check when it is not there. The channel carries
/// `--token` (if given).
pub async fn connect(address: &str, what: &str) -> anyhow::Result<AuthChannel> {
    connect_plain(address, what).await.map(authorized)
}

/// As [`connect`], without the token (for clients that add headers themselves: Flight).
pub async fn connect_plain(address: &str, what: &str) -> anyhow::Result<Channel> {
    let endpoint = quiver_common::client_channel::endpoint(address)
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(5));
    endpoint.connect().await.map_err(|e| {
        // tonic's own text is `transport error`: the cause (refused, a certificate the CA does
        // not sign, a server that is not TLS) is further down the chain.
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            cause = inner.to_string();
            source = inner.source();
        }
        let tls = ["certificate", "tls", "handshake", "peer", "ssl", "pem"]
            .iter()
            .any(|word| cause.to_ascii_lowercase().contains(word));
        let hint = if tls {
            "TLS failed: does --ca-cert (QUIVER_CA_CERT) name the CA that signed the server's \
             certificate, and does that certificate hold this address?"
                .to_string()
        } else {
            format!("is `quiver dev` running, or is --{what} right?")
        };
        anyhow::anyhow!("cannot reach the {what} at {address}: {cause} ({hint})")
    })
}
