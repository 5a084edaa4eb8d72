"""Change notifications between Manager replicas: PostgreSQL LISTEN/NOTIFY.

One dedicated asyncpg connection per replica LISTENs on :data:`CHANNEL` and publishes with
``pg_notify``. A payload is ``{"origin": <replica>, "kind": ..., "key": ...}``; a replica
ignores its own. The connection is re-opened every ``retry_interval`` seconds while it is
down; notifications sent meanwhile are lost (the services' periodic refreshes cover them).

Lifecycle: ``start()`` spawns the listener and the dispatcher; ``stop()`` ends both and
closes the connection (idempotent); no handler runs after ``stop()`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from typing import Any

from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.changes import ChangeHandler
from opsfleet.manager.store.leader_pg import asyncpg_dsn

log = logging.getLogger(__name__)

CHANNEL = "opsfleet_changes"
DEFAULT_RETRY_INTERVAL = 1.0


class PgChanges:
    def __init__(self, url: str, *, retry_interval: float = DEFAULT_RETRY_INTERVAL) -> None:
        self._dsn = asyncpg_dsn(url)
        self._retry = retry_interval
        self.origin = uuid.uuid4().hex
        self._handlers: dict[str, list[ChangeHandler]] = defaultdict(list)
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._conn: Any = None
        self._send_lock = asyncio.Lock()
        self._listening = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("changes")
        self.received = 0

    def subscribe(self, kind: str, handler: ChangeHandler) -> None:
        self._handlers[kind].append(handler)

    async def start(self) -> None:
        self._tasks.spawn("listen", self._listen())
        self._tasks.spawn("dispatch", self._dispatch())
        # Best effort: listening before the replica serves, so no change made meanwhile is missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout=5.0)

    async def stop(self) -> None:
        self._stop.set()
        self._queue.put_nowait(("", ""))  # wakes the dispatcher
        await self._tasks.stop(timeout=2.0)

    async def publish(self, kind: str, key: str) -> None:
        payload = json.dumps({"origin": self.origin, "kind": kind, "key": key})
        try:
            async with self._send_lock:
                if self._conn is None:
                    raise ConnectionError("not connected")
                await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload, timeout=5.0)
        except Exception as exc:
            log.warning("changes: could not tell the other replicas about %s %s: %s", kind, key, exc)

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            origin, kind, key = message["origin"], message["kind"], message["key"]
        except (ValueError, KeyError, TypeError):
            log.warning("changes: ignoring a malformed notification %r", payload[:200])
            return
        if origin != self.origin:
            self.received += 1
            self._queue.put_nowait((str(kind), str(key)))

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # only where PostgreSQL is used

        complained = False
        while not self._stop.is_set():
            try:
                conn = await asyncpg.connect(self._dsn, timeout=max(2.0, self._retry * 2))
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                if not complained:
                    log.warning("changes: cannot connect to PostgreSQL (%s); retrying", exc)
                    complained = True
                await sleep_or_stop(self._stop, self._retry)
                continue
            if complained:
                log.info("changes: listening again (changes made meanwhile were missed)")
            complained = False
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._received)
                self._conn = conn
                self._listening.set()
                await self._until(lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("changes: connection lost (%s)", exc)
            finally:
                async with self._send_lock:
                    self._conn = None
                try:
                    await asyncio.wait_for(conn.close(), timeout=2.0)
                except Exception:
                    conn.terminate()
            await sleep_or_stop(self._stop, self._retry)

    async def _until(self, lost: asyncio.Event) -> None:
        waiters = [asyncio.create_task(self._stop.wait()), asyncio.create_task(lost.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if lost.is_set() and not self._stop.is_set():
            raise ConnectionError("connection terminated")

    async def _dispatch(self) -> None:
        while True:
            kind, key = await self._queue.get()
            if self._stop.is_set():
                return
            for handler in self._handlers.get(kind, ()):
                try:
                    await handler(key)
                except Exception:
                    log.exception("changes: handling %s %s failed", kind, key)
