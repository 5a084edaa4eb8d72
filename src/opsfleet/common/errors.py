"""The one error tree of opsfleet, and the one table that maps it to the wire.

Domain code raises these; adapters (gRPC servicers of both processes, REST routes, the
CLI) translate them at the edge with :data:`ERROR_TABLE`: a gRPC status code (named by
:class:`GrpcCode`, so this module needs no grpc import) with a retry delay, and an HTTP
status with the REST envelope's code. The grpc-aware half lives in
:mod:`opsfleet.common.rpc_errors`. Foreign exceptions are wrapped where they enter
(``raise Unavailable(...) from exc``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class OpsfleetError(Exception):
    """Root of every error opsfleet raises on purpose."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidArgument(OpsfleetError):
    """The caller sent something malformed; retrying the same request cannot succeed."""


class NotFound(OpsfleetError):
    """A node, agent, user or other entity does not exist."""


class Conflict(OpsfleetError):
    """The request conflicts with the current state (already exists, ...)."""


class FailedPrecondition(Conflict):
    """The target is in a state that does not allow the request now (e.g. an update already runs)."""


class Unauthenticated(OpsfleetError):
    """The caller did not prove who it is."""


class PermissionDenied(OpsfleetError):
    """The caller is known but not allowed to do this."""


class Unavailable(OpsfleetError):
    """A dependency (database, peer, the server itself while stopping) cannot be reached now."""


class DatabaseUnavailable(Unavailable):
    """The Manager's own database failed or timed out."""


class ResourceExhausted(OpsfleetError):
    """Load is being shed; try again after ``retry_after`` seconds."""


class DeadlineExceeded(OpsfleetError):
    """The operation did not finish in time."""


class ConfigError(OpsfleetError):
    """A configuration value is missing or invalid; the message names the key."""


class Internal(OpsfleetError):
    """A bug or an unexpected failure."""


class GrpcCode(enum.StrEnum):
    """gRPC status codes by name (the names of ``grpc.StatusCode``)."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    DATA_LOSS = "DATA_LOSS"
    UNAUTHENTICATED = "UNAUTHENTICATED"


# REST envelope codes of the generic errors (services may refine them, see the REST layer).
API_BAD_PARAMETERS = 1001
API_NOT_AUTHENTICATED = 1002
API_FORBIDDEN = 1003
API_NOT_FOUND = 1004
API_CONFLICT = 1005
API_TOO_MANY_REQUESTS = 1006
API_INTERNAL = 5001
API_DATABASE = 5002
API_UPSTREAM = 5004


@dataclass(frozen=True)
class ErrorMapping:
    """How one error class goes on the wire.

    ``retry_after`` is the default retry delay (seconds) sent when the error carries none:
    gRPC trailing metadata ``grpc-retry-pushback-ms``, HTTP ``Retry-After``. None: no hint.
    """

    grpc_code: GrpcCode
    http_status: int
    api_code: int
    retry_after: float | None = None


ERROR_TABLE: dict[type[OpsfleetError], ErrorMapping] = {
    InvalidArgument: ErrorMapping(GrpcCode.INVALID_ARGUMENT, 400, API_BAD_PARAMETERS),
    ConfigError: ErrorMapping(GrpcCode.INVALID_ARGUMENT, 400, API_BAD_PARAMETERS),
    NotFound: ErrorMapping(GrpcCode.NOT_FOUND, 404, API_NOT_FOUND),
    Conflict: ErrorMapping(GrpcCode.ALREADY_EXISTS, 409, API_CONFLICT),
    FailedPrecondition: ErrorMapping(GrpcCode.FAILED_PRECONDITION, 409, API_CONFLICT),
    Unauthenticated: ErrorMapping(GrpcCode.UNAUTHENTICATED, 401, API_NOT_AUTHENTICATED),
    PermissionDenied: ErrorMapping(GrpcCode.PERMISSION_DENIED, 403, API_FORBIDDEN),
    Unavailable: ErrorMapping(GrpcCode.UNAVAILABLE, 502, API_UPSTREAM),
    DatabaseUnavailable: ErrorMapping(GrpcCode.UNAVAILABLE, 503, API_DATABASE, retry_after=2.0),
    ResourceExhausted: ErrorMapping(GrpcCode.RESOURCE_EXHAUSTED, 429, API_TOO_MANY_REQUESTS, retry_after=1.0),
    DeadlineExceeded: ErrorMapping(GrpcCode.DEADLINE_EXCEEDED, 504, API_UPSTREAM),
    Internal: ErrorMapping(GrpcCode.INTERNAL, 500, API_INTERNAL),
}

# Codes received from a peer -> the error raised locally (codes without an entry: Internal).
CODE_TO_ERROR: dict[GrpcCode, type[OpsfleetError]] = {
    GrpcCode.INVALID_ARGUMENT: InvalidArgument,
    GrpcCode.OUT_OF_RANGE: InvalidArgument,
    GrpcCode.FAILED_PRECONDITION: FailedPrecondition,
    GrpcCode.NOT_FOUND: NotFound,
    GrpcCode.ALREADY_EXISTS: Conflict,
    GrpcCode.UNAUTHENTICATED: Unauthenticated,
    GrpcCode.PERMISSION_DENIED: PermissionDenied,
    GrpcCode.UNAVAILABLE: Unavailable,
    GrpcCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    GrpcCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    GrpcCode.CANCELLED: Unavailable,
}


def mapping_for(error: OpsfleetError) -> ErrorMapping:
    """The wire mapping of ``error`` (most specific class in its MRO wins; unknown: Internal)."""
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[Internal]


def retry_delay(error: OpsfleetError) -> float | None:
    """The retry delay to announce for ``error``: its own, else the table's default."""
    return error.retry_after if error.retry_after is not None else mapping_for(error).retry_after


def error_for_code(code: GrpcCode | str, message: str, *, retry_after: float | None = None) -> OpsfleetError:
    """The domain error for a gRPC status code (by name) received from a peer."""
    try:
        key = GrpcCode(code)
    except ValueError:
        key = GrpcCode.UNKNOWN
    cls = CODE_TO_ERROR.get(key, Internal)
    return cls(message, retry_after=retry_after)
