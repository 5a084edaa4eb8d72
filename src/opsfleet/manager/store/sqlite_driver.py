"""One statement, one hop to SQLite's connection thread (the metrics write path).

On SQLite every statement runs on the aiosqlite connection's own thread. Through
SQLAlchemy's adapter a statement costs four round trips to that thread (open a cursor,
execute, fetch, close), each a future that the thread resolves and the event loop wakes up
for; aiosqlite's ``execute_fetchall`` does all four in one. The metrics writer commits a
few times a second per busy Manager, with two statements each, so the hops are a visible
share of its CPU.

:func:`fetchall` runs on the driver connection of an open SQLAlchemy connection: the same
connection, so the statement belongs to the transaction of the ``write_tx`` it runs in.
Driver errors leave as SQLAlchemy's ``DBAPIError`` family (``IntegrityError``,
``OperationalError``, ...), exactly as ``exec_driver_sql`` raises them, so the store's error
translation (shield.py) and write health (writes.py) see no difference.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection


async def fetchall(conn: AsyncConnection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one statement run on ``conn``'s aiosqlite connection (SQLite only)."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        rows = await driver.execute_fetchall(sql, params)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
    return list(rows)


def marks(rows: int, columns: int) -> str:
    """The VALUES of a multi-row statement: ``(?, ?, ...)`` of ``columns``, ``rows`` times."""
    one = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([one] * rows)
