"""get_features against a real online store: every value kind typed and exact, every status,
entity key forms, feature services, consistency, error classes, and the asyncio client."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

import quiver

UTC = dt.timezone.utc
KINDS = [
    "kinds:last_amount",
    "kinds:last_qty",
    "kinds:last_ratio",
    "kinds:last_flag",
    "kinds:last_label",
    "kinds:last_blob",
    "kinds:last_seen_at",
    "kinds:last_vec",
    "kinds:count",
    "kinds:qty_sum",
    "kinds:count_1h",
    "kinds:amount_mean_1h",
]
TYPES = {
    "kinds:last_amount": pa.float64(),
    "kinds:last_qty": pa.int64(),
    "kinds:last_ratio": pa.float32(),
    "kinds:last_flag": pa.bool_(),
    "kinds:last_label": pa.string(),
    "kinds:last_blob": pa.binary(),
    "kinds:last_seen_at": pa.timestamp("us", tz="UTC"),
    "kinds:last_vec": pa.list_(pa.float32()),
    "kinds:count": pa.int64(),
    "kinds:qty_sum": pa.int64(),
    "kinds:count_1h": pa.int64(),
    "kinds:amount_mean_1h": pa.float64(),
}
FULL, SPARSE, NEVER = 1001, 1002, 1999


def micros(t: dt.datetime) -> dt.datetime:
    return t.replace(microsecond=t.microsecond)  # already microsecond precision


@pytest.fixture(scope="module")
def pushed(dev):
    """Two events for FULL (every column set), one for SPARSE (only the required columns and
    amount), none for NEVER."""
    now = dt.datetime.now(UTC).replace(microsecond=123_456)
    first, last = now - dt.timedelta(minutes=3), now - dt.timedelta(minutes=1)
    seen = dt.datetime(2025, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
    events = [
        {"user_id": FULL, "ts": first, "amount": 10.0, "qty": 5, "ratio": 0.5, "flag": False,
         "label": "old", "blob": b"\x00old", "seen_at": seen - dt.timedelta(days=1), "vec": [9.0]},
        {"user_id": FULL, "ts": last, "amount": 12.25, "qty": -7, "ratio": 0.1, "flag": True,
         "label": "naïve ✓", "blob": b"\x00\xff\x10", "seen_at": seen, "vec": [1.5, -2.0, 0.3]},
        {"user_id": SPARSE, "ts": last, "amount": 3.0},
    ]
    with dev.client() as client:
        result = client.push("events", events)
    assert (result.accepted, result.late, result.duplicate) == (3, 0, 0)
    return {"first": first, "last": last, "seen": seen}


def test_every_value_kind_is_typed_and_exact(client, pushed):
    table = client.get_features(
        features=KINDS, entities={"user_id": [FULL, SPARSE, NEVER]}, with_status=True
    )
    assert table.column_names[0] == "user_id"
    assert table.schema.field("user_id").type == pa.int64()
    for ref, arrow_type in TYPES.items():
        assert table.schema.field(ref).type == arrow_type, ref
        assert table.schema.field(ref + "__status").type == pa.string()
        assert table.schema.field(ref + "__event_timestamp").type == pa.timestamp("us", tz="UTC")
    # The column order: key, then per feature its value, status and event time.
    assert table.column_names[1:4] == [
        "kinds:last_amount",
        "kinds:last_amount__status",
        "kinds:last_amount__event_timestamp",
    ]
    full, sparse, never = table.to_pylist()
    assert full["kinds:last_amount"] == 12.25
    assert full["kinds:last_qty"] == -7
    assert full["kinds:last_ratio"] == float(np.float32(0.1))  # stored and served as float32
    assert full["kinds:last_flag"] is True
    assert full["kinds:last_label"] == "naïve ✓"
    assert full["kinds:last_blob"] == b"\x00\xff\x10"
    assert full["kinds:last_seen_at"] == pushed["seen"]
    assert full["kinds:last_vec"] == [1.5, -2.0, float(np.float32(0.3))]
    assert full["kinds:count"] == 2
    assert full["kinds:qty_sum"] == -2
    assert full["kinds:count_1h"] == 2
    assert full["kinds:amount_mean_1h"] == pytest.approx((10.0 + 12.25) / 2)
    for ref in KINDS:
        assert full[ref + "__status"] == "PRESENT", ref
        assert never[ref + "__status"] == "NOT_FOUND", ref
        assert never[ref] is None and never[ref + "__event_timestamp"] is None
    assert full["kinds:last_amount__event_timestamp"] == pushed["last"]
    # SPARSE's only event left these columns null: a row exists, the value is null.
    for ref in ("kinds:last_qty", "kinds:last_ratio", "kinds:last_flag", "kinds:last_label",
                "kinds:last_blob", "kinds:last_seen_at", "kinds:last_vec"):
        assert sparse[ref + "__status"] == "NULL_VALUE", ref
        assert sparse[ref] is None
        assert sparse[ref + "__event_timestamp"] == pushed["last"]
    assert sparse["kinds:last_amount"] == 3.0 and sparse["kinds:count"] == 1


def test_without_status_the_table_has_one_column_per_feature(client, pushed):
    table = client.get_features(features=KINDS, entities={"user_id": [NEVER, FULL]})
    assert table.column_names == ["user_id", *KINDS]
    # Types do not depend on which values are present: a column of nulls keeps its type.
    alone = client.get_features(features=KINDS, entities={"user_id": [NEVER]})
    assert alone.schema == table.schema
    assert alone.column("kinds:last_vec").null_count == 1


def test_outside_ttl_invalid_and_empty_windows(client, pushed):
    later = pushed["last"] + dt.timedelta(days=2)  # past the view's 1d TTL, past the 1h windows
    row = client.get_features(
        features=["kinds:last_amount", "kinds:count", "kinds:count_1h", "kinds:amount_mean_1h"],
        entities={"user_id": FULL},
        as_of=later,
        with_status=True,
    ).to_pylist()[0]
    assert row["kinds:last_amount__status"] == "OUTSIDE_TTL"
    assert row["kinds:last_amount"] is None
    assert row["kinds:last_amount__event_timestamp"] == pushed["last"]  # its age shows
    assert row["kinds:count__status"] == "OUTSIDE_TTL"
    assert (row["kinds:count_1h"], row["kinds:count_1h__status"]) == (0, "PRESENT")
    assert (row["kinds:amount_mean_1h"], row["kinds:amount_mean_1h__status"]) == (None, "NULL_VALUE")
    # Between FULL's two events: the online store only keeps the latest, so it cannot say.
    between = pushed["first"] + dt.timedelta(seconds=30)
    row = client.get_features(
        features=["kinds:last_amount"], entities={"user_id": [FULL]}, as_of=between, with_status=True
    ).to_pylist()[0]
    assert (row["kinds:last_amount"], row["kinds:last_amount__status"]) == (None, "INVALID")


def test_as_of_accepts_every_time_form(client, pushed):
    later = pushed["last"] + dt.timedelta(days=2)
    forms = [
        later,
        later.replace(tzinfo=None),  # naive means UTC
        later.isoformat().replace("+00:00", "Z"),
        np.datetime64(later.replace(tzinfo=None), "us"),
    ]
    pd = pytest.importorskip("pandas")
    forms.append(pd.Timestamp(later))
    answers = {
        client.get_features(
            features=["kinds:last_amount"], entities={"user_id": [FULL]}, as_of=t, with_status=True
        ).column("kinds:last_amount__status")[0].as_py()
        for t in forms
    }
    assert answers == {"OUTSIDE_TTL"}
    with pytest.raises(quiver.InvalidArgument, match="as_of: unparsable time 'yesterday'"):
        client.get_features(features=["kinds:count"], entities={"user_id": 1}, as_of="yesterday")


def test_a_service_serves_its_features_in_order_and_strong_reads_agree(client, pushed):
    eventual = client.get_features(service="model_v1", entities={"user_id": [SPARSE, FULL]})
    assert eventual.column_names == ["user_id", "kinds:last_amount", "kinds:count", "kinds:last_label"]
    assert eventual.column("kinds:last_amount").to_pylist() == [3.0, 12.25]
    strong = client.get_features(
        service="model_v1", entities={"user_id": [SPARSE, FULL]}, consistency="strong"
    )
    assert strong.equals(eventual)
    frame = strong.to_pandas()
    assert list(frame["kinds:count"]) == [1, 2]
    assert frame["kinds:last_label"].isna().tolist() == [True, False]
    assert frame["kinds:last_label"].iloc[1] == "naïve ✓"


def test_entity_keys_in_every_form(client, pushed):
    pd = pytest.importorskip("pandas")
    forms = [
        [FULL, SPARSE],
        (FULL, SPARSE),
        np.array([FULL, SPARSE]),
        pd.Series([FULL, SPARSE]),
        pa.array([FULL, SPARSE]),
    ]
    tables = [client.get_features(service="model_v1", entities={"user_id": f}) for f in forms]
    assert all(t.equals(tables[0]) for t in tables)
    one = client.get_features(service="model_v1", entities={"user_id": FULL})
    assert one.num_rows == 1 and one.column("kinds:count")[0].as_py() == 2


def test_string_keys(client):
    now = dt.datetime.now(UTC)
    client.push("readings", [{"device_id": "dev-ü", "ts": now, "value": 4.5}])
    table = client.get_features(
        features=["device_stats:last_value", "device_stats:readings_1h"],
        entities={"device_id": ["dev-ü", "missing"]},
    )
    assert table.schema.field("device_id").type == pa.string()
    assert table.to_pylist() == [
        {"device_id": "dev-ü", "device_stats:last_value": 4.5, "device_stats:readings_1h": 1},
        {"device_id": "missing", "device_stats:last_value": None, "device_stats:readings_1h": None},
    ]


def test_bad_requests_raise_invalid_argument_with_the_servers_message(client):
    with pytest.raises(quiver.InvalidArgument) as caught:
        client.get_features(features=["kinds:nope"], entities={"user_id": [1]})
    assert caught.value.code == "INVALID_ARGUMENT"
    assert '"nope"' in str(caught.value) and "kinds" in str(caught.value)
    with pytest.raises(
        quiver.InvalidArgument, match=r'entities\[0\] \("user_id"\) row 1: expected int64, got string'
    ):
        client.get_features(features=["kinds:count"], entities={"user_id": [1, "two"]})
    with pytest.raises(quiver.InvalidArgument, match='missing join key "user_id"'):
        client.get_features(features=["kinds:count"], entities={"device_id": ["x"]})
    with pytest.raises(quiver.InvalidArgument, match="feature service"):
        client.get_features(service="no_such_service", entities={"user_id": [1]})
    # Caught before sending.
    with pytest.raises(quiver.InvalidArgument, match="either features"):
        client.get_features(features=["kinds:count"], service="model_v1", entities={"user_id": 1})
    with pytest.raises(quiver.InvalidArgument, match="consistency"):
        client.get_features(features=["kinds:count"], entities={"user_id": 1}, consistency="soon")
    # Keys that cannot be sent at all are named, not raised from protobuf.
    with pytest.raises(quiver.InvalidArgument, match=r"^entities\['user_id'\] row 1: 1180591620717411303424 is out of int64's range$"):
        client.get_features(features=["kinds:count"], entities={"user_id": [1, 2**70]})
    with pytest.raises(quiver.InvalidArgument, match=r"row 0: 'x\\ud800' is not valid Unicode text"):
        client.get_features(features=["kinds:count"], entities={"user_id": ["x\ud800"]})
    # InvalidArgument is also a ValueError, for callers that catch those.
    with pytest.raises(ValueError):
        client.get_features(features=["kinds:nope"], entities={"user_id": [1]})


def test_an_unreachable_store_raises_unavailable_naming_it():
    from conftest import free_port

    address = f"127.0.0.1:{free_port()}"
    with quiver.Client(online=address, registry=address) as client:
        with pytest.raises(quiver.Unavailable, match=f"the online store at {address}"):
            client.get_features(features=["kinds:count"], entities={"user_id": [1]}, timeout=5)


def test_async_reads_match_blocking_ones(dev, client, pushed):
    users = [FULL, SPARSE, NEVER, FULL, SPARSE]
    expected = [
        client.get_features(features=KINDS, entities={"user_id": [u]}, with_status=True)
        for u in users
    ]

    async def main():
        async with quiver.AsyncClient(online=dev.online, registry=dev.registry, project="pytest") as aio:
            tables = await asyncio.gather(
                *(aio.get_features(features=KINDS, entities={"user_id": [u]}, with_status=True) for u in users)
            )
            with pytest.raises(quiver.InvalidArgument, match='"nope"'):
                await aio.get_features(features=["kinds:nope"], entities={"user_id": [1]})
            return tables

    tables = asyncio.run(main())
    for got, want in zip(tables, expected):
        assert got.equals(want)


def test_fixed_width_reads_give_the_same_table_once_read_from_the_answers_bytes(
    dev, client, pushed
):
    """From the second read of a shape on, an answer of int64 keys and fixed-width values, all
    present, is read straight from its bytes (tests/test_answers.py); nulls take the general
    way. Every way gives the first read's table, blocking or asyncio."""
    refs = [
        "kinds:last_amount",
        "kinds:last_qty",
        "kinds:last_ratio",
        "kinds:last_seen_at",
        "kinds:count",
    ]
    first = client.get_features(features=refs, entities={"user_id": [FULL]})
    again = client.get_features(features=refs, entities={"user_id": FULL})
    assert again.schema == first.schema and again.equals(first)
    assert again.to_pylist() == [
        {
            "user_id": FULL,
            "kinds:last_amount": 12.25,
            "kinds:last_qty": -7,
            "kinds:last_ratio": float(np.float32(0.1)),
            "kinds:last_seen_at": pushed["seen"],
            "kinds:count": 2,
        }
    ]
    both = client.get_features(features=refs, entities={"user_id": [FULL, NEVER]})
    assert both.schema == first.schema
    assert both.to_pylist() == [
        again.to_pylist()[0],
        {"user_id": NEVER, **{ref: None for ref in refs}},
    ]

    async def main():
        async with quiver.AsyncClient(
            online=dev.online, registry=dev.registry, project="pytest"
        ) as aio:
            return [
                await aio.get_features(features=refs, entities={"user_id": [FULL]})
                for _ in range(3)
            ]

    assert all(t.equals(first) for t in asyncio.run(main()))
