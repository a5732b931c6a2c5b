//! Running servers: one role (`quiver serve`) or all of them (`quiver dev`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use quiver::addresses::Addresses;
use quiver_common::auth::token_cache::Authenticator;
use quiver_common::auth::TokenCache;
use quiver_common::client_channel::set_credential;
use quiver_common::http_endpoint::serve_http;
use quiver_common::telemetry;
use quiver_common::{load_config, AuthConfig, Shutdown};
use quiver_proto::online::{InitializeRequest, Member};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cli::{DevArgs, Role, ServeArgs};
use crate::config::QuiverConfig;

/// `quiver serve <role>`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config: QuiverConfig = load_config(args.config.as_deref())?;
    let role_name = clap::ValueEnum::to_possible_value(&args.role)
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| "quiver".into());
    let telemetry = telemetry::init(&config.log, &format!("quiver-{role_name}"));
    crate::pages::prefer_small_pages();
    quiver_common::tls::install(&config.tls)?;
    let shutdown = Shutdown::new().on_signals();
    let grpc = bind(config.grpc.listen, "grpc").await?;
    let http = bind(config.http.listen, "http").await?;
    // The registry reads its own token table from its store; the others poll the registry.
    let registry = match args.role {
        Role::Registry => None,
        _ => Some(config.endpoints.registry.clone()),
    };
    enable_auth(&config.auth, registry, &shutdown)?;
    let http_task = tokio::spawn(serve_http(http, shutdown.clone()));
    let result = match args.role {
        Role::Registry => {
            quiver_registry::serve(&config.registry, &config.grpc, grpc, shutdown.clone()).await
        }
        Role::OnlineStore => {
            let peer = bind(config.online_store.peer_listen, "the peer port").await?;
            quiver_online_store::serve(
                &config.online_store,
                &config.grpc,
                &config.endpoints.registry,
                grpc,
                peer,
                shutdown.clone(),
            )
            .await
        }
        Role::Ingest => {
            quiver_ingest::serve(
                &config.ingest,
                &config.grpc,
                &config.endpoints.registry,
                &config.endpoints.compute,
                grpc,
                shutdown.clone(),
            )
            .await
        }
        Role::Compute => {
            quiver_compute::serve(
                &config.compute,
                &config.grpc,
                &config.endpoints.registry,
                &config.endpoints.online_store,
                grpc,
                shutdown.clone(),
            )
            .await
        }
        Role::Offline => {
            quiver_offline::serve(
                &config.offline,
                &config.grpc,
                &config.endpoints.registry,
                grpc,
                shutdown.clone(),
            )
            .await
        }
    };
    shutdown.trigger();
    let _ = http_task.await;
    telemetry.shutdown();
    result
}

/// With `[auth] enabled`: this process sends the cluster-internal credential on every call to
/// another Quiver process, and its servers check credentials against a token table that
/// follows the registry at `registry` (`None`: the registry runs in this process and feeds the
/// table from its store).
fn enable_auth(
    auth: &AuthConfig,
    registry: Option<String>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    if !auth.enabled {
        return Ok(());
    }
    let tokens = TokenCache::default();
    let authenticator = Authenticator::new(&auth.internal_token, tokens.clone())?
        .with_refresh_interval(auth.refresh_interval);
    set_credential(&auth.internal_token)?;
    if let Some(registry) = &registry {
        tokens.follow_registry(registry.clone(), auth.refresh_interval, shutdown.clone());
    }
    quiver_common::auth::install(authenticator);
    tracing::info!(registry = ?registry, refresh = ?auth.refresh_interval, "auth on: tokens checked on every client RPC");
    Ok(())
}

/// `quiver dev --secure`: an admin token for the person at the keyboard, made by this process
/// (whose credential is the internal one) once the registry answers; reused from
/// `<data-dir>/admin.token` when that token is still valid.
async fn dev_admin_token(data_dir: &Path, registry: &str) -> anyhow::Result<(String, PathBuf)> {
    use quiver_proto::auth::token_service_client::TokenServiceClient;
    use quiver_proto::auth::{CreateTokenRequest, ListTokensRequest};
    let path = data_dir.join("admin.token");
    let mut last_error = String::new();
    for _ in 0..100 {
        let client = quiver::addresses::connect(registry, "registry").await;
        let mut client = match client {
            Ok(channel) => TokenServiceClient::new(channel),
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim().to_string();
            let id = existing.split_once('.').map(|(id, _)| id.to_string());
            if let (Some(id), Ok(list)) = (id, client.list(ListTokensRequest {}).await) {
                if list
                    .get_ref()
                    .tokens
                    .iter()
                    .any(|t| t.id == id && !t.revoked)
                {
                    return Ok((existing, path));
                }
            }
        }
        match client
            .create(CreateTokenRequest {
                role: "admin".into(),
                projects: Vec::new(),
                ttl_seconds: 0,
                description: "quiver dev --secure".into(),
            })
            .await
        {
            Ok(created) => {
                let token = created.into_inner().token;
                write_secret(&path, &token)?;
                return Ok((token, path));
            }
            Err(status) => last_error = status.message().to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("could not create the dev admin token: {last_error}")
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(())
}

/// `quiver dev`: every role that exists, in one process, state under one directory.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    // Defaults, tunable with `QUIVER__…` variables; addresses and directories are set below.
    let mut config: QuiverConfig = load_config(None)?;
    let telemetry = telemetry::init(&config.log, "quiver-dev");
    crate::pages::prefer_small_pages();
    let port = |offset: u16| -> anyhow::Result<SocketAddr> {
        let port = args
            .port_base
            .checked_add(offset)
            .context("--port-base is too high: it needs seven consecutive ports")?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let addresses = Addresses {
        registry: port(0)?.to_string(),
        ingest: port(1)?.to_string(),
        online: port(3)?.to_string(),
        offline: port(4)?.to_string(),
    };
    config.http.listen = port(5)?;
    config.registry.data_dir = args.data_dir.join("registry");
    config.online_store.data_dir = args.data_dir.join("online-store");
    // The offline store: local files under the data dir, written by the online store's
    // exporter and read by the snapshot service.
    config.offline.store = args.data_dir.join("offline").display().to_string();
    config.online_store.offline_store = config.offline.store.clone();
    config.online_store.node_id = 1;
    config.online_store.advertise = addresses.online.clone();
    config.online_store.peer_listen = port(6)?;
    config.online_store.peer_advertise = port(6)?.to_string();
    config.endpoints.registry = addresses.registry.clone();
    config.endpoints.online_store = addresses.online.clone();
    config.endpoints.compute = port(2)?.to_string();
    config.endpoints.ingest = addresses.ingest.clone();

    let shutdown = Shutdown::new().on_signals();
    if args.secure {
        config.auth.enabled = true;
        if config.auth.internal_token.is_empty() {
            config.auth.internal_token = quiver_common::auth::token::random_secret()?;
        }
        if !config.tls.enabled {
            let pki = quiver_common::tls::generate_dev_pki(
                &args.data_dir.join("tls"),
                &["127.0.0.1", "localhost"],
            )?;
            config.tls = pki.config();
        }
    }
    quiver_common::tls::install(&config.tls)?;
    // The registry role of this process feeds the token table.
    enable_auth(&config.auth, None, &shutdown)?;
    let http = bind(config.http.listen, "http").await?;
    let http_task = tokio::spawn(serve_http(http, shutdown.clone()));
    let mut roles: Vec<(&str, JoinHandle<anyhow::Result<()>>)> = Vec::new();

    let listener = bind(port(0)?, "registry").await?;
    let (registry, grpc, stop) = (
        config.registry.clone(),
        config.grpc.clone(),
        shutdown.clone(),
    );
    roles.push((
        "registry",
        tokio::spawn(async move { quiver_registry::serve(&registry, &grpc, listener, stop).await }),
    ));

    let listener = bind(port(3)?, "online-store").await?;
    let peer_listener = bind(port(6)?, "online-store peer port").await?;
    let (online, grpc, stop) = (
        config.online_store.clone(),
        config.grpc.clone(),
        shutdown.clone(),
    );
    let registry_address = addresses.registry.clone();
    roles.push((
        "online-store",
        tokio::spawn(async move {
            quiver_online_store::serve(
                &online,
                &grpc,
                &registry_address,
                listener,
                peer_listener,
                stop,
            )
            .await
        }),
    ));
    initialize_single_node(&addresses.online).await?;

    let listener = bind(port(2)?, "compute").await?;
    let (compute, grpc, endpoints, stop) = (
        config.compute.clone(),
        config.grpc.clone(),
        config.endpoints.clone(),
        shutdown.clone(),
    );
    roles.push((
        "compute",
        tokio::spawn(async move {
            quiver_compute::serve(
                &compute,
                &grpc,
                &endpoints.registry,
                &endpoints.online_store,
                listener,
                stop,
            )
            .await
        }),
    ));
    let listener = bind(port(1)?, "ingest").await?;
    let (ingest, grpc, endpoints, stop) = (
        config.ingest.clone(),
        config.grpc.clone(),
        config.endpoints.clone(),
        shutdown.clone(),
    );
    roles.push((
        "ingest",
        tokio::spawn(async move {
            quiver_ingest::serve(
                &ingest,
                &grpc,
                &endpoints.registry,
                &endpoints.compute,
                listener,
                stop,
            )
            .await
        }),
    ));

    let listener = bind(port(4)?, "offline").await?;
    let (offline, grpc, endpoints, stop) = (
        config.offline.clone(),
        config.grpc.clone(),
        config.endpoints.clone(),
        shutdown.clone(),
    );
    roles.push((
        "offline",
        tokio::spawn(async move {
            quiver_offline::serve(&offline, &grpc, &endpoints.registry, listener, stop).await
        }),
    ));

    print_endpoints(&args, &config);
    if config.auth.enabled {
        std::fs::create_dir_all(&args.data_dir)?;
        let (token, path) = dev_admin_token(&args.data_dir, &addresses.registry).await?;
        println!(
            "Auth is on: every client RPC needs a token. An admin token (also in {}):",
            path.display()
        );
        println!("  {token}");
        println!("  export QUIVER_TOKEN=$(cat {})", path.display());
        println!("  quiver token create --role reader --project fraud   # a narrower one");
    }
    if config.tls.enabled {
        println!(
            "TLS is on (peers: mutual TLS). Clients trust the CA {}:",
            config.tls.ca.display()
        );
        println!("  export QUIVER_CA_CERT={}", config.tls.ca.display());
        println!(
            "  (Python clients: dial localhost:PORT; gRPC's C core sends an IP as the TLS name)"
        );
    }
    if !args.apply.is_empty() {
        match crate::commands::apply::apply_paths(&args.apply, false, &addresses).await {
            Err(e) => eprintln!(
                "quiver dev: applying {} failed: {e:#}",
                show_paths(&args.apply)
            ),
            Ok(_) if args.demo_rate > 0 && applies_examples(&args.apply) => {
                tokio::spawn(quiver::demo::run(addresses.ingest.clone(), args.demo_rate));
            }
            Ok(_) => {}
        }
    }
    println!("Ready. Press ctrl-c to stop.");
    // The first role to stop (or fail) stops them all.
    let result = wait_for_roles(roles, &shutdown).await;
    let _ = http_task.await;
    telemetry.shutdown();
    result
}

/// Waits for every role; the first to stop (or fail) stops the others. Returns the first error.
async fn wait_for_roles(
    roles: Vec<(&str, JoinHandle<anyhow::Result<()>>)>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let (names, handles): (Vec<_>, Vec<_>) = roles.into_iter().unzip();
    let mut first: anyhow::Result<()> = Ok(());
    let mut pending = handles;
    while !pending.is_empty() {
        let (result, index, rest) = futures::future::select_all(pending).await;
        let outcome = result
            .with_context(|| format!("{} panicked", names.get(index).copied().unwrap_or("a role")))
            .and_then(|r| {
                r.with_context(|| {
                    format!("{} failed", names.get(index).copied().unwrap_or("a role"))
                })
            });
        shutdown.trigger();
        if first.is_ok() {
            first = outcome;
        }
        pending = rest;
    }
    first
}

/// Makes the dev node a one-voter cluster (a no-op once it is one).
async fn initialize_single_node(address: &str) -> anyhow::Result<()> {
    let request = InitializeRequest {
        members: vec![Member {
            node_id: 1,
            address: address.to_string(),
            peer_address: String::new(),
            store_id: String::new(),
        }],
    };
    let mut last_error = String::new();
    for _ in 0..50 {
        match quiver::addresses::admin_client(address).await {
            Ok(mut client) => match client.initialize(request.clone()).await {
                Ok(_) => return Ok(()),
                Err(status) => last_error = status.message().to_string(),
            },
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("could not initialise the dev online store at {address}: {last_error}")
}

fn print_endpoints(args: &DevArgs, config: &QuiverConfig) {
    let base = args.port_base;
    println!("Quiver dev: state under {}", args.data_dir.display());
    println!("  {:<14} {:<22} status", "role", "address");
    for (role, offset, status) in [
        ("registry", 0, "running"),
        ("ingest", 1, "running"),
        ("compute", 2, "running"),
        ("online-store", 3, "running (single-node Raft group)"),
        ("offline", 4, "running (Arrow Flight snapshots)"),
        ("peer", 6, "online-store peer port (Raft; not for clients)"),
    ] {
        println!(
            "  {:<14} 127.0.0.1:{:<12} {status}",
            role,
            base.saturating_add(offset)
        );
    }
    println!(
        "  {:<14} http://{}/metrics  /healthz",
        "http", config.http.listen
    );
}

/// Whether `paths` include the example definitions the demo stream is made for.
fn applies_examples(paths: &[impl AsRef<Path>]) -> bool {
    paths.iter().any(|p| {
        let p = p.as_ref();
        p.ends_with("examples") || p.ends_with("fraud.yaml")
    })
}

fn show_paths(paths: &[impl AsRef<Path>]) -> String {
    paths
        .iter()
        .map(|p| p.as_ref().display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {address} for {what} (is another quiver running?)")
    })
}
