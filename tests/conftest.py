"""Fixtures shared by every test: database backends, a running Manager, TLS material."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

POSTGRES_ADMIN_URL = os.environ.get(
    "OPSFLEET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _postgres_base() -> str:
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return base


def pytest_sessionstart(session: pytest.Session) -> None:
    """Screenshots of an earlier run are removed once, by the controlling process (with
    pytest-xdist its workers share the folder and keep each other's pictures)."""
    if hasattr(session.config, "workerinput"):
        return
    for old in (Path(__file__).resolve().parents[1] / "test-artifacts" / "browser").glob("*.png"):
        old.unlink()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each backend (a scratch PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opsfleet.db'}"
        return
    name = f"opsfleet_t_{uuid.uuid4().hex[:12]}"
    try:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    except OSError as exc:
        if "OPSFLEET_TEST_POSTGRES_URL" in os.environ:
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    try:
        yield f"{_postgres_base()}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """CA, server (127.0.0.1/localhost) and client certificates as files."""
    d = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("node-1.clients.opsfleet")
    files = {
        "ca": d / "ca.pem",
        "server_cert": d / "server.pem",
        "server_key": d / "server.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    with files["server_cert"].open("wb") as fh:
        for blob in server.cert_chain_pems:
            fh.write(blob.bytes())
    client.private_key_pem.write_to_path(str(files["client_key"]))
    with files["client_cert"].open("wb") as fh:
        for blob in client.cert_chain_pems:
            fh.write(blob.bytes())
    return {k: str(v) for k, v in files.items()}


@pytest.fixture
def manager_config(tmp_path: Path) -> Callable[..., Any]:
    """Build a ManagerConfig for tests: gRPC on 127.0.0.1:0, overrides as dotted keys.

    Plaintext gRPC (``grpc.tls.mode: off``) unless a test asks for another mode: most tests
    are about something else; tests/integration/security runs the fleet CA's mTLS."""
    from opsfleet.manager.config import load_manager_config

    def build(database_url: str | None = None, **overrides: Any) -> Any:
        base: dict[str, Any] = {
            "grpc.host": "127.0.0.1",
            "grpc.port": 0,
            "server.host": "127.0.0.1",
            "server.port": 0,
            "data_dir": str(tmp_path / "data"),
            "grpc.shutdown_grace": 1.0,
            "enrollment.port": 0,
        }
        if database_url:
            base["database.url"] = database_url
        dotted = {k.replace("__", "."): v for k, v in overrides.items()}
        if not any(k.startswith("grpc.tls.") for k in dotted):
            base["grpc.tls.mode"] = "off"
        base.update(dotted)
        return load_manager_config(None, {}, base)

    return build


@pytest.fixture
def env_clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("OPSFLEET_") and key != "OPSFLEET_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    yield
