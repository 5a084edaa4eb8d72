"""/docs: Swagger UI from assets shipped in the package (nothing is loaded from another host).

The page loads ``swagger-ui-bundle.js`` and a start-up script from ``/docs/assets/``, so it
runs under the same Content-Security-Policy as everything else (no inline script). ReDoc is
not served.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "apidocs"
ASSETS_PATH = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""


def mount_docs(app: FastAPI, *, docs_url: str = "/docs", openapi_url: str = "/openapi.json") -> None:
    """Serve Swagger UI at ``docs_url`` (create the app with ``docs_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        page = _PAGE.format(
            title=html.escape(f"{app.title} - Swagger UI"),
            assets=html.escape(root + ASSETS_PATH),
            openapi=html.escape(root + openapi_url),
        )
        return HTMLResponse(page)
