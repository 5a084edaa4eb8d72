"""The REST envelope ``{code, message, data, timestamp}`` and the one table from errors to codes.

HTTP statuses, envelope codes and retry delays come from the one table
:data:`opsfleet.common.errors.ERROR_TABLE`; :data:`API_CODES` refines the code for the
Manager's own error subclasses (the most specific class in the error's MRO wins).
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
    API_BAD_PARAMETERS,
    API_CONFLICT,
    API_DATABASE,
    API_FORBIDDEN,
    API_INTERNAL,
    API_NOT_AUTHENTICATED,
    API_NOT_FOUND,
    API_TOO_MANY_REQUESTS,
    API_UPSTREAM,
    OpsfleetError,
    mapping_for,
    retry_delay,
)
from opsfleet.manager.services.auth import TokenExpired, TokenInvalid
from opsfleet.manager.services.nodes import NodeNotFound
from opsfleet.manager.services.paging import Page
from opsfleet.manager.services.users import BadCredentials, UserDisabled, UserExists, UserNotFound

log = logging.getLogger(__name__)

OK = 0
BAD_PARAMETERS = API_BAD_PARAMETERS
NOT_AUTHENTICATED = API_NOT_AUTHENTICATED
FORBIDDEN = API_FORBIDDEN
NOT_FOUND = API_NOT_FOUND
CONFLICT = API_CONFLICT
TOO_MANY_REQUESTS = API_TOO_MANY_REQUESTS
INTERNAL = API_INTERNAL
DATABASE = API_DATABASE
UPSTREAM = API_UPSTREAM

# Codes of the Manager's own error subclasses; every other error takes the code of the
# common table (opsfleet.common.errors.ERROR_TABLE), as it takes its HTTP status.
API_CODES: dict[type[OpsfleetError], int] = {
    TokenInvalid: 1007,
    TokenExpired: 1008,
    BadCredentials: 1009,
    UserDisabled: 2008,
    NodeNotFound: 2001,
    UserNotFound: 2007,
    UserExists: 2009,
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
    """The envelope code: a Manager-specific refinement, else the common table's code."""
    for cls in type(error).__mro__:
        if cls in API_CODES:
            return API_CODES[cls]
    return mapping_for(error).api_code


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
        log.error("database error while serving a request", exc_info=exc)
        return 500, DATABASE, "database error", None
    log.error("unexpected error while serving a request", exc_info=exc)
    return 500, INTERNAL, "internal error", None


def error_response(exc: BaseException) -> JSONResponse:
    status, code, message, data = translate(exc)
    headers = None
    delay = retry_delay(exc) if isinstance(exc, OpsfleetError) else None
    if delay is not None:
        headers = {"Retry-After": str(max(1, round(delay)))}
    elif isinstance(exc, StarletteHTTPException) and exc.headers:
        headers = dict(exc.headers)
    return JSONResponse(body(code, message, data), status_code=status, headers=headers)


async def handle_error(_request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for errors raised outside audited routes."""
    return error_response(exc)
