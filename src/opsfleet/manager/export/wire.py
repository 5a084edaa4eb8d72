"""The remote-write 1.0 request body: a snappy-compressed (block format) WriteRequest.

This module is the one place outside ``rpc/`` that touches generated protobuf types: it is
the wire adapter of the remote-write exporter, as ``rpc/`` is of gRPC.

A series' labels are serialised once by the generated ``TimeSeries`` and the bytes reused
(:func:`encode_labels`); samples and the request around them are written directly in
protobuf's wire format by :class:`RequestBuilder`. Concatenated encodings of one message
merge, so the labels' bytes followed by the samples' fields are the whole ``TimeSeries``:
this is how the exporter keeps up with ingestion (the unit tests parse the result back with
the generated classes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import cramjam

from opsfleet.manager.export.series import Labels
from opsfleet.proto import prometheus_remote_pb2 as prompb

CONTENT_TYPE = "application/x-protobuf"
CONTENT_ENCODING = "snappy"
PROTOCOL_VERSION = "0.1.0"

Series = tuple[Labels, Sequence[tuple[int, float]]]
"""Sorted labels (with ``__name__``) and (timestamp in milliseconds, value) in time order."""

# Tags (field number << 3 | wire type) of the fields written here by hand.
_WRITE_REQUEST_TIMESERIES = b"\x0a"  # WriteRequest.timeseries = 1, length-delimited
_TIMESERIES_SAMPLES = b"\x12"  # TimeSeries.samples = 2, length-delimited
_SAMPLE_VALUE = b"\x09"  # Sample.value = 1, 64-bit
_SAMPLE_TIMESTAMP = b"\x10"  # Sample.timestamp = 2, varint
_DOUBLE = struct.Struct("<d")


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of an int64 (negative numbers as 10-byte two's complement)."""
    if 0 <= value < 0x80:
        return bytes((value,))
    if 0 <= value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_labels(labels: Labels) -> bytes:
    """The ``labels`` field of a TimeSeries (sorted pairs, ``__name__`` included)."""
    ts = prompb.TimeSeries()
    for name, value in labels:
        ts.labels.add(name=name, value=value)
    return ts.SerializeToString()


def _sample_frame(timestamp_ms: int) -> tuple[bytes, bytes]:
    """What goes before and after the 8 value bytes of one Sample field with this timestamp."""
    tail = _SAMPLE_TIMESTAMP + varint(timestamp_ms)
    body_length = len(_SAMPLE_VALUE) + _DOUBLE.size + len(tail)
    return _TIMESERIES_SAMPLES + varint(body_length) + _SAMPLE_VALUE, tail


class RequestBuilder:
    """Collects TimeSeries for one WriteRequest; :meth:`finish` gives the compressed body.

    The framing of a timestamp is computed once per request (a batch has few distinct ones)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._frames: dict[int, tuple[bytes, bytes]] = {}

    def add(self, labels: bytes, samples: Iterable[tuple[int, float]]) -> None:
        """One series: its encoded labels and (timestamp ms, value) in time order."""
        chunks = [labels]
        frames = self._frames
        pack = _DOUBLE.pack
        for timestamp_ms, value in samples:
            frame = frames.get(timestamp_ms)
            if frame is None:
                frame = frames[timestamp_ms] = _sample_frame(timestamp_ms)
            chunks += (frame[0], pack(value), frame[1])
        body = b"".join(chunks)
        self._parts += (_WRITE_REQUEST_TIMESERIES + varint(len(body)), body)

    def finish(self) -> bytes:
        return bytes(cramjam.snappy.compress_raw(b"".join(self._parts)))


def encode(series: Iterable[Series]) -> bytes:
    """The compressed WriteRequest for ``series``."""
    builder = RequestBuilder()
    for labels, samples in series:
        builder.add(encode_labels(labels), samples)
    return builder.finish()


def decode(body: bytes) -> list[Series]:
    """The series of a compressed WriteRequest (for receivers in tests and benchmarks)."""
    request = prompb.WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return [
        (
            tuple((label.name, label.value) for label in ts.labels),
            [(sample.timestamp, sample.value) for sample in ts.samples],
        )
        for ts in request.timeseries
    ]


def headers() -> dict[str, str]:
    return {
        "Content-Type": CONTENT_TYPE,
        "Content-Encoding": CONTENT_ENCODING,
        "X-Prometheus-Remote-Write-Version": PROTOCOL_VERSION,
    }
