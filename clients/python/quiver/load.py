"""Loading history: events of any age, admitted exactly once, as `quiver load` loads them.

A load's batches follow from its rows alone, so running it again (whole, or after it stopped)
sends the same batches under the same producer ids and sequence numbers, and ingest answers
those it already applied as duplicates. This module makes, from the same rows, the requests
`quiver load` makes, byte for byte (services/quiver/src/commands/load.rs), so a load from Python
and one from the CLI are one load:

- its identity is FNV-1a 128 over the project (as given, possibly empty), the source, each
  column name and each row's `Row` encoding, each fed as its length (a little-endian u64) then
  its bytes;
- the rows are split into four parts by FNV-1a 64 of the encodings of the row's join-key
  `Value`s (hash % 4), each keeping the data's order; part p is producer
  `load-{identity:032x}-{p}`, epoch 0, even when another part is empty;
- each part sends batches of 5,000 rows with sequences 1, 2, ... and `history: true`, with no
  registration batch first (history moves no watermark, so there is none to register against).

The same rows means the same columns, in the same order, with the same values: `quiver load`
reads a JSON-lines file as every column of the source in the schema's order (timestamps as the
text written), a Parquet file as its own columns (timestamps as instants). `columns_for_load`
reads a list of dicts the first way and a table the second, so each is the same load as the file
it corresponds to.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import grpc
import numpy as np
import pyarrow as pa

from quiver._proto.ingest.v1 import ingest_pb2
from quiver.errors import InvalidArgument, QuiverError
from quiver.fnv import Fnv1a128, fnv1a_64_rows
from quiver.push import Sender, _error_at
from quiver.push_encoding import Column, encode_rows, header, length_prefixed_rows, trailer, value_encodings

#: Producers of one load (fixed, so the same rows always make the same batches).
PARTS = 4
#: Rows per batch (fixed, for the same reason).
BATCH = 5_000
# `PushRequest.history = true`: field 8, varint 1. Appended after the trailer, as prost orders
# fields by number.
_HISTORY = ingest_pb2.PushRequest(history=True).SerializeToString()
# Rows encoded at a time for the identity hash (bounds the memory it takes).
_HASH_ROWS = 65_536


@dataclass
class LoadResult:
    """What a load did."""

    #: Rows in the data.
    rows: int = 0
    #: Rows admitted by this load (a row a zscore transform excluded is still admitted).
    loaded: int = 0
    #: Rows of batches an earlier run of the same load had committed: nothing added for them.
    already_loaded: int = 0
    #: Rows excluded as anomalous by a zscore transform (quarantined with the reason).
    anomalous: int = 0
    #: Batches sent.
    batches: int = 0
    #: Attempts retried after a transient failure (UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN).
    retries: int = 0
    #: RESOURCE_EXHAUSTED answers waited out as the server asked (`retry-after-ms`).
    throttled: int = 0
    #: Wall-clock time of the load, hashing included.
    seconds: float = 0.0
    #: The load's identity (32 hex digits), as `quiver load` prints it (`load_id`).
    load_id: str = ""

    @property
    def rows_per_second(self) -> float:
        """Rows sent per second of the load."""
        sent = self.loaded + self.already_loaded
        return sent / self.seconds if self.seconds > 0 else 0.0


def columns_for_load(
    data: Any, raw: Dict[str, Union[pa.Array, pa.ChunkedArray, List[Any]]], schema: Sequence[str], source: str
) -> Dict[str, Union[pa.Array, pa.ChunkedArray, List[Any]]]:
    """The columns a load sends, as `quiver load` reads the same events from a file: a list of
    dicts like a JSON-lines file of those objects (every column of the source, in the schema's
    order, absent values null); a table as it is, like a Parquet file of it."""
    if not isinstance(data, (list, tuple)):
        return raw
    unknown = [name for name in raw if name not in schema]
    if unknown:
        raise InvalidArgument(
            f'"{unknown[0]}" is not a column of source "{source}" (its columns: {", ".join(schema)})'
        )
    return {name: raw.get(name, [None] * len(data)) for name in schema}


def identity(project: str, source: str, columns: Sequence[Column], rows: int) -> int:
    """The load's identity: FNV-1a 128 over project, source, column names and rows."""
    digest = Fnv1a128()
    digest.update_field(project.encode())
    digest.update_field(source.encode())
    for column in columns:
        digest.update_field(column.name.encode())
    for first in range(0, rows, _HASH_ROWS):
        digest.update(length_prefixed_rows(columns, range(first, min(first + _HASH_ROWS, rows))))
    return digest.value


def parts(columns: Sequence[Column], rows: int, key_columns: Sequence[str]) -> List[np.ndarray]:
    """The row numbers of each of the `PARTS` parts (empty ones kept: a part's number names its
    producer), by FNV-1a 64 of the row's join-key values in the order the entity declares them."""
    by_name = {c.name: c for c in columns}
    keys = [by_name[k] for k in key_columns if k in by_name]
    hashes = fnv1a_64_rows([value_encodings(k, range(rows)) for k in keys], rows)
    owner = hashes % np.uint64(PARTS)
    return [np.flatnonzero(owner == np.uint64(p)) for p in range(PARTS)]


def run(
    channel: grpc.Channel,
    project: str,
    source: str,
    columns: Sequence[Column],
    rows: int,
    key_columns: Sequence[str],
    *,
    retry_for: float,
    timeout: float,
    metadata: Sequence,
    what: str,
    progress: Optional[Callable[[int, int], None]] = None,
) -> LoadResult:
    """Loads `rows` rows of `columns` into `source`: hashes them, then sends each part's batches
    in order, one producer per part, the parts at once."""
    started = time.monotonic()
    load_id = f"{identity(project, source, columns, rows):032x}"
    result = LoadResult(rows=rows, load_id=load_id)
    lock = threading.Lock()
    send = Sender(channel, result, lock, retry_for=retry_for, timeout=timeout, metadata=metadata, what=what)
    head = header(project, source, [c.name for c in columns])
    failures: List[Exception] = []
    done = [0]

    def produce(part: int, share: np.ndarray) -> None:
        producer_id = f"load-{load_id}-{part}"
        for sequence, first in enumerate(range(0, len(share), BATCH), start=1):
            if send.stop.is_set():
                return
            batch = share[first : first + BATCH]
            request = head + encode_rows(columns, batch) + trailer(producer_id, sequence) + _HISTORY
            try:
                response = send(request)
            except QuiverError as error:
                raise _error_at(error, batch) from None
            with lock:
                result.batches += 1
                if response.duplicate:
                    result.already_loaded += len(batch)
                else:
                    result.loaded += response.accepted
                    result.anomalous += response.anomalous
                done[0] += len(batch)
                so_far = done[0]
            if progress is not None:
                progress(so_far, rows)

    def work(part: int, share: np.ndarray) -> None:
        try:
            produce(part, share)
        except Exception as error:  # raised in the caller's thread below
            with lock:
                failures.append(error)
            send.stop.set()

    threads = [
        threading.Thread(target=work, args=(part, share), name=f"quiver-load-{part}", daemon=True)
        for part, share in enumerate(parts(columns, rows, key_columns))
        if len(share)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    if failures:
        error = failures[0]
        if isinstance(error, QuiverError):
            error.result = replace(result)  # what was loaded before the load stopped
        raise error
    return result
