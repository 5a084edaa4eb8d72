"""gRPC channel and server options shared by both processes.

Keepalive is matched on both ends: clients ping every ``CLIENT_KEEPALIVE_TIME_MS`` (30 s)
and servers accept pings every ``min_ping_interval`` (10 s by default) or slower, so a
well-behaved client never triggers ``too_many_pings``.
"""

from __future__ import annotations

from typing import Any

import grpc

from opsfleet.common.errors import ConfigError

CLIENT_KEEPALIVE_TIME_MS = 30_000
CLIENT_KEEPALIVE_TIMEOUT_MS = 10_000
SERVER_KEEPALIVE_TIME_MS = 60_000
SERVER_KEEPALIVE_TIMEOUT_MS = 20_000
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
STREAM_WINDOW_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_PENDING_CALLS = 50_000
"""Calls a server holds while its event loop has not yet taken them (see :func:`server_options`)."""


_FLOW_CONTROL: list[tuple[str, Any]] = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
]
"""A fixed 4 MiB stream window instead of gRPC's bandwidth-delay-product probing, on both ends.

BDP probing sends HTTP/2 pings as data arrives, to grow the window for bulk transfers. A
fleet's connections carry one small call every few seconds each, and then every call is
"new data" that sets off probing: with thousands of connections the pings cost a Manager
about a fifth of its CPU per call (docs/performance.md, "One connection per node"). A fixed
window of 4 MiB keeps bulk downloads (FetchArtifact) fast on long round trips: 4 MiB in
flight is 40 MB/s at 100 ms.
"""


def server_options(
    max_message_bytes: int,
    min_ping_interval: float = 10.0,
    *,
    reuse_port: bool = False,
    max_pending_calls: int = DEFAULT_MAX_PENDING_CALLS,
) -> list[tuple[str, Any]]:
    """Server channel arguments; ``reuse_port`` lets several processes share one listening port.

    ``max_pending_calls``: calls that arrived but that grpc.aio's serving loop has not taken
    yet wait in gRPC core's pending queue. Core's default bounds that queue at 1,000 calls
    (beyond it, calls are dropped at random up to a hard limit of 3,000) and the client sees
    CANCELLED: with thousands of nodes on their own connections, a burst (a restart, a
    garbage collection, a large commit) passes 1,000 within milliseconds. Waiting calls cost
    no Python time and are still dropped when their deadline passes or after 30 s
    (core's ``grpc.server_max_unrequested_time_in_server``), so the bound is set to the size
    of the fleet a Manager serves.
    """
    min_ping_ms = int(min_ping_interval * 1000)
    return [
        *_FLOW_CONTROL,
        ("grpc.server.max_pending_requests", max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", max_pending_calls),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", SERVER_KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.min_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


RECONNECT_INITIAL_MS = 500
RECONNECT_MAX_MS = 5_000
CONNECT_TIMEOUT_MS = 20_000


def reconnect_options() -> list[tuple[str, int]]:
    """gRPC's own reconnect policy for a node's channel to the Manager (daemon and simulator).

    A channel whose Manager is down probes it again after 0.5 s, growing to at most 5 s
    (with gRPC's jitter), so a node is back within seconds of a restart. Each attempt gets
    at least ``CONNECT_TIMEOUT_MS`` (gRPC's default, 20 s; core calls it
    ``min_reconnect_backoff_ms``) to finish its TCP and TLS handshakes: a Manager that
    thousands of nodes reconnect to at once answers handshakes late, and a shorter
    timeout would abort them half done and start them again, multiplying the handshake work
    exactly when the Manager has the least time for it. Refused connections (a Manager
    that is down) fail at once whatever the timeout.
    """
    return [
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_INITIAL_MS),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
        ("grpc.min_reconnect_backoff_ms", CONNECT_TIMEOUT_MS),
    ]


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    return [
        *_FLOW_CONTROL,
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", CLIENT_KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 0),
    ]


def bind(
    server: grpc.aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None, *, key: str
) -> int:
    """Bind ``host:port`` (port 0 picks a free one); the bound port. ConfigError naming ``key``."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError as exc:
        raise ConfigError(f"config key '{key}': cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise ConfigError(f"config key '{key}': cannot listen on {address} (in use or not permitted)")
    return bound
