"""The client against `quiver dev --secure` (tokens and TLS on, docs/security.md): the bearer
token and the CA are what it takes to read, push and take a snapshot; without a token the
server answers `Unauthenticated`, with a reader token a push is `PermissionDenied`."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa
import pytest

import quiver
from conftest import DEFS, PROJECT, Process, free_port_base, quiver_bin, wait_until

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secure")
    base = free_port_base()
    data = tmp / "data"
    process = Process(
        [
            str(quiver_bin()),
            "dev",
            "--secure",
            "--data-dir",
            str(data),
            "--port-base",
            str(base),
            "--apply",
            str(DEFS),
            "--demo-rate",
            "0",
        ],
        tmp / "dev.log",
    )
    wait_until(lambda: "Ready." in process.output(), "quiver dev --secure ready", process)
    # A name the dev certificate holds (127.0.0.1 works too).
    addresses = dict(
        registry=f"localhost:{base}",
        ingest=f"localhost:{base + 1}",
        online=f"localhost:{base + 3}",
        offline=f"localhost:{base + 4}",
        project=PROJECT,
        ca_cert=str(data / "tls" / "ca.pem"),
    )
    admin = (data / "admin.token").read_text().strip()
    yield {"addresses": addresses, "admin": admin, "process": process, "binary": quiver_bin()}
    process.stop()


def test_a_token_and_the_ca_are_what_it_takes(secure):
    addresses, admin = secure["addresses"], secure["admin"]
    with quiver.Client(token=admin, **addresses) as client:
        wait_until(lambda: client.list("views"), "definitions applied", secure["process"])
        now = dt.datetime.now(UTC)
        rows = [{"user_id": 4242, "ts": now, "amount": 1.5, "label": "secure"}]
        assert client.push("events", rows).accepted == 1
        served = wait_until(
            lambda: client.get_features(features=["kinds:count"], entities={"user_id": [4242]})
            .column("kinds:count")
            .to_pylist()
            == [1]
            or False,
            "the pushed event served",
            secure["process"],
        )
        assert served
        probe = pa.table({"user_id": [4242], "event_timestamp": [now + dt.timedelta(seconds=1)]})
        deadline = time.monotonic() + 60
        while True:  # the leader exports every second; the snapshot goes over Flight with TLS
            got = client.snapshot(probe, features=["kinds:count"]).column("kinds:count").to_pylist()
            if got == [1] or time.monotonic() > deadline:
                assert got == [1]
                break
            time.sleep(0.3)

    with quiver.Client(token=None, **addresses) as anonymous:
        with pytest.raises(quiver.errors.Unauthenticated):
            anonymous.list("views")


def test_a_reader_token_reads_but_may_not_push(secure):
    import subprocess

    addresses, admin = secure["addresses"], secure["admin"]

    created = subprocess.run(
        [
            str(secure["binary"]),
            "token",
            "create",
            "--role",
            "reader",
            "--project",
            PROJECT,
            "--registry",
            # The CLI resolves names through the system (a fresh root may have no `localhost`
            # in /etc/hosts); it sends no IP as a TLS server name, so it dials the address.
            addresses["registry"].replace("localhost", "127.0.0.1"),
            "--ca-cert",
            addresses["ca_cert"],
            "--token",
            admin,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    reader = created.stdout.strip()
    with quiver.Client(token=reader, **addresses) as client:
        assert client.list("views")
        with pytest.raises(quiver.errors.PermissionDenied, match="needs writer"):
            client.push("events", [{"user_id": 1, "ts": dt.datetime.now(UTC), "amount": 1.0}])
