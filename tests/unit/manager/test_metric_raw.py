"""Blocks of raw samples: the encoding round-trips, and the union of blocks and point rows
keeps every sample once, the block's copy first."""

from __future__ import annotations

import zlib

import pytest

from opsfleet.manager.store.metric_codec import (
    CodecError,
    block_points,
    encode_block,
    encode_point,
    encode_sample,
    point_entries,
)
from opsfleet.manager.store.metric_raw import build_blocks, merge_point, union, unpack_blocks
from opsfleet.manager.store.metric_rollups_sql import _runs

BUCKET = 1_790_000_100


def _point(*types: tuple[int, float]) -> bytes:
    return encode_point((t, encode_sample(1, ("v",), [v])) for t, v in types)


def test_a_block_round_trips_its_points_in_order() -> None:
    points = [(BUCKET + 299, _point((1, 2.5))), (BUCKET, _point((1, 1.0), (2, 3.0))), (BUCKET + 128, b"")]
    assert block_points(BUCKET, encode_block(BUCKET, points)) == points
    assert block_points(BUCKET, encode_block(BUCKET, [])) == []


def test_a_corrupt_or_truncated_block_is_a_codec_error() -> None:
    data = encode_block(BUCKET, [(BUCKET, _point((1, 1.0)))])
    with pytest.raises(CodecError):
        block_points(BUCKET, data[:-2])
    with pytest.raises(CodecError):
        block_points(BUCKET, b"\xff\xff")
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    cut = deflate.compress(b"\x00\x09abc") + deflate.flush()  # a length beyond the end
    with pytest.raises(CodecError):
        block_points(BUCKET, cut)


def test_the_first_copy_of_a_sample_wins_and_other_types_are_added() -> None:
    block = _point((1, 1.0), (2, 2.0))
    late = _point((2, 99.0), (3, 3.0))
    merged = merge_point(block, late)
    assert point_entries(merged) == point_entries(_point((1, 1.0), (2, 2.0), (3, 3.0)))
    assert merge_point(block, _point((1, 5.0))) is block  # nothing new: the same bytes
    got = union([(1, block)], [(1, late), (2, late)])
    assert got == {1: merged, 2: late}


def test_build_blocks_groups_by_node_and_bucket_and_counts_samples() -> None:
    points = {
        (7, BUCKET + 60): _point((1, 1.0), (2, 2.0)),
        (7, BUCKET): _point((1, 0.5)),
        (7, BUCKET + 300): _point((1, 9.0)),
        (3, BUCKET + 1): _point((4, 4.0)),
    }
    rows = build_blocks(points)
    assert [(k, b, n) for k, b, n, _ in rows] == [(3, BUCKET, 1), (7, BUCKET, 3), (7, BUCKET + 300, 1)]
    assert dict(unpack_blocks((k, b, d) for k, b, _, d in rows)) == points
    _, _, _, data = rows[1]
    assert [ts for ts, _ in block_points(BUCKET, data)] == [BUCKET, BUCKET + 60]  # in time order


def test_the_dirty_step_folds_runs_of_consecutive_buckets() -> None:
    buckets = {BUCKET + 600, BUCKET, BUCKET + 300, BUCKET + 3000}
    assert _runs(buckets) == [(BUCKET, BUCKET + 900), (BUCKET + 3000, BUCKET + 3300)]
    assert _runs([]) == []
