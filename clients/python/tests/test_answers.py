"""Reading `GetFeatures` answers, without a server: the three ways a table is built (straight
from the answer's bytes, from the decoded message through one packed buffer, and through
pyarrow's conversion of Python values) give the same table, and the two quick ones step aside
for anything they do not read (nulls, other kinds, large or malformed answers)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from quiver import raw_answers, serving
from quiver._proto.registry.v1 import registry_pb2
from quiver._proto.serving.v1 import serving_pb2
from quiver._proto.types.v1 import types_pb2
from quiver.errors import Internal
from quiver.serving import FeatureTypes, decode_response, encode_request

VT = types_pb2.ValueType
PRESENT = types_pb2.FIELD_STATUS_PRESENT
NOT_FOUND = types_pb2.FIELD_STATUS_NOT_FOUND
UTC = dt.timezone.utc
PROJECT = "p"

# name, value type, Value field, Arrow type, values for rows 0..6
FEATURES = [
    ("amount", VT.VALUE_TYPE_FLOAT64, "float64_value", pa.float64(),
     [12.25, -0.0, 1e300, 3.5, 0.1, -7.75, 2.0]),
    ("qty", VT.VALUE_TYPE_INT64, "int64_value", pa.int64(),
     [0, -1, 127, 128, -(2**63), 2**63 - 1, 300]),
    ("ratio", VT.VALUE_TYPE_FLOAT32, "float32_value", pa.float32(),
     [0.5, -2.0, 0.25, 1.5, 8.0, -0.125, 3.0]),
    ("seen_at", VT.VALUE_TYPE_TIMESTAMP, "timestamp_value", pa.timestamp("us", tz="UTC"),
     [0, 1_796_544_241_123_456, -1_500_000, 1, 86_400_000_000, -1, 999_999]),
]
KEYS = [1001, 0, -5, 2**40, 127, 128, 7]


def answer(rows: int, *, statuses=None, key_kind="int64_value", features=FEATURES):
    """A response as the online store sends it: the key column, then one vector per feature."""
    response = serving_pb2.GetFeaturesResponse()
    response.metadata.feature_names.append("user_id")
    response.metadata.feature_names.extend(f"v:{name}" for name, *_ in features)
    response.metadata.views.add(name="v", version=3)
    response.metadata.as_of.seconds = 1_796_544_287
    keys = response.results.add()
    for row in range(rows):
        value = keys.values.add()
        setattr(value, key_kind, KEYS[row] if key_kind == "int64_value" else str(KEYS[row]))
        keys.statuses.append(PRESENT)
        keys.event_timestamps.add()
    for column, (_, _, field, _, values) in enumerate(features):
        vector = response.results.add()
        for row in range(rows):
            status = statuses[column][row] if statuses else PRESENT
            value = vector.values.add()
            if status == PRESENT:
                if field == "timestamp_value":
                    value.timestamp_value.seconds, micros = divmod(values[row], 1_000_000)
                    value.timestamp_value.nanos = micros * 1000
                else:
                    setattr(value, field, values[row])
            vector.statuses.append(status)
            vector.event_timestamps.add(seconds=1_796_544_241, nanos=5000)
    return response


def learned(features=FEATURES) -> FeatureTypes:
    types = FeatureTypes()
    view = registry_pb2.FeatureView(name="v")
    for name, value_type, *_ in features:
        view.features.add(name=name, value_type=value_type)
    types.add(PROJECT, view, 3)
    return types


def expected(rows: int, nulls=()) -> pa.Table:
    columns = {"user_id": pa.array(KEYS[:rows], pa.int64())}
    for column, (name, _, _, arrow_type, values) in enumerate(FEATURES):
        cells = [None if (column, row) in nulls else values[row] for row in range(rows)]
        if arrow_type == pa.float32():
            cells = pa.array(cells, pa.float64()).cast(pa.float32())  # float32 of each value
        columns[f"v:{name}"] = pa.array(cells, arrow_type)
    return pa.table(columns)


def every_way(types: FeatureTypes, data: bytes, keys: int = 1, with_status: bool = False):
    """(from the bytes, through the packed buffer, general) tables of `data`; None where that
    way steps aside. The shape is learned first, as the client does on a first answer."""
    response = decode_response(data)
    shape = types.shape(PROJECT, response, keys, with_status)
    quick, key = types.quick_table(PROJECT, data, keys, with_status)
    assert quick is None  # a shape is read from the bytes only once seen
    types.remember_quick(key, shape)
    quick, _ = types.quick_table(PROJECT, data, keys, with_status)
    response = decode_response(data)
    fixed = serving._fixed_width_table(response.results, shape)
    general = serving._general_table(response.results, shape)
    assert serving.to_table(response, shape).equals(fixed if fixed is not None else general)
    return quick, fixed, general


@pytest.mark.parametrize("rows", [1, 2, 3, 7])
def test_fixed_width_answers_read_the_same_every_way(rows):
    quick, fixed, general = every_way(learned(), answer(rows).SerializeToString())
    want = expected(rows)
    for table in (quick, fixed, general):
        assert table is not None
        assert table.schema == want.schema
        assert table.equals(want), table.to_pylist()
        table.validate(full=True)


def test_nulls_are_left_to_the_general_way():
    statuses = [[PRESENT, NOT_FOUND], [PRESENT, PRESENT], [PRESENT, PRESENT], [NOT_FOUND, PRESENT]]
    quick, fixed, general = every_way(learned(), answer(2, statuses=statuses).SerializeToString())
    assert quick is None and fixed is None
    assert general.equals(expected(2, nulls={(0, 1), (3, 0)}))


def test_string_keys_and_status_columns_are_left_to_the_general_way():
    quick, fixed, general = every_way(
        learned(), answer(2, key_kind="string_value").SerializeToString()
    )
    assert quick is None and fixed is None
    assert general.column("user_id").to_pylist() == ["1001", "0"]
    quick, fixed, general = every_way(learned(), answer(2).SerializeToString(), with_status=True)
    assert quick is None and fixed is None
    assert general.column("v:amount__status").to_pylist() == ["PRESENT", "PRESENT"]
    assert general.column("v:amount").to_pylist() == [12.25, -0.0]


def test_unknown_types_are_left_to_the_general_way():
    """A view whose types could not be looked up: columns typed by their values, per answer."""
    quick, fixed, general = every_way(FeatureTypes(), answer(2).SerializeToString())
    assert quick is None and fixed is None
    assert general.column("v:amount").type == pa.float64()
    assert general.column("v:seen_at").type == pa.timestamp("us", tz="UTC")


def test_times_beyond_int64_microseconds_are_left_to_the_general_way():
    response = answer(1)
    response.results[4].values[0].timestamp_value.seconds = 2**62
    data = response.SerializeToString()
    types = learned()
    shape = types.shape(PROJECT, decode_response(data), 1, False)
    _, vectors = raw_answers.split(data)
    assert raw_answers.body(data, vectors, shape.raw_kinds, 1) is None
    assert serving._fixed_width_table(decode_response(data).results, shape) is None
    with pytest.raises((OverflowError, pa.ArrowException)):  # as before these quick ways
        serving._general_table(decode_response(data).results, shape)


def test_large_answers_are_not_walked_as_bytes():
    rows = 7
    features = FEATURES * 2  # 8 columns of 7 rows: over raw_answers.MAX_BYTES
    response = answer(rows, features=features)
    data = response.SerializeToString()
    assert len(data) > raw_answers.MAX_BYTES
    assert raw_answers.split(data) is None
    quick, fixed, general = every_way(learned(), data)
    assert quick is None and fixed is not None and fixed.equals(general)


def test_malformed_answers_step_aside_without_raising():
    data = answer(3).SerializeToString()
    _, vectors = raw_answers.split(data)
    kinds = (raw_answers.INT64, raw_answers.FLOAT64, raw_answers.INT64, raw_answers.FLOAT32,
             raw_answers.TIMESTAMP)
    assert raw_answers.body(data, vectors, kinds, 1)[0] == 3
    for cut in range(1, len(data)):
        walked = raw_answers.split(data[:cut])
        if walked is not None:  # a prefix can be a whole answer with fewer vectors
            assert raw_answers.body(data[:cut], walked[1], kinds, 1) is None
    assert raw_answers.body(data, vectors, kinds[:-1], 1) is None  # a column more than known
    wrong = (raw_answers.INT64, raw_answers.INT64) + kinds[2:]  # float64 read as int64
    assert raw_answers.body(data, vectors, wrong, 1) is None
    assert raw_answers.split(b"\x08\x01") is None  # a field an answer does not have
    with pytest.raises(Internal, match="could not decode"):
        decode_response(b"\x0a\xff")


def test_requests_are_the_message_the_arguments_describe():
    as_of = dt.datetime(2026, 12, 6, 8, 0, 1, 250, tzinfo=UTC)
    for features, service in ((["v:a", "v@2:b"], None), ("v:a", None), (None, "model_v1")):
        data, keys = encode_request(
            "p", features, service, {"user_id": [1, -2], "region": ["eu"]}, as_of, "strong"
        )
        want = serving_pb2.GetFeaturesRequest(
            project="p", consistency=serving_pb2.CONSISTENCY_STRONG
        )
        if service:
            want.feature_service = service
        else:
            want.feature_list.refs.extend([features] if isinstance(features, str) else features)
        column = want.entities.add(name="user_id")
        column.values.values.add(int64_value=1)
        column.values.values.add(int64_value=-2)
        want.entities.add(name="region").values.values.add(string_value="eu")
        want.as_of.seconds, want.as_of.nanos = 1_796_544_001, 250_000
        assert keys == 2
        assert serving_pb2.GetFeaturesRequest.FromString(data) == want
    # The cached part is per argument: another project or consistency is another request.
    data, _ = encode_request("q", ["v:a"], None, {"user_id": 1}, None, "eventual")
    got = serving_pb2.GetFeaturesRequest.FromString(data)
    assert got.project == "q" and got.consistency == serving_pb2.CONSISTENCY_EVENTUAL
