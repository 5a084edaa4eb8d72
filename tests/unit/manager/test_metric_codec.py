"""The compact encodings of samples, points and rollups: exact round trips and exact merges."""

from __future__ import annotations

import functools
import itertools
import math
import operator
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsfleet.manager.store.metric_codec import (
    CodecError,
    Rollup,
    decode_one,
    decode_rollup,
    decode_rollup_sums,
    decode_sample,
    decode_values,
    encode_point,
    encode_rollup,
    encode_sample,
    encode_values,
    point_entries,
    point_entry,
    uniform_float_sums,
)
from opsfleet.manager.store.metric_fold import _equal_runs, _group_sums, average_buckets
from opsfleet.simulator.payloads import MachineModel

AWKWARD = [
    0.0,
    -0.0,
    -0.5,
    1.0,
    -1.0,
    12.34,
    -12.34,
    0.1 + 0.2,  # not two decimals: float64
    1e-7,
    1e300,
    -1e300,
    2.0**60,  # an integer too wide for 7 bytes
    2.0**53 + 2,
    16_000_000_000.0,
    123456789.01,
    5e-324,
    math.pi,
    99.99,
    -0.01,
]


def test_values_round_trip_exactly() -> None:
    data = encode_values(AWKWARD)
    assert decode_values(data, 0, len(AWKWARD)) == AWKWARD
    for value in AWKWARD:  # one at a time too (odd and even tag counts)
        assert decode_values(encode_values([value]), 0, 1) == [value]


def test_random_values_round_trip_exactly() -> None:
    rnd = random.Random(5)
    values = [rnd.uniform(-1e6, 1e6) for _ in range(300)]
    values += [round(rnd.uniform(0, 100), 2) for _ in range(300)]
    values += [float(rnd.randrange(-(2**50), 2**50)) for _ in range(300)]
    assert decode_values(encode_values(values), 0, len(values)) == values


def test_collector_values_take_far_less_than_float64() -> None:
    model = MachineModel(random.Random(1), 0.0)
    total = count = 0
    for t in range(60, 6000, 60):
        for values in model.sample(float(t)).values():
            keys = tuple(values)
            blob = encode_sample(1, keys, list(values.values()))
            assert decode_sample(blob, {1: keys}) == values
            total += len(blob)
            count += len(values)
    assert total / count < 5.0  # bytes per value, against 8 for float64 (and ~20 as JSON)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises((ValueError, OverflowError)):
        encode_values([1.0, bad])


def test_unknown_keys_travel_inline_without_a_keyset() -> None:
    values = {"usage_percent": 1.5, "brand_new_key": 7.0, "ünïcode key": -2.25}
    blob = encode_sample(0, tuple(values), list(values.values()))
    assert decode_sample(blob, {}) == values
    assert decode_one(blob, {}, "brand_new_key") == 7.0
    assert decode_one(blob, {}, "missing") is None


def test_a_keyset_id_the_reader_does_not_know_is_a_codec_error() -> None:
    blob = encode_sample(9, ("a",), [1.0])
    with pytest.raises(CodecError):
        decode_sample(blob, {1: ("a",)})


def test_points_hold_one_entry_per_type() -> None:
    entries = [(1, b"\x01abc"), (300, b""), (2, bytes(range(200)))]
    data = encode_point(entries)
    assert point_entries(data) == entries
    assert point_entry(data, 300) == b""
    assert point_entry(data, 2) == bytes(range(200))
    assert point_entry(data, 7) is None


def _direct(samples: list[dict[str, float]]) -> dict[str, tuple[float, float, float, int]]:
    out: dict[str, tuple[float, float, float, int]] = {}
    for s in samples:
        for k, v in s.items():
            lo, hi, total, n = out.get(k, (v, v, 0.0, 0))
            out[k] = (min(lo, v), max(hi, v), total + v, n + 1)
    return out


def test_rollup_merge_equals_one_rollup_of_every_sample() -> None:
    rnd = random.Random(3)
    samples = []
    for i in range(40):
        values = {
            "usage_percent": float(rnd.randrange(0, 10_000)) / 100,
            "bytes": float(rnd.randrange(10**12)),
        }
        if i % 7 == 0:
            values["sometimes"] = float(i)  # a key only some samples hold
        samples.append(values)
    whole = Rollup()
    for s in samples:
        whole.add(tuple(s), list(s.values()))
    left, right = Rollup(), Rollup()
    for s in samples[:13]:
        left.add(tuple(s), list(s.values()))
    for s in samples[13:]:
        right.add(tuple(s), list(s.values()))
    left.merge(right)
    expected = _direct(samples)
    for rollup in (whole, left):
        assert rollup.n == 40
        for key, (lo, hi, total, n) in expected.items():
            got = rollup.stats(key)
            assert got is not None
            assert got[0] == lo and got[1] == hi and got[3] == n
            assert got[2] == pytest.approx(total, rel=1e-12)
    assert left.averages()["sometimes"] == pytest.approx(expected["sometimes"][2] / 6)


@pytest.mark.parametrize("packed", [False, True])
def test_rollups_round_trip(packed: bool) -> None:
    rollup = Rollup()
    rollup.add(("a", "b"), [1.25, 1e12])
    rollup.add(("a", "b"), [3.5, 2e12])
    rollup.add(("a", "c"), [0.1 + 0.2, -4.0])  # "b" misses a sample: counts are stored
    lookup = {1: ("a", "b", "c")}
    for keyset in (0, 1):
        back = decode_rollup(encode_rollup(keyset, rollup, packed=packed), lookup)
        assert back == rollup
        keys, n, count, sums = decode_rollup_sums(encode_rollup(keyset, rollup, packed=packed), lookup)
        assert keys == rollup.keys and n == 3 and count == [3, 2, 1] and list(sums) == rollup.total


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _collector_rollups(seed: int, samples: int) -> list[Rollup]:
    model = MachineModel(random.Random(seed), 0.0)
    out: dict[str, Rollup] = {}
    for t in range(60, 60 * (samples + 1), 60):
        for type_, values in model.sample(float(t)).items():
            out.setdefault(type_, Rollup()).add(tuple(values), list(values.values()))
    return list(out.values())


def test_packed_rollups_with_deltas_round_trip_bit_for_bit() -> None:
    """Constants, counters, negative zeros, fractions, huge integers and a key that missed
    samples: every float comes back with the same bits (sums and maxima stored as deltas)."""
    rollup = Rollup()
    rollup.add(("const", "counter", "negzero", "frac", "huge", "some"), [7.0, 1e12, -0.0, 0.1, 2.0**60, 3.0])
    rollup.add(("const", "counter", "negzero", "frac", "huge"), [7.0, 1e12 + 4096, -0.0, 0.2, 2.0**60 + 256])
    rollup.add(
        ("const", "counter", "negzero", "frac", "huge", "some"), [7.0, 1e12 + 9000, -0.0, 0.7, 1.0, -2.0]
    )
    rollups = [rollup, *_collector_rollups(3, 5), *_collector_rollups(4, 60)]
    for r in rollups:
        lookup = {1: r.keys}
        back = decode_rollup(encode_rollup(1, r, packed=True), lookup)
        for got, want in ((back.total, r.total), (back.low, r.low), (back.high, r.high)):
            assert [_bits(v) for v in got] == [_bits(v) for v in want]
        assert back.count == r.count and back.n == r.n
        _, _, _, sums = decode_rollup_sums(encode_rollup(1, r, packed=True), lookup)
        assert [_bits(v) for v in sums] == [_bits(v) for v in r.total]


def test_deltas_make_collector_rollups_smaller() -> None:
    rollups = _collector_rollups(5, 5)  # a 5-minute bucket at 60 s
    lookup = {1: ()}
    plain = 0
    for r in rollups:  # the encoding before deltas: flags without _DELTAS, no bitmap
        head = bytes([1, r.n, 2])
        plain += len(head + encode_values([*r.total, *r.low, *r.high]))
        lookup = {1: r.keys}
        assert decode_rollup(head + encode_values([*r.total, *r.low, *r.high]), lookup) == r
    assert sum(len(encode_rollup(1, r, packed=True)) for r in rollups) < 0.9 * plain


def test_float_rollup_sums_fast_path_matches_the_general_decoder() -> None:
    for r in _collector_rollups(6, 60):
        lookup = {1: r.keys, 300: r.keys}
        for keyset in (1, 300):  # a one-byte keyset takes the fast path, a two-byte one not
            keys, n, count, sums = decode_rollup_sums(encode_rollup(keyset, r), lookup)
            assert (keys, n, count, list(sums)) == (r.keys, r.n, r.count, r.total)
    with pytest.raises(CodecError):
        decode_rollup_sums(encode_rollup(1, _collector_rollups(6, 60)[0]), {})
    with pytest.raises(CodecError):
        decode_rollup_sums(encode_rollup(1, _collector_rollups(6, 60)[0])[:-1], {1: ("a",) * 40})


def test_truncated_blobs_are_codec_errors() -> None:
    blob = encode_sample(1, ("a", "b", "c"), [1.5, 1e12, 7.0])
    with pytest.raises(CodecError):
        decode_sample(blob[:-1], {1: ("a", "b", "c")})  # a value fewer
    with pytest.raises(CodecError):
        point_entries(encode_point([(1, b"abcdef")])[:-1])


def test_average_buckets_add_the_same_floats_as_merging_rollup_by_rollup() -> None:
    """Stored hours (float rows, a keyset the fast path reads, one with a missing key and one
    with other keys) and computed rollups folded into 5-hour buckets: the same averages and
    counts, float for float, as merging the decoded rollups one at a time."""
    base = _collector_rollups(8, 60)[0]
    lookup = {1: base.keys, 2: (*base.keys, "extra")}
    stored: list[tuple[int, bytes]] = []
    computed: list[tuple[int, Rollup]] = []
    rnd = random.Random(9)
    for hour in range(40):
        r = Rollup()
        keys = lookup[2] if hour == 7 else base.keys
        for _ in range(3):
            r.add(keys, [rnd.uniform(-5, 1e9) for _ in keys])
        if hour == 11:
            r.add(base.keys[:-1], [1.5] * (len(base.keys) - 1))  # counts differ per key
        if hour % 10 == 9:
            computed.append((hour * 3600, r))
        else:
            stored.append((hour * 3600, encode_rollup(2 if hour == 7 else 1, r)))
    want: dict[int, Rollup] = {}
    for bucket, data in stored:
        want.setdefault(bucket - bucket % 18000, Rollup()).merge(decode_rollup(data, lookup))
    for bucket, r in computed:
        want.setdefault(bucket - bucket % 18000, Rollup()).merge(r)
    got = average_buckets(stored, computed, 18000, lookup)
    assert [(b, values, n) for b, values, n in got] == [
        (b, r.averages(), r.n) for b, r in sorted(want.items())
    ]


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_average_buckets_of_uniform_hours_read_at_once_equal_the_row_by_row_fold(order: str) -> None:
    """A series' float hours of one keyset (the path that unpacks them all at once, taken
    only in bucket order) and a computed tail: the same floats as merging one at a time."""
    keys = _collector_rollups(8, 60)[0].keys
    lookup = {3: keys}
    rnd = random.Random(10)
    stored: list[tuple[int, bytes]] = []
    for hour in range(1, 60):  # a first bucket of four hours, then of five
        r = Rollup()
        for _ in range(rnd.choice((1, 60))):
            r.add(keys, [rnd.uniform(-1e3, 1e12) for _ in keys])
        stored.append((hour * 3600, encode_rollup(3, r)))
    assert uniform_float_sums([data for _, data in stored], lookup) is not None  # read at once
    if order == "shuffled":
        rnd.shuffle(stored)
    want: dict[int, Rollup] = {}
    for bucket, data in stored:  # in the order given
        want.setdefault(bucket - bucket % 18000, Rollup()).merge(decode_rollup(data, lookup))
    tail = Rollup()
    tail.add(keys, [0.5] * len(keys))
    want[59 * 3600 - 59 * 3600 % 18000].merge(tail)
    got = average_buckets(stored, [(59 * 3600 + 300, tail)], 18000, lookup)
    assert got == [(b, r.averages(), r.n) for b, r in sorted(want.items())]


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=60),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_group_sums_add_each_group_left_to_right(sizes: list[int], seed: int) -> None:
    """Runs of equal groups summed with strided slices give the floats of ``reduce(add)``
    per group, whatever the mix of group sizes (gaps in a series make them uneven)."""
    rnd = random.Random(seed)
    column = [rnd.uniform(-1e12, 1e12) * rnd.choice((1.0, 1e-9)) for _ in range(sum(sizes))]
    edges = [0, *itertools.accumulate(sizes)]
    groups = [slice(i, j) for i, j in itertools.pairwise(edges)]
    want = [functools.reduce(operator.add, column[g]) for g in groups]
    assert _group_sums(column, groups, _equal_runs(groups)) == want
