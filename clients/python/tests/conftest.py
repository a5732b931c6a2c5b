"""A real Quiver for the client's tests: `quiver dev` (every role, one process) on free ports in a
temp dir with `tests/defs` applied, and, for the tests that kill it, a separate ingest process
(`quiver serve ingest`) pointed at the dev stack's registry and compute.

The binary is $QUIVER_BIN, else `$CARGO_TARGET_DIR/debug/quiver`, else `target/debug/quiver`
(`make python-client-test` builds it first).
"""

from __future__ import annotations

import atexit
import os
import pathlib
import signal
import socket
import subprocess
import time
from typing import Dict, List, Optional

import pytest

import quiver

CLIENT = pathlib.Path(__file__).resolve().parent.parent
REPO = CLIENT.parent.parent
DEFS = pathlib.Path(__file__).resolve().parent / "defs"
PROJECT = "pytest"


def quiver_bin() -> pathlib.Path:
    given = os.environ.get("QUIVER_BIN")
    if given:
        return pathlib.Path(given)
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return pathlib.Path(target) / "debug" / "quiver"


# Test ports come from below the kernel's ephemeral range (32768-60999 by default), as the Rust
# tests' do (tests/src/lib.rs): a port bound as port 0 and released lies in that range, and any
# outgoing connection may be given it before the server under test binds it.
TEST_PORTS = range(10_000, 30_000)
_next_port = [(time.time_ns() ^ (os.getpid() * 7_919)) % len(TEST_PORTS)]


def free_port() -> int:
    return free_port_base(1)


def free_port_base(span: int = 7) -> int:
    """The first of `span` consecutive free loopback ports of TEST_PORTS, handed out in turn
    (released again: a small race with other processes, which the tests accept, as the Rust
    tests do)."""
    for _ in range(len(TEST_PORTS) // span):
        offset = _next_port[0] % len(TEST_PORTS)
        _next_port[0] += span
        base = TEST_PORTS.start + offset
        if base + span > TEST_PORTS.stop:
            continue
        sockets = []
        try:
            for port in range(base, base + span):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports")


_RUNNING: List["Process"] = []


@atexit.register
def _kill_leftovers() -> None:
    """However the session ends (an interrupted run, a failed fixture), no server outlives it."""
    for process in _RUNNING:
        process.kill()


class Process:
    """A child process with its output in a log file; killed at the end."""

    def __init__(self, args: List[str], log: pathlib.Path, env: Optional[Dict[str, str]] = None):
        self.args, self.log, self.env = args, log, env
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        env = {**os.environ, "RUST_LOG": "info", **(self.env or {})}
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self.args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        if self not in _RUNNING:
            _RUNNING.append(self)
        out.close()

    def kill(self) -> None:
        """SIGKILL, like a crash, and reap."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it does not exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_until(check, what: str, process: Process, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited:\n{process.output()}")
        try:
            result = check()
            if result is not False:
                return result
        except quiver.QuiverError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout}s (last: {last!r}):\n{process.output()}")


class Dev:
    """A running `quiver dev` and its addresses."""

    def __init__(self, tmp: pathlib.Path):
        binary = quiver_bin()
        if not binary.exists():
            raise RuntimeError(f"no quiver binary at {binary}: run `cargo build -p quiver` or set QUIVER_BIN")
        self.binary = binary
        self.tmp = tmp
        base = free_port_base()
        self.registry = f"127.0.0.1:{base}"
        self.ingest = f"127.0.0.1:{base + 1}"
        self.compute = f"127.0.0.1:{base + 2}"
        self.online = f"127.0.0.1:{base + 3}"
        self.offline = f"127.0.0.1:{base + 4}"
        self.process = Process(
            [
                str(binary),
                "dev",
                "--data-dir",
                str(tmp / "data"),
                "--port-base",
                str(base),
                "--apply",
                str(DEFS),
                "--demo-rate",
                "0",
            ],
            tmp / "dev.log",
        )
        try:
            with self.client() as client:
                wait_until(
                    lambda: "Ready." in self.process.output(), "quiver dev ready", self.process
                )
                wait_until(lambda: client.list("views"), "definitions applied", self.process)
                wait_until(
                    lambda: client.get_features(
                        features=["kinds:count"], entities={"user_id": [0]}
                    ),
                    "the online store serving",
                    self.process,
                )
        except BaseException:
            self.process.kill()
            raise

    def client(self, **kwargs) -> quiver.Client:
        options = dict(
            registry=self.registry,
            ingest=self.ingest,
            online=self.online,
            offline=self.offline,
            project=PROJECT,
        )
        options.update(kwargs)
        return quiver.Client(**options)

    def spawn_ingest(self, name: str, extra: Optional[Dict[str, str]] = None) -> "Ingest":
        return Ingest(self, name, extra or {})


class Ingest:
    """`quiver serve ingest` feeding the dev stack's compute, on its own port: killable."""

    def __init__(self, dev: Dev, name: str, extra: Dict[str, str]):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = {
            "QUIVER__GRPC__LISTEN": self.address,
            "QUIVER__HTTP__LISTEN": f"127.0.0.1:{free_port()}",
            "QUIVER__ENDPOINTS__REGISTRY": dev.registry,
            "QUIVER__ENDPOINTS__COMPUTE": dev.compute,
            **extra,
        }
        self.http = env["QUIVER__HTTP__LISTEN"]
        self.process = Process([str(dev.binary), "serve", "ingest"], dev.tmp / f"{name}.log", env)
        try:
            self.wait_serving()
        except BaseException:
            self.process.kill()
            raise

    def wait_serving(self) -> None:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, "ingest listening", self.process, timeout=30)

    def restart(self) -> None:
        self.process.start()
        self.wait_serving()

    def metric(self, name: str, labels: str) -> float:
        """A sample of ingest's Prometheus metrics, e.g. ("quiver_ingest_rows_total",
        'result="saturated"'); 0 when absent."""
        import urllib.request

        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="session")
def dev(tmp_path_factory):
    stack = Dev(tmp_path_factory.mktemp("quiver-dev"))
    yield stack
    stack.process.stop()


@pytest.fixture
def client(dev):
    with dev.client() as c:
        yield c


@pytest.fixture
def spawn_ingest(dev):
    """Starts separate ingest processes (killed when the test ends)."""
    spawned: List[Ingest] = []

    def spawn(name: str, extra: Optional[Dict[str, str]] = None) -> Ingest:
        ingest = dev.spawn_ingest(name, extra)
        spawned.append(ingest)
        return ingest

    yield spawn
    for ingest in spawned:
        ingest.process.kill()
