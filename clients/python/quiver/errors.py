"""Errors: every failed call raises a `QuiverError` carrying the server's message.

The class says what went wrong in a way a caller can act on (`except quiver.Unavailable:` retry
elsewhere; `except quiver.InvalidArgument:` fix the request), `str(error)` is the server's
message (e.g. `rows[17].amount: expected float64, got string`) and `error.code` the gRPC code.
"""

from __future__ import annotations

import re
from typing import Optional

import grpc


class QuiverError(Exception):
    """A call to Quiver failed. `str(error)` is the server's message."""

    #: The gRPC status code's name, e.g. `"INVALID_ARGUMENT"`.
    code: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        leader: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        #: For `Unavailable` from a follower: the leader's address (`quiver-leader` metadata).
        self.leader = leader
        #: For `ResourceExhausted`: how long the server asked the caller to wait, in seconds.
        self.retry_after = retry_after

    def __reduce__(self):  # keep the keyword arguments when pickled (multiprocessing)
        return (
            _rebuild,
            (type(self), self.message, self.code, self.leader, self.retry_after),
        )


def _rebuild(cls, message, code, leader, retry_after):
    return cls(message, code=code, leader=leader, retry_after=retry_after)


class InvalidArgument(QuiverError, ValueError):
    """The request is wrong (a bad row, an unknown feature, a wrong key type); the message
    names the culprit. Retrying the same request fails the same way."""

    code = "INVALID_ARGUMENT"


class NotFound(QuiverError, LookupError):
    """The named object does not exist (e.g. `describe` of an unknown view)."""

    code = "NOT_FOUND"


class Unavailable(QuiverError, ConnectionError):
    """The service cannot answer now (not reachable, not the leader, no quorum, still
    starting); the same request may succeed later or elsewhere (`error.leader`)."""

    code = "UNAVAILABLE"


class PermissionDenied(QuiverError, PermissionError):
    """The caller may not do this."""

    code = "PERMISSION_DENIED"


class Unauthenticated(QuiverError, PermissionError):
    """The caller's credentials (the token) are missing or wrong."""

    code = "UNAUTHENTICATED"


class Conflict(QuiverError):
    """A concurrent change won: an apply planned against an older registry revision (ABORTED),
    or a producer fenced by a newer incarnation of itself (FAILED_PRECONDITION)."""

    code = "ABORTED"


class ResourceExhausted(QuiverError):
    """The service is saturated; `error.retry_after` says how long to wait."""

    code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(QuiverError, TimeoutError):
    """The call did not finish within its timeout."""

    code = "DEADLINE_EXCEEDED"


class Internal(QuiverError):
    """A bug or corrupt data on the server (INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED)."""

    code = "INTERNAL"


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNKNOWN: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
    grpc.StatusCode.UNIMPLEMENTED: Internal,
}


def _metadata(error: grpc.RpcError, key: str) -> Optional[str]:
    trailing = getattr(error, "trailing_metadata", None)
    try:
        pairs = trailing() if callable(trailing) else None
    except Exception:  # an error raised before the call started has no metadata
        pairs = None
    for k, v in pairs or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


def from_grpc(error: grpc.RpcError, what: str = "") -> QuiverError:
    """The `QuiverError` for a failed gRPC call. `what` names the service for connection
    failures, whose gRPC text alone ("failed to connect to all addresses") does not say which
    address to check."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else None
    message = details or str(error)
    cls = _BY_CODE.get(code, QuiverError)
    if cls is Unavailable and what and "connect" in message.lower():
        message = f"cannot reach {what}: {message}"
    retry_after = _metadata(error, "retry-after-ms")
    return cls(
        message,
        code=code.name if code is not None else None,
        leader=_metadata(error, "quiver-leader"),
        retry_after=int(retry_after) / 1000 if retry_after and retry_after.isdigit() else None,
    )


# pyarrow.flight phrases a server status as "Flight returned <kind> error, with message: <m>"
# followed by client-side context; the caller wants <m>.
_FLIGHT_MESSAGE = re.compile(
    r"with message: (?P<m>.*?)(?:\. gRPC client debug context:|\. Client context:|$)", re.S
)


def from_flight(error: Exception, what: str = "the offline service") -> QuiverError:
    """The `QuiverError` for a failed Arrow Flight call (pyarrow raises its own classes)."""
    import pyarrow as pa
    import pyarrow.flight as flight

    text = str(error)
    found = _FLIGHT_MESSAGE.search(text)
    message = found.group("m").strip() if found else text
    if isinstance(error, flight.FlightUnavailableError):
        if "connect" in message.lower() and what:
            message = f"cannot reach {what}: {message}"
        return Unavailable(message)
    if isinstance(error, flight.FlightUnauthenticatedError):
        return Unauthenticated(message)
    if isinstance(error, flight.FlightUnauthorizedError):
        return PermissionDenied(message)
    if isinstance(error, flight.FlightTimedOutError):
        return DeadlineExceeded(message)
    if isinstance(error, flight.FlightCancelledError):
        return QuiverError(message, code="CANCELLED")
    if isinstance(error, pa.ArrowInvalid):
        return InvalidArgument(message)
    if isinstance(error, pa.ArrowKeyError):
        return NotFound(message)
    if isinstance(error, pa.ArrowNotImplementedError):
        return Internal(message, code="UNIMPLEMENTED")
    return Internal(message)
