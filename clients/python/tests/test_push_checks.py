"""The checks made of every row before a push or load sends anything (no server: the tests
against real ingest, that each message is ingest's own, are in test_push.py)."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

import quiver
from quiver.push_checks import (
    FutureBound,
    _duration,
    _rfc3339,
    refuse_bad_rows,
    rfc3339_reason,
    text_micros,
    unparsable_rows,
)
from quiver.push_encoding import columns_of, prepare
from quiver.values import VT, to_micros

DECLARED = {"user_id": VT.VALUE_TYPE_INT64, "ts": VT.VALUE_TYPE_TIMESTAMP, "amount": VT.VALUE_TYPE_FLOAT64}


def test_the_column_check_of_time_text_equals_the_parsers_rules_row_by_row():
    """Brute force: texts near valid times, mutated at random, judged by the whole-column check
    and by the port of ingest's parser one at a time."""
    rng = random.Random(7)
    seeds = [
        "2026-11-28T10:00:00Z",
        "2024-02-29t23:59:60.5-23:59",
        "2026-11-28 10:00:00.123456789+02:00",
        "1999-12-31T00:00:00z",
        "2023-02-28T24:00:00+24:00",
        "2100-02-29T00:00:00Z",
    ]
    alphabet = "0123456789-:TtZz+ .x\n\u0663é"
    texts = []
    for _ in range(50_000):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(0, 3)):
            at = rng.randrange(len(text) + 1)
            op = rng.random()
            if op < 0.4 and text:
                text[min(at, len(text) - 1)] = rng.choice(alphabet)
            elif op < 0.7:
                text.insert(at, rng.choice(alphabet))
            elif text:
                del text[min(at, len(text) - 1)]
        texts.append("".join(text))
    texts += [None, "2026-11-28T10:00:00Z"]
    want = [i for i, t in enumerate(texts) if t is not None and rfc3339_reason(t) is not None]
    assert 10_000 < len(want) < 45_000  # both kinds well represented
    assert unparsable_rows(pa.array(texts)) == want
    # Sliced arrays (an offset into the buffers) too.
    assert unparsable_rows(pa.array(texts).slice(100, 1000)) == [i - 100 for i in want if 100 <= i < 1100]


def test_the_parser_port_gives_ingests_reasons():
    assert rfc3339_reason("2026-11-28T10:00:00Z") is None
    assert rfc3339_reason("2026-11-28T12:00:00.5+02:00") is None
    assert rfc3339_reason("2024-02-29T23:59:60-23:59") is None
    assert rfc3339_reason("yesterday") == "too short"
    assert rfc3339_reason("2026/11/28T10:00:00Z") == "the date is not YYYY-MM-DD"
    assert rfc3339_reason("2026-11-28X10:00:00Z") == "no 'T' between date and time"
    assert rfc3339_reason("2026-11-28T10-00:00Z") == "the time is not hh:mm:ss"
    assert rfc3339_reason("2100-02-29T10:00:00Z") == "no such date"
    assert rfc3339_reason("2026-11-28T10:60:00Z") == "no such time of day"
    assert rfc3339_reason("2026-11-28T10:00:00.Z") == "no digits after '.'"
    assert rfc3339_reason("2026-11-28T10:00:00") == "no UTC offset (add Z for UTC, or +hh:mm/-hh:mm)"
    assert rfc3339_reason("2026-11-28T10:00:00+0200") == "the UTC offset is not Z, +hh:mm or -hh:mm"
    assert rfc3339_reason("2026-11-28T10:00:00+0a:00") == "the UTC offset is not +hh:mm or -hh:mm"
    assert rfc3339_reason("2026-11-28T10:00:00+02:60") == "the UTC offset is out of range"


def test_every_bad_row_is_counted_and_the_first_twenty_named_in_row_order():
    n = 1000
    user = [1] * n
    ts = ["2026-11-28T10:00:00Z"] * n
    amount = [1.0] * n
    for row in range(5, n, 10):
        amount[row] = "x"  # 100 rows: a string in a float64 column (sent value by value)
    ts[3] = "2026-11-28"  # an Arrow string column of times
    ts[5] = "nope!"  # a row with two bad columns is named once, by its first bad column
    user[7] = None
    columns = [prepare("ts", ts, DECLARED["ts"]), prepare("user_id", user, DECLARED["user_id"])]
    columns.append(prepare("amount", amount, DECLARED["amount"]))
    assert columns[2].objects is not None and columns[0].arrow is not None
    with pytest.raises(quiver.InvalidArgument) as caught:
        refuse_bad_rows(columns, DECLARED, ["user_id"], "ts")
    lines = str(caught.value).split("\n  ")
    assert lines[0] == "102 bad rows; nothing was sent:"
    assert lines[1].startswith('rows[3].ts: unparsable timestamp "2026-11-28": too short;')
    assert lines[2].startswith('rows[5].ts: unparsable timestamp "nope!": too short;')
    assert lines[3] == "rows[7].user_id: the join key is null"
    assert lines[4] == "rows[15].amount: expected float64, got string"
    assert len(lines) == 22 and lines[-1] == "... and 82 more"


def test_time_text_among_other_values_and_a_column_the_source_lacks():
    ts = ["2026-11-28T10:00:00Z", 1_700_000_000, "2026-11-28T10:00:00"]
    columns = [prepare("ts", ts, DECLARED["ts"]), prepare("user_id", [1, 2, 3], DECLARED["user_id"])]
    columns.append(prepare("colour", ["red", 1, None], None))  # ingest names it, not this check
    assert columns[0].objects is not None
    with pytest.raises(quiver.InvalidArgument) as caught:
        refuse_bad_rows(columns, DECLARED, ["user_id"], "ts")
    assert str(caught.value).split("\n  ")[1:] == [
        "rows[1].ts: expected a timestamp (or an RFC 3339 string), got int64",
        'rows[2].ts: unparsable timestamp "2026-11-28T10:00:00": no UTC offset (add Z for UTC, '
        "or +hh:mm/-hh:mm); expected RFC 3339 with a UTC offset, e.g. 2026-11-28T10:00:00Z or "
        "2026-11-28T12:00:00.5+02:00",
    ]
    good = [prepare("ts", ["2026-11-28T10:00:00+01:00"], DECLARED["ts"]), prepare("user_id", [1], DECLARED["user_id"])]
    refuse_bad_rows(good, DECLARED, ["user_id"], "ts")  # nothing to say


def test_integers_that_do_not_fit_are_named_not_raised():
    """A uint64 id past int64's range, ints no float64 holds (Arrow cannot cast them, so they
    go value by value): named as `quiver load` names the same Parquet values."""
    columns = [
        prepare("user_id", pa.array([1, 2**64 - 1], pa.uint64()), DECLARED["user_id"]),
        prepare("ts", ["2026-11-28T10:00:00Z"] * 2, DECLARED["ts"]),
        prepare("amount", [2**70 + 1, 10**400], DECLARED["amount"]),  # no float64 holds these
    ]
    with pytest.raises(quiver.InvalidArgument) as caught:
        refuse_bad_rows(columns, DECLARED, ["user_id"], "ts")
    assert str(caught.value).split("\n  ")[1:] == [
        "rows[0].amount: 1180591620717411303425 cannot be held exactly by a float64",
        "rows[1].user_id: 18446744073709551615 is out of int64's range",
    ]


def test_a_lists_own_values_are_judged_not_arrows_reading_of_them():
    """`[1, 1.0]`: Arrow reads both as floats, but only the second is not an int. A lone
    surrogate has no UTF-8: named, not raised."""
    rows = [
        {"user_id": 1, "ts": "2026-11-28T10:00:00Z", "label": "fine"},
        {"user_id": 1.0, "ts": "2026-11-28T10:00:00Z", "label": "ok\ud800"},
    ]
    declared = {**DECLARED, "label": VT.VALUE_TYPE_STRING}
    columns = [prepare(name, values, declared[name]) for name, values in columns_of(rows).items()]
    with pytest.raises(quiver.InvalidArgument) as caught:
        refuse_bad_rows(columns, declared, ["user_id"], "ts")
    assert str(caught.value) == "a bad row; nothing was sent:\n  rows[1].user_id: expected int64, got float64"
    columns[0] = prepare("user_id", [1, 2], VT.VALUE_TYPE_INT64)
    with pytest.raises(quiver.InvalidArgument) as caught:
        refuse_bad_rows(columns, declared, ["user_id"], "ts")
    assert str(caught.value).endswith("rows[1].label: 'ok\\ud800' is not valid Unicode text (a lone surrogate)")


def test_time_text_reads_as_the_parser_reads_it_row_by_row():
    """Brute force: random valid times, every offset form, fractions of any length (beyond
    microseconds truncated), read whole-column against Python's own parser one at a time."""
    rng = random.Random(3)
    texts, want = [], []
    for _ in range(20_000):
        year = rng.choice([rng.randint(1, 9999), rng.randint(1960, 2110)])
        month = rng.randint(1, 12)
        day = rng.randint(1, 28)
        hour, minute, second = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([0, 1, 3, 6, 9])))
        fraction = f".{digits}" if digits else ""
        sign, oh, om = rng.choice("+-"), rng.randint(0, 23), rng.randint(0, 59)
        zone = rng.choice(["Z", "z", f"{sign}{oh:02}:{om:02}"])
        sep = rng.choice("Tt ")
        text = f"{year:04}-{month:02}-{day:02}{sep}{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
        texts.append(text)
        iso = text[:10] + "T" + text[11:19] + (f".{(digits + '000000')[:6]}" if digits else "")
        utc = to_micros(iso + "+00:00")
        offset = 0 if zone in "Zz" else (oh * 3600 + om * 60) * 1_000_000 * (1 if sign == "+" else -1)
        want.append(utc - offset)
    texts += [None, "yesterday", "2026-02-30T10:00:00Z"]
    micros, ok = text_micros(pa.array(texts))
    assert ok.tolist() == [True] * 20_000 + [False, False, False]
    assert micros[:20_000].tolist() == want
    # A leap second folds into the next second's start, as ingest's parser does.
    micros, ok = text_micros(pa.array(["2016-12-31T23:59:60Z"]))
    assert ok.tolist() == [True] and micros[0] == to_micros("2017-01-01T00:00:00+00:00")


def test_times_and_skews_are_written_as_ingest_writes_them():
    """`humantime`'s forms: whole seconds or nine fraction digits; durations by unit."""
    new_year = to_micros("2101-01-01T00:00:00+00:00")
    assert _rfc3339(new_year) == "2101-01-01T00:00:00Z"
    assert _rfc3339(new_year + 500_000) == "2101-01-01T00:00:00.500000000Z"
    assert _rfc3339(-1) == "1969-12-31T23:59:59.999999000Z"
    # Past year 9999, signed, as the Rust side writes it (quiver-core's format_rfc3339 test).
    assert _rfc3339(253_402_300_800_000_000) == "+10000-01-01T00:00:00Z"
    assert _rfc3339(2**63 - 1) == "+294247-01-10T04:00:54.775807000Z"
    assert _duration(3_600_000_000) == "1h"
    assert _duration(5_400_000_000) == "1h 30m"
    assert _duration(90_061_001_002) == "1day 1h 1m 1s 1ms 2us"
    assert _duration(2 * 86_400_000_000) == "2days"
    assert _duration(0) == "0s"


def test_a_row_ahead_of_ingests_clock_is_named_after_its_other_problems():
    """Ingest checks the event time's bound after every column: a row with a bad value is
    named by that value; only rows with nothing else wrong by their time."""
    now = dt.datetime.now(dt.timezone.utc)
    rows = [
        {"user_id": 1, "ts": now.isoformat(), "amount": 1.0},
        {"user_id": 2, "ts": "2101-01-01T00:00:00Z", "amount": "x"},
        {"user_id": 3, "ts": "2101-01-01T00:00:00Z", "amount": 2.0},
        {"user_id": 4, "ts": (now + dt.timedelta(minutes=59)).isoformat(), "amount": 2.0},
    ]
    columns = [prepare(n, v, DECLARED.get(n)) for n, v in columns_of(rows).items()]
    bound = FutureBound(to_micros(now), 3_600_000_000)
    with pytest.raises(quiver.InvalidArgument) as caught:
        refuse_bad_rows(columns, DECLARED, ["user_id"], "ts", bound)
    assert str(caught.value).split("\n  ")[1:] == [
        "rows[1].amount: expected float64, got string",
        "rows[2].ts: event time 2101-01-01T00:00:00Z is more than 1h ahead of ingest's clock",
    ]
    # Without a bound (an ingest without `Limits`) the time is not judged here.
    with pytest.raises(quiver.InvalidArgument) as caught:
        refuse_bad_rows(columns, DECLARED, ["user_id"], "ts")
    assert "ahead" not in str(caught.value)


def test_a_float_beyond_float32s_range_is_a_bad_row_not_an_infinity():
    """Arrow columns and Python lists alike; an infinity itself is a value, not an overflow."""
    declared = {"f32": VT.VALUE_TYPE_FLOAT32, "emb": VT.VALUE_TYPE_FLOAT32_LIST, "ts": VT.VALUE_TYPE_TIMESTAMP}
    for data in (
        {"f32": pa.array([1.0, 1e300, float("inf")]), "emb": pa.array([[1.0], [2.0], [-1e39]])},
        {"f32": [1.0, 1e300, float("inf")], "emb": [[1.0], [2.0], [-1e39]]},
    ):
        columns = [prepare(n, v, declared.get(n)) for n, v in data.items()]
        with pytest.raises(quiver.InvalidArgument) as caught:
            refuse_bad_rows(columns, declared, [], "ts")
        assert str(caught.value).split("\n  ")[1:] == [
            "rows[1].f32: 1e+300 is out of float32's range (about ±3.4e38)",
            "rows[2].emb: -1e+39 is out of float32's range (about ±3.4e38)",
        ]
    # In range, rounded as the column stores it.
    column = prepare("f32", pa.array([0.1, 3.4e38]), VT.VALUE_TYPE_FLOAT32)
    assert column.arrow is not None and column.arrow.type == pa.float32()
