import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from quiver._proto.types.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObjectKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECT_KIND_UNSPECIFIED: _ClassVar[ObjectKind]
    OBJECT_KIND_ENTITY: _ClassVar[ObjectKind]
    OBJECT_KIND_SOURCE: _ClassVar[ObjectKind]
    OBJECT_KIND_FEATURE_VIEW: _ClassVar[ObjectKind]
    OBJECT_KIND_FEATURE_SERVICE: _ClassVar[ObjectKind]

class KafkaFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KAFKA_FORMAT_UNSPECIFIED: _ClassVar[KafkaFormat]
    KAFKA_FORMAT_JSON: _ClassVar[KafkaFormat]

class KafkaStart(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KAFKA_START_UNSPECIFIED: _ClassVar[KafkaStart]
    KAFKA_START_EARLIEST: _ClassVar[KafkaStart]
    KAFKA_START_LATEST: _ClassVar[KafkaStart]

class TransformOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFORM_OP_UNSPECIFIED: _ClassVar[TransformOp]
    TRANSFORM_OP_TOKEN_COUNT: _ClassVar[TransformOp]
    TRANSFORM_OP_NGRAM_HASH: _ClassVar[TransformOp]
    TRANSFORM_OP_STANDARDIZE: _ClassVar[TransformOp]
    TRANSFORM_OP_ZSCORE: _ClassVar[TransformOp]

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_COUNT: _ClassVar[Aggregation]
    AGGREGATION_SUM: _ClassVar[Aggregation]
    AGGREGATION_MEAN: _ClassVar[Aggregation]
    AGGREGATION_MIN: _ClassVar[Aggregation]
    AGGREGATION_MAX: _ClassVar[Aggregation]
    AGGREGATION_STDDEV: _ClassVar[Aggregation]
    AGGREGATION_LAST: _ClassVar[Aggregation]
    AGGREGATION_FIRST: _ClassVar[Aggregation]
    AGGREGATION_DISTINCT_COUNT: _ClassVar[Aggregation]

class WindowKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WINDOW_KIND_UNSPECIFIED: _ClassVar[WindowKind]
    WINDOW_KIND_SLIDING: _ClassVar[WindowKind]
    WINDOW_KIND_TUMBLING: _ClassVar[WindowKind]
    WINDOW_KIND_LIFETIME: _ClassVar[WindowKind]

class PlanAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_ACTION_UNSPECIFIED: _ClassVar[PlanAction]
    PLAN_ACTION_CREATE: _ClassVar[PlanAction]
    PLAN_ACTION_CHANGE: _ClassVar[PlanAction]
    PLAN_ACTION_UNCHANGED: _ClassVar[PlanAction]
    PLAN_ACTION_DELETE: _ClassVar[PlanAction]

class LineageNodeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINEAGE_NODE_KIND_UNSPECIFIED: _ClassVar[LineageNodeKind]
    LINEAGE_NODE_KIND_ENTITY: _ClassVar[LineageNodeKind]
    LINEAGE_NODE_KIND_SOURCE: _ClassVar[LineageNodeKind]
    LINEAGE_NODE_KIND_TRANSFORM: _ClassVar[LineageNodeKind]
    LINEAGE_NODE_KIND_FEATURE_VIEW: _ClassVar[LineageNodeKind]
    LINEAGE_NODE_KIND_FEATURE: _ClassVar[LineageNodeKind]
    LINEAGE_NODE_KIND_FEATURE_SERVICE: _ClassVar[LineageNodeKind]
    LINEAGE_NODE_KIND_CONSUMER: _ClassVar[LineageNodeKind]
OBJECT_KIND_UNSPECIFIED: ObjectKind
OBJECT_KIND_ENTITY: ObjectKind
OBJECT_KIND_SOURCE: ObjectKind
OBJECT_KIND_FEATURE_VIEW: ObjectKind
OBJECT_KIND_FEATURE_SERVICE: ObjectKind
KAFKA_FORMAT_UNSPECIFIED: KafkaFormat
KAFKA_FORMAT_JSON: KafkaFormat
KAFKA_START_UNSPECIFIED: KafkaStart
KAFKA_START_EARLIEST: KafkaStart
KAFKA_START_LATEST: KafkaStart
TRANSFORM_OP_UNSPECIFIED: TransformOp
TRANSFORM_OP_TOKEN_COUNT: TransformOp
TRANSFORM_OP_NGRAM_HASH: TransformOp
TRANSFORM_OP_STANDARDIZE: TransformOp
TRANSFORM_OP_ZSCORE: TransformOp
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_COUNT: Aggregation
AGGREGATION_SUM: Aggregation
AGGREGATION_MEAN: Aggregation
AGGREGATION_MIN: Aggregation
AGGREGATION_MAX: Aggregation
AGGREGATION_STDDEV: Aggregation
AGGREGATION_LAST: Aggregation
AGGREGATION_FIRST: Aggregation
AGGREGATION_DISTINCT_COUNT: Aggregation
WINDOW_KIND_UNSPECIFIED: WindowKind
WINDOW_KIND_SLIDING: WindowKind
WINDOW_KIND_TUMBLING: WindowKind
WINDOW_KIND_LIFETIME: WindowKind
PLAN_ACTION_UNSPECIFIED: PlanAction
PLAN_ACTION_CREATE: PlanAction
PLAN_ACTION_CHANGE: PlanAction
PLAN_ACTION_UNCHANGED: PlanAction
PLAN_ACTION_DELETE: PlanAction
LINEAGE_NODE_KIND_UNSPECIFIED: LineageNodeKind
LINEAGE_NODE_KIND_ENTITY: LineageNodeKind
LINEAGE_NODE_KIND_SOURCE: LineageNodeKind
LINEAGE_NODE_KIND_TRANSFORM: LineageNodeKind
LINEAGE_NODE_KIND_FEATURE_VIEW: LineageNodeKind
LINEAGE_NODE_KIND_FEATURE: LineageNodeKind
LINEAGE_NODE_KIND_FEATURE_SERVICE: LineageNodeKind
LINEAGE_NODE_KIND_CONSUMER: LineageNodeKind

class JoinKey(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: _types_pb2.ValueType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[_types_pb2.ValueType, str]] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("name", "join_keys", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOIN_KEYS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    join_keys: _containers.RepeatedCompositeFieldContainer[JoinKey]
    description: str
    def __init__(self, name: _Optional[str] = ..., join_keys: _Optional[_Iterable[_Union[JoinKey, _Mapping]]] = ..., description: _Optional[str] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: _types_pb2.ValueType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[_types_pb2.ValueType, str]] = ...) -> None: ...

class Source(_message.Message):
    __slots__ = ("name", "entity", "timestamp_field", "allowed_lateness", "schema", "description", "kafka", "log_retention")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_LATENESS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KAFKA_FIELD_NUMBER: _ClassVar[int]
    LOG_RETENTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    entity: str
    timestamp_field: str
    allowed_lateness: _duration_pb2.Duration
    schema: _containers.RepeatedCompositeFieldContainer[Column]
    description: str
    kafka: KafkaSource
    log_retention: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., entity: _Optional[str] = ..., timestamp_field: _Optional[str] = ..., allowed_lateness: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., schema: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., description: _Optional[str] = ..., kafka: _Optional[_Union[KafkaSource, _Mapping]] = ..., log_retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class KafkaSource(_message.Message):
    __slots__ = ("bootstrap_servers", "topic", "format", "start", "consumer_group", "properties")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BOOTSTRAP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    bootstrap_servers: str
    topic: str
    format: KafkaFormat
    start: KafkaStart
    consumer_group: str
    properties: _containers.ScalarMap[str, str]
    def __init__(self, bootstrap_servers: _Optional[str] = ..., topic: _Optional[str] = ..., format: _Optional[_Union[KafkaFormat, str]] = ..., start: _Optional[_Union[KafkaStart, str]] = ..., consumer_group: _Optional[str] = ..., properties: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Transform(_message.Message):
    __slots__ = ("name", "op", "input", "n", "buckets", "window", "exclude_above")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ABOVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    op: TransformOp
    input: str
    n: int
    buckets: int
    window: _duration_pb2.Duration
    exclude_above: float
    def __init__(self, name: _Optional[str] = ..., op: _Optional[_Union[TransformOp, str]] = ..., input: _Optional[str] = ..., n: _Optional[int] = ..., buckets: _Optional[int] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., exclude_above: _Optional[float] = ...) -> None: ...

class Feature(_message.Message):
    __slots__ = ("name", "column", "aggregation", "window", "kind", "value_type", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    column: str
    aggregation: Aggregation
    window: _duration_pb2.Duration
    kind: WindowKind
    value_type: _types_pb2.ValueType
    description: str
    def __init__(self, name: _Optional[str] = ..., column: _Optional[str] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., kind: _Optional[_Union[WindowKind, str]] = ..., value_type: _Optional[_Union[_types_pb2.ValueType, str]] = ..., description: _Optional[str] = ...) -> None: ...

class FeatureView(_message.Message):
    __slots__ = ("name", "entity", "source", "ttl", "transforms", "features", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    entity: str
    source: str
    ttl: _duration_pb2.Duration
    transforms: _containers.RepeatedCompositeFieldContainer[Transform]
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    description: str
    def __init__(self, name: _Optional[str] = ..., entity: _Optional[str] = ..., source: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., transforms: _Optional[_Iterable[_Union[Transform, _Mapping]]] = ..., features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ..., description: _Optional[str] = ...) -> None: ...

class FeatureService(_message.Message):
    __slots__ = ("name", "features", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    features: _containers.RepeatedCompositeFieldContainer[_types_pb2.FeatureRef]
    description: str
    def __init__(self, name: _Optional[str] = ..., features: _Optional[_Iterable[_Union[_types_pb2.FeatureRef, _Mapping]]] = ..., description: _Optional[str] = ...) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("kind", "name", "version")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    kind: ObjectKind
    name: str
    version: int
    def __init__(self, kind: _Optional[_Union[ObjectKind, str]] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ObjectMeta(_message.Message):
    __slots__ = ("project", "kind", "name", "version", "revision", "created_at", "deleted", "dependencies")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    project: str
    kind: ObjectKind
    name: str
    version: int
    revision: int
    created_at: _timestamp_pb2.Timestamp
    deleted: bool
    dependencies: _containers.RepeatedCompositeFieldContainer[Dependency]
    def __init__(self, project: _Optional[str] = ..., kind: _Optional[_Union[ObjectKind, str]] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., revision: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted: _Optional[bool] = ..., dependencies: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ...) -> None: ...

class RegistryObject(_message.Message):
    __slots__ = ("meta", "entity", "source", "feature_view", "feature_service")
    META_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_VIEW_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    meta: ObjectMeta
    entity: Entity
    source: Source
    feature_view: FeatureView
    feature_service: FeatureService
    def __init__(self, meta: _Optional[_Union[ObjectMeta, _Mapping]] = ..., entity: _Optional[_Union[Entity, _Mapping]] = ..., source: _Optional[_Union[Source, _Mapping]] = ..., feature_view: _Optional[_Union[FeatureView, _Mapping]] = ..., feature_service: _Optional[_Union[FeatureService, _Mapping]] = ...) -> None: ...

class DefinitionDocument(_message.Message):
    __slots__ = ("name", "yaml")
    NAME_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    name: str
    yaml: str
    def __init__(self, name: _Optional[str] = ..., yaml: _Optional[str] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("documents", "dry_run", "expected_revision")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[DefinitionDocument]
    dry_run: bool
    expected_revision: int
    def __init__(self, documents: _Optional[_Iterable[_Union[DefinitionDocument, _Mapping]]] = ..., dry_run: _Optional[bool] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class PlanItem(_message.Message):
    __slots__ = ("kind", "name", "action", "from_version", "to_version", "changes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    kind: ObjectKind
    name: str
    action: PlanAction
    from_version: int
    to_version: int
    changes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[ObjectKind, str]] = ..., name: _Optional[str] = ..., action: _Optional[_Union[PlanAction, str]] = ..., from_version: _Optional[int] = ..., to_version: _Optional[int] = ..., changes: _Optional[_Iterable[str]] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("project", "plan", "base_revision", "revision", "applied")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    BASE_REVISION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    project: str
    plan: _containers.RepeatedCompositeFieldContainer[PlanItem]
    base_revision: int
    revision: int
    applied: bool
    def __init__(self, project: _Optional[str] = ..., plan: _Optional[_Iterable[_Union[PlanItem, _Mapping]]] = ..., base_revision: _Optional[int] = ..., revision: _Optional[int] = ..., applied: _Optional[bool] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("project", "kind", "include_deleted")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELETED_FIELD_NUMBER: _ClassVar[int]
    project: str
    kind: ObjectKind
    include_deleted: bool
    def __init__(self, project: _Optional[str] = ..., kind: _Optional[_Union[ObjectKind, str]] = ..., include_deleted: _Optional[bool] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("project", "objects", "revision")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    project: str
    objects: _containers.RepeatedCompositeFieldContainer[RegistryObject]
    revision: int
    def __init__(self, project: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[RegistryObject, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("project", "kind", "name", "version")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    project: str
    kind: ObjectKind
    name: str
    version: int
    def __init__(self, project: _Optional[str] = ..., kind: _Optional[_Union[ObjectKind, str]] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("object", "versions")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    object: RegistryObject
    versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, object: _Optional[_Union[RegistryObject, _Mapping]] = ..., versions: _Optional[_Iterable[int]] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects", "revision")
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, projects: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class LineageNode(_message.Message):
    __slots__ = ("id", "kind", "name", "version", "last_seen")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: LineageNodeKind
    name: str
    version: int
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[LineageNodeKind, str]] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LineageEdge(_message.Message):
    __slots__ = ("to",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    to: str
    def __init__(self, to: _Optional[str] = ..., **kwargs) -> None: ...

class GetLineageRequest(_message.Message):
    __slots__ = ("project", "node")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    project: str
    node: str
    def __init__(self, project: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class GetLineageResponse(_message.Message):
    __slots__ = ("root", "upstream", "downstream", "edges")
    ROOT_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    root: LineageNode
    upstream: _containers.RepeatedCompositeFieldContainer[LineageNode]
    downstream: _containers.RepeatedCompositeFieldContainer[LineageNode]
    edges: _containers.RepeatedCompositeFieldContainer[LineageEdge]
    def __init__(self, root: _Optional[_Union[LineageNode, _Mapping]] = ..., upstream: _Optional[_Iterable[_Union[LineageNode, _Mapping]]] = ..., downstream: _Optional[_Iterable[_Union[LineageNode, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[LineageEdge, _Mapping]]] = ...) -> None: ...

class RecordConsumerRequest(_message.Message):
    __slots__ = ("project", "consumer", "feature_service", "features")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    project: str
    consumer: str
    feature_service: str
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project: _Optional[str] = ..., consumer: _Optional[str] = ..., feature_service: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordConsumerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("from_revision", "project")
    FROM_REVISION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    from_revision: int
    project: str
    def __init__(self, from_revision: _Optional[int] = ..., project: _Optional[str] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("revision", "snapshot", "objects")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    snapshot: bool
    objects: _containers.RepeatedCompositeFieldContainer[RegistryObject]
    def __init__(self, revision: _Optional[int] = ..., snapshot: _Optional[bool] = ..., objects: _Optional[_Iterable[_Union[RegistryObject, _Mapping]]] = ...) -> None: ...
