"""The one error tree of opsfleet, and the table that maps it to gRPC codes and HTTP statuses.

Domain code raises these; adapters (gRPC servicers, REST routes, the CLI) translate them at
the edge with :data:`ERROR_TABLE`. Foreign exceptions are wrapped where they enter
(``raise Unavailable(...) from exc``).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


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


@dataclass(frozen=True)
class ErrorMapping:
    grpc_code: grpc.StatusCode
    http_status: int


ERROR_TABLE: dict[type[OpsfleetError], ErrorMapping] = {
    InvalidArgument: ErrorMapping(grpc.StatusCode.INVALID_ARGUMENT, 400),
    ConfigError: ErrorMapping(grpc.StatusCode.INVALID_ARGUMENT, 400),
    NotFound: ErrorMapping(grpc.StatusCode.NOT_FOUND, 404),
    Conflict: ErrorMapping(grpc.StatusCode.ALREADY_EXISTS, 409),
    Unauthenticated: ErrorMapping(grpc.StatusCode.UNAUTHENTICATED, 401),
    PermissionDenied: ErrorMapping(grpc.StatusCode.PERMISSION_DENIED, 403),
    Unavailable: ErrorMapping(grpc.StatusCode.UNAVAILABLE, 502),
    DatabaseUnavailable: ErrorMapping(grpc.StatusCode.UNAVAILABLE, 503),
    ResourceExhausted: ErrorMapping(grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    DeadlineExceeded: ErrorMapping(grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    Internal: ErrorMapping(grpc.StatusCode.INTERNAL, 500),
}

_CODE_TO_ERROR: dict[grpc.StatusCode, type[OpsfleetError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Unavailable,
}


def mapping_for(error: OpsfleetError) -> ErrorMapping:
    """The gRPC code and HTTP status for ``error`` (most specific class wins)."""
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[Internal]


def error_for_code(code: grpc.StatusCode, message: str, *, retry_after: float | None = None) -> OpsfleetError:
    """The domain error for a gRPC status code received from a peer."""
    cls = _CODE_TO_ERROR.get(code, Internal)
    return cls(message, retry_after=retry_after)
