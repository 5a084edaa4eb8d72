"""Blocks of raw samples: ``metric_blocks`` holds the points of one node in one final
5-minute bucket in one row, folded by the rollup job (store/metric_raw.py). The point rows
stored before stay as they are (reads take the union of both tables) until retention deletes
them; the job folds the buckets it finalizes from now on.

On PostgreSQL the new table and its primary key index are packed full (fillfactor 100: a
node's blocks are written in bucket order, and only a late sample rewrites one), and
``metric_points`` gets an autovacuum that runs after 10 000 dead rows whatever the table's
size (the default waits for 20 % of the table to be dead): the job deletes every point row
it folds, and their space is reused by new rows once vacuumed.

Downgrade moves every block's samples back into point rows (a sample in both keeps the
block's copy, the one stored first) and drops the table.

Revision ID: 0013
Revises: 0012 (packed metric indexes)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from opsfleet.manager.store.metric_codec import block_points, point_entries
from opsfleet.manager.store.metric_raw import merge_point

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Blob = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")
AUTOVACUUM = {"autovacuum_vacuum_scale_factor": "0", "autovacuum_vacuum_threshold": "10000"}

node_keys = sa.table("node_keys", sa.column("node_key", sa.Integer))
points = sa.table(
    "metric_points",
    sa.column("node_key", sa.Integer),
    sa.column("n", sa.SmallInteger),
    sa.column("ts", sa.BigInteger),
    sa.column("data", Blob),
)
blocks = sa.table(
    "metric_blocks",
    sa.column("node_key", sa.Integer),
    sa.column("bucket", sa.BigInteger),
    sa.column("data", Blob),
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "metric_blocks",
        sa.Column("node_key", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n", sa.SmallInteger, nullable=False),
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", Blob, nullable=False),
        sqlite_with_rowid=False,
        postgresql_with={"fillfactor": 100},
    )
    if postgres:
        op.execute("ALTER INDEX metric_blocks_pkey SET (fillfactor = 100)")
        options = ", ".join(f"{k} = {v}" for k, v in AUTOVACUUM.items())
        op.execute(f"ALTER TABLE metric_points SET ({options})")


def downgrade() -> None:
    conn = op.get_bind()
    for node_key in conn.execute(sa.select(node_keys.c.node_key).order_by(node_keys.c.node_key)).scalars():
        _unfold(conn, int(node_key))
    op.drop_table("metric_blocks")
    if conn.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE metric_points RESET ({', '.join(AUTOVACUUM)})")


def _unfold(conn: sa.Connection, node_key: int) -> None:
    """One node's blocks back into point rows."""
    folded: dict[int, bytes] = {}
    for bucket, data in conn.execute(
        sa.select(blocks.c.bucket, blocks.c.data).where(blocks.c.node_key == node_key)
    ).all():
        folded.update(block_points(int(bucket), bytes(data)))
    if not folded:
        return
    existing = conn.execute(
        sa.select(points.c.ts, points.c.data).where(
            points.c.node_key == node_key, points.c.ts >= min(folded), points.c.ts <= max(folded)
        )
    ).all()
    updates = []
    for ts, data in existing:
        point = folded.pop(int(ts), None)
        if point is not None:
            merged = merge_point(point, bytes(data))
            updates.append({"k": node_key, "t": int(ts), "count": len(point_entries(merged)), "blob": merged})
    if updates:
        conn.execute(
            points.update()
            .where(points.c.node_key == sa.bindparam("k"), points.c.ts == sa.bindparam("t"))
            .values(n=sa.bindparam("count"), data=sa.bindparam("blob")),
            updates,
        )
    rows = [
        {"node_key": node_key, "n": len(point_entries(point)), "ts": ts, "data": point}
        for ts, point in sorted(folded.items())
    ]
    for i in range(0, len(rows), 2000):
        conn.execute(points.insert(), rows[i : i + 2000])
