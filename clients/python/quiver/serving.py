"""`GetFeatures` without the protobuf: requests from Python arguments, answers as typed Arrow
tables. Shared by the blocking and the asyncio client; no I/O here.

Columns are typed by the features' declared value types (`Feature.value_type` in the registry),
looked up once per view version (versions are immutable, so the cache never goes stale). A
column therefore has the same type whether or not any value in it is present.
"""

from __future__ import annotations

import re
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa

from quiver._proto.registry.v1 import registry_pb2
from quiver._proto.serving.v1 import serving_pb2
from quiver._proto.types.v1 import types_pb2
from quiver.errors import InvalidArgument
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


def build_request(
    project: str,
    features: Optional[Sequence[str] | str],
    service: Optional[str],
    entities: Mapping[str, Any],
    as_of: Any,
    consistency: str,
) -> serving_pb2.GetFeaturesRequest:
    """The request for `Client.get_features`' arguments."""
    request = serving_pb2.GetFeaturesRequest(project=project)
    if (features is None) == (service is None):
        raise InvalidArgument("get_features: pass either features=[...] or service=..., not both")
    if service is not None:
        request.feature_service = service
    else:
        request.feature_list.refs.extend([features] if isinstance(features, str) else features)
    if not isinstance(entities, Mapping) or not entities:
        raise InvalidArgument(
            'get_features: entities must map join keys to values, e.g. {"user_id": [1, 2]}'
        )
    for name, values in entities.items():
        column = request.entities.add()
        column.name = name
        add = column.values.values.add
        for row, value in enumerate(_column_values(values)):
            if type(value) is int:  # the common case, kept fast
                add(int64_value=value)
            elif type(value) is str:
                add(string_value=value)
            else:
                set_value(add(), value, f"entities[{name!r}] row {row}")
    if as_of is not None:
        set_timestamp(request.as_of, to_micros(as_of, "as_of"))
    try:
        request.consistency = CONSISTENCY[consistency.lower()]
    except (KeyError, AttributeError):
        raise InvalidArgument(
            f"consistency: expected 'eventual' or 'strong', got {consistency!r}"
        ) from None
    return request


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
    """The value type of every feature of the view versions seen so far."""

    #: After a failed lookup, how long to type that view's columns by their values instead of
    #: asking the registry again on every read.
    RETRY_AFTER = 30.0

    def __init__(self) -> None:
        # (project, view, version) -> {feature: ValueType}
        self._views: Dict[Tuple[str, str, int], Dict[str, int]] = {}
        # (project, view, version) -> when a lookup last failed (time.monotonic)
        self._failed: Dict[Tuple[str, str, int], float] = {}
        # A response's columns -> their value types (None: infer from the values).
        self._layouts: Dict[Tuple, List[Optional[int]]] = {}

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

    def layout(
        self, project: str, response: serving_pb2.GetFeaturesResponse, keys: int
    ) -> List[Optional[int]]:
        """The value type of each feature column of `response` (after its `keys` key columns;
        None where unknown)."""
        metadata = response.metadata
        names = tuple(metadata.feature_names)
        read = tuple((v.name, v.version) for v in metadata.views)
        cache_key = (project, names, read, keys)
        layout = self._layouts.get(cache_key)
        if layout is None:
            latest: Dict[str, int] = {}
            for name, version in read:
                latest[name] = max(version, latest.get(name, 0))
            layout = []
            for name in names[keys:]:
                layout.append(self._type_of(project, name, latest))
            if None not in layout:
                self._layouts[cache_key] = layout
        return layout

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


def to_table(
    response: serving_pb2.GetFeaturesResponse,
    keys: int,
    layout: Sequence[Optional[int]],
    with_status: bool,
) -> pa.Table:
    """The answer as a table: the `keys` entity columns, then one column per feature (null
    where the status is not PRESENT), each followed by its status and event time columns when
    `with_status`. `layout`: each feature's value type (None: from its values)."""
    names = response.metadata.feature_names
    results = response.results
    columns: List[list] = []
    types: List[Optional[int]] = []
    for i in range(keys):
        values, key_type = _key_values(results[i])
        columns.append(values)
        types.append(key_type)
    for i in range(keys, len(results)):
        vector = results[i]
        value_type = layout[i - keys]
        if value_type is None:
            value_type = _infer(vector.values)
        columns.append(_feature_values(vector, value_type))
        types.append(value_type)
        if with_status:
            statuses = vector.statuses
            columns.append([STATUS_NAMES[s] for s in statuses])
            columns.append(
                [
                    None if s == NOT_FOUND else t.seconds * 1_000_000 + t.nanos // 1000
                    for t, s in zip(vector.event_timestamps, statuses)
                ]
            )
    row_type = _row_type(tuple(names), tuple(types), keys, with_status)
    # One conversion of row tuples into a struct array costs far less than one per column
    # (each pyarrow conversion has a fixed cost of several microseconds).
    return pa.Table.from_struct_array(pa.array(list(zip(*columns)), row_type))


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


def _feature_values(vector: serving_pb2.FeatureVector, value_type: Optional[int]) -> list:
    values, statuses = vector.values, vector.statuses
    field = KIND_FIELDS.get(value_type)
    if field is None:
        return [None] * len(values)
    if value_type == VT.VALUE_TYPE_TIMESTAMP:
        return [
            v.timestamp_value.seconds * 1_000_000 + v.timestamp_value.nanos // 1000
            if s == PRESENT
            else None
            for v, s in zip(values, statuses)
        ]
    if value_type == VT.VALUE_TYPE_FLOAT32_LIST:
        return [
            list(v.float32_list_value.values) if s == PRESENT else None
            for v, s in zip(values, statuses)
        ]
    return [getattr(v, field) if s == PRESENT else None for v, s in zip(values, statuses)]


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
