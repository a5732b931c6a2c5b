//! A fixed one-way delay on real TCP connections, for kernels without the `netem` qdisc (this
//! machine's): a proxy on the test's bridge that forwards each connection to its target and
//! holds every chunk it reads for the delay before writing it on, in order, both ways. The
//! fault harness steers a host's new connections to a port through it with an nftables DNAT
//! rule (`netns::Network::delay_port`). Throughput is not limited: chunks in flight overlap.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// A running proxy; stops accepting when dropped (connections it carries end with their ends).
pub struct DelayProxy {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on `listen` (port chosen by the system) and forwards to `target`, each way
    /// `delay` later.
    pub fn start(listen: Ipv4Addr, target: SocketAddr, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind((listen, 0))?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for inbound in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(inbound) = inbound else { continue };
                // A target that cannot be reached: the caller sees its connection close.
                let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(2))
                else {
                    continue;
                };
                for stream in [&inbound, &outbound] {
                    let _ = stream.set_nodelay(true);
                }
                if let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) {
                    pipe(inbound, b, delay);
                    pipe(outbound, a, delay);
                }
            }
        });
        Ok(Self { address, stop })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(200));
    }
}

/// Copies `from` to `to`, every chunk `delay` after it was read; closes `to`'s sending side
/// when `from` ends.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            if chunks
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    thread::spawn(move || {
        for (at, bytes) in due {
            thread::sleep(at.saturating_duration_since(Instant::now()));
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives_in_order_each_way_a_delay_later() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = server.accept().unwrap();
            let mut buffer = vec![0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buffer) {
                stream.write_all(&buffer[..n]).unwrap();
            }
        });
        let delay = Duration::from_millis(40);
        let proxy = DelayProxy::start(Ipv4Addr::LOCALHOST, target, delay).unwrap();
        let mut client = TcpStream::connect(proxy.address()).unwrap();
        client.set_nodelay(true).unwrap();
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let started = Instant::now();
        let writer = {
            let mut client = client.try_clone().unwrap();
            let sent = sent.clone();
            thread::spawn(move || client.write_all(&sent).unwrap())
        };
        let mut echoed = vec![0u8; sent.len()];
        client.read_exact(&mut echoed).unwrap();
        writer.join().unwrap();
        let round_trip = started.elapsed();
        assert_eq!(echoed, sent);
        assert!(round_trip >= 2 * delay, "round trip {round_trip:?}");
        assert!(
            round_trip < 2 * delay + Duration::from_secs(2),
            "round trip {round_trip:?}"
        );
    }
}
