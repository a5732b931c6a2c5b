"""Quiver's value types in Python and Arrow: protobuf `Value`s from Python objects, Arrow types
of Quiver's `ValueType`s, and times as microseconds since the epoch (Quiver's precision)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import pyarrow as pa

from quiver._proto.types.v1 import types_pb2
from quiver.errors import InvalidArgument

VT = types_pb2.ValueType

#: The Arrow type of each Quiver value type: what `get_features` and `snapshot` columns hold.
ARROW_TYPES = {
    VT.VALUE_TYPE_INT64: pa.int64(),
    VT.VALUE_TYPE_FLOAT64: pa.float64(),
    VT.VALUE_TYPE_FLOAT32: pa.float32(),
    VT.VALUE_TYPE_BOOL: pa.bool_(),
    VT.VALUE_TYPE_STRING: pa.string(),
    VT.VALUE_TYPE_BYTES: pa.binary(),
    VT.VALUE_TYPE_TIMESTAMP: pa.timestamp("us", tz="UTC"),
    VT.VALUE_TYPE_FLOAT32_LIST: pa.list_(pa.float32()),
}

#: The `Value.kind` field that carries each value type.
KIND_FIELDS = {
    VT.VALUE_TYPE_INT64: "int64_value",
    VT.VALUE_TYPE_FLOAT64: "float64_value",
    VT.VALUE_TYPE_FLOAT32: "float32_value",
    VT.VALUE_TYPE_BOOL: "bool_value",
    VT.VALUE_TYPE_STRING: "string_value",
    VT.VALUE_TYPE_BYTES: "bytes_value",
    VT.VALUE_TYPE_TIMESTAMP: "timestamp_value",
    VT.VALUE_TYPE_FLOAT32_LIST: "float32_list_value",
}

#: The type names Quiver uses in definitions and messages (`int64`, `float32_list`, ...).
TYPE_NAMES = {t: f.removesuffix("_value") for t, f in KIND_FIELDS.items()}

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def to_micros(value: Any, what: str = "time") -> int:
    """Microseconds since the epoch of a `datetime` (naive means UTC), a pandas `Timestamp`, a
    `numpy.datetime64`, a `date` (its midnight, UTC) or an RFC 3339 / ISO 8601 string."""
    nanos = getattr(value, "value", None)  # pandas.Timestamp: nanoseconds, already UTC
    if nanos is not None and isinstance(value, dt.datetime) and isinstance(nanos, int):
        return nanos // 1000
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(
                f"{what}: unparsable time {value!r}; expected RFC 3339, e.g. 2026-11-28T10:00:00Z"
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return to_micros(dt.datetime(value.year, value.month, value.day), what)
    if type(value).__name__ == "datetime64":  # numpy, without importing it here
        import numpy as np

        return int(value.astype("datetime64[us]").astype(np.int64))
    raise InvalidArgument(
        f"{what}: expected a datetime, a date, a pandas Timestamp, a numpy datetime64 or an "
        f"RFC 3339 string, got {type(value).__name__}"
    )


def set_timestamp(message, micros: int) -> None:
    """Sets a `google.protobuf.Timestamp` to `micros` since the epoch."""
    message.seconds, rest = divmod(micros, 1_000_000)
    message.nanos = rest * 1000


def set_value(message: types_pb2.Value, value: Any, what: str) -> None:
    """Fills `message` with `value` by its Python type: None (or NaN) is null, bool, int,
    float, str, bytes, a time (timestamp), a sequence of numbers (float32 list)."""
    if is_missing(value):
        return
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        message.bool_value = bool(value)
    elif isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        number = int(value)
        if not -(1 << 63) <= number < 1 << 63:
            raise InvalidArgument(f"{what}: {number} is out of int64's range")
        message.int64_value = number
    elif isinstance(value, float) or type(value).__name__.startswith("float"):
        message.float64_value = float(value)
    elif isinstance(value, str):
        try:
            message.string_value = value
        except UnicodeError:  # a lone surrogate: no UTF-8 for it
            raise InvalidArgument(f"{what}: {value!r} is not valid Unicode text (a lone surrogate)") from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        message.bytes_value = bytes(value)
    elif isinstance(value, (dt.datetime, dt.date)) or type(value).__name__ == "datetime64":
        set_timestamp(message.timestamp_value, to_micros(value, what))
    elif hasattr(value, "__len__") and not isinstance(value, dict):
        try:
            numbers = [float(v) for v in value]
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"{what}: a list value must hold numbers (a float32 list), got {value!r}"
            ) from None
        for number in numbers:
            check_float32(number, what)
        message.float32_list_value.values.extend(numbers)
    else:
        raise InvalidArgument(f"{what}: cannot send a {type(value).__name__} ({value!r})")


#: The largest float32 a float64 rounds to rather than overflowing to infinity (f32::MAX plus
#: half a unit in its last place).
_FLOAT32_LIMIT = 3.4028235677973366e38


def check_float32(number: float, what: str) -> None:
    """Refuses a finite `number` beyond float32's range: it would be stored as an infinity,
    a wrong value (rounding to float32's precision is what the column type means)."""
    if number == number and abs(number) != float("inf") and abs(number) >= _FLOAT32_LIMIT:
        raise InvalidArgument(f"{what}: {number!r} is out of float32's range (about ±3.4e38)")


def is_missing(value: Any) -> bool:
    """Whether `value` means "no value": None, NaN (pandas' missing float), pandas' NA/NaT."""
    if value is None:
        return True
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        return bool(value != value)
    return type(value).__name__ in ("NAType", "NaTType")


def python_value(value: types_pb2.Value) -> Optional[Any]:
    """The Python object of a protobuf `Value` (timestamps as UTC datetimes)."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        ts = value.timestamp_value
        return EPOCH + dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    if kind == "float32_list_value":
        return list(value.float32_list_value.values)
    return getattr(value, kind)
