"""Pushing events: batches, idempotent producers, retries and backpressure.

Each worker thread is a producer: its own stable id and one batch in flight. A batch gets the
producer's next sequence number once, and every retry resends the same bytes (same producer id,
same sequence), so a batch that did commit before its acknowledgement was lost (ingest killed,
connection reset) is acknowledged as a duplicate and applied once. Retries cover UNAVAILABLE,
DEADLINE_EXCEEDED and UNKNOWN (exponential backoff, 20 ms to 2 s) and RESOURCE_EXHAUSTED, which
waits the server's `retry-after-ms` instead. Producers belong to the client and are reused by
later pushes, their sequence numbers continuing (a sequence starts at the producer's creation
time in microseconds, so a process restarted with the same `producer_id` keeps increasing).
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
from typing import Callable, List, Optional, Sequence

import grpc

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
    """One producer id and the last sequence number it used."""

    id: str
    sequence: int


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
        return Producer(f"{self.base_id}-{number}", time.time_ns() // 1000)

    def give(self, producer: Producer) -> None:
        """Returns a producer for later pushes."""
        with self._lock:
            self._free.append(producer)


# Ingest numbers rows within a batch; the caller wants their place in what it pushed.
_ROW = re.compile(r"\brows\[(\d+)\]")


def _error_at(error: QuiverError, first_row: int) -> QuiverError:
    if first_row == 0:
        return error
    message = _ROW.sub(lambda m: f"rows[{int(m.group(1)) + first_row}]", error.message, count=1)
    return type(error)(message, code=error.code, leader=error.leader, retry_after=error.retry_after)


def run(
    channel: grpc.Channel,
    producers: Producers,
    project: str,
    source: str,
    columns: Sequence[Column],
    rows: int,
    *,
    batch_size: int,
    workers: int,
    retry_for: float,
    timeout: float,
    metadata: Sequence,
    what: str,
    progress: Optional[Callable[[int, int], None]] = None,
) -> PushResult:
    """Pushes `rows` rows of `columns` in batches of `batch_size` with `workers` producers."""
    call = channel.unary_unary(
        PUSH_METHOD, request_serializer=None, response_deserializer=ingest_pb2.PushResponse.FromString
    )
    head = header(project, source, [c.name for c in columns])
    starts = list(range(0, rows, max(1, batch_size)))
    batches = iter(starts)
    lock = threading.Lock()
    stop = threading.Event()
    result = PushResult()
    failures: List[Exception] = []
    started = time.monotonic()

    def send(request: bytes) -> ingest_pb2.PushResponse:
        deadline = time.monotonic() + retry_for
        backoff = 0.02
        while True:
            try:
                return call(request, timeout=timeout, metadata=metadata)
            except grpc.RpcError as e:
                error = from_grpc(e, what)
                code = e.code() if callable(getattr(e, "code", None)) else None
                if code not in RETRYABLE or time.monotonic() > deadline or stop.is_set():
                    raise error from None
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    wait = error.retry_after if error.retry_after is not None else backoff
                    with lock:
                        result.throttled += 1
                else:
                    wait = backoff
                    backoff = min(backoff * 2, 2.0)
                    with lock:
                        result.retries += 1
                time.sleep(wait * (1 + 0.2 * random.random()))

    def work() -> None:
        producer = producers.take()
        try:
            while not stop.is_set():
                with lock:
                    first = next(batches, None)
                if first is None:
                    return
                length = min(batch_size, rows - first)
                body = head + encode_rows(columns, first, length)
                producer.sequence += 1
                try:
                    response = send(body + trailer(producer.id, producer.sequence))
                except QuiverError as error:
                    with lock:
                        failures.append(_error_at(error, first))
                    stop.set()
                    return
                with lock:
                    result.batches += 1
                    result.rows += length
                    if response.duplicate:
                        result.duplicate += length
                    else:
                        result.accepted += response.accepted
                        result.late += response.late
                        result.anomalous += response.anomalous
                    done = result.rows
                if progress is not None:
                    progress(done, rows)
        except Exception as error:  # raised in the caller's thread below
            with lock:
                failures.append(error)
            stop.set()
        finally:
            producers.give(producer)

    threads = [
        threading.Thread(target=work, name=f"quiver-push-{i}", daemon=True)
        for i in range(max(1, min(workers, len(starts))))
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
