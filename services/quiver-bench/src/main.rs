//! `quiver-bench`: the load generators of Quiver's benchmarks (docs/benchmarks.md) and the
//! baselines they are compared with in the same run (a bare tonic lookup server). A client of the
//! services like the `quiver` CLI, whose client pieces (addresses, producer, snapshot exchange)
//! it shares through the `quiver` library; the product binary ships none of this.

mod backfill;
mod bare_consumer;
mod cli;
mod definitions;
mod kafka;
mod online;
mod peer_server;
mod push;
mod snapshot;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{BenchCommand, Cli};

/// The same allocator as the servers, so the load generator's share of the CPU is what it was
/// when it lived in the `quiver` binary, and the peer server allocates like Quiver does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one benchmark.
async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(token) = &cli.token {
        quiver_common::client_channel::set_credential(token)?;
    }
    if let Some(ca) = &cli.ca_cert {
        quiver_common::tls::install_client_ca(ca)?;
    }
    let addresses = &cli.addresses;
    match cli.command {
        BenchCommand::Write(args) => online::write(addresses, args).await,
        BenchCommand::Get(args) => online::get(addresses, args).await,
        BenchCommand::PeerServer(args) => peer_server::run(args).await,
        BenchCommand::Push(shape) => push::run(addresses, shape).await.map(|_| ()),
        BenchCommand::Backfill(shape) => backfill::run(addresses, shape).await,
        BenchCommand::Kafka(shape) => kafka::run(addresses, shape).await,
        BenchCommand::Snapshot(shape) => snapshot::run(addresses, shape).await,
    }
}
