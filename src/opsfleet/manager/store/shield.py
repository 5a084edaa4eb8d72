"""Keep database work from being cut in half by a cancelled caller.

When a gRPC call is cancelled (client deadline, disconnect), its handler task is cancelled
wherever it awaits. Cancelling SQLAlchemy/aiosqlite mid-transaction can leave a connection
in a state that keeps SQLite's write lock held. ``@shielded`` runs the store method as its
own task: the caller may give up, the transaction still finishes (commit or rollback).
Stores inherit :class:`ShieldedWork` and call ``drain()`` before disposing the engine.
Driver and SQLAlchemy errors leave a shielded method as :class:`DatabaseUnavailable`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from opsfleet.common.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


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
            # Foreign errors enter the error tree here: callers (and daemons) see UNAVAILABLE.
            raise DatabaseUnavailable(
                f"database error: {exc.__class__.__name__}: {exc}", retry_after=2.0
            ) from exc

    return wrapper
