"""A route class that translates every failure into the envelope and writes an audit entry for
every mutating request before answering.

The entry is written after the handler finished (or failed) and before the response goes
out, so a client that saw a response can rely on its entry being stored. Failures are
translated here with the same table as everywhere else. Handlers may refine the entry
through ``request.state.audit_target``, ``audit_detail`` and ``audit_user`` (sign-in).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from opsfleet.manager.web.context import WebContext
from opsfleet.manager.web.envelope import error_response

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _target(request: Request) -> str:
    explicit = getattr(request.state, "audit_target", None)
    if explicit:
        return str(explicit)
    return " ".join(f"{k}={v}" for k, v in request.path_params.items()) or request.url.path


def _username(request: Request) -> str:
    user = getattr(request.state, "user", None)
    if user is not None:
        return str(user.username)
    return str(getattr(request.state, "audit_user", ""))


def _outcome(response: Response) -> tuple[int, str]:
    """The envelope's code and, for failures, its message."""
    try:
        envelope = json.loads(bytes(response.body))
        code = int(envelope["code"])
    except (ValueError, KeyError, TypeError):
        return 0, ""
    return code, str(envelope.get("message", "")) if code else ""


class AuditedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        action = self.name

        async def audited(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                response = error_response(exc)
            if request.method in SAFE_METHODS:
                return response
            code, detail = _outcome(response)
            if not code:
                detail = str(getattr(request.state, "audit_detail", ""))
            ctx: WebContext = request.app.state.ctx
            try:
                await ctx.audit.record(
                    username=_username(request),
                    action=action,
                    target=_target(request),
                    status=response.status_code,
                    code=code,
                    source_ip=request.client.host if request.client else "",
                    detail=detail,
                )
            except Exception:
                log.exception("could not write the audit entry of %s %r", request.method, request.url.path)
            return response

        return audited
