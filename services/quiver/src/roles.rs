//! Running servers: one role (`quiver serve`) or all of them (`quiver dev`).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use quiver_common::http_endpoint::serve_http;
use quiver_common::telemetry::init_logging;
use quiver_common::{load_config, Shutdown};
use tokio::net::TcpListener;

use crate::cli::{DevArgs, Role, ServeArgs};
use crate::config::QuiverConfig;

/// `quiver serve <role>`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config: QuiverConfig = load_config(args.config.as_deref())?;
    init_logging(&config.log);
    let shutdown = Shutdown::new().on_signals();
    let grpc = bind(config.grpc.listen, "grpc").await?;
    let http = bind(config.http.listen, "http").await?;
    let http_task = tokio::spawn(serve_http(http, shutdown.clone()));
    let result = match args.role {
        Role::Registry => {
            quiver_registry::serve(&config.registry, &config.grpc, grpc, shutdown.clone()).await
        }
        other => Err(not_built(other)),
    };
    shutdown.trigger();
    let _ = http_task.await;
    result
}

/// `quiver dev`: every role that exists, in one process, state under one directory.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let mut config = QuiverConfig::default();
    init_logging(&config.log);
    let port = |offset: u16| -> anyhow::Result<SocketAddr> {
        let port = args
            .port_base
            .checked_add(offset)
            .context("--port-base is too high: it needs six consecutive ports")?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    };
    config.grpc.listen = port(0)?;
    config.http.listen = port(5)?;
    config.registry.data_dir = args.data_dir.join("registry");
    std::fs::create_dir_all(&config.registry.data_dir)
        .with_context(|| format!("cannot create {}", config.registry.data_dir.display()))?;

    let shutdown = Shutdown::new().on_signals();
    let registry_listener = bind(config.grpc.listen, "registry").await?;
    let http = bind(config.http.listen, "http").await?;
    let http_task = tokio::spawn(serve_http(http, shutdown.clone()));
    let registry_config = config.registry.clone();
    let grpc = config.grpc.clone();
    let registry_shutdown = shutdown.clone();
    let registry = tokio::spawn(async move {
        quiver_registry::serve(
            &registry_config,
            &grpc,
            registry_listener,
            registry_shutdown,
        )
        .await
    });

    print_endpoints(&args, &config);
    if !args.apply.is_empty() {
        let addresses = crate::addresses::Addresses {
            registry: config.grpc.listen.to_string(),
            ingest: port(1)?.to_string(),
            online: port(3)?.to_string(),
            offline: port(4)?.to_string(),
        };
        if let Err(e) = crate::commands::apply::apply_paths(&args.apply, false, &addresses).await {
            eprintln!(
                "quiver dev: applying {} failed: {e:#}",
                show_paths(&args.apply)
            );
        }
    }
    println!("Ready. Press ctrl-c to stop.");
    let result = registry.await.context("registry task panicked")?;
    shutdown.trigger();
    let _ = http_task.await;
    result
}

fn print_endpoints(args: &DevArgs, config: &QuiverConfig) {
    let base = args.port_base;
    println!("Quiver dev: state under {}", args.data_dir.display());
    println!("  {:<14} {:<22} status", "role", "address");
    println!("  {:<14} {:<22} running", "registry", config.grpc.listen);
    for (role, offset) in [
        ("ingest", 1),
        ("compute", 2),
        ("online-store", 3),
        ("offline", 4),
    ] {
        println!(
            "  {:<14} 127.0.0.1:{:<12} not built yet",
            role,
            base.saturating_add(offset)
        );
    }
    println!(
        "  {:<14} http://{}/metrics  /healthz",
        "http", config.http.listen
    );
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

fn not_built(role: Role) -> anyhow::Error {
    anyhow::anyhow!(
        "the {role:?} role is not built yet; only `registry` can be served in this version"
    )
}
