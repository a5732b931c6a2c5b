"""load: history older than what the source keeps online, late when pushed; history counted when
loaded (lifetime and windowed values as served); loading again adds nothing; `quiver load` of the same events
after a Python load adds nothing, because both send the same requests byte for byte (checked
against a recording ingest, for a list of dicts against a JSON-lines file and a table against a
Parquet file); a load stopped by ingest dying finishes when run again, with every value exact.
The identity and split are also checked against their definition, built with protobuf itself."""

from __future__ import annotations

import datetime as dt
import json
import random
import socket
import struct
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quiver
from conftest import PROJECT
from quiver import fnv, load
from quiver._proto.ingest.v1 import ingest_pb2
from quiver.push_encoding import length_prefixed_rows, prepare, value_encodings
from quiver.values import VT
from test_push_encoding import ARROW, expected_value, random_values

UTC = dt.timezone.utc


def served(client, users, as_of=None, features=("kinds:count", "kinds:qty_sum")):
    """The `features` of each user, as served."""
    table = client.get_features(features=list(features), entities={"user_id": list(users)}, as_of=as_of)
    return {row.pop("user_id"): tuple(row.values()) for row in table.to_pylist()}


def rfc3339(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def history_dicts(users, per_user, newest, seed):
    """`per_user` events for each user, between `newest` - 20 h and `newest`, as dicts holding what a
    JSON-lines file can (timestamps as RFC 3339 text), some columns absent, in shuffled order."""
    rng = random.Random(seed)
    rows = []
    for user in users:
        for _ in range(per_user):
            row = {
                "user_id": user,
                "ts": rfc3339(newest - dt.timedelta(microseconds=rng.randrange(72_000_000_000))),
                "qty": rng.randrange(-5, 50),
                # At most 15 significant digits: `quiver load` parses JSON numbers with serde_json's
                # fast path, a unit in the last place off for some longer decimals.
                "amount": rng.choice([None, 0.1, 12.5, round(rng.uniform(-1e6, 1e6), 2)]),
                "ratio": rng.choice([0.1, -2.5, 3e38]),
                "flag": rng.choice([True, False, None]),
                "label": rng.choice(["", "a", "naïve – ü", "x" * 200]),
                "blob": rng.choice([b"", b"b" + str(rng.randrange(999)).encode()]),
                "seen_at": rng.choice([None, "2026-11-28T10:00:00Z", "2001-02-03T04:05:06.789+02:00"]),
                "vec": rng.choice([None, [], [1.5, -2.0, 0.1]]),
            }
            for name in rng.sample(["amount", "ratio", "flag", "label", "blob", "seen_at", "vec"], 2):
                del row[name]  # absent: null
            rows.append(row)
    rng.shuffle(rows)
    return rows


def write_jsonl(rows, path):
    with open(path, "w") as out:
        for row in rows:
            out.write(json.dumps({k: v.decode() if isinstance(v, bytes) else v for k, v in row.items()}) + "\n")


def expected(rows):
    """(count, qty sum) per user of dicts."""
    out = {}
    for row in rows:
        count, total = out.get(row["user_id"], (0, 0))
        out[row["user_id"]] = (count + 1, total + row["qty"])
    return out


def cli_load(dev, path, ingest=None, project=PROJECT):
    """`quiver load` of `path` into `events` (without `--project` when `project` is None); its
    JSON summary."""
    args = [str(dev.binary), "load", "--registry", dev.registry, "--ingest", ingest or dev.ingest,
            "--source", "events", "--file", str(path), "--output", "json"]
    if project is not None:
        args += ["--project", project]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class RecordingIngest:
    """An ingest that records every `Push` request's bytes and accepts every row."""

    def __init__(self):
        self.requests = []

        def push(request: bytes, context) -> bytes:
            self.requests.append(request)
            parsed = ingest_pb2.PushRequest.FromString(request)
            return ingest_pb2.PushResponse(accepted=len(parsed.rows), last_sequence=parsed.sequence).SerializeToString()

        handler = grpc.method_handlers_generic_handler(
            "quiver.ingest.v1.IngestService", {"Push": grpc.unary_unary_rpc_method_handler(push)}
        )
        self.server = grpc.server(ThreadPoolExecutor(4), options=[("grpc.max_receive_message_length", 64 << 20)])
        self.server.add_generic_rpc_handlers((handler,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def take(self):
        """The requests so far by (producer id, sequence), forgotten here."""
        taken, self.requests = self.requests, []
        by_batch = {}
        for request in taken:
            parsed = ingest_pb2.PushRequest.FromString(request)
            by_batch[(parsed.producer_id, parsed.sequence)] = request
        assert len(by_batch) == len(taken), "a batch was sent twice"
        return by_batch


@pytest.fixture
def recording():
    ingest = RecordingIngest()
    yield ingest
    ingest.server.stop(None)


# -- the definition, without a server -----------------------------------------------------------


def test_fnv1a_128_matches_the_definition_across_blocks():
    rng = np.random.default_rng(5)
    for n in [0, 1, 2, 255, 256, 4097, fnv.BLOCK - 1, fnv.BLOCK, fnv.BLOCK + 1, 2 * fnv.BLOCK + 17]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        whole = fnv.Fnv1a128()
        whole.update(data)
        assert whole.value == fnv.fnv1a_128_reference(data), n
        pieces = fnv.Fnv1a128()
        for part in (data[: n // 3], data[n // 3 : n // 2], data[n // 2 :]):
            pieces.update(part)
        assert pieces.value == whole.value, n
    # Every low byte the hash can start a block with (the bit-by-bit chain starts from it).
    for start in range(256):
        digest = fnv.Fnv1a128()
        digest.value = (digest.value & ~0xFF) | start
        digest.update(bytes(range(256)) * 3)
        assert digest.value == fnv.fnv1a_128_reference(bytes(range(256)) * 3, (fnv.OFFSET_128 & ~0xFF) | start)


def test_fnv1a_64_per_row_matches_the_definition():
    rng = np.random.default_rng(6)
    lengths = rng.integers(0, 30, 500)
    starts = np.cumsum(lengths) - lengths
    data = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    other = np.arange(500, dtype=np.int64) % 4  # a second column continues each row's stream
    hashes = fnv.fnv1a_64_rows([(data, starts, lengths), (data, starts, other)], 500)
    for row in range(500):
        stream = bytes(data[starts[row] : starts[row] + lengths[row]]) + bytes(data[starts[row] : starts[row] + other[row]])
        value = fnv.OFFSET_64
        for byte in stream:
            value = ((value ^ byte) * fnv.PRIME_64) % 2**64
        assert int(hashes[row]) == value, row


def test_identity_and_parts_follow_their_definition():
    # Every value type, nulls, strings and bytes long enough for two-byte lengths.
    rng = random.Random(11)
    types = list(ARROW)
    n = 400
    data = {f"c{t}": random_values(t, n, rng) for t in types}
    columns = [prepare(f"c{t}", pa.array(data[f"c{t}"], ARROW[t]), t) for t in types]
    keys = [f"c{VT.VALUE_TYPE_STRING}", f"c{VT.VALUE_TYPE_INT64}"]  # the entity's order, not the columns'
    rows = [
        ingest_pb2.Row(values=[expected_value(data[f"c{t}"][r], t) for t in types]).SerializeToString()
        for r in range(n)
    ]

    def field(raw: bytes) -> bytes:
        return len(raw).to_bytes(8, "little") + raw

    stream = field(b"") + field(b"events") + b"".join(field(c.name.encode()) for c in columns)
    stream += b"".join(field(row) for row in rows)
    assert load.identity("", "events", columns, n) == fnv.fnv1a_128_reference(stream)
    assert length_prefixed_rows(columns, range(n)) == b"".join(field(row) for row in rows)

    owners = []
    for r in range(n):
        value = fnv.OFFSET_64
        for key in keys:
            t = int(key[1:])
            for byte in expected_value(data[key][r], t).SerializeToString():
                value = ((value ^ byte) * fnv.PRIME_64) % 2**64
        owners.append(value % load.PARTS)
    parts = load.parts(columns, n, keys)
    assert len(parts) == load.PARTS
    assert [list(p) for p in parts] == [[r for r in range(n) if owners[r] == p] for p in range(load.PARTS)]
    for t, column in zip(types, columns):
        buffer, starts, lengths = value_encodings(column, range(n))
        for r in range(n):
            want = expected_value(data[f"c{t}"][r], t).SerializeToString()
            assert bytes(buffer[starts[r] : starts[r] + lengths[r]]) == want, (t, r)


# -- against ingest --------------------------------------------------------------------------------


def test_python_and_cli_loads_send_the_same_bytes(dev, recording, tmp_path):
    # 24,000 rows: every part gets more than one 5,000-row batch.
    newest = dt.datetime.now(UTC)
    rows = history_dicts(range(50_000, 51_000), 24, newest, seed=21)
    path = tmp_path / "history.jsonl"
    write_jsonl(rows, path)
    with dev.client(ingest=recording.address) as client:
        result = client.load("events", rows)
    from_python = recording.take()
    summary = cli_load(dev, path, ingest=recording.address)
    from_cli = recording.take()
    assert summary["load_id"] == result.load_id
    assert (summary["loaded"], result.loaded, result.already_loaded) == (24_000, 24_000, 0)
    assert sorted(from_python) == sorted(from_cli)
    assert len(from_cli) >= 8 and {s for _, s in from_cli} >= {1, 2}
    for batch, request in from_cli.items():
        assert from_python[batch] == request, batch  # byte for byte
    parsed = ingest_pb2.PushRequest.FromString(next(iter(from_cli.values())))
    assert parsed.history and parsed.producer_epoch == 0 and parsed.project == PROJECT
    assert parsed.producer_id.startswith(f"load-{result.load_id}-")

    # A table, against `quiver load` of a Parquet file of it: its own columns, in its order,
    # timestamps of several units and zones.
    table = pa.table(
        {
            "amount": pa.array([r.get("amount") for r in rows], pa.float64()),
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "ts": pa.array([dt.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in rows], pa.timestamp("us", "UTC")),
            "seen_at": pa.array([1_790_000_000_123_456_789 + i for i in range(len(rows))], pa.timestamp("ns")),
            "label": pa.array([r.get("label") for r in rows], pa.string()),
            "blob": pa.array([r.get("blob") for r in rows], pa.binary()),
            "vec": pa.array([r.get("vec") for r in rows], pa.list_(pa.float32())),
            "flag": pa.array([r.get("flag") for r in rows], pa.bool_()),
            "ratio": pa.array([r.get("ratio") for r in rows], pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "history.parquet")
    write_jsonl(rows[:100], tmp_path / "first-100.jsonl")
    with dev.client(ingest=recording.address) as client:
        from_table = client.load("events", table)
    from_python = recording.take()
    summary = cli_load(dev, tmp_path / "history.parquet", ingest=recording.address)
    from_cli = recording.take()
    assert summary["load_id"] == from_table.load_id != result.load_id
    assert from_python == from_cli

    # The project as given is part of the identity: left out, it is empty on both sides (the
    # registry holds one project), and another load than the same rows under "pytest".
    with dev.client(ingest=recording.address, project="") as client:
        unnamed = client.load("events", rows[:100])
    from_python = recording.take()
    summary = cli_load(dev, path.with_name("first-100.jsonl"), ingest=recording.address, project=None)
    assert summary["load_id"] == unnamed.load_id
    assert recording.take() == from_python
    with dev.client(ingest=recording.address) as client:
        assert client.load("events", rows[:100]).load_id != unnamed.load_id


def test_history_is_late_when_pushed_past_the_horizon_and_counted_when_loaded(client):
    user = 5001
    now = dt.datetime.now(UTC).replace(microsecond=0)
    assert client.push("events", [{"user_id": user, "ts": now, "qty": 1}], workers=1).accepted == 1

    def events(minutes_ago):
        """30 events of `user`, from `minutes_ago` on, 20 s apart."""
        times = [now - dt.timedelta(minutes=minutes_ago) + dt.timedelta(seconds=20 * i) for i in range(30)]
        return pa.table({
            "user_id": pa.array([user] * 30, pa.int64()),
            "ts": pa.array(times, pa.timestamp("us", "UTC")),
            "qty": pa.array(range(30), pa.int64()),
        })

    # 150-160 minutes before the watermark: older than anything the source keeps online (the
    # watermark minus the lateness, 1h, and the longest window, 1h), so a push is late.
    pushed = client.push("events", events(160), workers=1)
    assert (pushed.accepted, pushed.late) == (0, 30)
    assert served(client, [user]) == {user: (1, 1)}

    # 70-80 minutes before: loaded (a push would admit these too: the tiles still hold them).
    history = events(80)
    before = now - dt.timedelta(minutes=40)  # a 1h window at this time holds them all
    assert served(client, [user], as_of=before, features=["kinds:count_1h"]) == {user: (0,)}

    loaded = client.load("events", history)
    assert (loaded.rows, loaded.loaded, loaded.already_loaded, loaded.anomalous) == (30, 30, 0, 0)
    assert len(loaded.load_id) == 32 and loaded.batches == 1
    values = (
        served(client, [user]),
        served(client, [user], as_of=before, features=["kinds:count_1h"]),
        served(client, [user], features=["kinds:count_1h"]),
    )
    # Lifetime: 1 + 30 events, qty 1 + 0..29; the window 40 minutes ago: the 30 loaded; the
    # window now: the one pushed (the loaded ones sit at their own times).
    assert values == ({user: (31, 436)}, {user: (30,)}, {user: (1,)})

    again = client.load("events", history)
    assert (again.loaded, again.already_loaded, again.load_id) == (0, 30, loaded.load_id)
    assert (
        served(client, [user]),
        served(client, [user], as_of=before, features=["kinds:count_1h"]),
        served(client, [user], features=["kinds:count_1h"]),
    ) == values


def test_a_cli_load_after_a_python_load_adds_nothing(dev, client, tmp_path):
    users = range(5101, 5111)
    rows = history_dicts(users, 20, dt.datetime.now(UTC), seed=4)
    result = client.load("events", rows)
    assert (result.loaded, result.already_loaded) == (200, 0)
    assert served(client, users) == expected(rows)

    path = tmp_path / "same-events.jsonl"
    write_jsonl(rows, path)
    summary = cli_load(dev, path)
    assert (summary["rows"], summary["loaded"], summary["already_loaded"]) == (200, 0, 200)
    assert summary["load_id"] == result.load_id and summary["error"] is None
    assert served(client, users) == expected(rows)


def test_a_stopped_load_finishes_when_run_again(dev, spawn_ingest):
    ingest = spawn_ingest("ingest-load")
    users = range(5401, 5501)
    rows = history_dicts(users, 240, dt.datetime.now(UTC), seed=9)  # 24,000 rows: 2 batches a part
    with dev.client(ingest=ingest.address) as client:
        # Ingest dies once the first batch is acknowledged; the load gives up a second later.
        killed = []

        def kill_after_first_batch(done, total):
            if not killed:
                killed.append(done)
                ingest.process.kill()

        with pytest.raises(quiver.Unavailable) as caught:
            client.load("events", rows, retry_for=1.0, progress=kill_after_first_batch)
        stopped = caught.value.result
        assert killed and killed[0] <= stopped.loaded < 24_000

        # Run again while ingest is still down: it retries until ingest is back, then sends
        # every batch again; those that had committed (acknowledged or not) add nothing.
        restart = threading.Thread(target=restart_once_tried, args=(ingest,))
        restart.start()
        try:
            finished = client.load("events", rows)
        finally:
            restart.join()
        # (Whether the rerun counted a retry depends on gRPC reconnecting by itself: not asserted.)
        assert finished.load_id == stopped.load_id
        assert finished.loaded + finished.already_loaded == 24_000
        assert finished.already_loaded >= stopped.loaded
        assert served(client, users) == expected(rows)


def restart_once_tried(ingest):
    """Restarts a killed ingest once a client has tried to reach it (and been refused)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", ingest.port))
        listener.listen()
        listener.settimeout(60)
        connection, _ = listener.accept()
        # Reset, not closed: no TIME_WAIT left on the port ingest binds again.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    ingest.restart()


def test_bad_data_is_refused_naming_it(client):
    now = rfc3339(dt.datetime.now(UTC))
    with pytest.raises(quiver.InvalidArgument, match='"colour" is not a column of source "events"'):
        client.load("events", [{"user_id": 1, "ts": now, "colour": "red"}])
    rows = [{"user_id": 5601, "ts": now, "amount": float(i)} for i in range(30)]
    rows[17]["amount"] = "17.5 EUR"
    rows[25]["ts"] = "2026-13-01T00:00:00Z"
    with pytest.raises(quiver.InvalidArgument) as caught:
        client.load("events", rows)
    assert str(caught.value) == (
        "2 bad rows; nothing was sent:\n"
        "  rows[17].amount: expected float64, got string\n"
        '  rows[25].ts: unparsable timestamp "2026-13-01T00:00:00Z": no such date; expected RFC 3339 '
        "with a UTC offset, e.g. 2026-11-28T10:00:00Z or 2026-11-28T12:00:00.5+02:00"
    )
    assert caught.value.result.loaded == 0
    assert served(client, [5601]) == {5601: (None, None)}
    rows = [{"user_id": 5602, "ts": now, "amount": 1.0} for _ in range(3)]
    rows[2]["ts"] = None
    with pytest.raises(quiver.InvalidArgument, match=r"^a bad row; nothing was sent:\n  rows\[2\]\.ts: the event time is null$") as caught:
        client.load("events", rows)
    assert caught.value.result.loaded == 0
    assert served(client, [5602]) == {5602: (None, None)}
    with pytest.raises(quiver.InvalidArgument, match='no source "nope"'):
        client.load("nope", rows)
