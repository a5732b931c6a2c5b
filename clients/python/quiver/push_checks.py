"""Every row of pushed or loaded data checked before any of it is sent.

Ingest checks each batch as it arrives, so a bad row late in the data would stop a push after
other batches (and other producers' batches) had committed: the data half in, and no way to
tell which half without reading `e.result`. These are the checks ingest makes of a row
(`services/ingest/src/validate.rs`), made here first over whole columns, with ingest's wording:

- a join key or the event time is null;
- a value is not of the column's declared type (`expected float64, got string`);
- a time written as text is not RFC 3339 with a UTC offset (ingest's one parser,
  `crates/quiver-core/src/timestamp.rs`, ported as `rfc3339_reason`);
- a float32 list holds a null element; a value Python cannot send at all;
- an event time too far ahead of ingest's clock, as ingest's `Limits` call gives its clock and
  allowed skew (an ingest without the call leaves that check to the sending).

What stays ingest's alone: the columns themselves (one the source lacks, one missing: every
batch is refused whole, so nothing commits).
"""

from __future__ import annotations

import datetime as dt
import time

from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quiver._proto.types.v1 import types_pb2
from quiver.errors import InvalidArgument
from quiver.push_encoding import Column, set_declared
from quiver.values import KIND_FIELDS, TYPE_NAMES, VT, is_missing

#: Bad rows named in the error (all are counted).
BAD_ROWS_SHOWN = 20

_TYPE_OF_KIND = {field: value_type for value_type, field in KIND_FIELDS.items()}

# RFC 3339 as ingest reads it: ASCII digits, `T`, `t` or a space, an optional fraction, then `Z`,
# `z` or `+hh:mm`/`-hh:mm`. Ranges (month, day, hour, ...) are checked on the captured fields.
_RFC3339 = (
    r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt ]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?P<offset_hours>[0-9]{2}):(?P<offset_minutes>[0-9]{2}))$"
)


class FutureBound:
    """How far ahead of ingest's clock an event time may be, as ingest's `Limits` answered: a
    later row is refused (`event time ... is more than 1h ahead of ingest's clock`)."""

    def __init__(self, ingest_now_micros: int, skew_micros: int) -> None:
        self.ingest_now = ingest_now_micros
        self.skew = max(skew_micros, 0)
        self.asked = time.monotonic()

    def latest(self) -> int:
        """The latest event time ingest accepts now, by its clock (moved on by the time since
        it was asked: rows are sent after they are checked, when ingest's bound is later)."""
        since = int((time.monotonic() - self.asked) * 1_000_000)
        return self.ingest_now + since + self.skew

    def problem(self, event_micros: int) -> str:
        """Ingest's words for a row at `event_micros`."""
        return (
            f"event time {_rfc3339(event_micros)} is more than {_duration(self.skew)} "
            f"ahead of ingest's clock"
        )


def refuse_bad_rows(
    columns: Sequence[Column],
    declared: Mapping[str, int],
    key_columns: Sequence[str],
    time_column: str,
    future: Optional[FutureBound] = None,
) -> None:
    """Raises `InvalidArgument` counting every bad row of `columns` and naming the first
    `BAD_ROWS_SHOWN` (rows counted from the start of the data, each by its first bad column in
    the data's column order, as ingest would name it; a row's event time too far ahead of
    ingest's clock, `future`, only after its columns, as ingest checks it last), before
    anything is sent."""
    bad: Dict[int, str] = {}
    for column in columns:
        value_type = declared.get(column.name)
        if value_type is None:
            continue  # not the source's: ingest refuses every batch naming it
        is_key, is_time = column.name in key_columns, column.name == time_column
        for row, why in _column_problems(column, value_type, is_key, is_time):
            bad.setdefault(row, f"rows[{row}].{column.name}: {why}")
    time_columns = [c for c in columns if c.name == time_column]
    if future is not None and time_columns:
        micros, ok = event_micros(time_columns[0], declared.get(time_column, VT.VALUE_TYPE_TIMESTAMP))
        for row in np.flatnonzero(ok & (micros > future.latest())):
            bad.setdefault(int(row), f"rows[{row}].{time_column}: {future.problem(int(micros[row]))}")
    if not bad:
        return
    named = [bad[row] for row in sorted(bad)[:BAD_ROWS_SHOWN]]
    count = len(bad)
    head = "a bad row" if count == 1 else f"{count} bad rows"
    more = [f"... and {count - len(named)} more"] if count > len(named) else []
    raise InvalidArgument("\n  ".join([f"{head}; nothing was sent:", *named, *more]))


def _column_problems(column: Column, value_type: int, is_key: bool, is_time: bool) -> Iterator[Tuple[int, str]]:
    """Each bad row of one column, and why."""
    null = "the join key is null" if is_key else "the event time is null" if is_time else None
    if column.arrow is not None:
        takes_time_text = is_time or value_type == VT.VALUE_TYPE_TIMESTAMP
        yield from _arrow_problems(column.arrow, column.value_type, null, takes_time_text)
    else:
        yield from _object_problems(column.objects or [], value_type, column.name, null, is_time)


def _arrow_problems(
    array: pa.Array, sent_as: int, null: Optional[str], takes_time_text: bool
) -> Iterator[Tuple[int, str]]:
    """An Arrow column already cast to what it is sent as: only nulls, time text and list
    elements can be wrong."""
    if null is not None and array.null_count:
        for row in np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False)):
            yield int(row), null
    if takes_time_text and sent_as == VT.VALUE_TYPE_STRING:
        for row in unparsable_rows(array):
            yield row, rfc3339_problem(array[row].as_py())
    if sent_as == VT.VALUE_TYPE_FLOAT32_LIST and array.values.null_count:
        for row in _lists_with_null(array):
            yield row, "a float32 list value holds a null element; lists cannot hold nulls"


def _lists_with_null(array: pa.Array) -> List[int]:
    """Rows whose list holds a null element."""
    offsets = array.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    element_null = array.values.is_null().to_numpy(zero_copy_only=False)
    nulls_before = np.concatenate([[0], np.cumsum(element_null)])
    return [int(r) for r in np.flatnonzero(nulls_before[offsets[1:]] - nulls_before[offsets[:-1]] > 0)]


def unparsable_rows(array: pa.Array) -> List[int]:
    """Rows of a string column whose (non-null) text ingest refuses as a time: `rfc3339_reason`
    over whole columns (a regex for the shape, then the fields' ranges from the bytes)."""
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    shaped, fields = _shaped_time_fields(array)
    bad = valid & ~shaped
    if fields is not None:
        month_ok = (fields.month >= 1) & (fields.month <= 12)
        out_of_range = (
            ~month_ok
            | (fields.day < 1)
            | (fields.day > days_in_month(fields.year, np.where(month_ok, fields.month, 1)))
            | (fields.hour > 23)
            | (fields.minute > 59)
            | (fields.second > 60)
            | (fields.offset_hours > 23)
            | (fields.offset_minutes > 59)
        )
        bad[np.flatnonzero(shaped)[out_of_range]] = True
    return [int(r) for r in np.flatnonzero(bad)]


@dataclass
class _TimeFields:
    """The fields of RFC 3339 texts, one array each over the shaped rows (offsets signed by
    their hours: `-05:30` is hours -5, minutes 30, `negative` True)."""

    year: np.ndarray
    month: np.ndarray
    day: np.ndarray
    hour: np.ndarray
    minute: np.ndarray
    second: np.ndarray
    micros: np.ndarray
    offset_hours: np.ndarray
    offset_minutes: np.ndarray
    negative: np.ndarray


def _shaped_time_fields(array: pa.Array) -> Tuple[np.ndarray, Optional[_TimeFields]]:
    """Which rows of a string column have RFC 3339's shape, and their fields read from the
    bytes (None when no row has it)."""
    shaped = pc.match_substring_regex(array, _RFC3339).fill_null(False).to_numpy(zero_copy_only=False)
    if not shaped.any():
        return shaped, None
    # A shaped text is ASCII with its fields at fixed places: the date and time from its
    # start, the offset (unless `Z`) in its last six bytes, a fraction's digits between.
    array = array.cast(pa.string())
    offsets = np.frombuffer(array.buffers()[1], np.int32)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], np.uint8)
    starts, ends = offsets[:-1][shaped].astype(np.int64), offsets[1:][shaped].astype(np.int64)

    def number(at: np.ndarray, width: int) -> np.ndarray:
        value = np.zeros(len(at), np.int64)
        for i in range(width):
            value = value * 10 + (data[at + i].astype(np.int64) - 0x30)
        return value

    zoned = (data[ends - 1] != ord("Z")) & (data[ends - 1] != ord("z"))
    digits_end = np.where(zoned, ends - 6, ends - 1)
    # Fraction digits beyond microseconds are truncated, as ingest's parser does.
    micros = np.zeros(len(starts), np.int64)
    last = len(data) - 1
    for i in range(6):
        at = starts + 20 + i
        digit = data[np.minimum(at, last)].astype(np.int64) - 0x30
        micros = micros * 10 + np.where(at < digits_end, digit, 0)
    return shaped, _TimeFields(
        year=number(starts, 4),
        month=number(starts + 5, 2),
        day=number(starts + 8, 2),
        hour=number(starts + 11, 2),
        minute=number(starts + 14, 2),
        second=number(starts + 17, 2),
        micros=micros,
        offset_hours=np.where(zoned, number(ends - 5, 2), 0),
        offset_minutes=np.where(zoned, number(ends - 2, 2), 0),
        negative=zoned & (data[ends - 6] == ord("-")),
    )


def text_micros(array: pa.Array) -> Tuple[np.ndarray, np.ndarray]:
    """Each row of a string column as ingest's parser reads it, microseconds since the epoch,
    and whether it is a time ingest accepts (the rest are refused by `unparsable_rows`)."""
    parsed = np.zeros(len(array), np.int64)
    ok = np.zeros(len(array), bool)
    shaped, f = _shaped_time_fields(array)
    if f is None:
        return parsed, ok
    # Days since the epoch of a proleptic Gregorian date (years 0000-9999: never negative).
    month_ok = (f.month >= 1) & (f.month <= 12)
    year = f.year - (f.month <= 2)
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * ((f.month + 9) % 12) + 2) // 5 + f.day - 1
    days = era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468
    offset = (f.offset_hours * 3600 + f.offset_minutes * 60) * np.where(f.negative, -1, 1)
    seconds = days * 86_400 + f.hour * 3600 + f.minute * 60 + f.second - offset
    parsed[shaped] = seconds * 1_000_000 + f.micros
    ok[np.flatnonzero(shaped)] = True
    ok[unparsable_rows(array)] = False
    ok[np.flatnonzero(shaped)[~month_ok]] = False
    return parsed, ok


def days_in_month(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[month]
    return np.where((month == 2) & leap, 29, days)


def rfc3339_problem(text: str) -> str:
    """Ingest's message for a time it refuses."""
    why = rfc3339_reason(text) or "unparsable"
    return (
        f"unparsable timestamp {_rust_quoted(text)}: {why}; expected RFC 3339 with a UTC offset, "
        f"e.g. 2026-11-28T10:00:00Z or 2026-11-28T12:00:00.5+02:00"
    )


def rfc3339_reason(text: str) -> Optional[str]:
    """Why ingest's `parse_rfc3339_micros` refuses `text` (its first broken rule, checked in its
    order), or None if it parses."""
    b = text.encode()
    if len(b) < 19:
        return "too short"

    def digits(start: int, end: int) -> Optional[int]:
        part = b[start:end]
        ok = len(part) == end - start and all(0x30 <= c <= 0x39 for c in part)
        return int(part) if ok else None

    year, month, day = digits(0, 4), digits(5, 7), digits(8, 10)
    if year is None or month is None or day is None or b[4] != 0x2D or b[7] != 0x2D:
        return "the date is not YYYY-MM-DD"
    if b[10] not in b"Tt ":
        return "no 'T' between date and time"
    hour, minute, second = digits(11, 13), digits(14, 16), digits(17, 19)
    if hour is None or minute is None or second is None or b[13] != 0x3A or b[16] != 0x3A:
        return "the time is not hh:mm:ss"
    if not 1 <= month <= 12 or day < 1 or day > int(days_in_month(np.array(year), np.array(month))):
        return "no such date"
    if hour > 23 or minute > 59 or second > 60:
        return "no such time of day"
    at = 19
    if b[at : at + 1] == b".":
        at += 1
        start = at
        while at < len(b) and 0x30 <= b[at] <= 0x39:
            at += 1
        if at == start:
            return "no digits after '.'"
    rest = b[at:]
    if rest in (b"Z", b"z"):
        return None
    if len(rest) == 6 and rest[0] in b"+-" and rest[3] == 0x3A:
        hours, minutes = rest[1:3], rest[4:6]
        if not all(0x30 <= c <= 0x39 for c in hours + minutes):
            return "the UTC offset is not +hh:mm or -hh:mm"
        if int(hours) > 23 or int(minutes) > 59:
            return "the UTC offset is out of range"
        return None
    if not rest:
        return "no UTC offset (add Z for UTC, or +hh:mm/-hh:mm)"
    return "the UTC offset is not Z, +hh:mm or -hh:mm"


def _rust_quoted(text: str) -> str:
    """`text` as Rust's `{:?}` writes it (ingest's message), for the characters data holds."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _object_problems(values: List, value_type: int, name: str, null: Optional[str], is_time: bool) -> Iterator[Tuple[int, str]]:
    """A column sent value by value: each value as it will be encoded, against the declared
    type (a timestamp column also takes RFC 3339 text; the event time takes nothing else)."""
    message = types_pb2.Value()
    for row, value in enumerate(values):
        if is_missing(value):
            if null is not None:
                yield row, null
            continue
        message.Clear()
        what = f"rows[{row}].{name}"
        try:
            set_declared(message, value, value_type, what)
        except InvalidArgument as e:
            yield row, str(e).removeprefix(f"{what}: ")
            continue
        sent = _TYPE_OF_KIND.get(message.WhichOneof("kind"))
        if sent is None:  # sent as null (an empty list, say)
            if null is not None:
                yield row, null
            continue
        if is_time or value_type == VT.VALUE_TYPE_TIMESTAMP:
            if sent == VT.VALUE_TYPE_STRING:
                if rfc3339_reason(message.string_value) is not None:
                    yield row, rfc3339_problem(message.string_value)
            elif sent != VT.VALUE_TYPE_TIMESTAMP:
                wanted = "a timestamp (or an RFC 3339 string)" if is_time else "timestamp"
                yield row, f"expected {wanted}, got {TYPE_NAMES[sent]}"
        elif sent != value_type:
            yield row, f"expected {TYPE_NAMES[value_type]}, got {TYPE_NAMES[sent]}"


def event_micros(column: Column, declared: int) -> Tuple[np.ndarray, np.ndarray]:
    """Each row's event time as ingest reads it, microseconds since the epoch, and whether the
    row has one it accepts (nulls and unreadable values are the other checks' to refuse)."""
    rows = len(column.arrow) if column.arrow is not None else len(column.objects or [])
    if column.arrow is not None:
        if column.value_type == VT.VALUE_TYPE_STRING:
            return text_micros(column.arrow)
        if column.value_type == VT.VALUE_TYPE_TIMESTAMP:
            ok = column.arrow.is_valid().to_numpy(zero_copy_only=False)
            return column.arrow.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), ok
        return np.zeros(rows, np.int64), np.zeros(rows, bool)
    micros, ok = np.zeros(rows, np.int64), np.zeros(rows, bool)
    texts: Dict[int, str] = {}
    message = types_pb2.Value()
    for row, value in enumerate(column.objects or []):
        if is_missing(value):
            continue
        message.Clear()
        try:
            set_declared(message, value, declared, column.name)
        except InvalidArgument:
            continue
        kind = message.WhichOneof("kind")
        if kind == "timestamp_value":
            stamp = message.timestamp_value
            micros[row], ok[row] = stamp.seconds * 1_000_000 + stamp.nanos // 1000, True
        elif kind == "string_value":
            texts[row] = message.string_value
    if texts:
        parsed, parsed_ok = text_micros(pa.array(list(texts.values()), pa.string()))
        at = np.fromiter(texts.keys(), np.int64, len(texts))
        micros[at], ok[at] = parsed, parsed_ok
    return micros, ok


def _rfc3339(micros: int) -> str:
    """`micros` as ingest writes a time in a message (`quiver_core::timestamp::format_rfc3339`
    with `WholeOrNanos`: whole seconds, or nine fraction digits; a year past 9999 signed)."""
    seconds, rest = divmod(micros, 1_000_000)
    days, of_day = divmod(seconds, 86_400)
    # Howard Hinnant's civil_from_days, as the Rust side computes it.
    z = days + 719_468
    era, of_era = divmod(z, 146_097)
    year_of_era = (of_era - of_era // 1_460 + of_era // 36_524 - of_era // 146_096) // 365
    of_year = of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted = (5 * of_year + 2) // 153
    day = of_year - (153 * shifted + 2) // 5 + 1
    month = shifted + 3 if shifted < 10 else shifted - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    year_text = f"{year:04d}" if 0 <= year <= 9999 else f"+{year}" if year > 9999 else f"-{-year:04d}"
    text = f"{year_text}-{month:02d}-{day:02d}T{of_day // 3600:02d}:{of_day % 3600 // 60:02d}:{of_day % 60:02d}"
    return f"{text}Z" if rest == 0 else f"{text}.{rest * 1000:09d}Z"


def _duration(micros: int) -> str:
    """`micros` as ingest writes a duration (`humantime::format_duration`)."""
    if micros <= 0:
        return "0s"
    secs, rest = divmod(micros, 1_000_000)
    years, secs_of_year = divmod(secs, 31_557_600)  # 365.25 days
    months, secs_of_month = divmod(secs_of_year, 2_630_016)  # 30.44 days
    days, day_secs = divmod(secs_of_month, 86_400)
    parts = [
        (years, "year", True),
        (months, "month", True),
        (days, "day", True),
        (day_secs // 3600, "h", False),
        (day_secs % 3600 // 60, "m", False),
        (day_secs % 60, "s", False),
        (rest // 1000, "ms", False),
        (rest % 1000, "us", False),
    ]
    return " ".join(f"{n}{unit}{'s' if plural and n > 1 else ''}" for n, unit, plural in parts if n > 0)
