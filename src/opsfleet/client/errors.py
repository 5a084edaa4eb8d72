"""Errors of the command-line client, and the translation of REST error answers into the error tree.

The REST API maps the error tree to HTTP statuses with :data:`opsfleet.common.errors.ERROR_TABLE`;
:func:`error_for_status` inverts that table, so a 404 from the Manager becomes a NotFound here.
"""

from __future__ import annotations

from opsfleet.common.errors import (
    ERROR_TABLE,
    ConfigError,
    Internal,
    InvalidArgument,
    OpsfleetError,
    Unauthenticated,
)


class UsageError(InvalidArgument):
    """The command line itself is wrong (a flag value the client can check before any request)."""


class NotLoggedIn(Unauthenticated):
    """No token for the server: neither ``--token``, ``OPSFLEET_TOKEN`` nor a stored login."""


class OperationFailed(OpsfleetError):
    """The Manager accepted an agent operation but the daemon reported that it failed."""


def _status_table() -> dict[int, type[OpsfleetError]]:
    table: dict[int, type[OpsfleetError]] = {}
    for cls, mapping in ERROR_TABLE.items():
        if cls is ConfigError:  # shares 400 with InvalidArgument; a server never sends config errors
            continue
        table.setdefault(mapping.http_status, cls)
    return table


_BY_STATUS = _status_table()


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> OpsfleetError:
    """The error for an HTTP error status (unknown 4xx: InvalidArgument, unknown 5xx: Internal)."""
    cls = _BY_STATUS.get(status) or (InvalidArgument if status < 500 else Internal)
    return cls(message, retry_after=retry_after)
