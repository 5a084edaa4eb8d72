"""The REST envelope ``{code, message, data, timestamp}`` and the one table from errors to codes.

HTTP statuses come from :data:`opsfleet.common.errors.ERROR_TABLE`; the envelope's ``code``
from :data:`API_CODES` (the most specific class in the error's MRO wins).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsfleet.common.errors import (
    ConfigError,
    Conflict,
    DatabaseUnavailable,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    OpsfleetError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    mapping_for,
)
from opsfleet.manager.services.auth import TokenExpired, TokenInvalid
from opsfleet.manager.services.nodes import NodeNotFound
from opsfleet.manager.services.paging import Page
from opsfleet.manager.services.users import BadCredentials, UserDisabled, UserExists, UserNotFound

log = logging.getLogger(__name__)

OK = 0
BAD_PARAMETERS = 1001
NOT_AUTHENTICATED = 1002
FORBIDDEN = 1003
NOT_FOUND = 1004
CONFLICT = 1005
TOO_MANY_REQUESTS = 1006
INTERNAL = 5001
DATABASE = 5002
UPSTREAM = 5004

API_CODES: dict[type[OpsfleetError], int] = {
    InvalidArgument: BAD_PARAMETERS,
    ConfigError: BAD_PARAMETERS,
    Unauthenticated: NOT_AUTHENTICATED,
    TokenInvalid: 1007,
    TokenExpired: 1008,
    BadCredentials: 1009,
    PermissionDenied: FORBIDDEN,
    UserDisabled: 2008,
    NotFound: NOT_FOUND,
    NodeNotFound: 2001,
    UserNotFound: 2007,
    Conflict: CONFLICT,
    UserExists: 2009,
    ResourceExhausted: TOO_MANY_REQUESTS,
    Unavailable: UPSTREAM,
    DatabaseUnavailable: DATABASE,
    DeadlineExceeded: UPSTREAM,
    Internal: INTERNAL,
}

_HTTP_CODES = {
    401: NOT_AUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: NOT_FOUND,
    409: CONFLICT,
    429: 1006,
}


def rfc3339(ts: float | None = None) -> str:
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "data": data, "timestamp": rfc3339()}


def ok(data: Any = None, message: str = "success") -> dict[str, Any]:
    return body(OK, message, data)


def paged(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    info = {"page": page.page, "page_size": page.page_size, "total": page.total, "pages": page.pages}
    return ok({"list": items, "page_info": info})


def api_code(error: OpsfleetError) -> int:
    for cls in type(error).__mro__:
        if cls in API_CODES:
            return API_CODES[cls]
    return INTERNAL


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def translate(exc: BaseException) -> tuple[int, int, str, Any]:
    """(HTTP status, envelope code, message, data) for any exception raised while serving."""
    if isinstance(exc, RequestValidationError):
        problems = [
            {"field": _field_of(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in exc.errors()
        ]
        first = problems[0] if problems else {"field": "body", "message": "invalid request"}
        return (
            400,
            BAD_PARAMETERS,
            f"{first['field']}: {first['message']}",
            {"field": first["field"], "errors": problems},
        )
    if isinstance(exc, OpsfleetError):
        return mapping_for(exc).http_status, api_code(exc), exc.message, None
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, BAD_PARAMETERS if exc.status_code < 500 else INTERNAL)
        return exc.status_code, code, str(exc.detail), None
    if isinstance(exc, SQLAlchemyError):
        log.error("database error while serving a request: %s", exc)
        return 500, DATABASE, "database error", None
    log.error("unexpected error while serving a request", exc_info=exc)
    return 500, INTERNAL, "internal error", None


def error_response(exc: BaseException) -> JSONResponse:
    status, code, message, data = translate(exc)
    headers = None
    if isinstance(exc, OpsfleetError) and exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    elif isinstance(exc, StarletteHTTPException) and exc.headers:
        headers = dict(exc.headers)
    return JSONResponse(body(code, message, data), status_code=status, headers=headers)


async def handle_error(_request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for errors raised outside audited routes."""
    return error_response(exc)
