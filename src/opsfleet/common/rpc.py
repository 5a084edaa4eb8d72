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


def server_options(
    max_message_bytes: int, min_ping_interval: float = 10.0, *, reuse_port: bool = False
) -> list[tuple[str, Any]]:
    """Server channel arguments; ``reuse_port`` lets several processes share one listening port."""
    min_ping_ms = int(min_ping_interval * 1000)
    return [
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


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    return [
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
