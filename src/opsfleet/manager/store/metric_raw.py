"""Raw samples in two places, point rows and blocks: their union (pure functions, no I/O).

New samples land in ``metric_points``, one row per node and timestamp. Once the rollup job
finalizes a 5-minute bucket it folds the bucket's point rows of a node into one
``metric_blocks`` row (metric_rollups_sql.py), built from the rows its ``DELETE`` returned in
the same transaction. A sample that arrives for a bucket already folded (late, or sent
again) lands in a point row as any other and leaves a dirty mark; the job's dirty step folds
it into the block. Until then the sample is in both places or only in the point row.

Every read of raw samples takes the union: the rows of both tables for the range, the
block's points first. For one (timestamp, type) the block's copy wins, as the first stored
copy of a sample always wins in a point row (``ON CONFLICT DO NOTHING`` and the merge of a
point row, which only adds types it lacks): the block holds what was stored before the fold.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import TypeVar

from opsfleet.manager.store.metric_codec import block_points, encode_block, encode_point, point_entries
from opsfleet.manager.store.metric_rollup_mark import bucket_of

K = TypeVar("K", bound=Hashable)


def merge_point(first: bytes, then: bytes) -> bytes:
    """One point of two encodings of the same node and timestamp: every sample of ``first``
    and the samples of types it lacks from ``then``."""
    present = point_entries(first)
    types = {type_key for type_key, _ in present}
    extra = [(type_key, blob) for type_key, blob in point_entries(then) if type_key not in types]
    return encode_point(present + extra) if extra else first


def union(first: Iterable[tuple[K, bytes]], then: Iterable[tuple[K, bytes]]) -> dict[K, bytes]:
    """Points by key (a timestamp, or node key and timestamp): ``first``'s samples win."""
    return union_into(dict(first), then)


def union_into(out: dict[K, bytes], then: Iterable[tuple[K, bytes]]) -> dict[K, bytes]:
    """:func:`union` into ``out`` (the points that win), which is returned."""
    for key, data in then:
        have = out.get(key)
        out[key] = data if have is None else merge_point(have, data)
    return out


def unpack_blocks(rows: Iterable[tuple[int, int, bytes]]) -> Iterator[tuple[tuple[int, int], bytes]]:
    """((node key, timestamp), point) of every point of block rows (node key, bucket, data)."""
    for node_key, bucket, data in rows:
        for ts, point in block_points(bucket, data):
            yield (node_key, ts), point


def samples_in(point: bytes) -> int:
    return len(point_entries(point))


def build_blocks(points: dict[tuple[int, int], bytes]) -> list[tuple[int, int, int, bytes]]:
    """Block rows (node key, bucket, samples, data) of points by (node key, timestamp), in
    key order."""
    groups: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    for (node_key, ts), point in points.items():
        groups.setdefault((node_key, bucket_of(ts)), []).append((ts, point))
    out = []
    for (node_key, bucket), members in sorted(groups.items()):
        members.sort()
        n = sum(samples_in(point) for _, point in members)
        out.append((node_key, bucket, n, encode_block(bucket, members)))
    return out
