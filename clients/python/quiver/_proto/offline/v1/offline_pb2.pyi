import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SnapshotCommand(_message.Message):
    __slots__ = ("project", "feature_service", "feature_refs", "timestamp_column", "sampling", "filter_by_commit_time")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_REFS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_COLUMN_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    FILTER_BY_COMMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    project: str
    feature_service: str
    feature_refs: FeatureRefs
    timestamp_column: str
    sampling: Sampling
    filter_by_commit_time: bool
    def __init__(self, project: _Optional[str] = ..., feature_service: _Optional[str] = ..., feature_refs: _Optional[_Union[FeatureRefs, _Mapping]] = ..., timestamp_column: _Optional[str] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., filter_by_commit_time: _Optional[bool] = ...) -> None: ...

class FeatureRefs(_message.Message):
    __slots__ = ("refs",)
    REFS_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, refs: _Optional[_Iterable[str]] = ...) -> None: ...

class Sampling(_message.Message):
    __slots__ = ("balanced", "inverse_frequency", "seed")
    BALANCED_FIELD_NUMBER: _ClassVar[int]
    INVERSE_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    balanced: BalancedSampling
    inverse_frequency: InverseFrequencySampling
    seed: int
    def __init__(self, balanced: _Optional[_Union[BalancedSampling, _Mapping]] = ..., inverse_frequency: _Optional[_Union[InverseFrequencySampling, _Mapping]] = ..., seed: _Optional[int] = ...) -> None: ...

class BalancedSampling(_message.Message):
    __slots__ = ("label_column", "target_fraction")
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TARGET_FRACTION_FIELD_NUMBER: _ClassVar[int]
    label_column: str
    target_fraction: float
    def __init__(self, label_column: _Optional[str] = ..., target_fraction: _Optional[float] = ...) -> None: ...

class InverseFrequencySampling(_message.Message):
    __slots__ = ("column",)
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    column: str
    def __init__(self, column: _Optional[str] = ...) -> None: ...

class ExportStatus(_message.Message):
    __slots__ = ("group_id", "exported_index", "exported_at")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_INDEX_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    group_id: int
    exported_index: int
    exported_at: _timestamp_pb2.Timestamp
    def __init__(self, group_id: _Optional[int] = ..., exported_index: _Optional[int] = ..., exported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
