"""A trainer's view of the snapshot service: plain pyarrow.flight, no Quiver package.

Run against a running service whose address is in QUIVER_OFFLINE (host:port) and which holds
the `stream` project of services/quiver/tests/offline.rs (the Rust test starts everything and
runs this file).
"""

import datetime as dt
import json
import os

import pyarrow as pa
import pyarrow.flight as flight
import pytest

ADDRESS = os.environ.get("QUIVER_OFFLINE", "127.0.0.1:7074")


def snapshot(command, table):
    """Sends the entity table with a JSON command; returns the answer as one table."""
    client = flight.connect(f"grpc://{ADDRESS}")
    descriptor = flight.FlightDescriptor.for_command(json.dumps(command).encode())
    writer, reader = client.do_exchange(descriptor)
    with writer:
        writer.begin(table.schema)
        writer.write_table(table)
        writer.done_writing()
        return reader.read_all()


def entities(user_ids):
    now = dt.datetime.now(dt.timezone.utc)
    return pa.table(
        {
            "user_id": pa.array(user_ids, pa.int64()),
            "event_timestamp": pa.array([now] * len(user_ids), pa.timestamp("us", tz="UTC")),
            "label": pa.array([i % 2 for i in range(len(user_ids))], pa.int64()),
        }
    )


def test_snapshot_keeps_rows_in_order_and_passes_columns_through():
    table = entities([3, 0, 10_000, 1])
    answer = snapshot(
        {"project": "stream", "features": ["f:count_1h", "f:last", "recent:count"]}, table
    )
    assert answer.column_names == [
        "user_id",
        "event_timestamp",
        "label",
        "f:count_1h",
        "f:last",
        "recent:count",
    ]
    assert answer.column("user_id").to_pylist() == [3, 0, 10_000, 1]
    assert answer.column("label").to_pylist() == [0, 1, 0, 1]
    assert answer.schema.field("f:count_1h").type == pa.int64()
    assert answer.schema.field("f:last").type == pa.float64()
    # A user never seen: every feature null. Known users: lifetime counts are positive.
    rows = answer.to_pylist()
    assert rows[2]["f:last"] is None and rows[2]["recent:count"] is None
    assert rows[1]["recent:count"] > 0 and rows[1]["f:last"] is not None


def test_sampling_adds_weights():
    table = entities(list(range(40)) * 5)
    answer = snapshot(
        {
            "project": "stream",
            "features": ["f:count_1h"],
            "sampling": {"strategy": "inverse_frequency", "column": "user_id", "seed": 1},
        },
        table,
    )
    # Every user is equally frequent here: everything is kept, with weight 1.
    assert answer.num_rows == 200
    assert set(answer.column("sample_weight").to_pylist()) == {1.0}


def test_a_missing_join_key_is_named():
    table = entities([1]).drop_columns(["user_id"])
    # INVALID_ARGUMENT arrives as ArrowInvalid.
    with pytest.raises(pa.ArrowInvalid, match='no join-key column "user_id"'):
        snapshot({"project": "stream", "features": ["f:count_1h"]}, table)
