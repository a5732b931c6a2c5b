"""Pushing events: idempotent producers, one per share of the data, retries and backpressure.

The rows are split over `workers` producers by their entity key, as `quiver push` splits a
file: each producer sends its share in the data's order, so one entity's events keep their
order and a row is judged late against the progress of the rows before it (per-producer
watermarks, docs/streaming.md). Every producer first registers with the source (an empty batch),
so none is judged against a watermark the others already moved.

A producer has a stable id, an epoch (its creation time in milliseconds) and one batch in
flight. A batch gets the producer's next sequence number once, and every retry resends the same
bytes (same id, epoch and sequence), so a batch that did commit before its acknowledgement was
lost (ingest killed, connection reset) is acknowledged as a duplicate and applied once. Retries
cover UNAVAILABLE, DEADLINE_EXCEEDED and UNKNOWN (exponential backoff, 20 ms to 2 s) and
RESOURCE_EXHAUSTED, which waits the server's `retry-after-ms` instead. Producers belong to the
client and are reused by later pushes; a process restarted with the same `producer_id` starts
a higher epoch, which resets the producer on the server (and fences an old incarnation still
running: `Conflict`).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable, List, Optional, Sequence, Union

import grpc
import numpy as np
import pyarrow as pa

from quiver._proto.ingest.v1 import ingest_pb2
from quiver.errors import QuiverError, from_grpc
from quiver.push_encoding import Column, encode_rows, header, trailer

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
PUSH_METHOD = "/quiver.ingest.v1.IngestService/Push"


@dataclass
class PushResult:
    """What a push did."""

    #: Rows pushed.
    rows: int = 0
    #: Rows admitted (not late); a row a zscore transform excluded is still admitted.
    accepted: int = 0
    #: Rows rejected as later than the source's allowed lateness (quarantined with the reason).
    late: int = 0
    #: Rows excluded as anomalous by a zscore transform (quarantined with the reason).
    anomalous: int = 0
    #: Rows of batches ingest acknowledged as already applied (a retry of a batch that had
    #: committed): applied once, not counted again above.
    duplicate: int = 0
    #: Batches sent.
    batches: int = 0
    #: Attempts retried after a transient failure (UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN).
    retries: int = 0
    #: RESOURCE_EXHAUSTED answers waited out as the server asked (`retry-after-ms`).
    throttled: int = 0
    #: Wall-clock time of the push.
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows pushed per second of the push."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Producer:
    """One producer: its id, its epoch and the last sequence number it used."""

    id: str
    epoch: int
    sequence: int = 0


class Producers:
    """A client's producers; a push borrows one per worker, so two pushes from one client
    never share a producer (a producer has at most one batch in flight)."""

    def __init__(self, base_id: Optional[str] = None) -> None:
        self.base_id = base_id or (
            f"python-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self._free: List[Producer] = []
        self._count = itertools.count()
        self._lock = threading.Lock()

    def take(self) -> Producer:
        """A producer no other push is using."""
        with self._lock:
            if self._free:
                return self._free.pop()
            number = next(self._count)
        return Producer(f"{self.base_id}-{number}", time.time_ns() // 1_000_000)

    def give(self, producer: Producer) -> None:
        """Returns a producer for later pushes."""
        with self._lock:
            self._free.append(producer)


# Ingest numbers rows within a batch; the caller wants their place in what it pushed.
_ROW = re.compile(r"\brows\[(\d+)\]")


def _error_at(error: QuiverError, rows: np.ndarray) -> QuiverError:
    """`error` with its `rows[i]` (i within the batch) renumbered to the row of the data."""

    def renumber(found: re.Match) -> str:
        i = int(found.group(1))
        return f"rows[{int(rows[i])}]" if i < len(rows) else found.group(0)

    message = _ROW.sub(renumber, error.message, count=1)
    return type(error)(message, code=error.code, leader=error.leader, retry_after=error.retry_after)


class Sender:
    """Sends requests (their bytes) with ingest's `Push` until each is answered, for the
    producers of one push or load: retries UNAVAILABLE, DEADLINE_EXCEEDED and UNKNOWN with
    exponential backoff (20 ms to 2 s) and waits out RESOURCE_EXHAUSTED as the server asks
    (`retry-after-ms`), for at most `retry_for` seconds per request, counting both in `counts`
    (its `retries` and `throttled`, under `lock`). Setting `stop` (another producer failed)
    ends the retrying."""

    def __init__(
        self,
        channel: grpc.Channel,
        counts: Any,
        lock: threading.Lock,
        *,
        retry_for: float,
        timeout: float,
        metadata: Sequence,
        what: str,
    ) -> None:
        self._call = channel.unary_unary(
            PUSH_METHOD, request_serializer=None, response_deserializer=ingest_pb2.PushResponse.FromString
        )
        self._counts, self._lock = counts, lock
        self._retry_for, self._timeout, self._metadata, self._what = retry_for, timeout, metadata, what
        self.stop = threading.Event()

    def __call__(self, request: bytes) -> ingest_pb2.PushResponse:
        deadline = time.monotonic() + self._retry_for
        backoff = 0.02
        while True:
            try:
                return self._call(request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                error = from_grpc(e, self._what)
                code = e.code() if callable(getattr(e, "code", None)) else None
                if code not in RETRYABLE or time.monotonic() > deadline or self.stop.is_set():
                    raise error from None
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    wait = error.retry_after if error.retry_after is not None else backoff
                    with self._lock:
                        self._counts.throttled += 1
                else:
                    wait = backoff
                    backoff = min(backoff * 2, 2.0)
                    with self._lock:
                        self._counts.retries += 1
                time.sleep(wait * (1 + 0.2 * random.random()))


def split(keys: Sequence[Union[pa.Array, List[Any]]], rows: int, workers: int) -> List[np.ndarray]:
    """The data's row numbers split over `workers` by entity key (the join key columns `keys`),
    in the data's order; empty shares left out. Without keys (ingest will refuse the batch
    anyway) everything goes to one producer."""
    if workers <= 1 or not keys or rows <= 1:
        return [np.arange(rows, dtype=np.int64)]
    mixed = np.zeros(rows, np.uint64)
    for column in keys:
        if not isinstance(column, pa.Array):
            column = pa.array([repr(v) for v in column])  # Python objects: by their text
        # The key's number among the distinct keys: the same key, the same producer.
        codes = column.dictionary_encode().indices.fill_null(0).to_numpy(zero_copy_only=False)
        mixed = mixed * np.uint64(0x100000001B3) + codes.astype(np.uint64)
    mixed ^= mixed >> np.uint64(29)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)  # spread consecutive codes over the producers
    mixed ^= mixed >> np.uint64(32)
    owner = mixed % np.uint64(workers)
    shares = [np.flatnonzero(owner == np.uint64(w)) for w in range(workers)]
    return [share for share in shares if len(share)]


def run(
    channel: grpc.Channel,
    producers: Producers,
    project: str,
    source: str,
    columns: Sequence[Column],
    rows: int,
    key_columns: Sequence[str],
    *,
    batch_size: int,
    workers: int,
    retry_for: float,
    timeout: float,
    metadata: Sequence,
    what: str,
    progress: Optional[Callable[[int, int], None]] = None,
) -> PushResult:
    """Pushes `rows` rows of `columns`: split over `workers` producers by the `key_columns`,
    each sending its share in batches of `batch_size`."""
    head = header(project, source, [c.name for c in columns])
    keys = [c.arrow if c.arrow is not None else c.objects for c in columns if c.name in key_columns]
    shares = split(keys, rows, workers)
    registered = threading.Barrier(len(shares))
    lock = threading.Lock()
    result = PushResult()
    send = Sender(channel, result, lock, retry_for=retry_for, timeout=timeout, metadata=metadata, what=what)
    stop = send.stop
    failures: List[Exception] = []
    started = time.monotonic()

    def produce(producer: Producer, share: np.ndarray) -> None:
        # Register, then wait until every producer has: none is judged against a watermark
        # another one moved first.
        producer.sequence += 1
        try:
            send(head + trailer(producer.id, producer.sequence, producer.epoch))
        except BaseException:
            registered.abort()
            raise
        registered.wait()
        for first in range(0, len(share), batch_size):
            if stop.is_set():
                return
            rows_of_batch = share[first : first + batch_size]
            body = head + encode_rows(columns, rows_of_batch)
            producer.sequence += 1
            try:
                response = send(body + trailer(producer.id, producer.sequence, producer.epoch))
            except QuiverError as error:
                raise _error_at(error, rows_of_batch) from None
            with lock:
                result.batches += 1
                result.rows += len(rows_of_batch)
                if response.duplicate:
                    result.duplicate += len(rows_of_batch)
                else:
                    result.accepted += response.accepted
                    result.late += response.late
                    result.anomalous += response.anomalous
                done = result.rows
            if progress is not None:
                progress(done, rows)

    def work(share: np.ndarray) -> None:
        producer = producers.take()
        try:
            produce(producer, share)
        except threading.BrokenBarrierError:
            pass  # another producer failed to register; its error is reported
        except Exception as error:  # raised in the caller's thread below
            with lock:
                failures.append(error)
            stop.set()
            registered.abort()
        finally:
            producers.give(producer)

    threads = [
        threading.Thread(target=work, args=(share,), name=f"quiver-push-{i}", daemon=True)
        for i, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    if failures:
        error = failures[0]
        if isinstance(error, QuiverError):
            error.result = replace(result)  # what was committed before the push stopped
        raise error
    return result
