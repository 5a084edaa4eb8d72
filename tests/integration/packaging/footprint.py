"""What a node's daemon must not load: the Manager's, the client's and the simulator's code and libraries."""

from __future__ import annotations

import re
from collections.abc import Iterable

FORBIDDEN_PACKAGES = (
    "opsfleet.manager",
    "opsfleet.client",
    "opsfleet.simulator",
    "opsfleet.demo",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "asyncpg",
    "aiosqlite",
    "jwt",
    "prometheus_client",
    "rich",
    "httpx",
    "httpcore",
    "pydantic",
    "pydantic_core",
)
"""httpx is imported only by a daemon with an HTTP health probe or a package URL to download.
pydantic is the Manager's: the daemon's config is checked by ``opsfleet.common.schema``."""

MANAGER_LIBRARIES = ("fastapi", "pydantic", "sqlalchemy", "uvicorn", "alembic", "asyncpg", "aiosqlite")
"""Distributions a daemon-only install must not have (import names)."""

IMPORT_TIME_RE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")


def forbidden(modules: Iterable[str]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in FORBIDDEN_PACKAGES))


def imported_modules(importtime_output: Iterable[str]) -> set[str]:
    """Module names of ``python -X importtime`` lines."""
    return {m.group(1) for line in importtime_output if (m := IMPORT_TIME_RE.match(line))}
