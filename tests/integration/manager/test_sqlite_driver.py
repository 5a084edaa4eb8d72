"""Statements run on SQLite's driver connection (the metrics write path): inside the
write_tx's transaction, and driver errors raised as SQLAlchemy's errors, which the store
translates like any other (a refused value: INVALID_ARGUMENT; a broken database: UNAVAILABLE)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from opsfleet.manager.store import sqlite_driver
from opsfleet.manager.store.shield import DatabaseRejected, translate_db_error
from opsfleet.manager.store.sql import SqlStore


@pytest.fixture
async def store(tmp_path: Path) -> SqlStore:
    s = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    await s.start()
    yield s  # type: ignore[misc]
    await s.close()


async def _count(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return int(
            (await conn.execute(sa.text("SELECT count(*) FROM settings WHERE key LIKE 'drv%'"))).scalar_one()
        )


async def test_rows_returned_and_committed_with_the_transaction(store: SqlStore) -> None:
    async with store.write_tx(changes_rows=True) as conn:
        rows = await sqlite_driver.fetchall(
            conn,
            "INSERT INTO settings (key, value) VALUES (?, ?), (?, ?) RETURNING key",
            ["drv1", "a", "drv2", "b"],
        )
    assert sorted(rows) == [("drv1",), ("drv2",)]
    assert await _count(store) == 2


async def test_rolled_back_with_the_transaction(store: SqlStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.write_tx(changes_rows=True) as conn:
            await sqlite_driver.fetchall(
                conn, "INSERT INTO settings (key, value) VALUES (?, ?)", ["drv3", "c"]
            )
            raise RuntimeError("abandon")
    assert await _count(store) == 0


async def test_driver_errors_are_sqlalchemy_errors(store: SqlStore) -> None:
    async with store.write_tx() as conn:
        await sqlite_driver.fetchall(conn, "INSERT INTO settings (key, value) VALUES (?, ?)", ["drv4", "d"])
    with pytest.raises(IntegrityError) as refused:
        async with store.write_tx() as conn:
            await sqlite_driver.fetchall(
                conn, "INSERT INTO settings (key, value) VALUES (?, ?)", ["drv4", "e"]
            )
    assert isinstance(translate_db_error(refused.value, "test"), DatabaseRejected)
    with pytest.raises(OperationalError):
        async with store.write_tx() as conn:
            await sqlite_driver.fetchall(conn, "INSERT INTO no_such_table VALUES (?)", [1])
    assert await _count(store) == 1


async def test_a_connection_closed_without_commit_leaves_no_transaction(store: SqlStore) -> None:
    """The SQLite pool does not roll back on return (one hop less per write): a Connection
    closed without a commit must have ended its transaction itself."""
    async with store.engine.connect() as conn:
        await conn.execute(sa.text("INSERT INTO settings (key, value) VALUES ('drv9', 'x')"))
    assert await _count(store) == 0
    async with store.write_tx(changes_rows=True) as conn:  # no write lock left behind
        await sqlite_driver.fetchall(conn, "INSERT INTO settings (key, value) VALUES (?, ?)", ["drv9", "y"])
    assert await _count(store) == 1
