"""Compact metric storage: small integer keys, one binary row per node and timestamp,
5-minute and 1-hour rollups, dirty rollup buckets, the latest sample per node and type.
Existing samples move over and ``metric_samples`` is dropped. Their rollups are not
computed here: the rollup job's first pass starts at the oldest moved sample and catches
up window by window (store/metric_rollups_sql.py); raw points stay until then.

Revision ID: 0011
Revises: 0010 (agent restart counts, event index)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from opsfleet.manager.store.metric_codec import (
    Keys,
    decode_sample,
    encode_point,
    encode_sample,
    point_entries,
)
from opsfleet.manager.store.metric_keys import MAX_KEYSETS, keyset_digest

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Blob = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
CHUNK = 2000

old_samples = sa.table(
    "metric_samples",
    sa.column("node_id", sa.String),
    sa.column("type", sa.String),
    sa.column("ts", sa.BigInteger),
    sa.column("values", JSONType),
)
node_keys = sa.table("node_keys", sa.column("node_key", sa.Integer), sa.column("node_id", sa.String))
metric_types = sa.table("metric_types", sa.column("type_key", sa.Integer), sa.column("name", sa.String))
metric_keysets = sa.table(
    "metric_keysets",
    sa.column("keyset", sa.Integer),
    sa.column("digest", sa.String),
    sa.column("keys", sa.Text),
)
points = sa.table(
    "metric_points",
    sa.column("node_key", sa.Integer),
    sa.column("n", sa.SmallInteger),
    sa.column("ts", sa.BigInteger),
    sa.column("data", Blob),
)
latest = sa.table(
    "metric_latest",
    sa.column("node_key", sa.Integer),
    sa.column("type_key", sa.SmallInteger),
    sa.column("ts", sa.BigInteger),
    sa.column("data", Blob),
)


def _create_tables() -> None:
    op.create_table(
        "node_keys",
        sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("node_id", sa.String(128), nullable=False, unique=True),
    )
    op.create_table(
        "metric_types",
        sa.Column("type_key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(32), nullable=False, unique=True),
    )
    op.create_table(
        "metric_keysets",
        sa.Column("keyset", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("keys", sa.Text, nullable=False),
    )
    op.create_table(
        "metric_points",
        sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n", sa.SmallInteger, nullable=False),
        sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", Blob, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "metric_rollups",
        sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("type_key", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("res", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", Blob, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "metric_rollup_dirty",
        sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "metric_latest",
        sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("type_key", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("data", Blob, nullable=False),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        # Latest rows are rewritten as samples arrive: room on each page lets PostgreSQL keep
        # the new row version there (a HOT update, no index entry) and prune the old one
        # without waiting for vacuum.
        op.execute("ALTER TABLE metric_latest SET (fillfactor = 50)")


class _Keys:
    """Key rows created while moving samples over (ids read back from the database)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.types: dict[str, int] = {}
        self.keysets: dict[Keys, int] = {}

    def add(self, table: Any, column: str, values: dict[str, Any]) -> int:
        return int(self.conn.execute(table.insert().values(**values).returning(table.c[column])).scalar_one())

    def type_key(self, name: str) -> int:
        if name not in self.types:
            self.types[name] = self.add(metric_types, "type_key", {"name": name})
        return self.types[name]

    def keyset(self, keys: Keys) -> int:
        if keys not in self.keysets:
            if len(self.keysets) >= MAX_KEYSETS:
                return 0
            row = {"digest": keyset_digest(keys), "keys": json.dumps(list(keys))}
            self.keysets[keys] = self.add(metric_keysets, "keyset", row)
        return self.keysets[keys]


def _numbers(values: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in dict(values or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def _move_node(conn: sa.Connection, keys: _Keys, node_id: str) -> None:
    node_key = keys.add(node_keys, "node_key", {"node_id": node_id})
    query = (
        sa.select(old_samples.c.type, old_samples.c.ts, old_samples.c["values"])
        .where(old_samples.c.node_id == node_id)
        .order_by(old_samples.c.ts, old_samples.c.type)
    )
    by_ts: dict[int, list[tuple[int, bytes]]] = {}
    newest: dict[int, tuple[int, bytes]] = {}
    for type_, ts, raw in conn.execute(query):
        values = _numbers(raw)
        sample_keys = tuple(values)
        vals = list(values.values())
        type_key = keys.type_key(str(type_))
        blob = encode_sample(keys.keyset(sample_keys), sample_keys, vals)
        by_ts.setdefault(int(ts), []).append((type_key, blob))
        newest[type_key] = (int(ts), blob)
    point_rows = [
        {"node_key": node_key, "n": len(entries), "ts": ts, "data": encode_point(entries)}
        for ts, entries in by_ts.items()
    ]
    for chunk in _chunks(point_rows):
        conn.execute(points.insert(), chunk)
    latest_rows = [
        {"node_key": node_key, "type_key": t, "ts": ts, "data": blob} for t, (ts, blob) in newest.items()
    ]
    if latest_rows:
        conn.execute(latest.insert(), latest_rows)


def upgrade() -> None:
    _create_tables()
    conn = op.get_bind()
    keys = _Keys(conn)
    node_ids = [str(n) for n in conn.execute(sa.select(old_samples.c.node_id).distinct()).scalars()]
    for node_id in sorted(node_ids):
        _move_node(conn, keys, node_id)
    op.drop_index("ix_metric_samples_ts", table_name="metric_samples")
    op.drop_table("metric_samples")


def downgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("node_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(32), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        sa.Column("values", JSONType, nullable=False),
    )
    op.create_index("ix_metric_samples_ts", "metric_samples", ["ts"])
    conn = op.get_bind()
    names = {int(k): str(n) for k, n in conn.execute(sa.select(metric_types.c.type_key, metric_types.c.name))}
    lookup = {
        int(k): tuple(json.loads(text))
        for k, text in conn.execute(sa.select(metric_keysets.c.keyset, metric_keysets.c["keys"]))
    }
    nodes = list(conn.execute(sa.select(node_keys.c.node_key, node_keys.c.node_id)))
    for node_key, node_id in nodes:
        rows = []
        query = (
            sa.select(points.c.ts, points.c.data).where(points.c.node_key == node_key).order_by(points.c.ts)
        )
        for ts, data in conn.execute(query):
            for type_key, blob in point_entries(bytes(data)):
                values = decode_sample(blob, lookup)
                rows.append({"node_id": node_id, "type": names[type_key], "ts": int(ts), "values": values})
        for chunk in _chunks(rows):
            conn.execute(old_samples.insert(), chunk)
    for table in (
        "metric_latest",
        "metric_rollup_dirty",
        "metric_rollups",
        "metric_points",
        "metric_keysets",
        "metric_types",
        "node_keys",
    ):
        op.drop_table(table)
