//! The subcommands.

pub mod apply;
mod cluster;
mod event_files;
mod event_input;
mod get;
mod kafka_progress;
mod lineage;
mod load;
mod objects;
mod parquet_sink;
pub mod push;
pub mod snapshot;
mod token;
mod view_states;
mod watch;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::roles;

/// Runs one command; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Servers carry the cluster-internal credential instead (roles.rs).
    if !matches!(cli.command, Command::Dev(_) | Command::Serve(_)) {
        if let Some(token) = &cli.token {
            quiver_common::client_channel::set_credential(token)?;
        }
        if let Some(ca) = &cli.ca_cert {
            quiver_common::tls::install_client_ca(ca)?;
        }
    }
    match cli.command {
        Command::Dev(args) => roles::dev(args).await?,
        Command::Serve(args) => roles::serve(args).await?,
        Command::Apply(args) => return apply::run(args).await,
        Command::List(args) => objects::list(args).await?,
        Command::Describe(args) => objects::describe(args).await?,
        Command::Lineage(args) => lineage::run(args).await?,
        Command::Watch(args) => watch::run(args).await?,
        Command::Get(args) => get::run(args).await?,
        Command::Cluster(args) => cluster::run(args).await?,
        Command::Push(args) => push::run(args).await?,
        Command::Load(args) => load::run(args).await?,
        Command::Snapshot(args) => snapshot::run(args).await?,
        Command::Token(args) => token::run(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}
