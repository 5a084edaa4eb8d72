"""PostgreSQL: the primary key indexes of ``metric_points`` and ``metric_rollups`` pack their
leaf pages full (fillfactor 100 instead of the default 90) and are rebuilt so that the rows
already stored take the packed layout too.

Both tables are written in key order per node (a node's new samples and buckets come after its
older ones), so PostgreSQL splits a full leaf page right after the new entry and the space a
fillfactor keeps free on each page would never be used: it is 10 % of these indexes for
nothing. A late sample still lands in the middle of its node's range and splits that page
as before. SQLite has no fillfactor: nothing to do there.

Revision ID: 0012
Revises: 0011 (compact metric storage)
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INDEXES = ("metric_points_pkey", "metric_rollups_pkey")


def _set(fillfactor: int | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in INDEXES:
        if fillfactor is None:
            op.execute(f"ALTER INDEX {index} RESET (fillfactor)")
        else:
            op.execute(f"ALTER INDEX {index} SET (fillfactor = {fillfactor})")
        op.execute(f"REINDEX INDEX {index}")


def upgrade() -> None:
    _set(100)


def downgrade() -> None:
    _set(None)
