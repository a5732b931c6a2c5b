"""The registry in Python terms: definition documents from paths or YAML text, plans as
dataclasses, registry objects as plain dicts (enums as Quiver's lower-case names, durations as
`timedelta`, times as UTC `datetime`)."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Union

from google.protobuf.descriptor import FieldDescriptor

from quiver._proto.registry.v1 import registry_pb2
from quiver.errors import InvalidArgument

PathOrYaml = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

#: Accepted spellings of each kind (the CLI's, singular and plural).
KINDS = {
    registry_pb2.OBJECT_KIND_ENTITY: ("entity", "entities"),
    registry_pb2.OBJECT_KIND_SOURCE: ("source", "sources"),
    registry_pb2.OBJECT_KIND_FEATURE_VIEW: (
        "view",
        "views",
        "feature_view",
        "feature_views",
        "feature-view",
    ),
    registry_pb2.OBJECT_KIND_FEATURE_SERVICE: (
        "service",
        "services",
        "feature_service",
        "feature_services",
        "feature-service",
    ),
}
_KIND_BY_NAME = {name: kind for kind, names in KINDS.items() for name in names}
KIND_NAMES = {kind: names[0] for kind, names in KINDS.items()}

ACTIONS = {
    registry_pb2.PLAN_ACTION_CREATE: "create",
    registry_pb2.PLAN_ACTION_CHANGE: "change",
    registry_pb2.PLAN_ACTION_UNCHANGED: "unchanged",
    registry_pb2.PLAN_ACTION_DELETE: "delete",
}


def object_kind(kind: str) -> int:
    """The `ObjectKind` of `entity`, `sources`, `view`, `feature_service`, ..."""
    try:
        return _KIND_BY_NAME[kind.lower()]
    except (KeyError, AttributeError):
        raise InvalidArgument(
            f"kind: unknown kind {kind!r}; expected one of entity, source, view, service"
        ) from None


def documents(path_or_yaml: PathOrYaml) -> List[registry_pb2.DefinitionDocument]:
    """Definition documents: files and directories (every `.yaml`/`.yml` inside, recursively,
    in name order, like `quiver apply -f`), or YAML text: a string that is not an existing
    path and holds a line break, a `{` first or a `key: value` (`"{project: shop}"`). An empty
    string is refused: it is neither, and must not mean the current directory."""
    if isinstance(path_or_yaml, str):
        if not path_or_yaml.strip():
            raise InvalidArgument("apply: no definitions given (an empty string)")
        if _is_yaml_text(path_or_yaml):
            return [registry_pb2.DefinitionDocument(name="<yaml>", yaml=path_or_yaml)]
    paths = (
        [path_or_yaml]
        if isinstance(path_or_yaml, (str, os.PathLike))
        else list(path_or_yaml)
    )
    files: List[pathlib.Path] = []
    for path in paths:
        _collect(pathlib.Path(path), files)
    if not files:
        raise InvalidArgument(
            f"no .yaml or .yml files under {', '.join(str(p) for p in paths)}"
        )
    return [
        registry_pb2.DefinitionDocument(name=str(f), yaml=f.read_text(encoding="utf-8"))
        for f in files
    ]


def _is_yaml_text(text: str) -> bool:
    """Whether a string given to `apply` is YAML rather than a path (an existing path wins)."""
    if "\n" in text:
        return True
    if os.path.exists(text):
        return False
    stripped = text.strip()
    return stripped.startswith("{") or ": " in stripped or stripped.endswith(":")


def _collect(path: pathlib.Path, files: List[pathlib.Path]) -> None:
    if path.is_file():
        files.append(path)
        return
    if not path.is_dir():
        raise FileNotFoundError(f"cannot read {path}: no such file or directory")
    for entry in sorted(path.iterdir()):
        if entry.is_dir() or entry.suffix in (".yaml", ".yml"):
            _collect(entry, files)


@dataclass(frozen=True)
class PlanItem:
    """What an apply does to one object."""

    #: `entity`, `source`, `view` or `service`.
    kind: str
    name: str
    #: `create`, `change`, `unchanged` or `delete`.
    action: str
    #: The current version (0 if none).
    from_version: int
    #: The version after the apply.
    to_version: int
    #: What changed, e.g. `features[2].window: 1h -> 2h`.
    changes: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """The plan of an apply: one item per object, in kind then name order."""

    project: str
    items: List[PlanItem]
    #: The registry revision the plan was made against.
    base_revision: int
    #: The revision after the apply (the base revision on a dry run or without changes).
    revision: int
    #: True when the plan was written.
    applied: bool

    @property
    def changed(self) -> bool:
        """Whether applying changes anything."""
        return any(item.action != "unchanged" for item in self.items)

    def __str__(self) -> str:
        signs = {"create": "+", "change": "~", "delete": "-", "unchanged": "="}
        lines = [f"Plan for project {self.project!r} at registry revision {self.base_revision}:"]
        for item in self.items:
            if item.action == "change":
                versions = f"v{item.from_version} -> v{item.to_version}"
            elif item.action == "delete":
                versions = f"v{item.from_version} deleted"
            else:
                versions = f"v{item.to_version}"
            lines.append(f"  {signs[item.action]} {item.kind:<8} {item.name:<28} {versions}")
            lines.extend(f"        {change}" for change in item.changes)
        return "\n".join(lines)


def plan(response: registry_pb2.ApplyResponse) -> Plan:
    """The `Plan` of an `ApplyResponse`."""
    return Plan(
        project=response.project,
        items=[
            PlanItem(
                kind=KIND_NAMES.get(item.kind, "?"),
                name=item.name,
                action=ACTIONS.get(item.action, "unchanged"),
                from_version=item.from_version,
                to_version=item.to_version,
                changes=list(item.changes),
            )
            for item in response.plan
        ],
        base_revision=response.base_revision,
        revision=response.revision,
        applied=response.applied,
    )


def object_dict(obj: registry_pb2.RegistryObject) -> Dict[str, Any]:
    """A registry object as a dict: `kind`, `name`, `version`, `revision`, `created_at`,
    `deleted`, `dependencies`, and `spec` (the definition)."""
    meta = obj.meta
    spec_field = obj.WhichOneof("spec")
    return {
        "kind": KIND_NAMES.get(meta.kind, "?"),
        "project": meta.project,
        "name": meta.name,
        "version": meta.version,
        "revision": meta.revision,
        "created_at": _plain(meta.created_at) if meta.HasField("created_at") else None,
        "deleted": meta.deleted,
        "dependencies": [
            {"kind": KIND_NAMES.get(d.kind, "?"), "name": d.name, "version": d.version}
            for d in meta.dependencies
        ],
        "spec": message_dict(getattr(obj, spec_field)) if spec_field else None,
    }


def message_dict(message) -> Dict[str, Any]:
    """Every field of `message` (unset optional fields and messages as None; of a oneof, only
    the member that is set)."""
    out: Dict[str, Any] = {}
    for f in message.DESCRIPTOR.fields:
        oneof = f.containing_oneof
        if oneof is not None and message.WhichOneof(oneof.name) != f.name:
            if not oneof.name.startswith("_"):  # a real oneof: leave its other members out
                continue
            out[f.name] = None  # a proto3 `optional` that is unset
            continue
        value = getattr(message, f.name)
        if _is_repeated(f):
            out[f.name] = [_field_value(f, v) for v in value]
        elif f.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(f.name):
            out[f.name] = None
        else:
            out[f.name] = _field_value(f, value)
    return out


def _is_repeated(f: FieldDescriptor) -> bool:
    repeated = getattr(f, "is_repeated", None)  # protobuf >= 5.28; `label` is gone in 7
    if repeated is not None:
        return bool(repeated)
    return f.label == FieldDescriptor.LABEL_REPEATED


def _field_value(f: FieldDescriptor, value: Any) -> Any:
    if f.type == FieldDescriptor.TYPE_ENUM:
        return _enum_name(f.enum_type, value)
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        return _plain(value)
    return value


def _plain(message) -> Any:
    full_name = message.DESCRIPTOR.full_name
    if full_name == "google.protobuf.Duration":
        return dt.timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)
    if full_name == "google.protobuf.Timestamp":
        return dt.datetime.fromtimestamp(message.seconds, dt.timezone.utc) + dt.timedelta(
            microseconds=message.nanos // 1000
        )
    if full_name == "quiver.types.v1.FeatureRef":
        version = f"@{message.version}" if message.version else ""
        return f"{message.view}{version}:{message.feature}"
    return message_dict(message)


def _enum_name(enum_type, number: int) -> Any:
    """`VALUE_TYPE_FLOAT32_LIST` -> `float32_list`, `AGGREGATION_SUM` -> `sum`."""
    value = enum_type.values_by_number.get(number)
    if value is None:
        return number
    prefix = "".join(
        ("_" + c if c.isupper() and i else c) for i, c in enumerate(enum_type.name)
    ).upper() + "_"
    return value.name.removeprefix(prefix).lower()
