"""Leader election on PostgreSQL: ``pg_try_advisory_lock`` held on a dedicated connection.

Every replica runs one loop. A follower tries the lock every ``retry_interval`` seconds.
The leader checks its connection every ``check_interval`` seconds (``SELECT 1`` with a
deadline) and listens for the connection's termination; when the connection is lost it
gives up leadership at once (its singleton work stops) before anything else. PostgreSQL
releases the lock when the leader's session ends, so when a leader process dies
(kill -9, crash, host loss) another replica is elected within about ``retry_interval``
after the server notices (at once for a closed socket). A leader that hangs (a stopped
process, a frozen VM) keeps its socket open, so its session sets ``idle_session_timeout``
(PostgreSQL 14 and later): the server ends the session after :data:`SESSION_IDLE_TIMEOUT`
seconds without a statement and another replica is elected; the old leader, when it runs
again, finds its connection gone and steps down. Until its loop has noticed, the leadership
is also a lease: ``is_leader`` is False once the lock was last confirmed more than
:data:`LEASE` seconds ago (the monotonic clock keeps running while a process is stopped),
so the singleton loops asking it skip their work at once. On ``stop()``
the leader unlocks and closes its connection, so a graceful shutdown hands over within
``retry_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.leadership import LeaderListener, ListenerSet

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = int.from_bytes(b"opsflead", "big")  # one advisory lock per database
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_CHECK_INTERVAL = 1.0
SESSION_IDLE_TIMEOUT = 10.0  # seconds; the leader runs a statement every check_interval
LEASE = SESSION_IDLE_TIMEOUT / 2  # a confirmation older than this: not the leader any more


def asyncpg_dsn(url: str) -> str:
    """A libpq-style URL for asyncpg from the SQLAlchemy URL (``postgresql+asyncpg://``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class PgAdvisoryLeader:
    kind = "advisory-lock"

    def __init__(
        self,
        url: str,
        *,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        key: int = LEADER_LOCK_KEY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._clock = clock
        self._confirmed_at = -math.inf
        self._retry = retry_interval
        self._check = check_interval
        self._key = key
        self._leader = False
        self._listeners = ListenerSet()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("leadership")
        self.elections = 0

    @property
    def is_leader(self) -> bool:
        return self._leader and self._clock() - self._confirmed_at < LEASE

    def add_listener(self, listener: LeaderListener) -> None:
        self._listeners.add(listener)

    async def start(self) -> None:
        log.info("leadership: advisory lock %d on PostgreSQL, replica %s", self._key, replica_name())
        self._tasks.spawn("election", self._run())

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop()
        self._set(False, "stopping")

    def _set(self, leader: bool, why: str) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        if leader:
            self.elections += 1
            log.info("leadership: this replica (%s) is now the leader", replica_name())
        else:
            log.warning("leadership: this replica (%s) is no longer the leader (%s)", replica_name(), why)
        self._listeners.notify(leader)

    async def _run(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # only where PostgreSQL is used

        complained = False
        while not self._stop.is_set():
            try:
                conn: Any = await asyncpg.connect(self._dsn, timeout=max(2.0, self._retry * 2))
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                if not complained:
                    log.warning("leadership: cannot connect to PostgreSQL (%s); retrying", exc)
                    complained = True
                await sleep_or_stop(self._stop, self._retry)
                continue
            complained = False
            try:
                await self._hold(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._set(False, f"connection lost: {type(exc).__name__}: {exc}")
            finally:
                await self._close(conn)
                self._set(False, "stopping" if self._stop.is_set() else "connection closed")
            await sleep_or_stop(self._stop, self._retry)

    async def _hold(self, conn: Any) -> None:
        """Campaign for (and keep) the lock on ``conn`` until it fails or the loop stops."""
        import asyncpg

        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        deadline = max(1.0, self._check * 2)
        idle_ms = round(max(SESSION_IDLE_TIMEOUT, self._check * 5, self._retry * 5) * 1000)
        try:
            await conn.execute(f"SET idle_session_timeout = {idle_ms}", timeout=deadline)
        except asyncpg.UndefinedObjectError:  # before PostgreSQL 14: a hung leader holds the lock longer
            log.warning("leadership: idle_session_timeout not supported by this PostgreSQL")
        while not self._stop.is_set():
            if lost.is_set():
                raise ConnectionError("connection terminated")
            if self._leader:
                await conn.fetchval("SELECT 1", timeout=deadline)
                self._confirmed_at = self._clock()
            elif await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=deadline):
                self._confirmed_at = self._clock()
                self._set(True, "elected")
            await self._wait(lost, self._check if self._leader else self._retry)
        if self._leader:
            with contextlib.suppress(Exception):
                await conn.fetchval("SELECT pg_advisory_unlock($1)", self._key, timeout=deadline)

    async def _wait(self, lost: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.create_task(self._stop.wait()), asyncio.create_task(lost.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    @staticmethod
    async def _close(conn: Any) -> None:
        try:
            await asyncio.wait_for(conn.close(), timeout=2.0)
        except Exception:
            conn.terminate()
