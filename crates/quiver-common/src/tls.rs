//! TLS on every gRPC port, and mutual TLS between Quiver processes on peer ports.
//!
//! With `[tls] enabled`, a process serves every port with its certificate (`cert`, `key`);
//! peer ports also demand a client certificate signed by the cluster's CA (`ca`), so only
//! Quiver processes can open a connection there. Its own calls to other Quiver processes go
//! over `https` trusting `ca` and presenting its certificate. The CLI only needs the CA
//! (`--ca-cert`). Like the credential, the settings are process-wide, installed once at start.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// `[tls]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve TLS on every port; mutual TLS on peer ports.
    pub enabled: bool,
    /// This process's certificate chain (PEM), e.g. a Secret's `tls.crt`. Its names (DNS or IP
    /// SANs) must include every name other processes and clients dial it by.
    pub cert: PathBuf,
    /// Its private key (PEM), e.g. `tls.key`.
    pub key: PathBuf,
    /// The cluster's CA (PEM), e.g. `ca.crt`: trusted for servers, required of peers.
    pub ca: PathBuf,
}

/// The process's TLS settings, ready for tonic.
#[derive(Debug, Clone)]
struct Installed {
    identity: Option<Identity>,
    ca: Certificate,
}

static TLS: OnceLock<Installed> = OnceLock::new();

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// Turns TLS on for this process's servers and its calls to other Quiver processes (once per
/// process; `[tls] enabled = false` does nothing).
pub fn install(config: &TlsConfig) -> anyhow::Result<()> {
    if !config.enabled {
        return Ok(());
    }
    let identity = Identity::from_pem(
        read(&config.cert, "tls.cert certificate")?,
        read(&config.key, "tls.key private key")?,
    );
    let ca = Certificate::from_pem(read(&config.ca, "tls.ca certificate")?);
    let _ = TLS.set(Installed {
        identity: Some(identity),
        ca,
    });
    Ok(())
}

/// A client that only needs to trust the cluster's CA (the CLI's `--ca-cert`).
pub fn install_client_ca(ca: &Path) -> anyhow::Result<()> {
    let ca = Certificate::from_pem(read(ca, "CA certificate (--ca-cert)")?);
    let _ = TLS.set(Installed { identity: None, ca });
    Ok(())
}

/// Whether this process speaks TLS.
pub fn enabled() -> bool {
    TLS.get().is_some()
}

/// The server side of a port: TLS with the process's certificate; a peer port also requires a
/// client certificate from the cluster's CA.
pub fn server_config(peer_port: bool) -> Option<ServerTlsConfig> {
    let installed = TLS.get()?;
    let identity = installed.identity.clone()?;
    let config = ServerTlsConfig::new().identity(identity);
    Some(if peer_port {
        config.client_ca_root(installed.ca.clone())
    } else {
        config
    })
}

/// The client side: trust the cluster's CA, present the process's certificate (if any).
pub fn client_config() -> Option<ClientTlsConfig> {
    let installed = TLS.get()?;
    let config = ClientTlsConfig::new().ca_certificate(installed.ca.clone());
    Some(match installed.identity.clone() {
        Some(identity) => config.identity(identity),
        None => config,
    })
}

/// Where [`generate_dev_pki`] put its files.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The CA certificate, for clients (`--ca-cert`).
    pub ca: PathBuf,
    /// The CA's key (to sign more certificates by hand).
    pub ca_key: PathBuf,
    /// The certificate every role serves and presents to peers.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

impl DevPki {
    /// The `[tls]` settings that use these files.
    pub fn config(&self) -> TlsConfig {
        TlsConfig {
            enabled: true,
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
        }
    }
}

/// A CA and one certificate for `hosts` (DNS names or IPs) under `dir` (`ca.pem`, `ca.key`,
/// `node.pem`, `node.key`), kept if they exist: what `quiver dev --secure` runs with. Not for
/// production: the chart takes certificates from Secrets (cert-manager).
pub fn generate_dev_pki(dir: &Path, hosts: &[&str]) -> anyhow::Result<DevPki> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let pki = DevPki {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        cert: dir.join("node.pem"),
        key: dir.join("node.key"),
    };
    if [&pki.ca, &pki.ca_key, &pki.cert, &pki.key]
        .iter()
        .all(|p| p.exists())
    {
        return Ok(pki);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Quiver dev CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let node_key = KeyPair::generate()?;
    let mut node_params =
        CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    node_params
        .distinguished_name
        .push(DnType::CommonName, "quiver dev");
    node_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let issuer = Issuer::new(ca_params, ca_key);
    let node_cert = node_params.signed_by(&node_key, &issuer)?;
    write_private(&pki.ca, &ca_cert.pem())?;
    write_private(&pki.ca_key, &issuer.key().serialize_pem())?;
    write_private(&pki.cert, &node_cert.pem())?;
    write_private(&pki.key, &node_key.serialize_pem())?;
    Ok(pki)
}

/// Writes `text` readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_pki_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate_dev_pki(dir.path(), &["localhost", "127.0.0.1"]).unwrap();
        let ca = std::fs::read_to_string(&pki.ca).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(std::fs::read_to_string(&pki.key)
            .unwrap()
            .contains("PRIVATE KEY"));
        let again = generate_dev_pki(dir.path(), &["localhost"]).unwrap();
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
    }
}
