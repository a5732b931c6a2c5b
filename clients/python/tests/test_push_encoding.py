"""The push encoder's bytes against protobuf's own: every value type, nulls, edge values
(negative and huge ints, times before 1970 and with sub-second parts, empty and non-ASCII
strings, empty lists), sliced columns, conversions to the declared type, and the fallback that
sends mismatched values as what they are. No server needed."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pyarrow as pa
import pytest

from quiver._proto.ingest.v1 import ingest_pb2
from quiver._proto.types.v1 import types_pb2
from quiver.errors import InvalidArgument
from quiver.push_encoding import columns_of, encode_rows, header, prepare, trailer
from quiver.values import VT

UTC = dt.timezone.utc


def decode(columns, rows):
    """The encoder's bytes for `rows` (row numbers), as protobuf parses them."""
    data = header("p", "s", [c.name for c in columns]) + encode_rows(columns, rows)
    data += trailer("producer-1", 42, 7)
    request = ingest_pb2.PushRequest.FromString(data)
    assert request.project == "p" and request.source == "s"
    assert (request.producer_id, request.sequence, request.producer_epoch) == ("producer-1", 42, 7)
    assert list(request.columns) == [c.name for c in columns]
    return request.rows


def expected_value(value, value_type):
    message = types_pb2.Value()
    if value is None:
        return message
    if value_type == VT.VALUE_TYPE_INT64:
        message.int64_value = value
    elif value_type == VT.VALUE_TYPE_FLOAT64:
        message.float64_value = value
    elif value_type == VT.VALUE_TYPE_FLOAT32:
        message.float32_value = value
    elif value_type == VT.VALUE_TYPE_BOOL:
        message.bool_value = value
    elif value_type == VT.VALUE_TYPE_STRING:
        message.string_value = value
    elif value_type == VT.VALUE_TYPE_BYTES:
        message.bytes_value = value
    elif value_type == VT.VALUE_TYPE_TIMESTAMP:
        micros = value
        message.timestamp_value.seconds, rest = divmod(micros, 1_000_000)
        message.timestamp_value.nanos = rest * 1000
    elif value_type == VT.VALUE_TYPE_FLOAT32_LIST:
        message.float32_list_value.values.extend(value)
    return message


def random_values(value_type, n, rng):
    def one():
        if rng.random() < 0.15:
            return None
        if value_type == VT.VALUE_TYPE_INT64:
            return rng.choice([0, 1, -1, 127, 128, 2**31, -(2**63), 2**63 - 1, rng.randint(-(10**12), 10**12)])
        if value_type in (VT.VALUE_TYPE_FLOAT64, VT.VALUE_TYPE_FLOAT32):
            return rng.choice([0.0, -0.0, 1.5, -2.25, 1e300 if value_type == VT.VALUE_TYPE_FLOAT64 else 3e38, rng.uniform(-1e6, 1e6)])
        if value_type == VT.VALUE_TYPE_BOOL:
            return rng.random() < 0.5
        if value_type == VT.VALUE_TYPE_STRING:
            return rng.choice(["", "a", "naïve – ü", "x" * 200, "m" + str(rng.randint(0, 999))])
        if value_type == VT.VALUE_TYPE_BYTES:
            return rng.choice([b"", b"\x00\xff", bytes(rng.randrange(256) for _ in range(150))])
        if value_type == VT.VALUE_TYPE_TIMESTAMP:
            return rng.choice([0, 1, -1, 1_000_000, -1_500_000, 1_790_000_000_123_456, rng.randint(0, 2**50)])
        if value_type == VT.VALUE_TYPE_FLOAT32_LIST:
            return [float(np.float32(rng.uniform(-5, 5))) for _ in range(rng.choice([0, 1, 3, 40]))]
    return [one() for _ in range(n)]


ARROW = {
    VT.VALUE_TYPE_INT64: pa.int64(),
    VT.VALUE_TYPE_FLOAT64: pa.float64(),
    VT.VALUE_TYPE_FLOAT32: pa.float32(),
    VT.VALUE_TYPE_BOOL: pa.bool_(),
    VT.VALUE_TYPE_STRING: pa.string(),
    VT.VALUE_TYPE_BYTES: pa.binary(),
    VT.VALUE_TYPE_TIMESTAMP: pa.timestamp("us"),
    VT.VALUE_TYPE_FLOAT32_LIST: pa.list_(pa.float32()),
}


def test_every_type_matches_protobuf_including_slices():
    rng = random.Random(7)
    n = 300
    types = list(ARROW)
    data = {f"c{t}": random_values(t, n, rng) for t in types}
    columns = [prepare(f"c{t}", pa.array(data[f"c{t}"], ARROW[t]), t) for t in types]
    assert all(c.arrow is not None for c in columns), "every column takes the vectorized path"
    for start, length in [(0, n), (0, 1), (17, 50), (n - 3, 3)]:
        rows = decode(columns, range(start, start + length))
        assert len(rows) == length
        for r, row in enumerate(rows):
            assert len(row.values) == len(types)
            for c, t in enumerate(types):
                want = expected_value(data[f"c{t}"][start + r], t)
                assert row.values[c] == want, (t, start + r, row.values[c], want)
                # Byte-identical too, not only equal after parsing.
                assert row.values[c].SerializeToString() == want.SerializeToString()


def test_conversions_to_the_declared_type():
    columns = [
        prepare("f64_from_int", pa.array([1, None, -3]), VT.VALUE_TYPE_FLOAT64),
        prepare("i64_from_int8", pa.array([1, 2, -3], pa.int8()), VT.VALUE_TYPE_INT64),
        prepare("ts_ns_tz", pa.array([1_700_000_000_123_456_789, None, -1_500], pa.timestamp("ns", "Europe/Paris")), VT.VALUE_TYPE_TIMESTAMP),
        prepare("ts_text", pa.array(["2026-11-28T10:00:00Z", None, "x"]), VT.VALUE_TYPE_TIMESTAMP),
        prepare("s_dict", pa.array(["a", "b", "a"]).dictionary_encode(), VT.VALUE_TYPE_STRING),
        prepare("s_large", pa.array(["x", None, "zz"], pa.large_string()), VT.VALUE_TYPE_STRING),
        prepare("list_f64", pa.array([[1.5, 2.0], [], None], pa.list_(pa.float64())), VT.VALUE_TYPE_FLOAT32_LIST),
    ]
    rows = decode(columns, range(3))
    assert [r.values[0].WhichOneof("kind") for r in rows] == ["float64_value", None, "float64_value"]
    assert rows[2].values[0].float64_value == -3.0
    assert [r.values[1].int64_value for r in rows] == [1, 2, -3]
    ts = rows[0].values[2].timestamp_value
    assert (ts.seconds, ts.nanos) == (1_700_000_000, 123_456_000)  # UTC instant, microseconds kept
    last = rows[2].values[2].timestamp_value
    assert (last.seconds, last.nanos) == (-1, 999_999_000)  # -1.5 µs: Arrow truncates to -1 µs
    assert rows[0].values[3].string_value == "2026-11-28T10:00:00Z"  # ingest parses RFC 3339
    assert [r.values[4].string_value for r in rows] == ["a", "b", "a"]
    assert rows[1].values[5].WhichOneof("kind") is None
    assert list(rows[0].values[6].float32_list_value.values) == [1.5, 2.0]
    assert rows[1].values[6].WhichOneof("kind") == "float32_list_value"  # an empty list, not null
    assert rows[2].values[6].WhichOneof("kind") is None


def test_decimals_become_the_float64_nearest_their_exact_value():
    """As `quiver load` reads a Parquet decimal (its exact text, parsed): the same values, so
    one file loaded by either is the same load."""
    import decimal

    rng = random.Random(3)
    values = [decimal.Decimal(rng.randint(-(10**10), 10**10)).scaleb(-rng.choice([0, 2, 4, 9])) for _ in range(20_000)]
    column = prepare("amount", pa.array(values, pa.decimal128(38, 9)), VT.VALUE_TYPE_FLOAT64)
    assert column.arrow.to_pylist() == [float(str(v)) for v in values]  # correctly rounded


def test_columns_without_any_value_are_null_whatever_their_type():
    columns = [prepare(f"c{t}", [None, None], t) for t in ARROW] + [prepare("x", pa.nulls(2), None)]
    for row in decode(columns, range(2)):
        assert [v.WhichOneof("kind") for v in row.values] == [None] * len(columns)


def test_values_that_do_not_fit_are_sent_as_what_they_are():
    # ingest must see the string to say `rows[2].amount: expected float64, got string`.
    amount = prepare("amount", [1.0, 2, "three", None], VT.VALUE_TYPE_FLOAT64)
    assert amount.objects is not None
    too_big = prepare("big", pa.array([2**62 + 1]), VT.VALUE_TYPE_FLOAT64)  # not exact as a float
    fraction = prepare("qty", pa.array([1.5]), VT.VALUE_TYPE_INT64)
    rows = decode([amount], range(4))
    assert [r.values[0].WhichOneof("kind") for r in rows] == ["float64_value", "float64_value", "string_value", None]
    assert rows[1].values[0].float64_value == 2.0
    with pytest.raises(InvalidArgument, match=r"^big: 4611686018427387905 cannot be held exactly by a float64$"):
        decode([too_big], range(1))  # as `quiver load` refuses the same Parquet value
    assert decode([fraction], range(1))[0].values[0].float64_value == 1.5
    unknown = prepare("colour", pa.array(["red"]), None)  # not in the schema: ingest names it
    assert decode([unknown], range(1))[0].values[0].string_value == "red"


def test_inputs_pandas_arrow_and_dicts_give_the_same_bytes():
    pd = pytest.importorskip("pandas")
    when = dt.datetime(2026, 11, 28, 10, 0, 0, 250_000, tzinfo=UTC)
    records = [
        {"user_id": 1, "ts": when, "amount": 12.5, "merchant": "m1"},
        {"user_id": 2, "ts": when, "amount": None, "merchant": "m2"},
    ]
    frame = pd.DataFrame(records)
    table = pa.Table.from_pylist(records)
    declared = {"user_id": VT.VALUE_TYPE_INT64, "ts": VT.VALUE_TYPE_TIMESTAMP,
                "amount": VT.VALUE_TYPE_FLOAT64, "merchant": VT.VALUE_TYPE_STRING}
    encoded = []
    for data in (records, frame, table, table.to_batches()[0]):
        columns = [prepare(k, v, declared[k]) for k, v in columns_of(data).items()]
        encoded.append(encode_rows(columns, range(2)))
    assert encoded[0] == encoded[1] == encoded[2] == encoded[3]
    rows = ingest_pb2.PushRequest.FromString(encoded[0]).rows
    assert rows[0].values[1].timestamp_value.nanos == 250_000_000
    assert rows[1].values[2].WhichOneof("kind") is None  # pandas NaN is null


def test_rows_taken_out_of_order_match_the_same_rows_sliced():
    rng = random.Random(3)
    types = list(ARROW)
    data = {t: random_values(t, 50, rng) for t in types}
    arrow = [prepare(f"c{t}", pa.array(data[t], ARROW[t]), t) for t in types]
    objects = [prepare("mixed", [1, "a", None, 2.5, b"x"] * 10, VT.VALUE_TYPE_FLOAT64)]
    picked = np.array([1, 4, 5, 17, 49])
    taken = decode(arrow + objects, picked)
    one_by_one = [decode(arrow + objects, np.array([i]))[0] for i in picked]
    assert list(taken) == one_by_one
    assert taken[0].values[-1].string_value == "a"  # rows 1 and 4 of the mixed column
    assert taken[1].values[-1].bytes_value == b"x"


def test_a_list_with_a_null_element_is_refused_by_the_client():
    column = prepare("vec", pa.array([[1.0, None]], pa.list_(pa.float32())), VT.VALUE_TYPE_FLOAT32_LIST)
    with pytest.raises(InvalidArgument, match="null element"):
        encode_rows([column], range(1))


def test_unsupported_data_is_refused_with_what_was_given():
    with pytest.raises(InvalidArgument, match="got int"):
        columns_of(42)
    with pytest.raises(InvalidArgument, match=r"rows\[1\]: expected a dict"):
        columns_of([{"a": 1}, 3])
