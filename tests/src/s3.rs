//! A real S3 server for tests: moto (from the pinned Python environment) on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failed step should fail loudly

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto's S3 server, killed on drop.
pub struct S3Server(Child);

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request to `address` without a body; the status code.
pub fn http(address: &str, method: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

/// Starts `moto_server` from the Python environment's `bin` on `address`, once it answers.
pub fn start_s3(bin: &Path, address: &str) -> S3Server {
    let (host, port) = address.split_once(':').unwrap();
    let child = Command::new(bin.join("moto_server"))
        .args(["-H", host, "-p", port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = S3Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(address, "GET", "/").is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}
