"""Changes that other Manager replicas must hear about at once (their caches).

Each replica keeps caches in memory (known nodes, node identities, enrollment tokens,
policies). A change made through one replica is published here; every other replica
drops or refreshes the entry within moments (PostgreSQL LISTEN/NOTIFY,
:mod:`opsfleet.manager.store.changes_pg`). With one Manager (SQLite) nothing needs to be
told (:class:`LocalChanges`). The periodic refreshes stay as the fallback for a
notification missed while a replica was disconnected from the database.

Contract: ``publish`` never raises (a failure is logged; the fallbacks still apply).
Handlers run one at a time, in arrival order, on the feed's own task, never for the
replica's own changes; a failing handler is logged and the next change is handled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

NODE_DELETED = "node-deleted"  # key: node id
IDENTITY_REVOKED = "identity-revoked"  # key: node id
TOKEN_REVOKED = "token-revoked"  # key: token id
POLICIES_CHANGED = "policies-changed"  # key: policy name

ChangeHandler = Callable[[str], Awaitable[None]]
Publish = Callable[[str, str], Awaitable[None]]


async def publish_nowhere(kind: str, key: str) -> None:
    """The publisher of a service not wired to a feed."""


class Changes(Protocol):
    async def publish(self, kind: str, key: str) -> None: ...

    def subscribe(self, kind: str, handler: ChangeHandler) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LocalChanges:
    """The single Manager of a SQLite database: nobody else to tell."""

    async def publish(self, kind: str, key: str) -> None:
        return None

    def subscribe(self, kind: str, handler: ChangeHandler) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
