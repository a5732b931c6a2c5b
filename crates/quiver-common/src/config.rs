//! Typed configuration: defaults <- TOML file <- `QUIVER__SECTION__KEY` environment variables.
//!
//! Each process composes its own config struct from the sections here and the sections of the
//! services it runs, then calls [`load_config`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Loads `T` from its defaults, then `file` (if given), then the environment. Unknown keys
/// are errors, so a typo never silently falls back to a default.
pub fn load_config<T>(file: Option<&Path>) -> anyhow::Result<T>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        anyhow::ensure!(
            file.exists(),
            "config file {} does not exist",
            file.display()
        );
        // Read here, not by figment: its `Toml::file` treats anything but a regular file (a
        // directory, a pipe such as `--config <(...)`) as absent, silently.
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", file.display()))?;
        figment = figment.merge(Toml::string(&text));
    }
    let config = figment
        .merge(Env::prefixed("QUIVER__").split("__"))
        .extract()
        .map_err(|e| match file {
            Some(file) => anyhow::anyhow!("invalid configuration ({}): {e}", file.display()),
            None => anyhow::anyhow!("invalid configuration: {e}"),
        })?;
    Ok(config)
}

/// The gRPC server of a process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The deadline of a unary request (and of the response headers of a stream).
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Requests served at once by the process; more wait their turn (within the timeout).
    pub concurrency_limit: usize,
    /// How long a shutdown waits for in-flight requests before stopping anyway.
    #[serde(with = "duration_text")]
    pub shutdown_grace: Duration,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 7070)),
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The HTTP endpoint of a process (`/metrics`, `/healthz`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
        }
    }
}

/// How a process reaches the other roles (`[endpoints]`), as host:port or http:// URLs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoints {
    /// The registry.
    pub registry: String,
    /// The ingest service.
    pub ingest: String,
    /// The compute service.
    pub compute: String,
    /// The online store: any node, or several separated by commas (writes follow the leader
    /// hint; a node that is down passes the call to the next one listed).
    pub online_store: String,
    /// The offline snapshot service.
    pub offline: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            registry: "127.0.0.1:7070".into(),
            ingest: "127.0.0.1:7071".into(),
            compute: "127.0.0.1:7072".into(),
            online_store: "127.0.0.1:7073".into(),
            offline: "127.0.0.1:7074".into(),
        }
    }
}

/// Who may call what (`[auth]`, docs/security.md).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a credential on every RPC but health: client RPCs a token with the RPC's role
    /// and project, peer ports and cluster-internal RPCs the internal token.
    pub enabled: bool,
    /// The cluster-internal credential: a random secret of at least 32 characters shared by
    /// every Quiver process of the cluster (set it through `QUIVER__AUTH__INTERNAL_TOKEN`, from
    /// a Secret). It may call everything; it also bootstraps the first admin token.
    pub internal_token: String,
    /// How often a process reloads the token table from the registry: a new or revoked token
    /// takes effect everywhere within about this long.
    #[serde(with = "duration_text")]
    pub refresh_interval: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            internal_token: String::new(),
            refresh_interval: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("internal_token", &"<redacted>")
            .field("refresh_interval", &self.refresh_interval)
            .finish()
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `quiver_registry=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Serde for durations written as `30s`, `15m`, `1h`.
pub mod duration_text {
    use std::time::Duration;

    use quiver_core::duration::{format_duration, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `30s`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    /// Reads `30s`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct TestConfig {
        grpc: GrpcConfig,
        log: LogConfig,
    }

    // figment's Jail API fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(
            &file,
            "[grpc]\nlisten = \"127.0.0.1:1234\"\nrequest_timeout = \"5s\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("QUIVER__LOG__LEVEL", "debug");
            let config: TestConfig = load_config(Some(&file)).unwrap();
            assert_eq!(config.grpc.listen.port(), 1234);
            assert_eq!(config.grpc.request_timeout, Duration::from_secs(5));
            assert_eq!(config.grpc.concurrency_limit, 1024);
            assert_eq!(config.log.level, "debug");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "[grpc]\nlisen = \"127.0.0.1:1\"\n").unwrap();
        let err = load_config::<TestConfig>(Some(&typo))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[grpc]\nrequest_timeout = \"soon\"\n").unwrap();
        let err = load_config::<TestConfig>(Some(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
    }

    /// A directory is an error, and a pipe (`--config <(...)`) is read: figment alone took
    /// both for an absent file and started on the defaults.
    #[test]
    fn a_config_that_is_not_a_regular_file_is_read_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_config::<TestConfig>(Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read config file"), "{err}");
        let fifo = dir.path().join("config.pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                std::fs::write(fifo, "[grpc]\nlisten = \"127.0.0.1:4321\"\n").unwrap()
            })
        };
        let config: TestConfig = load_config(Some(&fifo)).unwrap();
        writer.join().unwrap();
        assert_eq!(config.grpc.listen.port(), 4321);
    }
}
