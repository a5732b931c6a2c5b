import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from quiver._proto.types.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_EVENTUAL: _ClassVar[Consistency]
    CONSISTENCY_STRONG: _ClassVar[Consistency]
CONSISTENCY_EVENTUAL: Consistency
CONSISTENCY_STRONG: Consistency

class FeatureList(_message.Message):
    __slots__ = ("refs",)
    REFS_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, refs: _Optional[_Iterable[str]] = ...) -> None: ...

class GetFeaturesRequest(_message.Message):
    __slots__ = ("project", "feature_service", "feature_list", "entities", "as_of", "consistency", "full_feature_names")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_LIST_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    FULL_FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    project: str
    feature_service: str
    feature_list: FeatureList
    entities: _containers.RepeatedCompositeFieldContainer[_types_pb2.EntityColumn]
    as_of: _timestamp_pb2.Timestamp
    consistency: Consistency
    full_feature_names: bool
    def __init__(self, project: _Optional[str] = ..., feature_service: _Optional[str] = ..., feature_list: _Optional[_Union[FeatureList, _Mapping]] = ..., entities: _Optional[_Iterable[_Union[_types_pb2.EntityColumn, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consistency: _Optional[_Union[Consistency, str]] = ..., full_feature_names: _Optional[bool] = ...) -> None: ...

class ViewVersion(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ResponseMetadata(_message.Message):
    __slots__ = ("feature_names", "views", "as_of")
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    views: _containers.RepeatedCompositeFieldContainer[ViewVersion]
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, feature_names: _Optional[_Iterable[str]] = ..., views: _Optional[_Iterable[_Union[ViewVersion, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FeatureVector(_message.Message):
    __slots__ = ("values", "statuses", "event_timestamps")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[_types_pb2.Value]
    statuses: _containers.RepeatedScalarFieldContainer[_types_pb2.FieldStatus]
    event_timestamps: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    def __init__(self, values: _Optional[_Iterable[_Union[_types_pb2.Value, _Mapping]]] = ..., statuses: _Optional[_Iterable[_Union[_types_pb2.FieldStatus, str]]] = ..., event_timestamps: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ...) -> None: ...

class GetFeaturesResponse(_message.Message):
    __slots__ = ("metadata", "results")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    metadata: ResponseMetadata
    results: _containers.RepeatedCompositeFieldContainer[FeatureVector]
    def __init__(self, metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., results: _Optional[_Iterable[_Union[FeatureVector, _Mapping]]] = ...) -> None: ...
