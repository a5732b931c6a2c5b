//! Real network faults between processes on this machine: every host (node) gets its own Linux
//! network namespace, joined to a bridge in the test's namespace by a veth pair, with its own
//! address on a private /24. Faults are nftables rules inside a host's namespace, so they act on
//! real packets of real TCP connections:
//!
//! - a **cut** between two hosts drops every packet between them, both ways, silently (a
//!   partition; connections time out rather than fail fast, as across a real switch);
//! - **loss** drops a share of a host's packets at random;
//! - a **delay** holds every byte of the hosts' connections to a port for a fixed time, each
//!   way: this machine's kernel has no `netem` qdisc, so a DNAT rule steers those connections
//!   through a [`DelayProxy`] on the bridge (cuts still apply: they match before the DNAT).
//!
//! The test process stays on the bridge and reaches every host, like a client outside the
//! partition. Needs root, `ip` (iproute2) and `nft` (nftables); [`Network::create`] says which is
//! missing. Everything is removed on drop, and what a killed test left behind is removed by the
//! next one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failed step should fail loudly

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::delay_proxy::DelayProxy;

/// Set to `1` (CI does) to make a machine that cannot create namespaces fail the fault tests
/// instead of skipping them.
pub const REQUIRE_ENV: &str = "QUIVER_REQUIRE_NETNS";

/// Interface and namespace names start with this (and the creating process's id), so leftovers
/// of dead test processes can be found and removed.
const PREFIX: &str = "qv";

static CREATED: AtomicU32 = AtomicU32::new(0);

/// A bridge and the namespaces of the hosts on it.
pub struct Network {
    tag: String,
    subnet: [u8; 3],
    /// Per host: the process holding its namespace, and the namespace's path.
    hosts: BTreeMap<u64, (std::process::Child, String)>,
    cuts: BTreeSet<(u64, u64)>,
    /// The delayed port and its delay, a proxy per destination host, and the (from, to) pairs
    /// steered through it.
    delay: Option<(u16, Duration)>,
    proxies: BTreeMap<u64, DelayProxy>,
    delayed: BTreeSet<(u64, u64)>,
}

/// Why this machine cannot run namespace tests, if it cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY-free check: root is uid 0 in /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !root {
        return Some("network namespaces need root".into());
    }
    for tool in ["ip", "nft", "nsenter", "unshare"] {
        let found = Command::new(tool).arg("-V").output().is_ok();
        if !found {
            return Some(format!(
                "`{tool}` is not installed (apt-get install iproute2 nftables)"
            ));
        }
    }
    None
}

/// Whether a fault test should run: false (with a message) on a machine without namespaces,
/// unless [`REQUIRE_ENV`] says they are required, where it panics.
pub fn can_run(test: &str) -> bool {
    let Some(why) = unavailable() else {
        return true;
    };
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{test}: {why}, and {REQUIRE_ENV}=1 requires the fault tests to run");
    }
    eprintln!("SKIPPED {test}: {why} (set {REQUIRE_ENV}=1 to make this a failure)");
    false
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn nft(namespace: &str, script: &str) -> anyhow::Result<()> {
    in_namespace(namespace, "nft", &[script]).map(|_| ())
}

/// The `nsenter` argument that enters the network namespace at `namespace` (a path), and only
/// that. Namespaces here are held by a process (`unshare --net`), never named under
/// `/run/netns`: `ip netns` mounts there and `ip netns exec` remounts `/` in a mount namespace
/// of its own, which fails in a chroot (`mount --make-rslave /`) and leaves mounts behind.
pub fn nsenter_net(namespace: &str) -> String {
    format!("--net={namespace}")
}

fn in_namespace(namespace: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let net = nsenter_net(namespace);
    let mut all = vec![net.as_str(), program];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

/// Removes bridges left by test processes that no longer run.
fn remove_leftovers() {
    let alive = |tag: &str| {
        u32::from_str_radix(tag.get(..6).unwrap_or(""), 16)
            .map(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
            .unwrap_or(true)
    };
    // A dead test's namespace holders end by themselves (`sleep` with a bound).
    let links = run("ip", &["-o", "link", "show", "type", "bridge"]).unwrap_or_default();
    for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        if let Some(rest) = name.strip_prefix(PREFIX) {
            if !alive(rest) {
                let _ = run("ip", &["link", "delete", name]);
            }
        }
    }
}

impl Network {
    /// A new bridge on a free private /24, holding no hosts yet.
    pub fn create() -> anyhow::Result<Self> {
        if let Some(why) = unavailable() {
            bail!(why);
        }
        remove_leftovers();
        let pid = std::process::id() & 0xff_ffff;
        let serial = CREATED.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{pid:06x}{:x}", serial & 0xf);
        // A /24 in 10.64.0.0/10 derived from the tag; skip any already routed here.
        let mut subnet = [10, 64 + (pid % 64) as u8, (serial * 7 + pid / 64) as u8];
        for _ in 0..256 {
            let routed = run(
                "ip",
                &["route", "show", "to", "match", &Self::gateway_of(subnet)],
            )
            .unwrap_or_default();
            if !routed.contains(&format!("{}.{}.{}.0/24", subnet[0], subnet[1], subnet[2])) {
                break;
            }
            subnet[2] = subnet[2].wrapping_add(1);
        }
        let network = Self {
            tag,
            subnet,
            hosts: BTreeMap::new(),
            cuts: BTreeSet::new(),
            delay: None,
            proxies: BTreeMap::new(),
            delayed: BTreeSet::new(),
        };
        let bridge = network.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", network.gateway()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        Ok(network)
    }

    fn gateway_of(subnet: [u8; 3]) -> String {
        format!("{}.{}.{}.1", subnet[0], subnet[1], subnet[2])
    }

    fn bridge(&self) -> String {
        format!("{PREFIX}{}b", self.tag)
    }

    /// The test process's address on the bridge: servers it runs for the hosts (a registry)
    /// listen here.
    pub fn gateway(&self) -> Ipv4Addr {
        Self::gateway_of(self.subnet).parse().unwrap()
    }

    /// Host `id`'s address.
    pub fn ip(&self, id: u64) -> Ipv4Addr {
        Ipv4Addr::new(
            self.subnet[0],
            self.subnet[1],
            self.subnet[2],
            10 + id as u8,
        )
    }

    /// Host `id`'s network namespace (a path, for [`nsenter_net`]).
    pub fn namespace(&self, id: u64) -> &str {
        &self.hosts[&id].1
    }

    /// Adds host `id` (1..=200): a namespace with loopback, an address on the bridge and an
    /// empty fault table.
    pub fn add_host(&mut self, id: u64) -> anyhow::Result<Ipv4Addr> {
        anyhow::ensure!((1..=200).contains(&id), "host ids are 1..=200");
        let veth = format!("{PREFIX}{}h{id}", self.tag);
        // A process in a new network namespace holds it (at most two hours, should the test
        // die without dropping this).
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "7200"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .context("cannot run unshare")?;
        let pid = holder.id().to_string();
        let namespace = format!("/proc/{pid}/ns/net");
        self.hosts.insert(id, (holder, namespace.clone()));
        // Until unshare has run, the holder is still in ours.
        let ours = std::fs::read_link("/proc/self/ns/net")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_link(&namespace)
            .ok()
            .is_none_or(|ns| ns == ours)
        {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "unshare --net did not make a namespace"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pid,
            ],
        )?;
        run(
            "ip",
            &["link", "set", &veth, "master", &self.bridge(), "up"],
        )?;
        let ip = self.ip(id);
        let ns = |args: &[&str]| in_namespace(&namespace, "ip", args);
        ns(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns(&["link", "set", "eth0", "up"])?;
        ns(&["link", "set", "lo", "up"])?;
        nft(
            &namespace,
            "add table inet faults
             add set inet faults cut { type ipv4_addr; }
             add chain inet faults input { type filter hook input priority 0; }
             add chain inet faults output { type filter hook output priority -150; }
             add chain inet faults delay { type nat hook output priority -100; }
             add chain inet faults loss
             add rule inet faults input ip saddr @cut drop
             add rule inet faults output ip daddr @cut drop
             add rule inet faults input jump loss
             add rule inet faults output jump loss",
        )?;
        self.steer_delayed()?;
        Ok(ip)
    }

    /// From now on (for hosts added later too), every new connection between two hosts to
    /// `port` carries each byte `delay` late, each way. Set it before the hosts' processes
    /// connect: connections already open are not steered.
    pub fn delay_port(&mut self, port: u16, delay: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(self.delay.is_none(), "one delayed port per network");
        self.delay = Some((port, delay));
        self.steer_delayed()
    }

    /// Gives every host a delay proxy and steers every pair not steered yet through it.
    fn steer_delayed(&mut self) -> anyhow::Result<()> {
        let Some((port, delay)) = self.delay else {
            return Ok(());
        };
        let ids: Vec<u64> = self.hosts.keys().copied().collect();
        for &to in &ids {
            if !self.proxies.contains_key(&to) {
                let target = std::net::SocketAddr::from((self.ip(to), port));
                let proxy = DelayProxy::start(self.gateway(), target, delay)
                    .context("cannot start a delay proxy")?;
                self.proxies.insert(to, proxy);
            }
            for &from in ids.iter().filter(|from| **from != to) {
                if self.delayed.insert((from, to)) {
                    nft(
                        self.namespace(from),
                        &format!(
                            "add rule inet faults delay ip daddr {} tcp dport {port} dnat ip to {}",
                            self.ip(to),
                            self.proxies[&to].address()
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Drops every packet between `a` and `b`, both ways.
    pub fn cut(&mut self, a: u64, b: u64) -> anyhow::Result<()> {
        if a == b || !self.cuts.insert((a.min(b), a.max(b))) {
            return Ok(());
        }
        nft(
            self.namespace(a),
            &format!("add element inet faults cut {{ {} }}", self.ip(b)),
        )?;
        nft(
            self.namespace(b),
            &format!("add element inet faults cut {{ {} }}", self.ip(a)),
        )
    }

    /// Cuts every host of each group from every host of the other groups. Hosts in no group
    /// keep every link (a bridge between groups).
    pub fn partition(&mut self, groups: &[&[u64]]) -> anyhow::Result<()> {
        for (i, group) in groups.iter().enumerate() {
            for other in &groups[i + 1..] {
                for a in *group {
                    for b in *other {
                        self.cut(*a, *b)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Cuts host `id` from every other host (the test process still reaches it).
    pub fn isolate(&mut self, id: u64) -> anyhow::Result<()> {
        let others: Vec<u64> = self.hosts.keys().copied().filter(|h| *h != id).collect();
        self.partition(&[&[id], &others])
    }

    /// The links cut now, as (lower id, higher id).
    pub fn cuts(&self) -> &BTreeSet<(u64, u64)> {
        &self.cuts
    }

    /// Restores every link (loss stays as set).
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for (_, namespace) in self.hosts.values() {
            nft(namespace, "flush set inet faults cut")?;
        }
        self.cuts.clear();
        Ok(())
    }

    /// Drops `percent` of host `id`'s packets, in and out, at random (0 restores).
    pub fn loss(&self, id: u64, percent: u32) -> anyhow::Result<()> {
        let namespace = self.namespace(id);
        nft(namespace, "flush chain inet faults loss")?;
        let rule = match percent {
            0 => return Ok(()),
            1..=99 => format!("numgen random mod 100 < {percent}"),
            _ => String::new(),
        };
        nft(
            namespace,
            &format!("add rule inet faults loss meta l4proto tcp {rule} drop"),
        )?;
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for (holder, _) in self.hosts.values_mut() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        let _ = run("ip", &["link", "delete", &self.bridge()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a TCP connection from host `from` reaches a listener on host `to`.
    fn reaches(network: &Network, from: u64, to: u64) -> bool {
        let mut server = Command::new("nsenter")
            .args([&nsenter_net(network.namespace(to)), "python3", "-c"])
            .arg("import socket,time;s=socket.socket();s.bind(('0.0.0.0',7999));s.listen();print('listening',flush=True);time.sleep(5)")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Connect once it listens: a fixed pause lost the race on a loaded machine (python's
        // start took longer, and the check read as a cut).
        let mut line = String::new();
        if let Some(out) = server.stdout.take() {
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        }
        assert_eq!(
            line.trim(),
            "listening",
            "the listener in host {to} did not start"
        );
        let connect = format!("exec 3<>/dev/tcp/{}/7999 && echo connected", network.ip(to));
        let connected = Command::new("nsenter")
            .arg(nsenter_net(network.namespace(from)))
            .args(["timeout", "2", "bash", "-c", &connect])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("connected"))
            .unwrap_or(false);
        let _ = server.kill();
        let _ = server.wait();
        connected
    }

    #[test]
    fn cuts_drop_real_tcp_between_namespaces_and_heal_restores_it() {
        if !can_run("cuts_drop_real_tcp_between_namespaces_and_heal_restores_it") {
            return;
        }
        let mut network = Network::create().unwrap();
        for id in 1..=3 {
            network.add_host(id).unwrap();
        }
        assert!(reaches(&network, 1, 2));
        // A bridge: 1 and 3 are cut from each other, 2 sees both.
        network.partition(&[&[1], &[3]]).unwrap();
        assert!(!reaches(&network, 1, 3));
        assert!(!reaches(&network, 3, 1));
        assert!(reaches(&network, 1, 2));
        assert!(reaches(&network, 2, 3));
        network.heal().unwrap();
        assert!(reaches(&network, 1, 3));
        network.loss(1, 100).unwrap();
        assert!(!reaches(&network, 1, 2));
        network.loss(1, 0).unwrap();
        assert!(reaches(&network, 1, 2));
    }

    #[test]
    fn a_delayed_port_adds_its_delay_each_way_and_cuts_still_hold() {
        if !can_run("a_delayed_port_adds_its_delay_each_way_and_cuts_still_hold") {
            return;
        }
        let mut network = Network::create().unwrap();
        network.add_host(1).unwrap();
        network
            .delay_port(7999, Duration::from_millis(100))
            .unwrap();
        network.add_host(2).unwrap();
        // An echo server on host 2; host 1 times one round trip through the proxy.
        let mut server = Command::new("nsenter")
            .args([&nsenter_net(network.namespace(2)), "python3", "-c"])
            .arg(
                "import socket;s=socket.socket();s.bind(('0.0.0.0',7999));s.listen()\n\
                 while True:\n c,_=s.accept();c.sendall(c.recv(16));c.close()",
            )
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let client = format!(
            "import socket,time;c=socket.create_connection(('{}',7999),timeout=5)\n\
             t=time.time();c.sendall(b'x');assert c.recv(16)==b'x';print(time.time()-t)",
            network.ip(2)
        );
        let round_trip = |network: &Network| {
            Command::new("nsenter")
                .arg(nsenter_net(network.namespace(1)))
                .args(["timeout", "3", "python3", "-c", &client])
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        };
        let seconds = round_trip(&network).expect("no echo through the delay");
        assert!((0.2..1.0).contains(&seconds), "round trip {seconds} s");
        network.cut(1, 2).unwrap();
        assert_eq!(round_trip(&network), None, "a cut holds on a delayed port");
        network.heal().unwrap();
        assert!(round_trip(&network).is_some());
        let _ = server.kill();
        let _ = server.wait();
    }
}
