"""push against real ingest: every input form, the counts (accepted, late, anomalous,
duplicate) checked against what the online store then serves, bad rows named by their place in
the caller's data, backpressure waited out as the server asks, sequences that keep increasing
across pushes and clients, and exactly once while ingest is killed and restarted mid-push."""

from __future__ import annotations

import datetime as dt
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import quiver

UTC = dt.timezone.utc


def counts(client, users):
    """kinds:count and kinds:qty_sum per user, as served."""
    table = client.get_features(
        features=["kinds:count", "kinds:qty_sum"], entities={"user_id": list(users)}
    )
    return {
        row["user_id"]: (row["kinds:count"], row["kinds:qty_sum"]) for row in table.to_pylist()
    }


def events(users, per_user, seed, qty=None):
    """A DataFrame of `per_user` events for each user, in the last ten minutes, shuffled."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    n = len(users) * per_user
    now = dt.datetime.now(UTC)
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(users, np.int64), per_user),
            "ts": pd.to_datetime(now) - pd.to_timedelta(rng.integers(0, 600_000, n), unit="ms"),
            "amount": rng.integers(1, 1000, n).astype(np.float64) / 4,
            "qty": rng.integers(-5, 50, n) if qty is None else np.full(n, qty),
            "label": rng.choice(["a", "bb", "ccc"], n),
        }
    )
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def expected(frame):
    grouped = frame.groupby("user_id")["qty"].agg(["count", "sum"])
    return {int(u): (int(r["count"]), int(r["sum"])) for u, r in grouped.iterrows()}


def test_a_dataframe_is_pushed_in_batches_and_served_exactly(client):
    users = range(2001, 2051)
    frame = events(users, 100, seed=1)
    seen = []
    result = client.push("events", frame, batch_size=700, workers=3, progress=lambda d, t: seen.append((d, t)))
    assert (result.rows, result.accepted, result.late, result.anomalous, result.duplicate) == (5000, 5000, 0, 0, 0)
    assert result.batches == 8  # ceil(5000 / 700)
    assert sorted(seen)[-1] == (5000, 5000) and len(seen) == 8
    assert result.rows_per_second > 0
    assert counts(client, users) == expected(frame)


def test_arrow_tables_record_batches_and_dicts(client):
    now = dt.datetime.now(UTC)
    rows = [
        {"user_id": 2101, "ts": now, "qty": 3, "amount": 1},  # an int for a float64 column: fine
        {"user_id": 2101, "ts": now.isoformat(), "qty": 4},  # RFC 3339 text; amount absent: null
    ]
    table = pa.Table.from_pylist([{"user_id": 2102, "ts": now, "qty": 10, "vec": np.array([1.0, 2.0])}])
    result_dicts = client.push("events", rows)
    result_table = client.push("events", table)
    result_batch = client.push("events", table.to_batches()[0])
    assert [r.accepted for r in (result_dicts, result_table, result_batch)] == [2, 1, 1]
    assert counts(client, [2101, 2102]) == {2101: (2, 7), 2102: (2, 20)}
    served = client.get_features(features=["kinds:last_vec"], entities={"user_id": 2102})
    assert served.column("kinds:last_vec").to_pylist() == [[1.0, 2.0]]


def test_a_bad_row_is_named_by_its_place_in_the_data_and_nothing_is_sent(client):
    now = dt.datetime.now(UTC)
    rows = [{"user_id": 2201, "ts": now, "amount": float(i)} for i in range(30)]
    rows[17]["amount"] = "17.5 EUR"
    # Row 7 of the second batch: counted from the start of `rows`, and found before the first
    # batch is sent (ingest alone would have committed the first batch).
    with pytest.raises(quiver.InvalidArgument) as caught:
        client.push("events", rows, batch_size=10, workers=1)
    assert str(caught.value) == "a bad row; nothing was sent:\n  rows[17].amount: expected float64, got string"
    assert caught.value.result.accepted == 0
    assert counts(client, [2201]) == {2201: (None, None)}
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(rows)  # a mixed object column, sent value by value
    with pytest.raises(quiver.InvalidArgument, match=r"\n  rows\[17\]\.amount: expected float64, got string$"):
        client.push("events", frame, batch_size=1000)


def test_every_check_ingest_makes_of_a_row_is_made_first_in_its_words(client):
    """Each kind of bad row, alone among good ones: refused up front with the line ingest's
    own check gives for it (each row sent to ingest without the client's check)."""
    now = dt.datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    cases = {
        "amount": ["12 EUR", True],  # a string, a bool in a float64 column
        "qty": [1.5, "2"],  # a float, a string in an int64 column
        "flag": [1],
        "label": [7],
        "ts": [
            "yesterday",
            "2026-02-30T10:00:00Z",
            "2026-11-28T10:00:00",
            "2026-11-28T10:00:00+24:00",
            17,
            # Ahead of ingest's clock by more than its skew, as text (a fraction and an offset
            # too) and as a datetime: refused with ingest's time and skew in its words.
            "2101-01-01T00:00:00Z",
            "2101-01-01T10:00:00.25+02:00",
            dt.datetime(2101, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        ],
        "seen_at": ["2026-11-28T25:00:00Z", 3.5],
    }
    for column, values in cases.items():
        for value in values:
            rows = [{"user_id": 2291, "ts": stamp} for _ in range(3)]
            rows.append({"user_id": 2290, "ts": stamp, column: value})  # the bad row: row 3
            with pytest.raises(quiver.InvalidArgument) as caught:
                client.push("events", rows)
            first, line = str(caught.value).split("\n  ")
            assert first == "a bad row; nothing was sent:", (column, value, str(caught.value))
            # Ingest's words for the same row, sent without the check.
            with pytest.raises(quiver.InvalidArgument) as ingest_says:
                _pushed_unchecked(client, rows)
            assert line == str(ingest_says.value), (column, value)
    # What ingest never sees (the client cannot encode it) is refused up front too.
    for column, value, why in [
        ("vec", [1.0, None], "a float32 list value holds a null element; lists cannot hold nulls"),
        ("blob", {"a": 1}, "cannot send a dict ({'a': 1})"),
    ]:
        rows = [{"user_id": 2291, "ts": stamp}, {"user_id": 2290, "ts": stamp, column: value}]
        with pytest.raises(quiver.InvalidArgument) as caught:
            client.push("events", rows)
        assert str(caught.value) == f"a bad row; nothing was sent:\n  rows[1].{column}: {why}"
    assert counts(client, [2290, 2291]) == {2290: (None, None), 2291: (None, None)}


def test_a_frame_with_an_event_time_ahead_of_ingests_clock_sends_nothing(client):
    """An Arrow timestamp column: the row past ingest's allowed skew is refused before any
    batch is sent, by push and by load alike; a row just inside it is not."""
    pd = pytest.importorskip("pandas")
    frame = events([2292, 2293], 50, seed=11)
    late_in_frame = 37
    frame.loc[late_in_frame, "ts"] = pd.Timestamp("2101-01-01T00:00:00.5Z")
    for send in (client.push, client.load):
        with pytest.raises(quiver.InvalidArgument) as caught:
            send("events", frame)
        assert str(caught.value) == (
            "a bad row; nothing was sent:\n  rows[37].ts: event time 2101-01-01T00:00:00.500000000Z "
            "is more than 1h ahead of ingest's clock"
        )
        assert caught.value.result == type(caught.value.result)()  # nothing was sent
    assert counts(client, [2292, 2293]) == {2292: (None, None), 2293: (None, None)}
    frame.loc[late_in_frame, "ts"] = pd.Timestamp(dt.datetime.now(UTC) + dt.timedelta(minutes=50))
    assert client.push("events", frame).accepted == 100


def _pushed_unchecked(client, rows):
    """`rows` pushed with the client's encoding but not its checks: ingest's verdict."""
    from quiver import push as pushing
    from quiver.push_encoding import columns_of, prepare

    declared, keys, _ = client._source_schema(client.project, "events")
    columns = [prepare(name, values, declared.get(name)) for name, values in columns_of(rows).items()]
    pushing.run(
        client._channel("ingest"),
        client._producers,
        client.project,
        "events",
        columns,
        len(rows),
        keys,
        batch_size=len(rows),
        workers=1,
        retry_for=10.0,
        timeout=30.0,
        metadata=client._metadata,
        what="ingest",
    )


def test_rows_without_a_key_or_time_are_refused_before_anything_is_sent(client):
    now = dt.datetime.now(UTC)
    rows = [{"user_id": 2251 + i % 5, "ts": now, "amount": float(i)} for i in range(40)]
    rows[3]["user_id"] = None
    rows[35]["ts"] = None
    # Several producers and batches: without the check up front, other batches would commit.
    with pytest.raises(quiver.InvalidArgument) as caught:
        client.push("events", rows, batch_size=5, workers=4)
    assert str(caught.value) == (
        "2 bad rows; nothing was sent:\n"
        "  rows[3].user_id: the join key is null\n"
        "  rows[35].ts: the event time is null"
    )
    assert caught.value.result.accepted == 0
    assert counts(client, range(2251, 2256)) == {u: (None, None) for u in range(2251, 2256)}
    # A table (Arrow nulls), with more bad rows than are named.
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"user_id": [None] * 25 + [2256], "ts": [now] * 26})
    with pytest.raises(quiver.InvalidArgument, match=r"^25 bad rows; nothing was sent:\n  rows\[0\]\.user_id") as caught:
        client.push("events", table)
    assert str(caught.value).endswith("... and 5 more")


def test_schema_errors_name_the_column(client):
    now = dt.datetime.now(UTC)
    with pytest.raises(quiver.InvalidArgument, match=r'columns\[3\]: "colour" is not a column of source "events"'):
        client.push("events", [{"user_id": 1, "ts": now, "amount": 1.0, "colour": "red"}])
    with pytest.raises(quiver.InvalidArgument, match='the join key "user_id" .* is missing'):
        client.push("events", [{"ts": now, "amount": 1.0}])
    with pytest.raises(quiver.InvalidArgument, match=r"rows\[1\]\.user_id: the join key is null"):
        client.push("events", [{"user_id": 1, "ts": now}, {"user_id": None, "ts": now}])
    with pytest.raises(quiver.InvalidArgument, match='no source "nope"'):
        client.push("nope", [{"user_id": 1, "ts": now}])
    with pytest.raises(quiver.InvalidArgument, match="no columns"):
        client.push("events", [])


def test_late_rows_are_counted_and_not_served(client):
    now = dt.datetime.now(UTC)
    client.push("events", [{"user_id": 2301, "ts": now, "qty": 1}])
    result = client.push(
        "events",
        [
            {"user_id": 2301, "ts": now - dt.timedelta(hours=3), "qty": 100},  # lateness is 1h
            {"user_id": 2301, "ts": now - dt.timedelta(minutes=5), "qty": 2},
        ],
    )
    assert (result.accepted, result.late) == (1, 1)
    assert counts(client, [2301]) == {2301: (2, 3)}


def test_anomalous_rows_are_counted(client):
    now = dt.datetime.now(UTC)
    usual = [{"user_id": 2400 + i % 5, "ts": now, "score": 9.0 + 2 * (i % 2)} for i in range(60)]
    assert client.push("scores", usual).anomalous == 0
    result = client.push("scores", [{"user_id": 2499, "ts": now, "score": 10.0},
                                    {"user_id": 2499, "ts": now, "score": 10_000.0}])
    # Admitted (accepted) but excluded from the view's aggregations (anomalous).
    assert (result.accepted, result.anomalous, result.late) == (2, 1, 0)
    served = client.get_features(features=["scored:score_count"], entities={"user_id": [2499]})
    assert served.column("scored:score_count").to_pylist() == [1]


def test_sequences_keep_increasing_across_pushes_and_clients(dev, client):
    now = dt.datetime.now(UTC)
    batch = [{"user_id": 2501, "ts": now, "qty": 1}]
    first, second = client.push("events", batch), client.push("events", batch)
    assert (first.duplicate, second.duplicate, second.accepted) == (0, 0, 1)
    # A restarted producer with the same id continues above its old sequence numbers.
    for _ in range(2):
        with dev.client(producer_id="pytest-fixed-producer") as again:
            result = again.push("events", batch, workers=1)
            assert (result.accepted, result.duplicate) == (1, 0)
    assert counts(client, [2501]) == {2501: (4, 4)}


def test_one_entitys_events_keep_the_datas_order(client):
    # 2,000 events of one user at the same instant among other users' events, in 100-row
    # batches over four producers: ties in event time are broken by ingest order, so `last`
    # is the user's last row in the data only if all its rows went through one producer in order.
    now = dt.datetime.now(UTC)
    rows = []
    for i in range(2000):
        rows.append({"user_id": 2701, "ts": now, "qty": i})
        rows.append({"user_id": 2702 + i % 50, "ts": now, "qty": i})
    result = client.push("events", rows, batch_size=100, workers=4)
    assert result.accepted == 4000 and result.batches >= 40
    served = client.get_features(features=["kinds:last_qty", "kinds:count"], entities={"user_id": [2701, 2749]})
    assert served.to_pylist() == [
        {"user_id": 2701, "kinds:last_qty": 1999, "kinds:count": 2000},
        {"user_id": 2749, "kinds:last_qty": 1997, "kinds:count": 40},
    ]


def test_a_newer_incarnation_of_a_producer_fences_the_older(dev):
    now = dt.datetime.now(UTC)
    batch = [{"user_id": 2801, "ts": now, "qty": 1}]
    with dev.client(producer_id="pytest-fenced") as old:
        assert old.push("events", batch, workers=1).accepted == 1
        time.sleep(0.01)  # a later start: a higher epoch
        with dev.client(producer_id="pytest-fenced") as new:
            assert new.push("events", batch, workers=1).accepted == 1
        with pytest.raises(quiver.Conflict, match="fenced") as caught:
            old.push("events", batch, workers=1)
        assert caught.value.code == "FAILED_PRECONDITION"
    with dev.client() as reader:
        assert counts(reader, [2801]) == {2801: (2, 2)}


def test_backpressure_is_waited_out_as_the_server_asks(dev, spawn_ingest):
    # One 1,000-row batch fits in flight at a time: the other producers are told to retry.
    ingest = spawn_ingest("ingest-small", {"QUIVER__INGEST__MAX_INFLIGHT_ROWS": "1000"})
    users = range(2601, 2621)
    frame = events(users, 1000, seed=2)
    with dev.client(ingest=ingest.address) as client:
        result = client.push("events", frame, batch_size=1000, workers=4)
        assert (result.rows, result.accepted, result.duplicate) == (20_000, 20_000, 0)
        assert result.throttled > 0
        # Every refusal ingest counted was seen and waited out, none given up on.
        assert ingest.metric("quiver_ingest_rows_total", 'result="saturated"') == 1000 * result.throttled
        # Three producers waiting 100 ms (`retry-after-ms`) between tries, not hammering.
        assert result.throttled <= 3 * result.seconds / 0.1 + 10
        assert counts(client, users) == expected(frame)


def test_exactly_once_while_ingest_is_killed_and_restarted(dev, spawn_ingest):
    ingest = spawn_ingest("ingest-killed")
    users = range(3001, 3101)
    frame = events(users, 400, seed=3)  # 40,000 rows, 80 batches
    done = [0]
    kills = []

    def killer():
        try:
            kill_twice()
        except BaseException as e:  # reported by the assertions below
            kills.append(e)

    def kill_twice():
        for fraction in (0.25, 0.6):
            deadline = time.monotonic() + 120
            while done[0] < fraction * len(frame) and time.monotonic() < deadline:
                time.sleep(0.005)
            ingest.process.kill()  # SIGKILL: batches in flight lose their acknowledgement
            kills.append(done[0])
            time.sleep(0.7)
            ingest.restart()

    thread = threading.Thread(target=killer)
    with dev.client(ingest=ingest.address) as client:
        thread.start()
        result = client.push(
            "events", frame, batch_size=500, workers=4, retry_for=60,
            progress=lambda d, t: done.__setitem__(0, d),
        )
        thread.join()
        print(f"killed at {kills} rows pushed: {result}")
        assert len(kills) == 2 and all(isinstance(k, int) and k < len(frame) for k in kills), kills
        assert result.rows == 40_000 and result.retries >= 2
        # Every row once: accepted now, or acknowledged as a duplicate of an earlier commit.
        assert result.accepted + result.duplicate == 40_000
        # Batches in flight when ingest died had committed: their retries (same producer id and
        # sequence) were recognised, not applied twice. (Every run so far saw 4-5 of them.)
        assert result.duplicate > 0
        assert result.late == 0
        assert counts(client, users) == expected(frame)
