"""Pushed rows straight to protobuf wire bytes, a column at a time with numpy.

Building a `Row` of `Value` messages per event costs microseconds per value in Python; a
1,000,000-row DataFrame would take longer to encode than Quiver takes to aggregate it. Instead
each column is prepared once as Arrow (cast to the type the source's schema declares), and a
batch's `PushRequest.rows` bytes are assembled from per-column byte pieces:

    rows   = for each row: 0x22 varint(len) | for each column: 0x0a varint(len) <Value>
    Value  = int64 0x10 varint | float64 0x19 8 bytes | float32 0x25 4 bytes | bool 0x28 0/1 |
             string 0x32 varint(len) utf-8 | bytes 0x3a ... | timestamp 0x42 len (0x08 secs,
             0x10 nanos) | float32 list 0x4a len (0x0a len packed floats) | null: empty

Every piece is (buffer, start per row, length per row), so fixed-width parts are matrices and
variable-width payloads point into Arrow's own buffers; one gather puts them in row order. The
header fields (project, source, columns) and the trailer (producer id, sequence) are serialized
by protobuf itself; protobuf reads fields in any order. `tests/test_push_encoding.py` checks
the bytes against protobuf's own encoding.

A column whose values do not fit the declared type (a string in a float64 column, say) is sent
value by value as what each value is; `push_checks` refuses such rows before anything is sent,
in ingest's words (`rows[17].amount: expected float64, got string`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quiver._proto.types.v1 import types_pb2
from quiver.errors import InvalidArgument
from quiver.values import VT, check_float32, is_missing, set_value

# A piece of every row's bytes: a buffer, where each row's part starts in it, how long it is.
Piece = Tuple[np.ndarray, np.ndarray, np.ndarray]

_ARROW_TARGET = {
    VT.VALUE_TYPE_INT64: pa.int64(),
    VT.VALUE_TYPE_FLOAT64: pa.float64(),
    VT.VALUE_TYPE_FLOAT32: pa.float32(),
    VT.VALUE_TYPE_BOOL: pa.bool_(),
    VT.VALUE_TYPE_STRING: pa.string(),
    VT.VALUE_TYPE_BYTES: pa.binary(),
    VT.VALUE_TYPE_TIMESTAMP: pa.timestamp("us"),
    VT.VALUE_TYPE_FLOAT32_LIST: pa.list_(pa.float32()),
}


@dataclass
class Column:
    """One pushed column, ready to encode: an Arrow array of `value_type`'s representation, or
    Python objects sent value by value (`value_type` then only guides lossless conversions)."""

    name: str
    value_type: int
    arrow: Optional[pa.Array] = None
    objects: Optional[List[Any]] = None


def natural_type(arrow_type: pa.DataType) -> Optional[int]:
    """The Quiver value type an Arrow type naturally holds (None: none does)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return VT.VALUE_TYPE_BOOL
    if pa.types.is_integer(t):
        return VT.VALUE_TYPE_INT64
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return VT.VALUE_TYPE_FLOAT32
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return VT.VALUE_TYPE_FLOAT64
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t):
        return VT.VALUE_TYPE_STRING
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return VT.VALUE_TYPE_BYTES
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return VT.VALUE_TYPE_TIMESTAMP
    if (
        pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    ) and (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        return VT.VALUE_TYPE_FLOAT32_LIST
    return None


def _is_string_view(t: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)
    return bool(check and check(t))


# Conversions that never change a value (beyond float32's precision for a float32 column, and
# a timestamp's sub-microsecond part: Quiver keeps microseconds).
_LOSSLESS = {
    VT.VALUE_TYPE_INT64: {VT.VALUE_TYPE_INT64},
    VT.VALUE_TYPE_FLOAT64: {VT.VALUE_TYPE_FLOAT64, VT.VALUE_TYPE_FLOAT32, VT.VALUE_TYPE_INT64},
    VT.VALUE_TYPE_FLOAT32: {VT.VALUE_TYPE_FLOAT32, VT.VALUE_TYPE_FLOAT64, VT.VALUE_TYPE_INT64},
    VT.VALUE_TYPE_BOOL: {VT.VALUE_TYPE_BOOL},
    VT.VALUE_TYPE_STRING: {VT.VALUE_TYPE_STRING},
    VT.VALUE_TYPE_BYTES: {VT.VALUE_TYPE_BYTES},
    VT.VALUE_TYPE_TIMESTAMP: {VT.VALUE_TYPE_TIMESTAMP},
    VT.VALUE_TYPE_FLOAT32_LIST: {VT.VALUE_TYPE_FLOAT32_LIST},
}


def prepare(name: str, data: Union[pa.Array, pa.ChunkedArray, List[Any]], declared: Optional[int]) -> Column:
    """Prepares one column for the source column type `declared` (None: the column is not in
    the source's schema; it is sent as it is and ingest names it)."""
    # A list's own values, if Arrow cannot give the declared type: Arrow's inference would have
    # turned `[1, 1.5]` into floats and made the int a mismatch too.
    values = data if isinstance(data, list) else None
    if values is not None:
        try:
            data = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, UnicodeError):
            return Column(name, declared or 0, objects=values)
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    if pa.types.is_null(data.type):  # every value missing: empty `Value`s, whatever the type
        return Column(name, VT.VALUE_TYPE_STRING, arrow=pa.nulls(len(data), pa.string()))
    natural = natural_type(data.type)
    if declared is None or natural is None:
        if natural is None:
            return Column(name, declared or 0, objects=values if values is not None else data.to_pylist())
        declared = natural
    if (
        declared == VT.VALUE_TYPE_TIMESTAMP
        and natural == VT.VALUE_TYPE_STRING
    ):  # RFC 3339 text: ingest parses it
        return Column(name, VT.VALUE_TYPE_STRING, arrow=_cast(data, pa.string(), True))
    if pa.types.is_decimal(data.type) and declared in (VT.VALUE_TYPE_FLOAT64, VT.VALUE_TYPE_FLOAT32):
        # Through their exact text, as `quiver load` reads a Parquet decimal: Arrow's own
        # decimal-to-float cast is not correctly rounded (1 in 8 decimal(10,2) values landed a
        # unit in the last place off), which would also make the two loads of one file differ.
        data = pc.cast(pc.cast(data, pa.string()), pa.float64())
    if natural in _LOSSLESS[declared]:
        if pa.types.is_dictionary(data.type):
            data = data.dictionary_decode()
        if declared == VT.VALUE_TYPE_TIMESTAMP:
            # Any unit and zone (naive means UTC); microseconds kept, nanoseconds dropped.
            if pa.types.is_timestamp(data.type) and data.type.tz is not None:
                data = data.cast(pa.timestamp(data.type.unit))
            try:
                return Column(name, declared, arrow=_cast(data, pa.timestamp("us"), False))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        else:
            exact = declared not in (VT.VALUE_TYPE_FLOAT32, VT.VALUE_TYPE_FLOAT32_LIST)
            try:
                cast = _cast(data, _ARROW_TARGET[declared], exact)
                if exact or not _overflowed(data, cast):
                    return Column(name, declared, arrow=cast)
                # A finite value beyond float32's range became an infinity: value by value,
                # where the check names the row.
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # e.g. 2**60 into float64, 1.5 into int64: let ingest say which row
    return Column(name, declared, objects=values if values is not None else data.to_pylist())


def _overflowed(data: pa.Array, cast: pa.Array) -> bool:
    """Whether a cast to float32 (or float32 lists) made a finite value infinite."""
    if pa.types.is_list(cast.type) or pa.types.is_large_list(cast.type):
        data, cast = data.flatten(), cast.flatten()
    if not pa.types.is_floating(data.type):
        return False
    grew = pc.and_(pc.is_finite(data), pc.invert(pc.is_finite(cast)))
    return bool(pc.any(grew).as_py())


def _cast(data: pa.Array, target: pa.DataType, safe: bool) -> pa.Array:
    if data.type == target:
        return data
    return pc.cast(data, target, safe=safe)


def encode_rows(columns: Sequence[Column], rows: Union[np.ndarray, range]) -> bytes:
    """The `PushRequest.rows` bytes of the rows numbered `rows` (ascending) of `columns`."""
    pieces, row_lengths = _row_pieces(columns, rows)
    return _gather([_tag_and_varint(0x22, row_lengths), *pieces], len(rows))


def length_prefixed_rows(columns: Sequence[Column], rows: Union[np.ndarray, range]) -> bytes:
    """Each row's `Row` encoding after its length as a little-endian u64: how `quiver load`
    feeds rows to a load's identity hash."""
    pieces, row_lengths = _row_pieces(columns, rows)
    n = len(rows)
    prefix = np.ascontiguousarray(row_lengths, dtype="<u8").view(np.uint8)
    return _gather([(prefix, np.arange(n, dtype=np.int64) * 8, np.full(n, 8, np.int64)), *pieces], n)


def value_encodings(column: Column, rows: Union[np.ndarray, range]) -> Piece:
    """Each row's `Value` of `column`, encoded on its own (no `Row` field tag and length): a
    buffer, where each row's starts and how long it is. A null is empty."""
    pieces, framed = _row_pieces([column], rows)
    data = np.frombuffer(_gather(pieces, len(rows)), np.uint8)
    # Each row is `0x0a varint(n)` then its n bytes; the varint's width follows from the total.
    value_lengths = framed - 2
    for width in range(2, 11):
        wider = value_lengths >= 1 << (7 * (width - 1))
        if not wider.any():
            break
        value_lengths = np.where(wider, framed - 1 - width, value_lengths)
    starts = np.cumsum(framed) - framed + (framed - value_lengths)
    return data, starts, value_lengths


def _row_pieces(columns: Sequence[Column], rows: Union[np.ndarray, range]) -> Tuple[List[Piece], np.ndarray]:
    """The pieces of the rows numbered `rows` (ascending) of `columns`, and each row's length."""
    length = len(rows)
    contiguous = length > 0 and int(rows[-1]) - int(rows[0]) == length - 1
    start = int(rows[0]) if length else 0
    taken = None if contiguous else pa.array(np.asarray(rows, dtype=np.int64))
    pieces: List[Piece] = []
    for column in columns:
        if column.objects is not None:
            values = column.objects[start : start + length] if contiguous else [column.objects[int(i)] for i in rows]
            pieces.extend(_object_pieces(column, values))
        else:
            array = column.arrow.slice(start, length) if contiguous else column.arrow.take(taken)
            pieces.extend(_arrow_pieces(column.value_type, array))
    row_lengths = np.zeros(length, np.int64)
    for _, _, lens in pieces:
        row_lengths += lens
    return pieces, row_lengths


def _gather(pieces: Sequence[Piece], rows: int) -> bytes:
    """Concatenates, row by row, every piece's part of the row."""
    bases = np.cumsum([0] + [len(data) for data, _, _ in pieces[:-1]])
    combined = np.concatenate([data for data, _, _ in pieces])
    starts = np.empty((rows, len(pieces)), np.int64)
    lens = np.empty((rows, len(pieces)), np.int64)
    for j, (_, s, n) in enumerate(pieces):
        starts[:, j] = s + bases[j]
        lens[:, j] = n
    starts, lens = starts.ravel(), lens.ravel()
    ends = np.cumsum(lens)
    total = int(ends[-1]) if len(ends) else 0
    index = np.repeat(starts - (ends - lens), lens) + np.arange(total, dtype=np.int64)
    return combined[index].tobytes()


def _varints(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Each value (as uint64: two's complement for negatives) as a varint: a (n, 10) matrix,
    left-aligned, and each one's length."""
    rest = values.astype(np.uint64, copy=True)
    n = len(rest)
    matrix = np.zeros((n, 10), np.uint8)
    lengths = np.ones(n, np.int64)
    for k in range(10):
        low = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
        more = rest != 0
        matrix[:, k] = low | (more.astype(np.uint8) << 7)
        if not more.any():
            break
        lengths += more
    return matrix, lengths


def _matrix_piece(matrix: np.ndarray, lens: np.ndarray) -> Piece:
    width = matrix.shape[1]
    return matrix.ravel(), np.arange(len(lens), dtype=np.int64) * width, lens


def _tag_and_varint(tag: int, values: np.ndarray) -> Piece:
    """`tag varint(value)` per row."""
    varint, lengths = _varints(values)
    matrix = np.empty((len(values), 11), np.uint8)
    matrix[:, 0] = tag
    matrix[:, 1:] = varint
    return _matrix_piece(matrix, lengths + 1)


def _valid(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.ones(len(array), bool)
    return array.is_valid().to_numpy(zero_copy_only=False)


def _fixed(array: pa.Array, tag: int, payload: np.ndarray, width: int) -> List[Piece]:
    """`0x0a len tag payload` per row (`payload`: (n, width) bytes); a null row is `0x0a 0x00`."""
    n = len(array)
    valid = _valid(array)
    matrix = np.empty((n, 3 + width), np.uint8)
    matrix[:, 0] = 0x0A
    matrix[:, 1] = np.where(valid, 1 + width, 0)
    matrix[:, 2] = tag
    matrix[:, 3:] = payload
    return [_matrix_piece(matrix, np.where(valid, 3 + width, 2).astype(np.int64))]


def _filled(array: pa.Array, fill) -> np.ndarray:
    if array.null_count:
        array = pc.fill_null(array, fill)
    return array.to_numpy(zero_copy_only=False)


def _arrow_pieces(value_type: int, array: pa.Array) -> List[Piece]:
    n = len(array)
    if value_type == VT.VALUE_TYPE_FLOAT64:
        values = np.ascontiguousarray(_filled(array, 0.0), dtype="<f8")
        return _fixed(array, 0x19, values.view(np.uint8).reshape(n, 8), 8)
    if value_type == VT.VALUE_TYPE_FLOAT32:
        values = np.ascontiguousarray(_filled(array, 0.0), dtype="<f4")
        return _fixed(array, 0x25, values.view(np.uint8).reshape(n, 4), 4)
    if value_type == VT.VALUE_TYPE_BOOL:
        values = _filled(array, False).astype(np.uint8).reshape(n, 1)
        return _fixed(array, 0x28, values, 1)
    if value_type == VT.VALUE_TYPE_INT64:
        valid = _valid(array)
        varint, lengths = _varints(_filled(array, 0).astype(np.int64))
        matrix = np.empty((n, 13), np.uint8)
        matrix[:, 0] = 0x0A
        matrix[:, 1] = np.where(valid, 1 + lengths, 0)
        matrix[:, 2] = 0x10
        matrix[:, 3:] = varint
        return [_matrix_piece(matrix, np.where(valid, 3 + lengths, 2))]
    if value_type == VT.VALUE_TYPE_TIMESTAMP:
        return _timestamp_pieces(array)
    if value_type in (VT.VALUE_TYPE_STRING, VT.VALUE_TYPE_BYTES):
        tag = 0x32 if value_type == VT.VALUE_TYPE_STRING else 0x3A
        return _binary_pieces(array, tag)
    if value_type == VT.VALUE_TYPE_FLOAT32_LIST:
        return _float32_list_pieces(array)
    raise InvalidArgument(f"cannot push values of type {value_type}")  # unreachable by design


def _timestamp_pieces(array: pa.Array) -> List[Piece]:
    n = len(array)
    valid = _valid(array)
    micros = _filled(array.cast(pa.int64()), 0).astype(np.int64)
    seconds, rest = np.divmod(micros, 1_000_000)
    nanos = rest * 1000
    sec_varint, sec_len = _varints(seconds)
    nano_varint, nano_len = _varints(nanos)
    sec_len = np.where(seconds != 0, 1 + sec_len, 0)  # proto3 leaves zero fields out
    nano_len = np.where(nanos != 0, 1 + nano_len, 0)
    inner = sec_len + nano_len  # the Timestamp message, at most 17 bytes
    head = np.empty((n, 15), np.uint8)
    head[:, 0] = 0x0A
    head[:, 1] = np.where(valid, 2 + inner, 0)
    head[:, 2] = 0x42
    head[:, 3] = inner
    head[:, 4] = 0x08
    head[:, 5:] = sec_varint
    tail = np.empty((n, 11), np.uint8)
    tail[:, 0] = 0x10
    tail[:, 1:] = nano_varint
    return [
        _matrix_piece(head, np.where(valid, 4 + sec_len, 2)),
        _matrix_piece(tail, np.where(valid, nano_len, 0)),
    ]


def _binary_pieces(array: pa.Array, tag: int) -> List[Piece]:
    n = len(array)
    valid = _valid(array)
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], np.int32)[array.offset : array.offset + n + 1].astype(np.int64)
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]] if n else data[:0]
    lengths = np.where(valid, offsets[1:] - offsets[:-1], 0)
    inner, inner_len = _varints(lengths)  # string field: tag varint(len) bytes
    value_len = 1 + inner_len + lengths
    outer = _tag_and_varint(0x0A, np.where(valid, value_len, 0))
    field = np.empty((n, 11), np.uint8)
    field[:, 0] = tag
    field[:, 1:] = inner
    return [
        outer,
        _matrix_piece(field, np.where(valid, 1 + inner_len, 0)),
        (data, offsets[:-1] - offsets[0], lengths),
    ]


def _float32_list_pieces(array: pa.Array) -> List[Piece]:
    n = len(array)
    valid = _valid(array)
    offsets = array.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    child = array.values
    if child.null_count and pc.any(pc.is_null(child.slice(offsets[0], offsets[-1] - offsets[0]))).as_py():
        raise InvalidArgument("a float32 list value holds a null element; lists cannot hold nulls")
    floats = np.frombuffer(child.buffers()[1], np.float32)[child.offset : child.offset + len(child)]
    data = floats[offsets[0] : offsets[-1]].view(np.uint8)
    count = np.where(valid, offsets[1:] - offsets[:-1], 0)
    payload = count * 4
    packed_varint, packed_len = _varints(payload)
    list_len = np.where(count > 0, 1 + packed_len + payload, 0)  # Float32List{values (packed)}
    list_varint, list_varint_len = _varints(list_len)
    value_len = 1 + list_varint_len + list_len
    outer = _tag_and_varint(0x0A, np.where(valid, value_len, 0))
    field = np.empty((n, 11), np.uint8)
    field[:, 0] = 0x4A
    field[:, 1:] = list_varint
    packed = np.empty((n, 11), np.uint8)
    packed[:, 0] = 0x0A
    packed[:, 1:] = packed_varint
    return [
        outer,
        _matrix_piece(field, np.where(valid, 1 + list_varint_len, 0)),
        _matrix_piece(packed, np.where(count > 0, 1 + packed_len, 0)),
        (data, (offsets[:-1] - offsets[0]) * 4, payload),
    ]


def _object_pieces(column: Column, values: List[Any]) -> List[Piece]:
    """Values sent one by one as what each is (slow, for columns Arrow cannot type)."""
    chunks: List[bytes] = []
    message = types_pb2.Value()
    declared = column.value_type
    for row, value in enumerate(values):
        message.Clear()
        if not is_missing(value):
            set_declared(message, value, declared, column.name)
        body = message.SerializeToString()
        chunks.append(b"\x0a" + _varint_bytes(len(body)) + body)
    lengths = np.fromiter((len(c) for c in chunks), np.int64, len(chunks))
    starts = np.cumsum(lengths) - lengths
    data = np.frombuffer(b"".join(chunks), np.uint8) if chunks else np.zeros(0, np.uint8)
    return [(data, starts, lengths)]


def set_declared(message: types_pb2.Value, value: Any, declared: int, name: str) -> None:
    """A value as the declared type where that loses nothing (an int for a float column),
    otherwise as what it is (ingest then names the mismatch). An int no float64 holds exactly
    is refused for a float column, in `quiver load`'s words for the same Parquet value."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    floats = (VT.VALUE_TYPE_FLOAT64, VT.VALUE_TYPE_FLOAT32)
    if is_number and declared in floats and isinstance(value, numbers.Integral):
        number = int(value)
        try:
            exact = float(number) == number
        except OverflowError:  # beyond float64's range
            exact = False
        if not exact:
            raise InvalidArgument(f"{name}: {number} cannot be held exactly by a float64")
    if declared == VT.VALUE_TYPE_FLOAT64 and is_number:
        message.float64_value = float(value)
    elif declared == VT.VALUE_TYPE_FLOAT32 and is_number:
        check_float32(float(value), name)
        message.float32_value = float(value)
    else:
        set_value(message, value, name)


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def header(project: str, source: str, columns: Sequence[str]) -> bytes:
    """The request's project, source and column names."""
    from quiver._proto.ingest.v1 import ingest_pb2

    return ingest_pb2.PushRequest(project=project, source=source, columns=list(columns)).SerializeToString()


def trailer(producer_id: str, sequence: int, epoch: int = 0) -> bytes:
    """The request's producer id, sequence number and producer epoch."""
    from quiver._proto.ingest.v1 import ingest_pb2

    return ingest_pb2.PushRequest(
        producer_id=producer_id, sequence=sequence, producer_epoch=epoch
    ).SerializeToString()


def columns_of(data: Any) -> Dict[str, Union[pa.Array, pa.ChunkedArray, List[Any]]]:
    """The columns of pushed data: a pandas DataFrame, a pyarrow Table or RecordBatch, or a
    list of dicts (one per event; missing keys are null)."""
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return {name: data.column(i) for i, name in enumerate(data.schema.names)}
    if is_dataframe(data):
        out: Dict[str, Union[pa.Array, List[Any]]] = {}
        for name in data.columns:
            series = data[name]
            try:
                out[str(name)] = series_to_arrow(series)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, UnicodeError):
                out[str(name)] = series.tolist()  # mixed values: sent one by one
        return out
    if isinstance(data, (list, tuple)):
        names: Dict[str, None] = {}
        for row, event in enumerate(data):
            if not isinstance(event, dict):
                raise InvalidArgument(
                    f"rows[{row}]: expected a dict (column -> value), got {type(event).__name__}"
                )
            names.update(dict.fromkeys(event))
        return {name: [event.get(name) for event in data] for name in names}
    raise InvalidArgument(
        f"push: expected a pandas DataFrame, a pyarrow Table or RecordBatch, or a list of "
        f"dicts; got {type(data).__name__}"
    )


def is_dataframe(data: Any) -> bool:
    """Whether `data` is a pandas DataFrame (without importing pandas)."""
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns") and hasattr(data, "dtypes")


def series_to_arrow(series: Any) -> pa.Array:
    """A pandas Series as Arrow (NaN and None are null). Zone-aware times go through their
    UTC values: pyarrow's own path reads `Series.values`, which pandas 3 deprecates for them."""
    tz = getattr(series.dtype, "tz", None)
    if tz is not None:
        naive = pa.array(series.dt.tz_convert(None).to_numpy())  # UTC wall clock
        return naive.cast(pa.timestamp(naive.type.unit, tz=str(tz)))
    return pa.array(series, from_pandas=True)


def dataframe_to_arrow(frame: Any) -> pa.Table:
    """A pandas DataFrame as an Arrow table, its index dropped."""
    arrays = [series_to_arrow(frame[name]) for name in frame.columns]
    return pa.Table.from_arrays(arrays, names=[str(name) for name in frame.columns])