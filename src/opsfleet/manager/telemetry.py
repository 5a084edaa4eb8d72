"""Prometheus metrics of one Manager process, on a private registry.

gRPC calls are counted by method and status code with a latency histogram (a server
interceptor), metric write batches are observed through ``MetricService.batch_observer``,
and fleet gauges (nodes by status, latest usage per node) are refreshed by the caller right
before each scrape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

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

    def grpc_interceptor(self) -> grpc.aio.ServerInterceptor[Any, Any]:
        return _RpcMetricsInterceptor(self)


if TYPE_CHECKING:
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:  # not subscriptable at run time
    _InterceptorBase = grpc.aio.ServerInterceptor


class _RpcMetricsInterceptor(_InterceptorBase):
    """Wraps each method's handler once (cached per method) so the per-call cost stays small."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._t = telemetry
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        inner = getattr(handler, "unary_unary", None) if handler is not None else None
        if inner is None:
            return handler  # every opsfleet RPC is unary; others pass through unmeasured
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is inner:
            return cached[1]
        wrapped = self._wrap(method, handler, inner)
        self._wrapped[method] = (inner, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any, inner: Any) -> grpc.RpcMethodHandler[Any, Any]:
        telemetry = self._t
        seconds = telemetry.rpc_seconds.labels(method=method)
        handled: dict[str, Any] = {}

        async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            failed = True
            cancelled = False
            try:
                response = await inner(request, context)
                failed = False
                return response
            except asyncio.CancelledError:
                cancelled = True
                raise
            finally:
                code = "CANCELLED" if cancelled else _code_name(context.code(), failed)
                counter = handled.get(code)
                if counter is None:
                    counter = handled[code] = telemetry.rpc_handled.labels(method=method, code=code)
                counter.inc()
                seconds.observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            measured,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
