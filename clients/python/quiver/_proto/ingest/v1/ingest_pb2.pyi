import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from quiver._proto.types.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LimitsResponse(_message.Message):
    __slots__ = ("now", "max_future_skew_micros")
    NOW_FIELD_NUMBER: _ClassVar[int]
    MAX_FUTURE_SKEW_MICROS_FIELD_NUMBER: _ClassVar[int]
    now: _timestamp_pb2.Timestamp
    max_future_skew_micros: int
    def __init__(self, now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_future_skew_micros: _Optional[int] = ...) -> None: ...

class KafkaStatusRequest(_message.Message):
    __slots__ = ("project", "source")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    project: str
    source: str
    def __init__(self, project: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class KafkaStatusResponse(_message.Message):
    __slots__ = ("sources", "process")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[KafkaSourceStatus]
    process: str
    def __init__(self, sources: _Optional[_Iterable[_Union[KafkaSourceStatus, _Mapping]]] = ..., process: _Optional[str] = ...) -> None: ...

class KafkaSourceStatus(_message.Message):
    __slots__ = ("project", "source", "topic", "state", "problem", "partition_count", "partitions", "since_micros")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    SINCE_MICROS_FIELD_NUMBER: _ClassVar[int]
    project: str
    source: str
    topic: str
    state: str
    problem: str
    partition_count: int
    partitions: _containers.RepeatedCompositeFieldContainer[KafkaPartitionStatus]
    since_micros: int
    def __init__(self, project: _Optional[str] = ..., source: _Optional[str] = ..., topic: _Optional[str] = ..., state: _Optional[str] = ..., problem: _Optional[str] = ..., partition_count: _Optional[int] = ..., partitions: _Optional[_Iterable[_Union[KafkaPartitionStatus, _Mapping]]] = ..., since_micros: _Optional[int] = ...) -> None: ...

class KafkaPartitionStatus(_message.Message):
    __slots__ = ("partition", "committed", "log_end", "lag", "pending")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    LOG_END_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    partition: int
    committed: int
    log_end: int
    lag: int
    pending: int
    def __init__(self, partition: _Optional[int] = ..., committed: _Optional[int] = ..., log_end: _Optional[int] = ..., lag: _Optional[int] = ..., pending: _Optional[int] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[_types_pb2.Value]
    def __init__(self, values: _Optional[_Iterable[_Union[_types_pb2.Value, _Mapping]]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("project", "source", "columns", "rows", "producer_id", "sequence", "producer_epoch", "history")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    project: str
    source: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    producer_id: str
    sequence: int
    producer_epoch: int
    history: bool
    def __init__(self, project: _Optional[str] = ..., source: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., producer_id: _Optional[str] = ..., sequence: _Optional[int] = ..., producer_epoch: _Optional[int] = ..., history: _Optional[bool] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("accepted", "late", "anomalous", "duplicate", "committed_at", "last_sequence")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    ANOMALOUS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    late: int
    anomalous: int
    duplicate: bool
    committed_at: _timestamp_pb2.Timestamp
    last_sequence: int
    def __init__(self, accepted: _Optional[int] = ..., late: _Optional[int] = ..., anomalous: _Optional[int] = ..., duplicate: _Optional[bool] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class PushAck(_message.Message):
    __slots__ = ("sequence", "response", "error_code", "error_message")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    response: PushResponse
    error_code: int
    error_message: str
    def __init__(self, sequence: _Optional[int] = ..., response: _Optional[_Union[PushResponse, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...
