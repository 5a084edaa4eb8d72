"""The FastAPI application of the Manager's REST API.

``create_app(ctx)`` registers the API routers, the operational endpoints and the error
translation; OpenAPI is served at /docs (Swagger UI from local assets) and /openapi.json.
Every response carries the security headers of :mod:`opsfleet.manager.web.headers`. The path
"/" is left free for the dashboard: pass ``static_dir`` (a directory with index.html) and it
is mounted there, after every API route, so API paths always win.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from opsfleet import __version__
from opsfleet.common.errors import OpsfleetError
from opsfleet.manager.web import (
    routes_admin,
    routes_agents,
    routes_alerts,
    routes_artifacts,
    routes_auth,
    routes_enrollment,
    routes_fleet,
    routes_metrics,
    routes_nodes,
    routes_ops,
    routes_policies,
    routes_rollouts,
)
from opsfleet.manager.web.apidocs import mount_docs
from opsfleet.manager.web.context import WebContext
from opsfleet.manager.web.envelope import handle_error
from opsfleet.manager.web.headers import SecurityHeaders

DESCRIPTION = """\
The opsfleet Manager's REST API. Every `/api/v1` answer is an envelope
`{"code", "message", "data", "timestamp"}` (`code` 0 on success). Sign in with
`POST /api/v1/auth/login` and send `Authorization: Bearer <token>`. See docs/rest-api.md.
"""


class _HardenedFastAPI(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's ServerErrorMiddleware, so 500 answers get the headers too.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(ctx: WebContext, *, static_dir: Path | None = None) -> FastAPI:
    """The REST API over ``ctx``'s services; ``static_dir`` (the dashboard) is mounted at "/"."""
    app = _HardenedFastAPI(
        title="opsfleet Manager API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    mount_docs(app, docs_url="/docs", openapi_url="/openapi.json")
    app.state.ctx = ctx
    app.add_exception_handler(RequestValidationError, handle_error)
    app.add_exception_handler(StarletteHTTPException, handle_error)
    app.add_exception_handler(OpsfleetError, handle_error)
    app.add_exception_handler(Exception, handle_error)
    for module in (
        routes_ops,
        routes_auth,
        routes_nodes,
        routes_agents,
        routes_fleet,
        routes_metrics,
        routes_admin,
        routes_artifacts,
        routes_rollouts,
        routes_enrollment,
        routes_alerts,
    ):
        app.include_router(module.router)
    app.include_router(routes_policies.router)
    app.include_router(routes_policies.node_router)
    # The dashboard goes last so that it never shadows an API route.
    if static_dir is not None:
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="dashboard")
    return app
