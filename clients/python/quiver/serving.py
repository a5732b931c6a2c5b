"""`GetFeatures` without the protobuf: requests from Python arguments, answers as typed Arrow
tables. Shared by the blocking and the asyncio client; no I/O here.

Columns are typed by the features' declared value types (`Feature.value_type` in the registry),
looked up once per view version (versions are immutable, so the cache never goes stale). A
column therefore has the same type whether or not any value in it is present.

A read is a few hundred microseconds, so the fixed costs per call matter more than the cost
per value: the unchanging part of each request is serialized once (`encode_request`), and the
shape of each kind of answer (names, types, Arrow schema) is worked out once (`Shape`). An
answer of int64 keys and fixed-width features, all present, becomes a table in one pyarrow
call, reading an Arrow IPC message made of a cached header and a body of the values packed in
place, from the answer's bytes when it is small (`raw_answers`), else from the decoded message
(`_fixed_width_table`). Any other answer is converted from Python values (`_general_table`).
"""

from __future__ import annotations

import re
import struct
import time
from operator import attrgetter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa

from quiver import raw_answers
from quiver._proto.registry.v1 import registry_pb2
from quiver._proto.serving.v1 import serving_pb2
from quiver._proto.types.v1 import types_pb2
from quiver.errors import Internal, InvalidArgument
from quiver.values import ARROW_TYPES, KIND_FIELDS, VT, set_timestamp, set_value, to_micros

PRESENT = types_pb2.FIELD_STATUS_PRESENT
NOT_FOUND = types_pb2.FIELD_STATUS_NOT_FOUND

#: Status names as the status columns hold them.
STATUS_NAMES = {
    number: name.removeprefix("FIELD_STATUS_")
    for name, number in types_pb2.FieldStatus.items()
}

CONSISTENCY = {
    "eventual": serving_pb2.CONSISTENCY_EVENTUAL,
    "strong": serving_pb2.CONSISTENCY_STRONG,
}

#: The suffixes of the extra columns `with_status=True` adds after each feature's column.
STATUS_SUFFIX = "__status"
EVENT_TIME_SUFFIX = "__event_timestamp"

_TIMESTAMP = pa.timestamp("us", tz="UTC")
# `view:feature`, `view@3:feature`, or with full feature names `view__feature`.
_REF = re.compile(r"^(?P<view>[^:@]+)(?:@(?P<version>\d+))?:(?P<feature>.+)$")


GET_FEATURES = "/quiver.serving.v1.ServingService/GetFeatures"


def get_features_call(channel):
    """`GetFeatures` on `channel` (blocking or asyncio): takes the serialized request
    (`encode_request`) and returns the serialized response (`FeatureTypes.quick_table`, else
    `decode_response`). Registered with the channel once, so a call does not look the method
    up again."""
    try:
        return channel.unary_unary(GET_FEATURES, _registered_method=True)
    except TypeError:  # grpcio before 1.63: every call names its method
        return channel.unary_unary(GET_FEATURES)


def decode_response(data: bytes) -> serving_pb2.GetFeaturesResponse:
    """The response message of a serialized `GetFeatures` response."""
    try:
        return serving_pb2.GetFeaturesResponse.FromString(data)
    except Exception as e:  # protobuf's DecodeError; as gRPC reports a failed deserializer
        raise Internal(f"GetFeatures: could not decode the response: {e}") from None


def encode_request(
    project: str,
    features: Optional[Sequence[str] | str],
    service: Optional[str],
    entities: Mapping[str, Any],
    as_of: Any,
    consistency: str,
) -> Tuple[bytes, int]:
    """The serialized request for `Client.get_features`' arguments, and its number of entity
    (key) columns.

    What stays the same from call to call (project, features or service, consistency) is
    serialized once and kept; each call serializes only its entities and `as_of` and appends
    them (serialized protobuf messages concatenate into their merge, and the two parts share
    no field)."""
    if features is None and service is None:
        raise InvalidArgument("get_features: pass features=[...] or service=...")
    if features is not None and service is not None:
        raise InvalidArgument("get_features: pass either features=[...] or service=..., not both")
    head = _request_head(project, features, service, consistency)
    if not isinstance(entities, Mapping) or not entities:
        raise InvalidArgument(
            'get_features: entities must map join keys to values, e.g. {"user_id": [1, 2]}'
        )
    request = serving_pb2.GetFeaturesRequest()
    add_column = request.entities.add
    for name, values in entities.items():
        column = add_column()
        column.name = name
        add = column.values.values.add
        for row, value in enumerate(_column_values(values)):
            # The common cases kept fast. What protobuf refuses there (an int past int64, a
            # string with a lone surrogate: ValueErrors) and everything else goes through
            # `set_value`, which names what is wrong.
            try:
                if type(value) is int:
                    add(int64_value=value)
                    continue
                if type(value) is str:
                    add(string_value=value)
                    continue
            except ValueError:
                pass
            set_value(add(), value, f"entities[{name!r}] row {row}")
    if as_of is not None:
        set_timestamp(request.as_of, to_micros(as_of, "as_of"))
    if head is None:
        raise InvalidArgument(
            f"consistency: expected 'eventual' or 'strong', got {consistency!r}"
        )
    return head + request.SerializeToString(), len(entities)


# (project, feature refs or None, service, consistency) -> that part of the request, serialized.
_HEADS: Dict[Tuple, bytes] = {}


def _request_head(
    project: str, features: Optional[Sequence[str] | str], service: Optional[str], consistency: str
) -> Optional[bytes]:
    """The serialized project, features (or service) and consistency of a request; None when
    `consistency` is not one (the caller raises, after checking the rest as before)."""
    if features is None:
        refs = None
    else:
        refs = (features,) if isinstance(features, str) else tuple(features)
    key = (project, refs, service, consistency)
    try:
        return _HEADS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable argument: not cached, and typically refused below
        key = None
    head = serving_pb2.GetFeaturesRequest(project=project)
    if service is not None:
        head.feature_service = service
    else:
        head.feature_list.refs.extend(refs)
    try:
        head.consistency = CONSISTENCY[consistency.lower()]
    except (KeyError, AttributeError):
        return None
    data = head.SerializeToString()
    if key is not None and len(_HEADS) < 1024:  # a server asks for a few lists; bound it anyway
        _HEADS[key] = data
    return data


def _column_values(values: Any) -> Iterable[Any]:
    """A key column's values: a list or tuple, a numpy array, a pandas Series, an Arrow array,
    or one scalar (one entity)."""
    if isinstance(values, (list, tuple)):
        return values
    if isinstance(values, (str, bytes, int, float)):
        return (values,)
    to_pylist = getattr(values, "to_pylist", None)  # pyarrow
    if to_pylist is not None:
        return to_pylist()
    tolist = getattr(values, "tolist", None)  # numpy, pandas
    if tolist is not None:
        return tolist()
    return list(values)


class FeatureTypes:
    """The value type of every feature of the view versions seen so far, and the shape of each
    kind of answer read so far."""

    #: After a failed lookup, how long to type that view's columns by their values instead of
    #: asking the registry again on every read.
    RETRY_AFTER = 30.0

    def __init__(self) -> None:
        # (project, view, version) -> {feature: ValueType}
        self._views: Dict[Tuple[str, str, int], Dict[str, int]] = {}
        # (project, view, version) -> when a lookup last failed (time.monotonic)
        self._failed: Dict[Tuple[str, str, int], float] = {}
        # (project, the response's metadata without its time, keys, with_status) -> its shape;
        # only shapes whose every column is typed (the others may type differently next time).
        self._shapes: Dict[Tuple, Shape] = {}
        # (project, the answer's raw metadata without its time, keys, with_status) -> its
        # shape, for the shapes `raw_answers` can read.
        self._quick: Dict[Tuple, Shape] = {}

    def quick_table(
        self, project: str, data: bytes, keys: int, with_status: bool
    ) -> Tuple[Optional[pa.Table], Optional[Tuple]]:
        """The answer `data` as a table, read without decoding it into messages, when it is
        small and of a shape read before that allows that (`raw_answers`). Otherwise (None,
        the key to pass to `remember_quick` once the shape is known, if it may allow it)."""
        if with_status:  # status columns are strings: never such a shape
            return None, None
        walked = raw_answers.split(data)
        if walked is None:
            return None, None
        metadata, vectors = walked
        key = (project, metadata, keys, with_status)
        shape = self._quick.get(key)
        if shape is None:
            return None, key
        answer = raw_answers.body(data, vectors, shape.raw_kinds, keys)
        if answer is None:
            return None, None
        rows, body = answer
        template = shape.template(rows)
        if template is None:
            return None, None
        batch = pa.ipc.read_record_batch(pa.py_buffer(template[0] + body), shape.schema)
        return pa.Table.from_batches([batch]), None

    def remember_quick(self, key: Optional[Tuple], shape: "Shape") -> None:
        """Lets `quick_table` read the answers of `key` (from `quick_table`) as `shape`."""
        if key is None or shape.raw_kinds is None or None in shape.types:
            return
        if len(self._quick) < 1024:  # bounded, as _HEADS
            self._quick[key] = shape

    def known_shape(
        self, project: str, response: serving_pb2.GetFeaturesResponse, keys: int, with_status: bool
    ) -> Optional["Shape"]:
        """The shape of `response`, when one like it was read before with every column typed.
        (None: look up the missing types, then `shape`.)"""
        return self._shapes.get((project, _metadata_key(response), keys, with_status))

    def missing(
        self, project: str, response: serving_pb2.GetFeaturesResponse
    ) -> List[Tuple[str, int]]:
        """The (view, version)s `response` read whose types are not known yet."""
        needed = []
        for view in response.metadata.views:
            key = (project, view.name, view.version)
            if key not in self._views:
                failed = self._failed.get(key)
                if failed is None or time.monotonic() - failed > self.RETRY_AFTER:
                    needed.append((view.name, view.version))
        return needed

    def failed(self, project: str, view: str, version: int) -> None:
        """Records that the types of `view` at `version` could not be looked up."""
        self._failed[(project, view, version)] = time.monotonic()

    def add(self, project: str, view: registry_pb2.FeatureView, version: int) -> None:
        """Records the feature types of `view` at `version`."""
        self._views[(project, view.name, version)] = {
            f.name: f.value_type for f in view.features
        }

    def shape(
        self, project: str, response: serving_pb2.GetFeaturesResponse, keys: int, with_status: bool
    ) -> "Shape":
        """The shape of `response` (after its `keys` key columns) with the types known now;
        kept for the next answers like it when every column is typed."""
        cache_key = (project, _metadata_key(response), keys, with_status)
        shape = self._shapes.get(cache_key)
        if shape is None:
            shape = Shape(
                tuple(response.metadata.feature_names),
                keys,
                self.layout(project, response, keys),
                with_status,
            )
            if None not in shape.types and len(self._shapes) < 1024:  # bounded, as _HEADS
                self._shapes[cache_key] = shape
        return shape

    def layout(
        self, project: str, response: serving_pb2.GetFeaturesResponse, keys: int
    ) -> List[Optional[int]]:
        """The value type of each feature column of `response` (after its `keys` key columns;
        None where unknown)."""
        metadata = response.metadata
        latest: Dict[str, int] = {}
        for view in metadata.views:
            latest[view.name] = max(view.version, latest.get(view.name, 0))
        return [self._type_of(project, name, latest) for name in metadata.feature_names[keys:]]

    def _type_of(self, project: str, column: str, latest: Dict[str, int]) -> Optional[int]:
        found = _REF.match(column)
        if found:
            view, feature = found["view"], found["feature"]
            version = int(found["version"]) if found["version"] else latest.get(view)
        else:  # full feature names: view__feature
            view, _, feature = column.partition("__")
            version = latest.get(view)
        types = self._views.get((project, view, version or 0))
        value_type = types.get(feature) if types else None
        return value_type if value_type in ARROW_TYPES else None


def _metadata_key(response: serving_pb2.GetFeaturesResponse) -> bytes:
    """What makes answers alike: their column names and the view versions read, serialized
    (one call into the protobuf runtime instead of one per name). The answer's time differs
    every time, so it is cleared first (nothing reads it afterwards)."""
    metadata = response.metadata
    metadata.ClearField("as_of")
    return metadata.SerializeToString()


# Per value type: how a present `Value` becomes the Python object Arrow converts (None: the
# field itself).
_CONVERT = {
    VT.VALUE_TYPE_TIMESTAMP: lambda t: t.seconds * 1_000_000 + t.nanos // 1000,
    VT.VALUE_TYPE_FLOAT32_LIST: lambda v: list(v.values),
}


class Shape:
    """What every answer to one kind of request shares: column names, the value type of each
    feature column (None: typed by its values, per answer) and, per type of the key columns,
    the Arrow type of a row."""

    __slots__ = (
        "names", "keys", "types", "with_status", "fields", "converters", "_row_types",
        "_fixed_codes", "readers", "raw_kinds", "_schema", "_templates",
    )

    def __init__(
        self, names: Tuple[str, ...], keys: int, types: Sequence[Optional[int]], with_status: bool
    ) -> None:
        self.names = names
        self.keys = keys
        self.types = tuple(types)
        self.with_status = with_status
        # Per feature column: the `Value` field holding it and how to convert it.
        self.fields = tuple(KIND_FIELDS.get(t) for t in self.types)
        self.converters = tuple(_CONVERT.get(t) for t in self.types)
        self._row_types: Dict[Tuple, pa.StructType] = {}
        # Answers of int64 keys and fixed-width features only (no status columns) can be read
        # from one packed buffer: per column its `struct` code.
        codes = [_FIXED_WIDTH.get(t) for t in (VT.VALUE_TYPE_INT64,) * keys + self.types]
        usable = keys > 0 and not with_status and None not in codes
        self._fixed_codes = tuple(codes) if usable else None
        #: Per column, how `_fixed_width_table` reads a `Value` (empty: not a shape it reads).
        self.readers = (
            tuple(_reader(t) for t in (VT.VALUE_TYPE_INT64,) * keys + self.types) if usable else ()
        )
        #: Per column, how `raw_answers` reads it (None: not a shape it reads).
        self.raw_kinds = (
            tuple(_RAW_KINDS[t] for t in (VT.VALUE_TYPE_INT64,) * keys + self.types)
            if usable
            else None
        )
        self._schema: Optional[pa.Schema] = None
        # rows -> (IPC message header, body packer), or None where that does not work
        self._templates: Dict[int, Optional[Tuple[bytes, struct.Struct]]] = {}

    def row_type(self, key_types: Tuple[Optional[int], ...]) -> pa.StructType:
        """The struct of one row, given the key columns' value types."""
        row_type = self._row_types.get(key_types)
        if row_type is None:
            row_type = _row_type(self.names, key_types + self.types, self.keys, self.with_status)
            self._row_types[key_types] = row_type
        return row_type

    @property
    def schema(self) -> pa.Schema:
        """The table's schema, for int64 keys."""
        if self._schema is None:
            self._schema = pa.schema(list(self.row_type((VT.VALUE_TYPE_INT64,) * self.keys)))
        return self._schema

    def template(self, rows: int) -> Optional[Tuple[bytes, struct.Struct]]:
        """For answers of `rows` rows without nulls: the header of the Arrow IPC record batch
        message, and the packer of its body (None: not such a shape, or pyarrow lays the body
        out otherwise)."""
        try:
            return self._templates[rows]
        except KeyError:
            pass
        if self._fixed_codes is None or rows < 1 or len(self._templates) >= 64:
            return None
        template = _ipc_template(self.schema, self._fixed_codes, rows)
        self._templates[rows] = template
        return template


# Fixed-width value types: the `struct` code of their Arrow values (timestamps: microseconds).
_FIXED_WIDTH = {
    VT.VALUE_TYPE_INT64: "q",
    VT.VALUE_TYPE_FLOAT64: "d",
    VT.VALUE_TYPE_FLOAT32: "f",
    VT.VALUE_TYPE_TIMESTAMP: "q",
}


_RAW_KINDS = {
    VT.VALUE_TYPE_INT64: raw_answers.INT64,
    VT.VALUE_TYPE_FLOAT64: raw_answers.FLOAT64,
    VT.VALUE_TYPE_FLOAT32: raw_answers.FLOAT32,
    VT.VALUE_TYPE_TIMESTAMP: raw_answers.TIMESTAMP,
}


def _reader(value_type: int):
    """A present `Value` of `value_type` -> its Python value."""
    read = attrgetter(KIND_FIELDS[value_type])
    convert = _CONVERT.get(value_type)
    return read if convert is None else (lambda v: convert(read(v)))


def _ipc_template(
    schema: pa.Schema, codes: Sequence[str], rows: int
) -> Optional[Tuple[bytes, struct.Struct]]:
    """The IPC message of a record batch of `schema` with `rows` rows and no nulls differs from
    batch to batch only in its body, the columns' values one after the other, each padded to 8
    bytes. Returns that message's header and a packer of bodies, checked against what pyarrow
    writes for sample values (None when it differs)."""
    layout = "<"
    for code in codes:
        layout += f"{rows}{code}" + "x" * (-rows * struct.calcsize(code) % 8)
    packer = struct.Struct(layout)
    sample = []
    for column, code in enumerate(codes):
        start = 1000 * column + 1
        sample.append([start + row + (0.5 if code in "df" else 0) for row in range(rows)])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(values, field.type) for values, field in zip(sample, schema)], schema=schema
    )
    message = batch.serialize().to_pybytes()
    body = packer.pack(*[value for values in sample for value in values])
    if len(message) <= len(body) or not message.endswith(body):
        return None
    header = message[: len(message) - len(body)]
    check = pa.ipc.read_record_batch(pa.py_buffer(header + body), schema)
    return (header, packer) if check.equals(batch) else None


def to_table(response: serving_pb2.GetFeaturesResponse, shape: Shape) -> pa.Table:
    """The answer as a table: the entity (key) columns, then one column per feature (null
    where the status is not PRESENT), each followed by its status and event time columns when
    `shape.with_status`."""
    results = response.results
    table = _fixed_width_table(results, shape)
    if table is not None:
        return table
    return _general_table(results, shape)


def _general_table(results, shape: Shape) -> pa.Table:
    """`to_table` for any answer: each value converted by pyarrow from Python objects."""
    keys = shape.keys
    columns: List[list] = []
    key_types: List[Optional[int]] = []
    for i in range(keys):
        values, key_type = _key_values(results[i])
        columns.append(values)
        key_types.append(key_type)
    types = shape.types
    if None in types:  # typed by the values of this answer
        types = tuple(
            _infer(results[i].values) if t is None else t for i, t in enumerate(types, keys)
        )
        fields = tuple(KIND_FIELDS.get(t) for t in types)
        converters = tuple(_CONVERT.get(t) for t in types)
        row_type = _row_type(shape.names, tuple(key_types) + types, keys, shape.with_status)
    else:
        fields, converters = shape.fields, shape.converters
        row_type = shape.row_type(tuple(key_types))
    with_status = shape.with_status
    for i in range(keys, len(results)):
        vector = results[i]
        values, statuses = vector.values, vector.statuses
        field, convert = fields[i - keys], converters[i - keys]
        if field is None:
            columns.append([None] * len(values))
        elif convert is None:
            columns.append(
                [getattr(v, field) if s == PRESENT else None for v, s in zip(values, statuses)]
            )
        else:
            columns.append(
                [
                    convert(getattr(v, field)) if s == PRESENT else None
                    for v, s in zip(values, statuses)
                ]
            )
        if with_status:
            columns.append([STATUS_NAMES[s] for s in statuses])
            columns.append(
                [
                    None if s == NOT_FOUND else t.seconds * 1_000_000 + t.nanos // 1000
                    for t, s in zip(vector.event_timestamps, statuses)
                ]
            )
    # One conversion of row tuples into a struct array costs far less than one per column
    # (each pyarrow conversion has a fixed cost of several microseconds), and a record batch
    # of it into a table less than `Table.from_struct_array`.
    rows = pa.array(list(zip(*columns)), row_type)
    return pa.Table.from_batches([pa.RecordBatch.from_struct_array(rows)])


def _fixed_width_table(results, shape: Shape) -> Optional[pa.Table]:
    """The answer as a table built from one packed buffer, read as an Arrow IPC message with
    the shape's header (a few microseconds, where converting Python rows into Arrow costs tens),
    when the shape allows it: int64 keys, fixed-width features, every value present.
    None otherwise."""
    readers = shape.readers
    if not readers or len(results) != len(readers):
        return None
    keys = shape.keys
    rows = len(results[0].values)
    template = shape.template(rows)
    if template is None:
        return None
    header, packer = template
    present = [PRESENT] * rows
    flat: list = []
    for i, read in enumerate(readers):
        vector = results[i]
        values = vector.values
        if len(values) != rows:
            return None
        if i < keys:
            if values[0].WhichOneof("kind") != "int64_value":
                return None
        elif vector.statuses != present:
            return None
        flat.extend(map(read, values))
    try:
        body = packer.pack(*flat)
    except struct.error:  # a time beyond int64 microseconds: as pyarrow would report it
        return None
    batch = pa.ipc.read_record_batch(pa.py_buffer(header + body), shape.schema)
    return pa.Table.from_batches([batch])


_ROW_TYPES: Dict[Tuple, pa.StructType] = {}
_NULL = pa.null()


def _row_type(
    names: Tuple[str, ...], types: Tuple[Optional[int], ...], keys: int, with_status: bool
) -> pa.StructType:
    """The struct of one output row (cached: the same request shape, the same type)."""
    cache_key = (names, types, with_status)
    row_type = _ROW_TYPES.get(cache_key)
    if row_type is None:
        arrow = [_NULL if t is None else ARROW_TYPES[t] for t in types]
        fields = [pa.field(names[i], arrow[i]) for i in range(keys)]
        for name, arrow_type in zip(names[keys:], arrow[keys:]):
            fields.append(pa.field(name, arrow_type))
            if with_status:
                fields.append(pa.field(name + STATUS_SUFFIX, pa.string()))
                fields.append(pa.field(name + EVENT_TIME_SUFFIX, _TIMESTAMP))
        row_type = pa.struct(fields)
        if len(_ROW_TYPES) < 1024:  # a long-lived server reads a few shapes; bound it anyway
            _ROW_TYPES[cache_key] = row_type
    return row_type


_KEY_TYPES = {
    "int64_value": VT.VALUE_TYPE_INT64,
    "string_value": VT.VALUE_TYPE_STRING,
    "bytes_value": VT.VALUE_TYPE_BYTES,
}


def _key_values(vector: serving_pb2.FeatureVector) -> Tuple[list, Optional[int]]:
    values = vector.values
    kind = values[0].WhichOneof("kind") if len(values) else None
    key_type = _KEY_TYPES.get(kind)
    if key_type is None:
        return [None] * len(values), None
    return [getattr(v, kind) for v in values], key_type


def _infer(values) -> Optional[int]:
    """A column's value type from its values, when the registry could not say (None when
    every value is null: Arrow's null type)."""
    for value in values:
        kind = value.WhichOneof("kind")
        if kind and kind != "null_value":
            for value_type, field in KIND_FIELDS.items():
                if field == kind:
                    return value_type
    return None
