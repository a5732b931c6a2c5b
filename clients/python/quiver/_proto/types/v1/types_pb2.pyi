import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValueType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_TYPE_UNSPECIFIED: _ClassVar[ValueType]
    VALUE_TYPE_INT64: _ClassVar[ValueType]
    VALUE_TYPE_FLOAT64: _ClassVar[ValueType]
    VALUE_TYPE_FLOAT32: _ClassVar[ValueType]
    VALUE_TYPE_BOOL: _ClassVar[ValueType]
    VALUE_TYPE_STRING: _ClassVar[ValueType]
    VALUE_TYPE_BYTES: _ClassVar[ValueType]
    VALUE_TYPE_TIMESTAMP: _ClassVar[ValueType]
    VALUE_TYPE_FLOAT32_LIST: _ClassVar[ValueType]

class NullValue(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NULL_VALUE: _ClassVar[NullValue]

class FieldStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_STATUS_INVALID: _ClassVar[FieldStatus]
    FIELD_STATUS_PRESENT: _ClassVar[FieldStatus]
    FIELD_STATUS_NULL_VALUE: _ClassVar[FieldStatus]
    FIELD_STATUS_NOT_FOUND: _ClassVar[FieldStatus]
    FIELD_STATUS_OUTSIDE_TTL: _ClassVar[FieldStatus]
VALUE_TYPE_UNSPECIFIED: ValueType
VALUE_TYPE_INT64: ValueType
VALUE_TYPE_FLOAT64: ValueType
VALUE_TYPE_FLOAT32: ValueType
VALUE_TYPE_BOOL: ValueType
VALUE_TYPE_STRING: ValueType
VALUE_TYPE_BYTES: ValueType
VALUE_TYPE_TIMESTAMP: ValueType
VALUE_TYPE_FLOAT32_LIST: ValueType
NULL_VALUE: NullValue
FIELD_STATUS_INVALID: FieldStatus
FIELD_STATUS_PRESENT: FieldStatus
FIELD_STATUS_NULL_VALUE: FieldStatus
FIELD_STATUS_NOT_FOUND: FieldStatus
FIELD_STATUS_OUTSIDE_TTL: FieldStatus

class Float32List(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null_value", "int64_value", "float64_value", "float32_value", "bool_value", "string_value", "bytes_value", "timestamp_value", "float32_list_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT64_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT64_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT32_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT32_LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: NullValue
    int64_value: int
    float64_value: float
    float32_value: float
    bool_value: bool
    string_value: str
    bytes_value: bytes
    timestamp_value: _timestamp_pb2.Timestamp
    float32_list_value: Float32List
    def __init__(self, null_value: _Optional[_Union[NullValue, str]] = ..., int64_value: _Optional[int] = ..., float64_value: _Optional[float] = ..., float32_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., string_value: _Optional[str] = ..., bytes_value: _Optional[bytes] = ..., timestamp_value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., float32_list_value: _Optional[_Union[Float32List, _Mapping]] = ...) -> None: ...

class RepeatedValue(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class EntityColumn(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: RepeatedValue
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Union[RepeatedValue, _Mapping]] = ...) -> None: ...

class EntityKey(_message.Message):
    __slots__ = ("join_keys", "values")
    JOIN_KEYS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    join_keys: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, join_keys: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class FeatureRef(_message.Message):
    __slots__ = ("view", "version", "feature")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    view: str
    version: int
    feature: str
    def __init__(self, view: _Optional[str] = ..., version: _Optional[int] = ..., feature: _Optional[str] = ...) -> None: ...
