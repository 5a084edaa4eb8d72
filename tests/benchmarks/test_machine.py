"""Benchmark results record the database versions besides the Python libraries'."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benchmarks.run import _machine
from tests.conftest import POSTGRES_ADMIN_URL


def test_results_record_the_sqlite_library_version(tmp_path: Path) -> None:
    machine = _machine([0.0, 0.0, 0.0], tmp_path, None)
    libraries = machine["libraries"]
    assert isinstance(libraries, dict)
    assert libraries["sqlite"] == sqlite3.sqlite_version
    assert "grpcio" in libraries
    assert "postgresql_server" not in libraries


def test_results_record_the_postgresql_server_version(tmp_path: Path) -> None:
    # Only the server's version is read (from its admin database); nothing is created.
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/opsfleet_bench"
    machine = _machine([0.0, 0.0, 0.0], tmp_path, url)
    libraries = machine["libraries"]
    assert isinstance(libraries, dict)
    version = libraries["postgresql_server"]
    if version == "unreachable":
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    assert version[:1].isdigit(), version
