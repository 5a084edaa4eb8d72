"""Whether the Manager's database takes writes now: the cheap signal behind ``/ready``.

Every write transaction of the SqlStore reports its outcome here. A failure counts only
when it says the database cannot write (locked, disk full, connection lost, down); a
rejected row (constraint, bad data) says nothing about the database and is ignored.

``/ready`` reads the most recent outcome while it is fresh (no database work per request
under traffic); once it is older, one bounded probe write decides, shared by concurrent
requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from opsfleet.common.errors import DatabaseUnavailable

DEFAULT_FRESH = 2.0
"""Seconds during which the most recent write outcome answers /ready without a probe."""

PROBE_TIMEOUT = 1.0
"""Longest /ready waits for a probe write before answering 503 (the probe goes on)."""


# PostgreSQL SQLSTATE classes that say the server cannot work now: connection exception,
# insufficient resources (disk full), object not in prerequisite state (not accepting
# connections), operator intervention (shutdown, terminated backend), system (I/O) error.
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "55", "57", "58"})


def cannot_write(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot take writes now (not: this row was bad)."""
    if isinstance(exc, DatabaseUnavailable | OSError | TimeoutError | sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = _sqlstate(exc.orig)
    if sqlstate:
        return sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def _sqlstate(orig: BaseException | None) -> str:
    """The SQLSTATE of a PostgreSQL driver error ('' for SQLite and unknown errors)."""
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str) and code:
            return code
    return ""


def describe(exc: BaseException) -> str:
    """A short reason without the SQL statement SQLAlchemy appends to driver errors."""
    if isinstance(exc, sa_exc.DBAPIError):
        return f"{type(exc.orig).__name__}: {exc.orig}"
    if isinstance(exc, DatabaseUnavailable):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class WriteOutcome:
    at: float
    error: str  # empty: the write committed


class WriteHealth:
    """The most recent write outcome. Called from the event loop only."""

    def __init__(self, *, fresh: float = DEFAULT_FRESH, clock: Callable[[], float] = time.monotonic) -> None:
        self._fresh = fresh
        self._clock = clock
        self._last: WriteOutcome | None = None

    def succeeded(self) -> None:
        self._last = WriteOutcome(self._clock(), "")

    def failed(self, exc: BaseException) -> None:
        if cannot_write(exc):
            self._last = WriteOutcome(self._clock(), describe(exc))

    def recent(self) -> WriteOutcome | None:
        """The most recent outcome if it is fresh, else None (a probe should decide)."""
        last = self._last
        if last is None or self._clock() - last.at > self._fresh:
            return None
        return last


class ReadyProbe:
    """``check()``: return when writes work, else raise DatabaseUnavailable, within PROBE_TIMEOUT.

    At most one probe write runs at a time; a request that times out leaves it running
    (bounded by the store's lock timeout) for the next request to reuse.
    """

    def __init__(self, health: WriteHealth, probe: Callable[[], Awaitable[None]]) -> None:
        self._health = health
        self._probe = probe
        self._running: asyncio.Future[None] | None = None

    async def check(self, timeout: float = PROBE_TIMEOUT) -> None:
        recent = self._health.recent()
        if recent is not None:
            if recent.error:
                raise DatabaseUnavailable(f"database writes fail: {recent.error}")
            return
        running = self._running
        if running is None or running.done():
            running = self._running = asyncio.ensure_future(self._probe())
            running.add_done_callback(_retrieve)
        try:
            await asyncio.wait_for(asyncio.shield(running), timeout)
        except TimeoutError as exc:
            raise DatabaseUnavailable(f"a probe write did not finish within {timeout:g}s") from exc
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            raise DatabaseUnavailable(f"a probe write failed: {describe(exc)}") from exc


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # the outcome went to WriteHealth; nothing to log twice
