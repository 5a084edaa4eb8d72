"""Compact binary encodings of metric samples and rollups (pure functions, no I/O).

A stored sample is ``varint(keyset)`` followed by its values. ``keyset`` is the small id
of the sample's tuple of value keys (the ``metric_keysets`` table; a fleet sends a handful);
keyset 0 means the key names follow inline (a JSON list after a varint length), the fallback
once the keyset table is full. Then the values in key order as packed decimal text (see
:func:`encode_values`): collectors send integers (byte counts) and two-decimal numbers
(percentages), which take a nibble per digit, about 4 bytes a value instead of 8.
Every finite float round-trips exactly (Python's ``repr`` is the shortest exact form);
NaN and infinities are refused (validation drops them before they get here).

A rollup (one node, one type, one 5-minute or 1-hour bucket) holds the sample count and,
per key, the count of samples holding the key, their sum, min and max: merging two is exact.
A point is every sample of one node at one timestamp: ``varint(type key) + varint(length) +
sample`` per type. A block is the points of one node in one 5-minute bucket with their timestamps and lengths
ahead of them, DEFLATE-compressed (:func:`encode_block`, metric_raw.py).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import add

Keys = tuple[str, ...]
_U16 = struct.Struct("<H")
BLOCK_LEVEL = 1
"""zlib's compression level of blocks: its fastest, as small as its default on these points."""


class CodecError(ValueError):
    """A blob that does not decode (corrupt or written by a newer version)."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    n = 0
    while True:
        if pos >= len(data):
            raise CodecError("truncated varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


_VARINTS = [_varint(i) for i in range(1 << 14)]


def keyset_prefix(keyset: int, keys: Keys) -> bytes:
    """The head of a blob: the keyset id, or 0 and the keys inline when ``keyset`` is 0."""
    if keyset:
        return _VARINTS[keyset] if keyset < len(_VARINTS) else _varint(keyset)
    names = json.dumps(list(keys), separators=(",", ":")).encode()
    return b"\x00" + _varint(len(names)) + names


def read_keyset(data: bytes, lookup: Mapping[int, Keys]) -> tuple[Keys, int]:
    """The keys of a blob and the offset of what follows them."""
    keyset, pos = _read_varint(data, 0)
    if keyset:
        try:
            return lookup[keyset], pos
        except KeyError:
            raise CodecError(f"unknown keyset {keyset}") from None
    length, pos = _read_varint(data, pos)
    keys = tuple(json.loads(data[pos : pos + length]))
    return keys, pos + length


_TO_NIBBLES = str.maketrans(".,-e+", "abcde")
_FROM_NIBBLES = str.maketrans("abcde", ".,-e+")


def encode_values(values: Iterable[float]) -> bytes:
    """The values as packed decimal text: Python's shortest round-trip ``repr`` of each
    (``.0`` dropped), comma-separated, one 4-bit nibble per character (digits, ``.``, ``,``,
    ``-``, ``e``, ``+``; ``f`` pads the last byte). String work in C: the hot path of ingest."""
    text = (",".join(map(repr, values)) + ",").replace(".0,", ",")[:-1].translate(_TO_NIBBLES)
    if len(text) & 1:
        text += "f"
    try:
        return bytes.fromhex(text)
    except ValueError:  # "nan", "inf": letters outside the alphabet
        raise ValueError("metric values must be finite numbers") from None


def decode_values(data: bytes, pos: int, count: int) -> list[float]:
    """The ``count`` values encoded by :func:`encode_values` in ``data[pos:]``."""
    if not count:
        return []
    parts = data[pos:].hex().rstrip("f").translate(_FROM_NIBBLES).split(",")
    if len(parts) != count:
        raise CodecError(f"{len(parts)} values where {count} were expected")
    try:
        return list(map(float, parts))
    except ValueError:
        raise CodecError("malformed values") from None


def encode_sample(keyset: int, keys: Keys, values: Sequence[float]) -> bytes:
    return keyset_prefix(keyset, keys) + encode_values(values)


def decode_sample(data: bytes, lookup: Mapping[int, Keys]) -> dict[str, float]:
    keys, pos = read_keyset(data, lookup)
    return dict(zip(keys, decode_values(data, pos, len(keys)), strict=True))


def decode_one(data: bytes, lookup: Mapping[int, Keys], key: str) -> float | None:
    """One value of a stored sample (None when the sample does not hold ``key``)."""
    keys, pos = read_keyset(data, lookup)
    try:
        index = keys.index(key)
    except ValueError:
        return None
    return decode_values(data, pos, len(keys))[index]


@dataclass
class Rollup:
    """count / sum / min / max of every key over the samples of one bucket; merges exactly.

    ``n`` counts samples; ``count[i]`` the samples holding ``keys[i]``.
    """

    keys: Keys = ()
    n: int = 0
    count: list[int] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    def add(self, keys: Keys, values: Sequence[float]) -> None:
        """Count one sample."""
        if keys == self.keys:
            self.n += 1
            self.count = [c + 1 for c in self.count]
            self.total = list(map(add, self.total, values))
            self.low = list(map(min, self.low, values))
            self.high = list(map(max, self.high, values))
            return
        vals = list(values)
        self.merge(Rollup(keys, 1, [1] * len(keys), vals, vals, vals))

    def merge(self, other: Rollup) -> None:
        """Fold ``other`` in (exact: sums and counts add, extremes compare)."""
        if other.keys == self.keys:
            self.n += other.n
            self.count = list(map(add, self.count, other.count))
            self.total = list(map(add, self.total, other.total))
            self.low = list(map(min, self.low, other.low))
            self.high = list(map(max, self.high, other.high))
            return
        index = {k: i for i, k in enumerate(self.keys)}
        keys = list(self.keys)
        for k in other.keys:
            if k not in index:
                index[k] = len(keys)
                keys.append(k)
                self.count.append(0)
                self.total.append(0.0)
                self.low.append(math.inf)
                self.high.append(-math.inf)
        for j, k in enumerate(other.keys):
            i = index[k]
            self.count[i] += other.count[j]
            self.total[i] += other.total[j]
            self.low[i] = min(self.low[i], other.low[j])
            self.high[i] = max(self.high[i], other.high[j])
        self.keys = tuple(keys)
        self.n += other.n

    def averages(self) -> dict[str, float]:
        return {k: self.total[i] / c for i, (k, c) in enumerate(zip(self.keys, self.count, strict=True)) if c}

    def stats(self, key: str) -> tuple[float, float, float, int] | None:
        """(min, max, sum, count) of one key; None when no sample held it."""
        if key not in self.keys:
            return None
        i = self.keys.index(key)
        if not self.count[i]:
            return None
        return self.low[i], self.high[i], self.total[i], self.count[i]


_FLOATS: dict[int, struct.Struct] = {}


def _floats(size: int) -> struct.Struct:
    s = _FLOATS.get(size)
    if s is None:
        s = _FLOATS[size] = struct.Struct(f"<{size}d")
    return s


_COUNTS = 1
_PACKED = 2
_DELTAS = 4


def _same(a: float, b: float) -> bool:
    """Bit-identical (``-0.0`` is not ``0.0`` here)."""
    return a == b and (a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b))


def _deltas(rollup: Rollup) -> tuple[int, list[float]]:
    """The bitmap of keys stored as deltas, and the values to pack: per delta key (integral
    values, such as byte counters and constants) the sum less ``count * min`` and the max less
    the min, which are short or zero; only where the decoder's arithmetic gives back the exact
    stored floats."""
    total, low, high = list(rollup.total), rollup.low, list(rollup.high)
    bits = 0
    for i, (c, s, lo, hi) in enumerate(zip(rollup.count, rollup.total, low, high, strict=True)):
        if lo % 1 or hi % 1 or s % 1:  # fractions (an infinity gives NaN: true)
            continue
        ds, dh = s - c * lo, hi - lo
        if _same(c * lo + ds, s) and _same(lo + dh, hi):
            bits |= 1 << i
            total[i], high[i] = ds, dh
    return bits, [*total, *low, *high]


def _undo_deltas(bits: int, count: Sequence[int], flat: Sequence[float]) -> list[float]:
    out = list(flat)
    size = len(count)
    for i in range(size):
        if bits >> i & 1:
            lo = out[size + i]
            out[i] = count[i] * lo + out[i]
            out[2 * size + i] = lo + out[2 * size + i]
    return out


def encode_rollup(keyset: int, rollup: Rollup, *, packed: bool = False) -> bytes:
    """keyset, n, flags, per-key counts (only when some key missed samples), then the sums,
    minima and maxima: as float64 (fastest to write and read: the 1-hour rollups, rewritten by
    every batch and read by long charts) or, when ``packed``, in the value encoding (integral
    byte counters take 1-6 bytes: the many 5-minute rollups) after a bitmap of the keys whose
    sum and max are stored as deltas from the min (see :func:`_deltas`: a constant takes a
    value and two zeros)."""
    size = len(rollup.keys)
    flags = 0 if all(c == rollup.n for c in rollup.count) else _COUNTS
    if packed:
        flags |= _PACKED | _DELTAS
    head = keyset_prefix(keyset, rollup.keys) + _varint(rollup.n) + bytes([flags])
    if flags & _COUNTS:
        head += b"".join(_varint(c) for c in rollup.count)
    if packed:
        bits, values = _deltas(rollup)
        return head + bits.to_bytes((size + 7) // 8, "little") + encode_values(values)
    return head + _floats(3 * size).pack(*rollup.total, *rollup.low, *rollup.high)


def _rollup_head(data: bytes, lookup: Mapping[int, Keys]) -> tuple[Keys, int, list[int], int, int]:
    keys, pos = read_keyset(data, lookup)
    n, pos = _read_varint(data, pos)
    if pos >= len(data):
        raise CodecError("truncated rollup")
    flags = data[pos]
    pos += 1
    if flags & _COUNTS:
        count = []
        for _ in keys:
            c, pos = _read_varint(data, pos)
            count.append(c)
    else:
        count = [n] * len(keys)
    return keys, n, count, flags, pos


def _rollup_values(data: bytes, pos: int, flags: int, count: Sequence[int]) -> Sequence[float]:
    """The sums, minima and maxima of a rollup whose per-key counts are ``count``."""
    size = len(count)
    if flags & _PACKED:
        if not flags & _DELTAS:
            return decode_values(data, pos, 3 * size)
        width = (size + 7) // 8
        if pos + width > len(data):
            raise CodecError("truncated rollup")
        bits = int.from_bytes(data[pos : pos + width], "little")
        flat = decode_values(data, pos + width, 3 * size)
        return _undo_deltas(bits, count, flat) if bits else flat
    try:
        return _floats(3 * size).unpack_from(data, pos)
    except struct.error as exc:
        raise CodecError(f"bad rollup: {exc}") from None


def decode_rollup(data: bytes, lookup: Mapping[int, Keys]) -> Rollup:
    keys, n, count, flags, pos = _rollup_head(data, lookup)
    size = len(keys)
    flat = _rollup_values(data, pos, flags, count)
    return Rollup(keys, n, count, list(flat[:size]), list(flat[size : 2 * size]), list(flat[2 * size :]))


def decode_rollup_sums(
    data: bytes, lookup: Mapping[int, Keys]
) -> tuple[Keys, int, list[int], Sequence[float]]:
    """keys, n, per-key counts and sums: what averages need."""
    if len(data) > 3 and 0 < data[0] < 0x80 and data[1] < 0x80 and not data[2]:
        # The common 1-hour row: a one-byte keyset and count, float64 values, every key in
        # every sample; read straight (a year's chart decodes 8,760 of them).
        try:
            keys = lookup[data[0]]
        except KeyError:
            raise CodecError(f"unknown keyset {data[0]}") from None
        size = len(keys)
        try:
            return keys, data[1], [data[1]] * size, _floats(size).unpack_from(data, 3)
        except struct.error as exc:
            raise CodecError(f"bad rollup: {exc}") from None
    keys, n, count, flags, pos = _rollup_head(data, lookup)
    size = len(keys)
    if flags & _PACKED:
        return keys, n, count, _rollup_values(data, pos, flags, count)[:size]
    try:
        return keys, n, count, _floats(size).unpack_from(data, pos)
    except struct.error as exc:
        raise CodecError(f"bad rollup: {exc}") from None


def uniform_float_sums(
    blobs: Sequence[bytes], lookup: Mapping[int, Keys]
) -> tuple[Keys, bytes, list[tuple[float, ...]]] | None:
    """When every blob is a float rollup of the same one-byte keyset with a one-byte count and
    every key in every sample (the 1-hour rows of one series): the keys, each blob's count
    (a byte each) and each blob's sums, unpacked in one pass in C. None otherwise."""
    if not blobs or len(blobs[0]) < 4:
        return None
    keyset = blobs[0][0]
    keys = lookup.get(keyset) if keyset < 0x80 else None
    if not keys:
        return None
    size = len(keys)
    length = 3 + 24 * size
    if set(map(len, blobs)) != {length}:
        return None
    joined = b"".join(blobs)
    count = len(blobs)
    ns = joined[1::length]
    if joined[0::length] != bytes([keyset]) * count or joined[2::length] != bytes(count) or max(ns) >= 0x80:
        return None
    return keys, ns, list(struct.iter_unpack(f"<3x{size}d{16 * size}x", joined))


def encode_point(entries: Iterable[tuple[int, bytes]]) -> bytes:
    """The samples of one node at one timestamp: (type key, encoded sample) entries."""
    out = bytearray()
    for type_key, blob in entries:
        out += _varint(type_key)
        out += _varint(len(blob))
        out += blob
    return bytes(out)


def point_entries(data: bytes) -> list[tuple[int, bytes]]:
    """(type key, encoded sample) of every sample in a point."""
    out = []
    pos = 0
    while pos < len(data):
        type_key, pos = _read_varint(data, pos)
        length, pos = _read_varint(data, pos)
        if pos + length > len(data):
            raise CodecError("truncated point")
        out.append((type_key, data[pos : pos + length]))
        pos += length
    return out


def point_entry(data: bytes, type_key: int) -> bytes | None:
    """The encoded sample of one type in a point (None when the point has none)."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        length, pos = _read_varint(data, pos)
        if key == type_key:
            if pos + length > len(data):
                raise CodecError("truncated point")
            return data[pos : pos + length]
        pos += length
    return None


def encode_block(bucket: int, points: Sequence[tuple[int, bytes]]) -> bytes:
    """The points (timestamp, encoded point) of one node in one 5-minute bucket starting at
    ``bucket``, in the order given: ``u16 count``, the ``u16`` offsets of their timestamps from
    ``bucket``, the ``u32`` lengths of the points, then the points; little-endian, compressed
    with raw DEFLATE (no header: about a sixth smaller, values and keysets repeat from one
    point to the next). Fixed widths, so that a read unpacks the head in two C calls."""
    count = len(points)
    head = struct.pack(
        f"<H{count}H{count}I", count, *(ts - bucket for ts, _ in points), *(len(p) for _, p in points)
    )
    deflate = zlib.compressobj(BLOCK_LEVEL, zlib.DEFLATED, -15)
    return deflate.compress(head + b"".join(p for _, p in points)) + deflate.flush()


def block_points(bucket: int, data: bytes) -> list[tuple[int, bytes]]:
    """(timestamp, encoded point) of every point in a block (see :func:`encode_block`)."""
    try:
        plain = zlib.decompress(data, -15)
        (count,) = _U16.unpack_from(plain)
        offsets = struct.unpack_from(f"<{count}H", plain, 2)
        lengths = struct.unpack_from(f"<{count}I", plain, 2 + 2 * count)
    except (zlib.error, struct.error) as exc:
        raise CodecError(f"corrupt block: {exc}") from None
    ends = list(accumulate(lengths, initial=2 + 6 * count))
    if ends[-1] != len(plain):
        raise CodecError("truncated block")
    return [
        (bucket + offset, plain[start:end])
        for offset, start, end in zip(offsets, ends, ends[1:], strict=False)
    ]
