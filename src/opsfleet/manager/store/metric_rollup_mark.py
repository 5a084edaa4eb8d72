"""The rollup watermark: which 5-minute buckets have final rollup rows (pure, no I/O).

The elected replica's rollup job (metric_rollups_sql.py) finalizes closed 5-minute buckets
window by window, node keys in ascending order. The mark is one ``settings`` row,
``"<done> <end> <cursor>"``: every bucket before ``done`` is final for every node; the window
``[done, end)`` is final for node keys up to ``cursor`` (0: none yet). ``end == done``: no
window is open. Buckets past the mark are read from the raw samples.

A sample that arrives for a bucket the job may already have finalized is "late": its
metrics transaction marks (node, bucket) dirty (``metric_rollup_dirty``) and the job
recomputes that bucket from the raw samples. Late means the bucket ended at or before
``max(cached end, now - grace) + grace / 2``: the job never finalizes a bucket that ended
after ``now - grace`` by its own clock, so half the grace covers a stale cached mark, clock
skew between replicas and the time a metrics transaction takes to commit.
"""

from __future__ import annotations

from dataclasses import dataclass

RES_5M = 300
RES_1H = 3600
MARK_KEY = "metric_rollups_mark"


@dataclass(frozen=True)
class RollupMark:
    done: int = 0
    end: int = 0
    cursor: int = 0

    def stored_until(self, node_key: int) -> int:
        """The 5-minute buckets of this node before this time have final rollup rows."""
        return self.end if self.cursor > 0 and node_key <= self.cursor else self.done

    def final(self, node_key: int, bucket: int) -> bool:
        return bucket + RES_5M <= self.stored_until(node_key)

    @property
    def open(self) -> bool:
        """A window is being finalized (``[done, end)``)."""
        return self.end > self.done

    def encode(self) -> str:
        return f"{self.done} {self.end} {self.cursor}"

    @classmethod
    def decode(cls, text: str) -> RollupMark:
        done, end, cursor = (int(part) for part in text.split())
        return cls(done, end, cursor)


def bucket_of(ts: int) -> int:
    return ts - ts % RES_5M


def closed_before(now: float, grace: float) -> int:
    """The end of the newest 5-minute bucket the job may finalize at ``now``."""
    limit = int(now - grace)
    return limit - limit % RES_5M


def is_late(ts: int, now: float, grace: float, cached: RollupMark) -> bool:
    """Whether a sample of ``ts`` may land in a bucket the job has finalized (see above)."""
    bucket_end = bucket_of(ts) + RES_5M
    return bucket_end <= max(cached.end, int(now - grace)) + grace / 2


@dataclass(frozen=True)
class RollupStep:
    """What one step of the rollup job did (one transaction, or none)."""

    kind: str
    """``idle`` (nothing due), ``dirty`` (late buckets recomputed), ``window`` (a batch of
    nodes of the open window finalized) or ``conflict`` (another replica moved the mark)."""
    mark: RollupMark
    points: int = 0
    """Raw points read (one per node and timestamp)."""
    samples: int = 0
    """Samples (node, type, timestamp) folded into rollups."""
    buckets: int = 0
    """5-minute rollup rows written."""
    folded: int = 0
    """Point rows folded into blocks (deleted from ``metric_points``, metric_raw.py)."""
