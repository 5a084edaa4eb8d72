"""Open rollup buckets: the rollup deltas of committed samples that are not flushed yet.

A metrics transaction writes the raw points only; once it has committed, the batch's rollups
(count/sum/min/max per node, type, resolution and bucket) are merged here. The store's
flusher takes them every ``rollup_flush_interval`` and merges them into the stored rollup
rows in its own transaction; a flush that fails puts them back. Merging is exact (sums and
counts add, extremes compare), so the order of batches and flushes does not matter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from opsfleet.manager.store.metric_codec import Rollup

RollupKey = tuple[int, int, int, int]
"""(node key, type key, resolution, bucket start)."""


def copy_rollup(rollup: Rollup) -> Rollup:
    return replace(
        rollup,
        count=list(rollup.count),
        total=list(rollup.total),
        low=list(rollup.low),
        high=list(rollup.high),
    )


class OpenBuckets:
    """Unflushed rollup deltas, per series (node key, type key), and the newest sample
    timestamp they hold."""

    def __init__(self, rollups_of: Callable[[list[Any]], dict[RollupKey, Rollup]]) -> None:
        self._series: dict[tuple[int, int], dict[tuple[int, int], Rollup]] = {}
        self._newest = -1
        self._rollups_of = rollups_of
        self._samples: list[Any] = []

    def __len__(self) -> int:
        self._fold()
        return sum(map(len, self._series.values()))

    def add_samples(self, samples: list[Any], newest: int) -> None:
        """Keep a committed batch's samples; their rollups are computed when next needed (by
        the flusher or a read), not on the reply path of the batch."""
        self._samples += samples
        self._newest = max(self._newest, newest)

    def _fold(self) -> None:
        if self._samples:
            samples, self._samples = self._samples, []
            self.merge(self._rollups_of(samples), self._newest)

    def merge(self, partial: dict[RollupKey, Rollup], newest: int) -> None:
        """Fold a committed batch's rollups in (the dict's rollups are taken over)."""
        series = self._series
        for (node_key, type_key, res, bucket), rollup in partial.items():
            buckets = series.get((node_key, type_key))
            if buckets is None:
                buckets = series[(node_key, type_key)] = {}
            open_ = buckets.get((res, bucket))
            if open_ is None:
                buckets[(res, bucket)] = rollup
            else:
                open_.merge(rollup)
        self._newest = max(self._newest, newest)

    def take(self) -> tuple[dict[RollupKey, Rollup], int]:
        """Everything pending and its newest timestamp (-1: none); pending is empty afterwards."""
        self._fold()
        taken = {
            (node_key, type_key, res, bucket): rollup
            for (node_key, type_key), buckets in self._series.items()
            for (res, bucket), rollup in buckets.items()
        }
        newest = self._newest
        self._series, self._newest = {}, -1
        return taken, newest

    def put_back(self, taken: dict[RollupKey, Rollup], newest: int) -> None:
        """Return what a failed flush took."""
        self.merge(taken, newest)

    def overlay(self, node_key: int, type_key: int, res: int, start: int, end: int) -> dict[int, Rollup]:
        """Copies of the open buckets of one series whose bucket start is in [start, end]."""
        self._fold()
        buckets = self._series.get((node_key, type_key), {})
        return {
            bucket: copy_rollup(rollup)
            for (r, bucket), rollup in buckets.items()
            if r == res and start <= bucket <= end
        }

    def drop_node(self, node_key: int) -> None:
        self._fold()
        for series in [s for s in self._series if s[0] == node_key]:
            del self._series[series]
