//! Running servers: one role (`quiver serve`) or all of them (`quiver dev`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use quiver_common::http_endpoint::serve_http;
use quiver_common::telemetry;
use quiver_common::{load_config, Shutdown};
use quiver_proto::online::{InitializeRequest, Member};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::addresses::Addresses;
use crate::cli::{DevArgs, Role, ServeArgs};
use crate::config::QuiverConfig;

/// `quiver serve <role>`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config: QuiverConfig = load_config(args.config.as_deref())?;
    let role_name = clap::ValueEnum::to_possible_value(&args.role)
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| "quiver".into());
    let telemetry = telemetry::init(&config.log, &format!("quiver-{role_name}"));
    let shutdown = Shutdown::new().on_signals();
    let grpc = bind(config.grpc.listen, "grpc").await?;
    let http = bind(config.http.listen, "http").await?;
    let http_task = tokio::spawn(serve_http(http, shutdown.clone()));
    let result = match args.role {
        Role::Registry => {
            quiver_registry::serve(&config.registry, &config.grpc, grpc, shutdown.clone()).await
        }
        Role::OnlineStore => {
            quiver_online_store::serve(
                &config.online_store,
                &config.grpc,
                &config.endpoints.registry,
                grpc,
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

/// `quiver dev`: every role that exists, in one process, state under one directory.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    // Defaults, tunable with `QUIVER__…` variables; addresses and directories are set below.
    let mut config: QuiverConfig = load_config(None)?;
    let telemetry = telemetry::init(&config.log, "quiver-dev");
    let port = |offset: u16| -> anyhow::Result<SocketAddr> {
        let port = args
            .port_base
            .checked_add(offset)
            .context("--port-base is too high: it needs six consecutive ports")?;
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
    config.endpoints.registry = addresses.registry.clone();
    config.endpoints.online_store = addresses.online.clone();
    config.endpoints.compute = port(2)?.to_string();
    config.endpoints.ingest = addresses.ingest.clone();

    let shutdown = Shutdown::new().on_signals();
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
    let (online, grpc, stop) = (
        config.online_store.clone(),
        config.grpc.clone(),
        shutdown.clone(),
    );
    let registry_address = addresses.registry.clone();
    roles.push((
        "online-store",
        tokio::spawn(async move {
            quiver_online_store::serve(&online, &grpc, &registry_address, listener, stop).await
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
    if !args.apply.is_empty() {
        match crate::commands::apply::apply_paths(&args.apply, false, &addresses).await {
            Err(e) => eprintln!(
                "quiver dev: applying {} failed: {e:#}",
                show_paths(&args.apply)
            ),
            Ok(_) if args.demo_rate > 0 && applies_examples(&args.apply) => {
                tokio::spawn(crate::demo::run(addresses.ingest.clone(), args.demo_rate));
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
        }],
    };
    let mut last_error = String::new();
    for _ in 0..50 {
        match crate::addresses::admin_client(address).await {
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
