"""Keep database work from being cut in half by a cancelled caller.

When a gRPC call is cancelled (client deadline, disconnect), its handler task is cancelled
wherever it awaits. Cancelling SQLAlchemy/aiosqlite mid-transaction can leave a connection
in a state that keeps SQLite's write lock held. ``@shielded`` runs the store method as its
own task: the caller may give up, the transaction still finishes (commit or rollback).
Stores inherit :class:`ShieldedWork` and call ``drain()`` before disposing the engine.
Driver and SQLAlchemy errors leave a shielded method translated: a value the database
rejects (``DataError``, ``IntegrityError``: NUL in text, a string over its column size, ...)
as :class:`DatabaseRejected` (INVALID_ARGUMENT), anything else (connection lost, lock
timeout, ...) as :class:`DatabaseUnavailable` (UNAVAILABLE with a retry delay). Neither
carries the statement or its parameters: the driver's message is logged here instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from opsfleet.common.errors import DatabaseUnavailable, InvalidArgument

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class DatabaseRejected(InvalidArgument):
    """The database refused a value of the request; sending it again cannot succeed."""


def translate_db_error(exc: SQLAlchemyError | OSError, where: str) -> InvalidArgument | DatabaseUnavailable:
    """The error-tree error for a driver/SQLAlchemy failure in ``where``, without SQL text."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    kind = type(orig).__name__
    # str(DBAPIError) carries "[SQL: ...]" and the parameters; the driver's own message does not.
    detail = str(orig).splitlines()[0][:300] if str(orig) else kind
    log.warning("database error in %s: %s: %r", where, kind, detail)
    if _is_data_error(exc):
        return DatabaseRejected(f"the database rejected a value of this request ({kind})")
    return DatabaseUnavailable(f"database error ({kind})", retry_after=2.0)


def _is_data_error(exc: BaseException) -> bool:
    """A value was refused (SQLSTATE class 22 data exception, 23 integrity violation, or the
    driver could not encode a parameter), as opposed to the database being unreachable."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    seen: BaseException | None = exc
    for _ in range(8):  # the chain: SQLAlchemy error -> adapter error -> driver error
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str) and state[:2] in ("22", "23"):
            return True
        if isinstance(seen, ValueError):  # e.g. asyncpg's client-side DataError (a ValueError)
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


class HasInflight(Protocol):
    @property
    def inflight(self) -> set[asyncio.Future[Any]]: ...


S = TypeVar("S", bound=HasInflight)


class ShieldedWork:
    """Owns the set of shielded tasks; store modules sharing an engine share its set."""

    def __init__(self) -> None:
        self._inflight: set[asyncio.Future[Any]] = set()

    @property
    def inflight(self) -> set[asyncio.Future[Any]]:
        return self._inflight

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for shielded work that outlived its callers."""
        pending = [t for t in self._inflight if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome so work whose caller gave up does not log "never retrieved"."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("database work finished after its caller left: %s", task.exception())


def shielded(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        task = asyncio.ensure_future(method(store, *args, **kwargs))
        inflight = store.inflight
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        task.add_done_callback(_consume)
        try:
            return await asyncio.shield(task)
        except (SQLAlchemyError, OSError) as exc:
            # Foreign errors enter the error tree here (see the module doc).
            raise translate_db_error(exc, method.__name__) from exc

    return wrapper
