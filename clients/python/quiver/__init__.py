"""Quiver's Python client: read features, push events, build training sets, manage
definitions, without generating stubs.

    import quiver
    client = quiver.Client()                      # `quiver dev` ports, or QUIVER_* variables
    table = client.get_features(service="fraud_model_v1", entities={"user_id": [1, 2]})
    client.push("transactions", dataframe)
    client.load("transactions", history)          # events of any age, exactly once
    training = client.snapshot(labels, service="fraud_model_v1")

See docs/python.md.
"""

from quiver.aio import AsyncClient
from quiver.client import Client
from quiver.errors import (
    Conflict,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuiverError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from quiver.load import LoadResult
from quiver.push import PushResult
from quiver.registry import Plan, PlanItem
from quiver.snapshot import Balanced, InverseFrequency

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Balanced",
    "Client",
    "Conflict",
    "DeadlineExceeded",
    "Internal",
    "InvalidArgument",
    "InverseFrequency",
    "LoadResult",
    "NotFound",
    "PermissionDenied",
    "Plan",
    "PlanItem",
    "PushResult",
    "QuiverError",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]
