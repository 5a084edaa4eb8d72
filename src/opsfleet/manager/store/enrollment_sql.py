"""SQL implementation of the EnrollmentStore: tokens (hashed) and node identities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from opsfleet.manager.domain import EnrollmentToken, NodeIdentity
from opsfleet.manager.store.base import IdentityExists, TokenRefused
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
    )


def _identity_values(identity: NodeIdentity) -> dict[str, Any]:
    return {
        "node_id": identity.node_id,
        "serial": identity.serial,
        "not_after": identity.not_after,
        "enrolled_at": identity.enrolled_at,
        "token_id": identity.token_id,
        "hostname": identity.hostname[:255],
        "boot_id": identity.boot_id[:64],
    }


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
    async def enroll(self, secret_hash: str, identity: NodeIdentity, now: float) -> EnrollmentToken:
        t, ni = enrollment_tokens, node_identities
        consume = (
            t.update()
            .where(
                t.c.secret_hash == secret_hash,
                t.c.revoked_at.is_(None),
                t.c.expires_at > now,
                t.c.uses < t.c.max_uses,
            )
            .values(uses=t.c.uses + 1)
            .returning(*_TOKEN_COLUMNS)
        )
        async with self._store.write_tx() as conn:
            if self._engine.dialect.name == "postgresql":
                # Two enrollments of one node id with different tokens take turns.
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": "enroll:" + identity.node_id}
                )
            row = (await conn.execute(consume)).first()
            if row is None:
                found = (
                    await conn.execute(sa.select(*_TOKEN_COLUMNS).where(t.c.secret_hash == secret_hash))
                ).first()
                raise TokenRefused("unknown" if found is None else _row_to_token(found).state(now))
            token = _row_to_token(row)
            active = (
                await conn.execute(
                    sa.select(ni.c.serial)
                    .where(ni.c.node_id == identity.node_id, ni.c.revoked_at.is_(None), ni.c.not_after > now)
                    .limit(1)
                )
            ).first()
            if active is not None:
                raise IdentityExists(identity.node_id)  # rolls back the counted use
            await conn.execute(ni.insert().values({**_identity_values(identity), "token_id": token.id}))
        return token

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
