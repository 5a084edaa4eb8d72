"""Folding samples into rollups (pure functions, no I/O): the 5-minute rollups of raw
samples, the rollups of one series at any resolution, hours from 5-minute rollups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from opsfleet.manager.store.metric_codec import Keys, Rollup, decode_sample
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
        b = bucket - bucket % res
        found = out.get(b)
        if found is None:
            out[b] = rollup
        else:
            found.merge(rollup)
    return out


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
        key = (node_key, type_key, RES_1H, bucket - bucket % RES_1H)
        found = hours.get(key)
        if found is None:
            hours[key] = rollup
        else:
            found.merge(rollup)
