"""The audit log of mutating REST requests: who did what to which target, how it ended, from where."""

from __future__ import annotations

import time
from collections.abc import Callable

from opsfleet.common.validation import printable
from opsfleet.manager.domain import AuditEntry
from opsfleet.manager.services.paging import Page, page_window
from opsfleet.manager.store.base import AuditStore


class AuditService:
    def __init__(self, store: AuditStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        *,
        username: str,
        action: str,
        target: str,
        status: int,
        code: int,
        source_ip: str,
        detail: str = "",
    ) -> AuditEntry:
        """Append one entry (result ``success`` for 2xx/3xx statuses, else ``failure``).

        Texts taken from the request are stored with control characters escaped and cut to
        their column sizes, so no request can make its own audit entry fail."""
        entry = AuditEntry(
            id=0,
            at=self._clock(),
            username=printable(username, 64),
            action=printable(action, 64),
            target=printable(target, 255),
            result="success" if status < 400 else "failure",
            status=status,
            code=code,
            source_ip=printable(source_ip, 64),
            detail=printable(detail, 1024),
        )
        entry_id = await self._store.add_audit(entry)
        return AuditEntry(**{**entry.__dict__, "id": entry_id})

    async def list(
        self, page: int, page_size: int, *, username: str = "", action: str = ""
    ) -> Page[AuditEntry]:
        offset, limit = page_window(page, page_size)
        entries, total = await self._store.list_audit(offset, limit, username=username, action=action)
        return Page(entries, page, page_size, total)
