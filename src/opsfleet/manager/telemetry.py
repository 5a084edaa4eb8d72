"""Prometheus metrics of one Manager process, on a private registry.

gRPC calls are counted by method and status code with a latency histogram, recorded by the
servicers' edge wrapper (``opsfleet.common.rpc_errors``; a grpc.aio interceptor cost ~15 % of
throughput). Metric write batches are observed through ``MetricService.batch_observer``,
and fleet gauges (nodes by status, latest usage per node) are refreshed by the caller right
before each scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_ROW_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def _code_name(code: object, failed: bool) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int) and code in _CODE_NAMES:
        return _CODE_NAMES[code]
    return "UNKNOWN" if failed else "OK"


class Telemetry:
    """The process's metrics. Thread-safe counters; ``render()`` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._rpc_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        r = self.registry
        self.rpc_handled = Counter(
            "opsfleet_grpc_server_handled",
            "gRPC calls served, by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "opsfleet_grpc_server_handling_seconds",
            "gRPC call latency by method",
            ["method"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "opsfleet_metrics_write_batch_rows",
            "Samples per metrics write transaction",
            buckets=BATCH_ROW_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "opsfleet_metrics_write_batch_seconds",
            "Duration of metrics write transactions",
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.nodes = Gauge("opsfleet_nodes", "Registered nodes by status", ["status"], registry=r)
        self.connected_daemons = Gauge(
            "opsfleet_connected_daemons", "Daemons currently heard from (nodes online)", registry=r
        )
        self.node_usage = Gauge(
            "opsfleet_node_usage_percent",
            "Latest usage_percent per node and metric type",
            ["node_id", "type"],
            registry=r,
        )

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One served gRPC call (called by the servicers' edge wrapper, ``common/rpc_errors.py``)."""
        children = self._rpc_children.get((method, code))
        if children is None:
            children = (
                self.rpc_handled.labels(method=method, code=code),
                self.rpc_seconds.labels(method=method),
            )
            self._rpc_children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, rows: int, seconds: float) -> None:
        """``MetricService.batch_observer``: one committed write batch."""
        self.batch_rows.observe(rows)
        self.batch_seconds.observe(seconds)

    def set_fleet(self, counts: Mapping[str, int], usage: Iterable[tuple[str, str, float]]) -> None:
        """Replace the fleet gauges: node counts by status and (node_id, type, usage_percent) rows."""
        for status in ("online", "offline"):
            self.nodes.labels(status=status).set(counts.get(status, 0))
        self.connected_daemons.set(counts.get("online", 0))
        self.node_usage.clear()
        for node_id, type_, value in usage:
            self.node_usage.labels(node_id=node_id, type=type_).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
