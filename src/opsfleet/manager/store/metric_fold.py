"""Folding samples into rollups (pure functions, no I/O): the 5-minute rollups of raw
samples, the rollups of one series at any resolution, hours from 5-minute rollups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import reduce
from itertools import pairwise, repeat
from operator import add, truediv
from typing import Any

from opsfleet.manager.store.metric_codec import (
    Keys,
    Rollup,
    decode_rollup_sums,
    decode_sample,
    uniform_float_sums,
)
from opsfleet.manager.store.metric_rollup_mark import RES_1H, RES_5M

Added = tuple[int, int, int, Keys, list[float], bytes]
"""One sample: node key, timestamp, type key, value keys, values, encoded sample."""
RollupKey = tuple[int, int, int, int]
"""(node key, type key, resolution, bucket start)."""


def rollups_5m(added: Iterable[Added]) -> dict[RollupKey, Rollup]:
    """The 5-minute rollups of samples: per bucket in column operations (C loops: ``sum``,
    ``min``, ``max`` over each key) when the samples share their keys."""
    groups: dict[RollupKey, list[Added]] = {}
    for a in added:
        groups.setdefault((a[0], a[2], RES_5M, a[1] - a[1] % RES_5M), []).append(a)
    out: dict[RollupKey, Rollup] = {}
    for key, members in groups.items():
        keys = members[0][3]
        if all(m[3] == keys for m in members):
            columns = list(zip(*(m[4] for m in members), strict=True))
            n = len(members)
            out[key] = Rollup(
                keys,
                n,
                [n] * len(keys),
                list(map(sum, columns)),
                list(map(min, columns)),
                list(map(max, columns)),
            )
        else:
            rollup = out[key] = Rollup()
            for m in members:
                rollup.add(m[3], m[4])
    return out


def raw_rollups(points: list[tuple[int, bytes]], res: int, lookup: dict[int, Keys]) -> dict[int, Rollup]:
    """Rollups of ``res`` by bucket of one series' encoded samples (timestamp, blob)."""
    added: list[Added] = []
    for ts, blob in points:
        values = decode_sample(blob, lookup)
        added.append((0, ts, 0, tuple(values), list(values.values()), blob))
    out: dict[int, Rollup] = {}
    for (_, _, _, bucket), rollup in rollups_5m(added).items():
        merge_into(out, bucket - bucket % res, rollup)
    return out


def merge_into(out: dict[Any, Rollup], key: Any, rollup: Rollup) -> None:
    """``out[key]`` becomes ``rollup`` (taken over) or has it merged in."""
    found = out.get(key)
    if found is None:
        out[key] = rollup
    else:
        found.merge(rollup)


def merge_sums(acc: Rollup, keys: Keys, n: int, count: Sequence[int], sums: Sequence[float]) -> None:
    """Add counts and sums of other keys into ``acc`` (extremes are not kept here)."""
    index = {k: i for i, k in enumerate(acc.keys)}
    names = list(acc.keys)
    for key, c, s in zip(keys, count, sums, strict=True):
        i = index.get(key)
        if i is None:
            index[key] = len(names)
            names.append(key)
            acc.count.append(c)
            acc.total.append(s)
        else:
            acc.count[i] += c
            acc.total[i] += s
    acc.keys = tuple(names)
    acc.n += n


Averages = tuple[int, dict[str, float], int]
"""(bucket start, average per key, samples)."""


def average_buckets(
    stored: Iterable[tuple[int, bytes]],
    computed: Iterable[tuple[int, Rollup]],
    bucket_seconds: int,
    lookup: Mapping[int, Keys],
) -> list[Averages]:
    """(start, average per key, samples) of every bucket of ``bucket_seconds`` (aligned on
    multiples of itself) that the stored rollups (bucket, encoded) and the computed ones fall
    in, oldest first; the stored ones are added first, in the order given. One tight loop
    with list-wide additions in C where the keys are the same: a year's chart folds 8,760
    hours."""
    rows = list(stored)
    out = _fold_uniform(rows, bucket_seconds, lookup)
    if out is None:
        out = _fold_rows(rows, bucket_seconds, lookup)
    get = out.get
    for bucket, rollup in computed:
        start = bucket - bucket % bucket_seconds
        acc = get(start)
        if acc is None:
            out[start] = [rollup.keys, rollup.n, rollup.count, rollup.total]
        else:
            _merge_into(acc, rollup.keys, rollup.n, rollup.count, rollup.total)
    averages = []
    for start in sorted(out):
        keys, n, count, total = out[start]
        if all(count):
            values = dict(zip(keys, map(truediv, total, count), strict=True))
        else:
            values = {k: t / c for k, c, t in zip(keys, count, total, strict=True) if c}
        averages.append((start, values, n))
    return averages


def _fold_uniform(
    rows: list[tuple[int, bytes]], bucket_seconds: int, lookup: Mapping[int, Keys]
) -> dict[int, list[Any]] | None:
    """Accumulators [keys, n, counts, sums] per bucket start when the rows are in bucket order
    and :func:`uniform_float_sums` reads them all at once (a year of one series' hours); the
    sums of a bucket's rows added left to right, column by column. None otherwise."""
    buckets = [bucket for bucket, _ in rows]
    if buckets != sorted(buckets):
        return None
    uniform = uniform_float_sums([data for _, data in rows], lookup)
    if uniform is None:
        return None
    keys, ns, sums = uniform
    starts = [bucket - bucket % bucket_seconds for bucket in buckets]
    edges = [0, *(i for i in range(1, len(starts)) if starts[i] != starts[i - 1]), len(starts)]
    groups = [slice(i, j) for i, j in pairwise(edges)]
    runs = _equal_runs(groups)
    totals = [_group_sums(column, groups, runs) for column in zip(*sums, strict=True)]
    counts = list(map(sum, map(ns.__getitem__, groups)))
    return {
        starts[group.start]: [keys, n, [n] * len(keys), list(total)]
        for group, n, total in zip(groups, counts, zip(*totals, strict=True), strict=True)
    }


def _equal_runs(groups: list[slice]) -> list[tuple[int, int, int]]:
    """Consecutive groups of one size as runs (first group, groups, size): a year of hours in
    5-hour buckets is one run of 1,751 groups of 5 between two partial ones."""
    runs: list[tuple[int, int, int]] = []
    i = 0
    while i < len(groups):
        size = groups[i].stop - groups[i].start
        j = i + 1
        while j < len(groups) and groups[j].stop - groups[j].start == size:
            j += 1
        runs.append((i, j - i, size))
        i = j
    return runs


def _group_sums(
    column: Sequence[float], groups: list[slice], runs: list[tuple[int, int, int]]
) -> list[float]:
    """The sum of each group's values, added left to right (the same floats as ``reduce(add)``
    per group). A run of ``m`` groups of ``size`` values takes ``size`` list-wide additions
    of strided slices, ``((v0 + v1) + v2) + ...`` for all its groups at once, in C."""
    out: list[float] = []
    for first, m, size in runs:
        if m < 4:
            out += map(reduce, repeat(add), map(column.__getitem__, groups[first : first + m]))
            continue
        begin = groups[first].start
        end = begin + m * size
        acc = column[begin:end:size]
        for offset in range(1, size):
            acc = list(map(add, acc, column[begin + offset : end : size]))
        out += acc
    return out


def _fold_rows(
    rows: list[tuple[int, bytes]], bucket_seconds: int, lookup: Mapping[int, Keys]
) -> dict[int, list[Any]]:
    """Accumulators [keys, n, counts, sums] per bucket start, row by row."""
    out: dict[int, list[Any]] = {}
    get = out.get
    for bucket, data in rows:
        keys, n, count, sums = decode_rollup_sums(data, lookup)
        start = bucket - bucket % bucket_seconds
        acc = get(start)
        if acc is None:
            out[start] = [keys, n, count, sums]
        elif acc[0] == keys:
            acc[1] += n
            acc[2] = list(map(add, acc[2], count))
            acc[3] = list(map(add, acc[3], sums))
        else:
            _merge_into(acc, keys, n, count, sums)
    return out


def _merge_into(acc: list[Any], keys: Keys, n: int, count: Sequence[int], sums: Sequence[float]) -> None:
    """Add a part into an accumulator [keys, n, counts, sums] (of the same keys or not)."""
    merged = Rollup(acc[0], acc[1], list(acc[2]), list(acc[3]))
    merge_sums(merged, keys, n, count, sums)
    acc[:] = [merged.keys, merged.n, merged.count, merged.total]


def copy_rollup(rollup: Rollup) -> Rollup:
    return replace(
        rollup,
        count=list(rollup.count),
        total=list(rollup.total),
        low=list(rollup.low),
        high=list(rollup.high),
    )


def fold_hours(hours: dict[RollupKey, Rollup], fives: Iterable[tuple[RollupKey, Rollup]]) -> None:
    """Merge 5-minute rollups into the hours they belong to (rollups taken over)."""
    for (node_key, type_key, _, bucket), rollup in fives:
        merge_into(hours, (node_key, type_key, RES_1H, bucket - bucket % RES_1H), rollup)
