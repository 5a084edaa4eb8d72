"""SQL implementations of the REST API's UserStore and AuditStore, on the SqlStore's engine."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from opsfleet.manager.domain import AuditEntry, Role, User
from opsfleet.manager.store.schema import audit_log, settings, token_revocations, users
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule


def dialect_insert(engine: AsyncEngine, table: sa.Table) -> Any:
    """INSERT with ``on_conflict_*`` for the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _row_to_user(row: sa.Row[Any]) -> User:
    m = row._mapping
    return User(
        id=int(m["id"]),
        username=m["username"],
        role=Role(m["role"]),
        disabled=bool(m["disabled"]),
        token_version=int(m["token_version"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        last_login_at=m["last_login_at"],
    )


_USER_COLUMNS = [c for c in users.c if c.name != "password_hash"]


class SqlUserStore(StoreModule):
    """Users and settings in the Manager database; usable once the SqlStore has started."""

    @shielded
    async def insert_user(self, username: str, password_hash: str, role: Role, now: float) -> User | None:
        stmt = (
            dialect_insert(self._engine, users)
            .values(
                username=username,
                password_hash=password_hash,
                role=role.value,
                disabled=False,
                token_version=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[users.c.username])
            .returning(*_USER_COLUMNS)
        )
        async with self._store.write_tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _row_to_user(row) if row else None

    @shielded
    async def get_user(self, user_id: int) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(*_USER_COLUMNS).where(users.c.id == user_id))).first()
        return _row_to_user(row) if row else None

    @shielded
    async def get_credentials(self, username: str) -> tuple[User, str] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.username == username))).first()
        return (_row_to_user(row), str(row.password_hash)) if row else None

    @shielded
    async def list_users(self, offset: int, limit: int) -> tuple[list[User], int]:
        query = sa.select(*_USER_COLUMNS).order_by(users.c.id).offset(offset).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one()
        return [_row_to_user(r) for r in rows], int(total)

    @shielded
    async def update_user(
        self,
        user_id: int,
        now: float,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
        revoke_tokens: bool = False,
    ) -> User | None:
        values: dict[str, Any] = {"updated_at": now}
        if role is not None:
            values["role"] = role.value
        if disabled is not None:
            values["disabled"] = disabled
        if password_hash is not None:
            values["password_hash"] = password_hash
        if revoke_tokens:
            values["token_version"] = users.c.token_version + 1
        stmt = users.update().where(users.c.id == user_id).values(**values).returning(*_USER_COLUMNS)
        async with self._store.write_tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _row_to_user(row) if row else None

    @shielded
    async def note_login(self, user_id: int, now: float) -> None:
        async with self._store.write_tx() as conn:
            await conn.execute(users.update().where(users.c.id == user_id).values(last_login_at=now))

    @shielded
    async def setting(self, key: str, default: str) -> str:
        stmt = (
            dialect_insert(self._engine, settings)
            .values(key=key, value=default)
            .on_conflict_do_nothing(index_elements=[settings.c.key])
        )
        async with self._store.write_tx() as conn:
            await conn.execute(stmt)
            value = (
                await conn.execute(sa.select(settings.c.value).where(settings.c.key == key))
            ).scalar_one()
        return str(value)

    @shielded
    async def get_setting(self, key: str) -> str | None:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(sa.select(settings.c.value).where(settings.c.key == key))
            ).scalar_one_or_none()
        return None if value is None else str(value)

    @shielded
    async def delete_setting(self, key: str) -> bool:
        async with self._store.write_tx() as conn:
            result = await conn.execute(settings.delete().where(settings.c.key == key))
        return bool(result.rowcount)

    @shielded
    async def revoke_token(self, jti: str, user_id: int, expires_at: float, now: float) -> None:
        stmt = (
            dialect_insert(self._engine, token_revocations)
            .values(jti=jti, user_id=user_id, expires_at=expires_at, revoked_at=now)
            .on_conflict_do_nothing(index_elements=[token_revocations.c.jti])
        )
        async with self._store.write_tx() as conn:
            await conn.execute(stmt)
            await conn.execute(token_revocations.delete().where(token_revocations.c.expires_at <= now))

    @shielded
    async def token_revoked(self, jti: str) -> bool:
        query = sa.select(token_revocations.c.jti).where(token_revocations.c.jti == jti)
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    @shielded
    async def prune_revocations(self, now: float) -> int:
        async with self._store.write_tx() as conn:
            result = await conn.execute(
                token_revocations.delete().where(token_revocations.c.expires_at <= now)
            )
        return int(result.rowcount or 0)


class SqlAuditStore(StoreModule):
    """The audit log in the Manager database."""

    @shielded
    async def add_audit(self, entry: AuditEntry) -> int:
        values = {
            "at": entry.at,
            "username": entry.username[:64],
            "action": entry.action[:64],
            "target": entry.target[:255],
            "result": entry.result[:16],
            "status": entry.status,
            "code": entry.code,
            "source_ip": entry.source_ip[:64],
            "detail": entry.detail[:1024],
        }
        async with self._store.write_tx() as conn:
            result = await conn.execute(audit_log.insert().values(**values).returning(audit_log.c.id))
            return int(result.scalar_one())

    @shielded
    async def list_audit(
        self, offset: int, limit: int, *, username: str = "", action: str = ""
    ) -> tuple[list[AuditEntry], int]:
        where: list[sa.ColumnElement[bool]] = []
        if username:
            where.append(audit_log.c.username == username)
        if action:
            where.append(audit_log.c.action == action)
        query = (
            sa.select(audit_log)
            .where(*where)
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(audit_log).where(*where)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(count)).scalar_one()
        entries = [
            AuditEntry(
                id=int(r.id),
                at=r.at,
                username=r.username,
                action=r.action,
                target=r.target,
                result=r.result,
                status=r.status,
                code=r.code,
                source_ip=r.source_ip,
                detail=r.detail,
            )
            for r in rows
        ]
        return entries, int(total)
