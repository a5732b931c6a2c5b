"""snapshot against the real offline store: equal to what serving answers at the same times,
every entity form, streaming batches for a large table, sampling, errors."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quiver
from quiver.push_encoding import dataframe_to_arrow

UTC = dt.timezone.utc
USERS = list(range(4001, 4021))
FEATURES = [
    "kinds:last_amount",
    "kinds:last_qty",
    "kinds:last_label",
    "kinds:last_vec",
    "kinds:last_seen_at",
    "kinds:count",
    "kinds:qty_sum",
    "kinds:count_1h",
]


@pytest.fixture(scope="module")
def history(dev):
    """Events for USERS over the last 20 minutes, exported to the offline store."""
    rng = np.random.default_rng(11)
    now = dt.datetime.now(UTC)
    start = now - dt.timedelta(minutes=20)
    rows = []
    for i in range(600):
        user = USERS[i % len(USERS)]
        rows.append(
            {
                "user_id": user,
                "ts": start + dt.timedelta(milliseconds=int(rng.integers(0, 19 * 60_000))),
                "amount": float(rng.integers(0, 10_000)) / 8,
                "qty": int(rng.integers(0, 100)),
                "label": f"l{i % 7}",
                "seen_at": start + dt.timedelta(seconds=i),
                "vec": [float(i), 0.5],
            }
        )
    with dev.client() as client:
        assert client.push("events", rows, batch_size=150).accepted == 600
        at = dt.datetime.now(UTC)
        probe = pa.table({"user_id": USERS, "event_timestamp": [at] * len(USERS)})
        want = {u: sum(r["user_id"] == u for r in rows) for u in USERS}
        deadline = time.monotonic() + 60
        while True:  # the leader exports every second
            got = client.snapshot(probe, features=["kinds:count"]).column("kinds:count").to_pylist()
            if got == [want[u] for u in USERS] or time.monotonic() > deadline:
                assert got == [want[u] for u in USERS], "exported rows in the offline store"
                break
            time.sleep(0.3)
    return {"rows": rows, "start": start, "at": at}


def test_a_snapshot_equals_serving_at_the_same_times(client, history):
    at = history["at"]
    before = history["start"] - dt.timedelta(minutes=1)
    entities = pa.table(
        {
            "user_id": pa.array(USERS + USERS[:3], pa.int64()),
            "event_timestamp": pa.array([at] * len(USERS) + [before] * 3, pa.timestamp("us", "UTC")),
            "label": pa.array(range(len(USERS) + 3), pa.int64()),
        }
    )
    table = client.snapshot(entities, features=FEATURES)
    # The entity table's columns, unchanged and in order, then the features.
    assert table.column_names == ["user_id", "event_timestamp", "label", *FEATURES]
    assert table.select(["user_id", "event_timestamp", "label"]).equals(entities)
    served = client.get_features(features=FEATURES, entities={"user_id": USERS}, as_of=at)
    assert served.schema.field("kinds:last_vec").type == table.schema.field("kinds:last_vec").type
    for name in FEATURES:
        assert table.column(name).to_pylist()[: len(USERS)] == served.column(name).to_pylist(), name
    # Before a user's first event: nothing existed yet.
    for name in FEATURES:
        assert table.column(name).to_pylist()[len(USERS) :] == [None] * 3, name


def test_every_entity_form_and_a_service(client, history, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"user_id": USERS, "ts": pd.Timestamp(history["at"]), "is_fraud": [i % 2 for i in range(len(USERS))]}
    )
    arrow = dataframe_to_arrow(frame)
    path = tmp_path / "labels.parquet"
    pq.write_table(arrow, path)
    answers = [
        client.snapshot(entities, service="model_v1", timestamp_column="ts")
        for entities in (frame, arrow, arrow.to_batches()[0], arrow.to_reader(), str(path), path)
    ]
    for answer in answers[1:]:
        assert answer.equals(answers[0])
    assert answers[0].column_names == ["user_id", "ts", "is_fraud", "kinds:last_amount", "kinds:count", "kinds:last_label"]
    assert answers[0].column("kinds:count").null_count == 0
    assert answers[0].to_pandas()["kinds:count"].sum() == 600


def test_dates_are_their_midnight(client, history):
    pd = pytest.importorskip("pandas")
    tomorrow = (history["at"] + dt.timedelta(days=1)).date()
    midnight = dt.datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
    by_date = client.snapshot(pd.DataFrame({"user_id": USERS, "day": [tomorrow] * len(USERS)}), features=FEATURES, timestamp_column="day")
    by_time = client.snapshot(pa.table({"user_id": USERS, "day": [midnight] * len(USERS)}), features=FEATURES, timestamp_column="day")
    assert by_date.schema.field("day").type == pa.date32()  # passed through as given
    for name in FEATURES:
        assert by_date.column(name).equals(by_time.column(name)), name
    assert sum(by_date.column("kinds:count").to_pylist()) == 600


def test_a_large_table_streams_in_batches_in_order(client, history):
    n = 120_000
    rng = np.random.default_rng(5)
    users = rng.choice(USERS + [999_999], n)
    entities = pa.table(
        {"user_id": pa.array(users, pa.int64()), "event_timestamp": pa.array([history["at"]] * n, pa.timestamp("us", "UTC"))}
    )
    reader = client.snapshot_reader(entities, features=["kinds:count"], batch_rows=10_000)
    assert reader.schema.names == ["user_id", "event_timestamp", "kinds:count"]
    batches = list(reader)
    assert len(batches) >= 12  # answered batch by batch, not as one table
    table = pa.Table.from_batches(batches)
    assert table.column("user_id").to_numpy().tolist() == users.tolist()
    per_user = dict(zip(USERS, client.get_features(features=["kinds:count"], entities={"user_id": USERS}).column(1).to_pylist()))
    counts = table.column("kinds:count").to_pylist()
    assert all(c == per_user.get(u) for u, c in zip(users.tolist(), counts))


def test_sampling_is_deterministic_and_weighted(client, history):
    at = history["at"]
    labels = [1 if i % 10 == 0 else 0 for i in range(400)]
    entities = pa.table(
        {
            "user_id": pa.array([USERS[i % len(USERS)] for i in range(400)], pa.int64()),
            "event_timestamp": pa.array([at] * 400, pa.timestamp("us", "UTC")),
            "is_fraud": pa.array(labels, pa.int64()),
        }
    )
    balanced = quiver.Balanced(label="is_fraud", fraction=0.25, seed=7)
    first = client.snapshot(entities, features=["kinds:count"], sample=balanced)
    again = client.snapshot(entities, features=["kinds:count"], sample=balanced)
    assert first.equals(again)
    assert first.column_names[-1] == "sample_weight"
    kept = first.to_pylist()
    frauds = [r for r in kept if r["is_fraud"] == 1]
    assert len(frauds) == 40 and {r["sample_weight"] for r in frauds} == {1.0}  # the rare class whole
    others = [r for r in kept if r["is_fraud"] == 0]
    assert 40 <= len(others) <= 140 and {r["sample_weight"] for r in others} == {4.0}
    even = client.snapshot(entities, features=["kinds:count"], sample=quiver.InverseFrequency(column="user_id", seed=1))
    assert even.num_rows == 400 and set(even.column("sample_weight").to_pylist()) == {1.0}


def test_errors_carry_the_servers_message(client, history, dev, tmp_path):
    not_parquet = tmp_path / "labels.parquet"
    not_parquet.write_text("user_id,event_timestamp\n")
    with pytest.raises(quiver.InvalidArgument, match=r"^entities: .*labels\.parquet is not a Parquet file"):
        client.snapshot(not_parquet, features=["kinds:count"])
    entities = pa.table({"event_timestamp": pa.array([history["at"]], pa.timestamp("us", "UTC")), "label": [1]})
    with pytest.raises(quiver.InvalidArgument, match='no join-key column "user_id"; its columns: event_timestamp, label'):
        client.snapshot(entities, features=["kinds:count"])
    good = pa.table({"user_id": [USERS[0]], "event_timestamp": pa.array([history["at"]], pa.timestamp("us", "UTC"))})
    with pytest.raises(quiver.InvalidArgument, match='"nope"'):
        client.snapshot(good, features=["kinds:nope"])
    with pytest.raises(quiver.InvalidArgument, match="when"):
        client.snapshot(good, features=["kinds:count"], timestamp_column="when")
    with pytest.raises(quiver.InvalidArgument, match="either features"):
        client.snapshot(good)
    from conftest import free_port

    with quiver.Client(offline=f"127.0.0.1:{free_port()}") as nowhere:
        with pytest.raises(quiver.Unavailable, match="cannot reach the offline"):
            nowhere.snapshot(good, features=["kinds:count"], project="pytest")
