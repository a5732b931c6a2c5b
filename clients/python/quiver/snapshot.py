"""Point-in-time training sets over Arrow Flight (`DoExchange` with a `SnapshotCommand`).

The entity table is written from a second thread while the answer is read, so a table of any
size streams both ways in bounded memory (the service answers batch by batch, in the table's
row order, while the table is still arriving).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.flight as flight

from quiver._proto.offline.v1 import offline_pb2
from quiver.errors import InvalidArgument, from_flight
from quiver.push_encoding import dataframe_to_arrow, is_dataframe


@dataclass(frozen=True)
class Balanced:
    """Keep every row of rare classes of `label` and `fraction` of the most frequent one; each
    kept row gets `sample_weight = 1 / keep probability`."""

    label: str
    fraction: float
    seed: int = 0


@dataclass(frozen=True)
class InverseFrequency:
    """Keep each row with probability inversely proportional to its class's frequency in
    `column`, so every class keeps about as many rows as the rarest."""

    column: str
    seed: int = 0


Sample = Union[Balanced, InverseFrequency]


def command(
    project: str,
    features: Optional[Sequence[str] | str],
    service: Optional[str],
    timestamp_column: str,
    sample: Optional[Sample],
) -> bytes:
    """The descriptor's `cmd`: an encoded `SnapshotCommand`."""
    message = offline_pb2.SnapshotCommand(project=project, timestamp_column=timestamp_column)
    if (features is None) == (service is None):
        raise InvalidArgument("snapshot: pass either features=[...] or service=..., not both")
    if service is not None:
        message.feature_service = service
    else:
        message.feature_refs.refs.extend([features] if isinstance(features, str) else features)
    if isinstance(sample, Balanced):
        message.sampling.balanced.label_column = sample.label
        message.sampling.balanced.target_fraction = sample.fraction
        message.sampling.seed = sample.seed
    elif isinstance(sample, InverseFrequency):
        message.sampling.inverse_frequency.column = sample.column
        message.sampling.seed = sample.seed
    elif sample is not None:
        raise InvalidArgument(
            f"sample: expected quiver.Balanced(...) or quiver.InverseFrequency(...), got {sample!r}"
        )
    return message.SerializeToString()


def entity_batches(entities: Any, batch_rows: int) -> tuple[pa.Schema, Iterable[pa.RecordBatch]]:
    """The entity table's schema and batches: a pandas DataFrame, a pyarrow Table,
    RecordBatch or RecordBatchReader, or a path to a Parquet file (read batch by batch)."""
    if isinstance(entities, (str, os.PathLike)):
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(os.fspath(entities))
        except pa.ArrowInvalid as e:  # a missing file stays FileNotFoundError
            raise InvalidArgument(f"entities: {os.fspath(entities)} is not a Parquet file ({e})") from None
        return file.schema_arrow, file.iter_batches(batch_size=batch_rows)
    if isinstance(entities, pa.RecordBatchReader):
        return entities.schema, entities
    if isinstance(entities, pa.RecordBatch):
        entities = pa.Table.from_batches([entities])
    if is_dataframe(entities):
        entities = dataframe_to_arrow(entities)
    if isinstance(entities, pa.Table):
        return entities.schema, entities.to_batches(max_chunksize=batch_rows)
    raise InvalidArgument(
        "entities: expected a pandas DataFrame, a pyarrow Table, RecordBatch or "
        f"RecordBatchReader, or a Parquet file's path; got {type(entities).__name__}"
    )


def exchange(
    client: flight.FlightClient,
    options: flight.FlightCallOptions,
    cmd: bytes,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    what: str,
) -> pa.RecordBatchReader:
    """Streams `batches` to the snapshot service; the answer's batches as they come."""
    send_error: list = []
    try:
        writer, reader = client.do_exchange(flight.FlightDescriptor.for_command(cmd), options)
    except (pa.ArrowException, flight.FlightError) as e:
        raise from_flight(e, what) from None

    def send() -> None:
        try:
            writer.begin(schema)
            for batch in batches:
                writer.write_batch(batch)
            writer.done_writing()
        except Exception as e:  # the read side reports the server's error; keep ours too
            send_error.append(e)

    def failure(e: Exception) -> Exception:
        sender.join()
        try:
            writer.close()  # now, quietly: closing a failed call later logs its error again
        except (pa.ArrowException, flight.FlightError):
            pass
        if send_error and not isinstance(send_error[0], (pa.ArrowException, flight.FlightError)):
            return send_error[0]  # e.g. an unreadable Parquet file: not the server's doing
        return from_flight(e, what)

    sender = threading.Thread(target=send, name="quiver-snapshot-send", daemon=True)
    sender.start()
    try:
        answer_schema = reader.schema
    except (pa.ArrowException, flight.FlightError) as e:
        raise failure(e) from None

    def answer() -> Iterator[pa.RecordBatch]:
        try:
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    break
                yield chunk.data
        except (pa.ArrowException, flight.FlightError) as e:
            raise failure(e) from None
        sender.join()
        writer.close()
        if send_error:
            raise failure(send_error[0])

    return pa.RecordBatchReader.from_batches(answer_schema, answer())
