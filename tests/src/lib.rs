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

/// The JSON object a `quiver ... --output json` printed, asserting the command succeeded
/// (`what` names it in the failure, with both output streams).
pub fn json_output(output: std::process::Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what}: not one JSON object ({e}): {stdout}"))
}

/// A free loopback address. The port is released before returning, so another process could
/// take it first; tests accept that small race rather than pass sockets across exec.
pub fn free_address() -> SocketAddr {
    free_address_on(std::net::Ipv4Addr::LOCALHOST)
}

/// A free port on a local address `ip` (see [`free_address`]).
pub fn free_address_on(ip: std::net::Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, free_ports(ip, 1)))
}

/// The first of `count` consecutive free loopback ports (released before returning, like
/// [`free_address`]'s).
pub fn free_port_block(count: u16) -> u16 {
    free_ports(std::net::Ipv4Addr::LOCALHOST, count)
}

/// Where test ports come from: below the kernel's ephemeral range (32768-60999 by default).
/// A port bound as port 0 lies in that range, and once released, any outgoing connection on
/// the machine may be given it as its local port before the server the test starts binds it;
/// a role then failed to start and its test timed out waiting.
const TEST_PORTS: std::ops::Range<u16> = 10_000..30_000;

/// The first of `count` consecutive ports of [`TEST_PORTS`] free on `ip`. Ports are handed out
/// in turn from a start that differs per process, so parallel tests of one binary never get
/// the same port and binaries run one after another rarely meet.
fn free_ports(ip: std::net::Ipv4Addr, count: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: OnceLock<u32> = OnceLock::new();
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (nanos ^ std::process::id().wrapping_mul(7_919)) % span
    });
    let count = count.max(1);
    for _ in 0..span / u32::from(count) {
        let offset = (start + NEXT.fetch_add(u32::from(count), Ordering::Relaxed)) % span;
        let Some(first) = u16::try_from(offset)
            .ok()
            .map(|o| TEST_PORTS.start + o)
            .filter(|first| {
                first
                    .checked_add(count)
                    .is_some_and(|end| end <= TEST_PORTS.end)
            })
        else {
            continue;
        };
        let bound: Vec<TcpListener> = (0..count)
            .map_while(|i| TcpListener::bind((ip, first + i)).ok())
            .collect();
        if bound.len() == usize::from(count) {
            return first;
        }
    }
    panic!("no {count} consecutive free ports in {TEST_PORTS:?} on {ip}")
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

#[cfg(test)]
mod port_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn test_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let port = free_address().port();
            assert!(TEST_PORTS.contains(&port), "{port}");
            assert!(seen.insert(port), "{port} handed out twice");
        }
        let first = free_port_block(7);
        let held: Vec<TcpListener> = (0..7)
            .map(|i| TcpListener::bind(("127.0.0.1", first + i)).unwrap())
            .collect();
        assert_eq!(held.len(), 7);
        assert!((0..7).all(|i| !seen.contains(&(first + i))));
    }
}
