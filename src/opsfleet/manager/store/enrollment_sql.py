"""SQL implementation of the EnrollmentStore: tokens (hashed) and node identities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from opsfleet.common.errors import DatabaseUnavailable
from opsfleet.manager.domain import EnrollmentToken, EventKind, NodeIdentity
from opsfleet.manager.store.base import EnrollOutcome, EnrollRequest
from opsfleet.manager.store.schema import enrollment_tokens, node_events, node_identities
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule

_TOKEN_COLUMNS = [c for c in enrollment_tokens.c if c.name != "secret_hash"]


def _row_to_token(row: sa.Row[Any]) -> EnrollmentToken:
    m = row._mapping
    return EnrollmentToken(
        id=m["id"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        max_uses=int(m["max_uses"]),
        uses=int(m["uses"]),
        labels=dict(m["labels"] or {}),
        revoked_at=m["revoked_at"],
    )


def _row_to_identity(row: sa.Row[Any]) -> NodeIdentity:
    m = row._mapping
    return NodeIdentity(
        node_id=m["node_id"],
        serial=m["serial"],
        not_after=m["not_after"],
        enrolled_at=m["enrolled_at"],
        token_id=m["token_id"],
        hostname=m["hostname"],
        boot_id=m["boot_id"],
        revoked_at=m["revoked_at"],
        key_sha256=m["key_sha256"],
    )


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _identity_values(identity: NodeIdentity) -> dict[str, Any]:
    return {
        "node_id": identity.node_id,
        "serial": identity.serial,
        "not_after": identity.not_after,
        "enrolled_at": identity.enrolled_at,
        "token_id": identity.token_id,
        "hostname": identity.hostname[:255],
        "boot_id": identity.boot_id[:64],
        "key_sha256": identity.key_sha256,
    }


class _EnrollPlan:
    """Decides a batch of enrollments in order against the tokens and active identities read
    in the transaction; collects the rows to write. Pure: no I/O."""

    def __init__(
        self,
        tokens: dict[str, EnrollmentToken],
        active: dict[str, list[tuple[str | None, str]]],
        now: float,
    ) -> None:
        self._tokens = tokens
        self._active = active
        self._now = now
        self.extra_uses: dict[str, int] = {}
        self.identities: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def decide(self, request: EnrollRequest) -> EnrollOutcome:
        identity = request.identity
        token = self._tokens.get(request.secret_hash)
        if token is None:
            return EnrollOutcome("unknown")
        if token.revoked_at is not None:
            return EnrollOutcome("revoked", token)
        current = self._active.get(identity.node_id, [])
        if current:
            key = identity.key_sha256
            if key is None or (key, token.id) not in current:
                return EnrollOutcome("exists", token)
            self._record(identity, token, "certificate re-issued for the same key, no use counted")
            return EnrollOutcome("", token, reissued=True)
        uses = token.uses + self.extra_uses.get(token.id, 0)
        if token.expires_at <= self._now:
            return EnrollOutcome("expired", token)
        if uses >= token.max_uses:
            return EnrollOutcome("used-up", token)
        self.extra_uses[token.id] = self.extra_uses.get(token.id, 0) + 1
        self._record(identity, token, "")
        return EnrollOutcome("", token)

    def _record(self, identity: NodeIdentity, token: EnrollmentToken, note: str) -> None:
        self.identities.append({**_identity_values(identity), "token_id": token.id})
        self._active.setdefault(identity.node_id, []).append((identity.key_sha256, token.id))
        detail = f"token {token.id}" + (f": {note}" if note else "")
        self.events.append(
            {"node_id": identity.node_id, "kind": EventKind.ENROLLED.value, "at": self._now, "detail": detail}
        )


class SqlEnrollmentStore(StoreModule):
    """Enrollment tokens and node identities in the Manager database."""

    @shielded
    async def insert_token(self, token: EnrollmentToken, secret_hash: str) -> None:
        async with self._store.write_tx() as conn:
            await conn.execute(
                enrollment_tokens.insert().values(
                    id=token.id,
                    secret_hash=secret_hash,
                    created_by=token.created_by[:64],
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    max_uses=token.max_uses,
                    uses=0,
                    labels=token.labels,
                )
            )

    @shielded
    async def list_tokens(self) -> list[EnrollmentToken]:
        query = sa.select(*_TOKEN_COLUMNS).order_by(enrollment_tokens.c.created_at.desc())
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row_to_token(r) for r in rows]

    @shielded
    async def find_token(self, secret_hash: str) -> EnrollmentToken | None:
        query = sa.select(*_TOKEN_COLUMNS).where(enrollment_tokens.c.secret_hash == secret_hash)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row_to_token(row) if row else None

    @shielded
    async def revoke_token(self, token_id: str, now: float) -> EnrollmentToken | None:
        t = enrollment_tokens
        async with self._store.write_tx() as conn:
            await conn.execute(
                t.update().where(t.c.id == token_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
            )
            row = (await conn.execute(sa.select(*_TOKEN_COLUMNS).where(t.c.id == token_id))).first()
        return _row_to_token(row) if row else None

    @shielded
    async def enroll_many(self, requests: Sequence[EnrollRequest], now: float) -> list[EnrollOutcome]:
        if not requests:
            return []
        t, ni = enrollment_tokens, node_identities
        node_ids = sorted({r.identity.node_id for r in requests})
        hashes = sorted({r.secret_hash for r in requests})  # one lock order for all replicas
        async with self._store.write_tx(changes_rows=True) as conn:
            if self._engine.dialect.name == "postgresql":
                # Enrollments of one node id through two replicas take turns (sorted: no deadlock).
                for node_id in node_ids:
                    await conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": "enroll:" + node_id}
                    )
            tokens: dict[str, EnrollmentToken] = {}
            for chunk in _chunks(hashes):
                query = (
                    sa.select(t.c.secret_hash, *_TOKEN_COLUMNS)
                    .where(t.c.secret_hash.in_(chunk))
                    .with_for_update()  # PostgreSQL: concurrent batches count uses one after the other
                )
                for row in (await conn.execute(query)).all():
                    tokens[row.secret_hash] = _row_to_token(row)
            active: dict[str, list[tuple[str | None, str]]] = {}  # node -> [(key_sha256, token_id)]
            for chunk in _chunks(node_ids):
                query = sa.select(ni.c.node_id, ni.c.key_sha256, ni.c.token_id).where(
                    ni.c.node_id.in_(chunk), ni.c.revoked_at.is_(None), ni.c.not_after > now
                )
                for row in (await conn.execute(query)).all():
                    active.setdefault(row.node_id, []).append((row.key_sha256, row.token_id))
            plan = _EnrollPlan(tokens, active, now)
            outcomes = [plan.decide(r) for r in requests]
            for token_id, extra in plan.extra_uses.items():
                counted = await conn.execute(
                    t.update()
                    .where(t.c.id == token_id, t.c.uses + extra <= t.c.max_uses)
                    .values(uses=t.c.uses + extra)
                )
                if counted.rowcount != 1:  # only if the row lock above did not hold: never over-count
                    raise DatabaseUnavailable("enrollment token changed during the transaction; try again")
            if plan.identities:
                await conn.execute(ni.insert(), plan.identities)
                await conn.execute(node_events.insert(), plan.events)
        return outcomes

    @shielded
    async def add_identity(self, identity: NodeIdentity) -> None:
        async with self._store.write_tx() as conn:
            await conn.execute(node_identities.insert().values(**_identity_values(identity)))

    @shielded
    async def active_identities(self, now: float, node_id: str | None = None) -> list[NodeIdentity]:
        ni = node_identities
        query = sa.select(ni).where(ni.c.revoked_at.is_(None), ni.c.not_after > now)
        if node_id is not None:
            query = query.where(ni.c.node_id == node_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row_to_identity(r) for r in rows]

    @shielded
    async def token_labels(self, token_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        ids = [i for i in dict.fromkeys(token_ids) if i]
        if not ids:
            return {}
        t = enrollment_tokens
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.c.id, t.c.labels).where(t.c.id.in_(ids)))).all()
        return {r.id: dict(r.labels or {}) for r in rows}

    @shielded
    async def revoke_identities(self, node_id: str, now: float) -> int:
        ni = node_identities
        stmt = (
            ni.update()
            .where(ni.c.node_id == node_id, ni.c.revoked_at.is_(None), ni.c.not_after > now)
            .values(revoked_at=now)
        )
        async with self._store.write_tx() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount or 0)

    @shielded
    async def add_node_event(self, node_id: str, kind: str, detail: str, at: float) -> None:
        async with self._store.write_tx() as conn:
            await conn.execute(
                node_events.insert().values(node_id=node_id, kind=kind, at=at, detail=detail[:255])
            )
