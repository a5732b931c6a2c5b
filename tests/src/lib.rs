//! Test harness for cross-service and process-level tests: starts real `quiver` processes on
//! `127.0.0.1` ports with their own temp dirs, waits for their gRPC health, scrapes their HTTP
//! endpoint, and kills them (SIGKILL on drop, SIGTERM on request).
//!
//! Tests that run the binary live in the crate that owns it (`services/quiver/tests`) because
//! only there does cargo provide its path (`CARGO_BIN_EXE_quiver`); they use this crate.

pub mod cluster;
pub mod delay_proxy;
pub mod flight;
pub mod kafka;
pub mod linearizability;
pub mod netns;
pub mod offline_stack;
pub mod s3;
pub mod stream;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A free loopback address. The port is released before returning, so another process could
/// take it first; tests accept that small race rather than pass sockets across exec.
pub fn free_address() -> SocketAddr {
    free_address_on(std::net::Ipv4Addr::LOCALHOST)
}

/// A free port on a local address `ip` (see [`free_address`]).
pub fn free_address_on(ip: std::net::Ipv4Addr) -> SocketAddr {
    // Binding port 0 on a local address only fails if the machine has no free ports at all.
    #[allow(clippy::expect_used)]
    let listener = TcpListener::bind((ip, 0)).expect("a free local port");
    #[allow(clippy::expect_used)]
    listener.local_addr().expect("a bound address")
}

/// A running `quiver` process, killed when dropped.
pub struct QuiverProcess {
    child: Child,
    /// Its stdout and stderr, for failure messages.
    pub log: PathBuf,
}

impl QuiverProcess {
    /// Starts `bin` with `args` and extra environment, logging to `log`.
    pub fn spawn(
        bin: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        Self::spawn_in(None, bin, args, env, log)
    }

    /// As [`QuiverProcess::spawn`], inside network namespace `namespace` if given (`nsenter`
    /// replaces itself with `bin`, so the process id is still `bin`'s).
    pub fn spawn_in(
        namespace: Option<&str>,
        bin: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log)?;
        let mut command = match namespace {
            Some(namespace) => {
                let mut command = Command::new("nsenter");
                command.arg(netns::nsenter_net(namespace)).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        let child = command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Self { child, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "process {} did not exit within {timeout:?} of SIGTERM",
                    self.pid()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process's exit status, if it has exited (without waiting).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Freezes the process (SIGSTOP), like a long GC pause or a hung machine.
    pub fn pause(&self) -> anyhow::Result<()> {
        signal(self.pid(), "-STOP")
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        signal(self.pid(), "-CONT")
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
    Ok(())
}

impl Drop for QuiverProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the gRPC server at `address` reports SERVING for `service` ("" = overall).
pub async fn wait_for_serving(
    address: SocketAddr,
    service: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?;
        match endpoint.connect().await {
            Ok(channel) => {
                let mut client = HealthClient::new(channel);
                let request = HealthCheckRequest {
                    service: service.to_string(),
                };
                match client.check(request).await {
                    Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
                    Ok(r) => last_error = format!("status {}", r.get_ref().status),
                    Err(e) => last_error = e.to_string(),
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{address} was not SERVING within {timeout:?}: {last_error}")
}

/// The gRPC health status of `service` ("" = overall) at `address`.
pub async fn health_status(address: SocketAddr, service: &str) -> anyhow::Result<ServingStatus> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?;
    let response = HealthClient::new(endpoint.connect().await?)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?;
    Ok(ServingStatus::try_from(response.get_ref().status)?)
}

/// A plain HTTP/1.0 GET; returns the status code and body.
pub fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    Ok((status, body.to_string()))
}
