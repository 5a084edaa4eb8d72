"""The base of store modules that share one started SqlStore (its engine and shielded work)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opsfleet.manager.store.sql import SqlStore


class StoreModule:
    """Base of store modules that share a started SqlStore's engine and shielded-work set."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    @property
    def inflight(self) -> set[asyncio.Future[Any]]:
        """Shielded work is tracked by the SqlStore, which drains it before closing."""
        return self._store.inflight

    @property
    def _engine(self) -> AsyncEngine:
        return self._store.engine
