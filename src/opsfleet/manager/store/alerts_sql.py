"""SQL implementation of the AlertStore: transitions only (the rules run in memory)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from opsfleet.manager.alerts.model import Alert, AlertKey, AlertState
from opsfleet.manager.store.schema import alerts
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule


def _row(row: sa.Row[Any]) -> Alert:
    m = row._mapping
    return Alert(
        key=AlertKey(m["rule"], m["node_id"], m["subject"]),
        severity=m["severity"],
        summary=m["summary"],
        starts_at=float(m["starts_at"]),
        state=AlertState(m["state"]),
        ends_at=float(m["ends_at"]),
        hostname=m["hostname"],
        node_labels=dict(m["node_labels"] or {}),
        id=int(m["id"]),
        acked_by=m["acked_by"],
        acked_at=float(m["acked_at"]),
        silenced_by=m["silenced_by"],
        silenced_until=float(m["silenced_until"]),
        updated_at=float(m["updated_at"]),
    )


def _values(alert: Alert) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "rule": alert.key.rule,
        "node_id": alert.key.node_id,
        "subject": alert.key.subject[:160],
        "severity": alert.severity,
        "state": alert.state.value,
        "summary": alert.summary,
        "hostname": alert.hostname[:255],
        "node_labels": alert.node_labels,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "acked_by": alert.acked_by[:64],
        "acked_at": alert.acked_at,
        "silenced_by": alert.silenced_by[:64],
        "silenced_until": alert.silenced_until,
        "updated_at": alert.updated_at,
    }


_OPERATOR = ("acked_by", "acked_at", "silenced_by", "silenced_until")


class SqlAlertStore(StoreModule):
    @shielded
    async def save_alerts(self, batch: Sequence[Alert]) -> list[int]:
        """Insert alerts without an id, update the others, in one transaction; the ids in order.

        Updates leave the acknowledgement and silence alone (``save_operator`` writes them,
        possibly through another replica)."""
        ids: list[int] = []
        async with self._store.write_tx(changes_rows=True) as conn:
            for alert in batch:
                values = _values(alert)
                if alert.id:
                    for name in _OPERATOR:
                        del values[name]
                    await conn.execute(alerts.update().where(alerts.c.id == alert.id).values(**values))
                    ids.append(alert.id)
                else:
                    result = await conn.execute(alerts.insert().values(**values).returning(alerts.c.id))
                    ids.append(int(result.scalar_one()))
        return ids

    @shielded
    async def save_operator(self, alert: Alert) -> None:
        values = {k: v for k, v in _values(alert).items() if k in (*_OPERATOR, "updated_at")}
        async with self._store.write_tx(changes_rows=True) as conn:
            await conn.execute(alerts.update().where(alerts.c.id == alert.id).values(**values))

    @shielded
    async def load_firing(self) -> list[Alert]:
        query = sa.select(alerts).where(alerts.c.state == AlertState.FIRING.value)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row(r) for r in rows]

    @shielded
    async def get_alert(self, alert_id: int) -> Alert | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(alerts).where(alerts.c.id == alert_id))).first()
        return _row(row) if row else None

    @shielded
    async def list_alerts(
        self, offset: int, limit: int, *, state: str = "", node_id: str = "", rule: str = ""
    ) -> tuple[list[Alert], int]:
        where = []
        if state:
            where.append(alerts.c.state == state)
        if node_id:
            where.append(alerts.c.node_id == node_id)
        if rule:
            where.append(alerts.c.rule == rule)
        query = sa.select(alerts).where(*where).order_by(alerts.c.starts_at.desc(), alerts.c.id.desc())
        count = sa.select(sa.func.count()).select_from(alerts).where(*where)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
            total = int((await conn.execute(count)).scalar_one())
        return [_row(r) for r in rows], total
