"""The remote-write 1.0 request body: a snappy-compressed (block format) WriteRequest.

This module is the one place outside ``rpc/`` that touches generated protobuf types: it is
the wire adapter of the remote-write exporter, as ``rpc/`` is of gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cramjam

from opsfleet.manager.export.series import Labels
from opsfleet.proto import prometheus_remote_pb2 as prompb

CONTENT_TYPE = "application/x-protobuf"
CONTENT_ENCODING = "snappy"
PROTOCOL_VERSION = "0.1.0"

Series = tuple[Labels, Sequence[tuple[int, float]]]
"""Sorted labels (with ``__name__``) and (timestamp in milliseconds, value) in time order."""


def encode(series: Iterable[Series]) -> bytes:
    """The compressed WriteRequest for ``series``."""
    request = prompb.WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for timestamp_ms, sample_value in samples:
            ts.samples.add(value=sample_value, timestamp=timestamp_ms)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


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
