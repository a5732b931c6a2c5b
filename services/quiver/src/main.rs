//! `quiver`: one binary for every role's server, the all-in-one `quiver dev`, and the CLI. The
//! client pieces the load generators (`quiver-bench`) share with it are its library (`lib.rs`).

mod cli;
mod commands;
mod config;
mod pages;
mod roles;

use clap::Parser;

/// mimalloc: glibc malloc/free took ~20% of the CPU of a GetFeatures request (perf, see
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    exit_quietly_on_closed_stdout();
    let cli = cli::Cli::parse();
    // Every thread of the runtime may read or write the online store.
    quiver_online_store::storage::without_perf_counters();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(quiver_online_store::storage::without_perf_counters)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `quiver list | head` closes stdout early; `println!` then panics. Treat that like other CLI
/// tools do (a quiet exit) instead of printing a panic; every other panic keeps the default hook.
fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") {
            std::process::exit(141);
        }
        default(info);
    }));
}
