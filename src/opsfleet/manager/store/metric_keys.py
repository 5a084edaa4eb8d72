"""The small integer keys of nodes, metric types and value-key tuples, cached in memory.

Keys are created on first use (a node's first sample, a new metric type, a new tuple of
value keys) in their own committed transaction, so a rolled-back sample batch never leaves
a cached key that the database does not hold. Keys are never reused or deleted: another
Manager replica sharing the database creates the same rows (``ON CONFLICT DO NOTHING``) and
reads them back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from opsfleet.manager.store.metric_codec import Keys
from opsfleet.manager.store.schema import metric_keysets, metric_types, node_keys

MAX_KEYSETS = 4096
"""Distinct value-key tuples given a keyset id; beyond, samples carry their key names inline."""


def keyset_digest(keys: Keys) -> str:
    return hashlib.sha256(json.dumps(list(keys)).encode()).hexdigest()


class MetricKeys:
    """In-memory maps of the key tables. Mutated only between awaits of one caller at a time
    (the metrics writer creates keys; readers only load)."""

    def __init__(self) -> None:
        self.nodes: dict[str, int] = {}
        self.types: dict[str, int] = {}
        self.type_names: dict[int, str] = {}
        self.keysets: dict[Keys, int] = {}
        self.keys_of: dict[int, Keys] = {}

    def missing(
        self, node_ids: Iterable[str], types: Iterable[str], keysets: Iterable[Keys]
    ) -> tuple[list[str], list[str], list[Keys]]:
        nodes = [n for n in dict.fromkeys(node_ids) if n not in self.nodes]
        names = [t for t in dict.fromkeys(types) if t not in self.types]
        room = MAX_KEYSETS - len(self.keysets)
        tuples = [k for k in dict.fromkeys(keysets) if k not in self.keysets][: max(0, room)]
        return nodes, names, tuples

    async def create(
        self, conn: AsyncConnection, insert: Any, nodes: list[str], names: list[str], tuples: list[Keys]
    ) -> None:
        """Insert the missing keys (others' rows win) and load them; ``insert`` is the dialect's."""
        if nodes:
            await conn.execute(insert(node_keys).on_conflict_do_nothing(), [{"node_id": n} for n in nodes])
        if names:
            await conn.execute(insert(metric_types).on_conflict_do_nothing(), [{"name": t} for t in names])
        if tuples:
            rows = [{"digest": keyset_digest(k), "keys": json.dumps(list(k))} for k in tuples]
            await conn.execute(insert(metric_keysets).on_conflict_do_nothing(), rows)
        await self.load(conn, nodes=nodes, types=bool(names), keysets=bool(tuples))

    async def load(
        self, conn: AsyncConnection, *, nodes: Iterable[str] = (), types: bool = False, keysets: bool = False
    ) -> None:
        """Read keys into the maps: the given node ids, and every type and keyset when asked."""
        ids = list(nodes)
        for i in range(0, len(ids), 500):
            query = sa.select(node_keys.c.node_id, node_keys.c.node_key).where(
                node_keys.c.node_id.in_(ids[i : i + 500])
            )
            self.nodes.update({str(n): int(k) for n, k in (await conn.execute(query)).all()})
        if types:
            for name, key in (
                await conn.execute(sa.select(metric_types.c.name, metric_types.c.type_key))
            ).all():
                self.types[str(name)] = int(key)
                self.type_names[int(key)] = str(name)
        if keysets:
            query = sa.select(metric_keysets.c.keyset, metric_keysets.c["keys"])
            for keyset, text in (await conn.execute(query)).all():
                keys = tuple(json.loads(text))
                self.keysets[keys] = int(keyset)
                self.keys_of[int(keyset)] = keys

    async def node_key(self, conn: AsyncConnection, node_id: str) -> int | None:
        """The key of a node, None when it never had a sample."""
        if node_id not in self.nodes:
            await self.load(conn, nodes=[node_id])
        return self.nodes.get(node_id)

    async def type_key(self, conn: AsyncConnection, name: str) -> int | None:
        if name not in self.types:
            await self.load(conn, types=True)
        return self.types.get(name)
