"""The daemon's gRPC server for :class:`~opsfleet.daemon.rpc.servicer.DaemonServicer`.

Lifecycle: ``start()`` binds (port 0 picks a free one) and returns the bound port;
``stop(grace)`` stops accepting calls, lets running ones finish for ``grace`` seconds,
then cancels them. ``stop()`` is idempotent and safe before ``start()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from opsfleet.common.rpc import DEFAULT_MAX_MESSAGE_BYTES, bind, server_options
from opsfleet.common.tls import server_credentials
from opsfleet.proto import daemon_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerTLS:
    """Server certificate and key; with ``ca_file`` clients must present a certificate from that CA."""

    cert_file: str
    key_file: str
    ca_file: str = ""


class DaemonRpcServer:
    def __init__(
        self,
        servicer: daemon_pb2_grpc.DaemonServiceServicer,
        *,
        host: str,
        port: int,
        tls: ServerTLS | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        min_ping_interval: float = 10.0,
        port_key: str = "daemon.grpc_port",
        tls_key: str = "daemon.tls",
    ) -> None:
        """``port_key``/``tls_key`` name the config keys that ConfigErrors point at."""
        self._servicer = servicer
        self._host = host
        self._port = port
        self._tls = tls
        self._max_message_bytes = max_message_bytes
        self._min_ping_interval = min_ping_interval
        self._port_key = port_key
        self._tls_key = tls_key
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; the bound port. ConfigError (naming the key) when that fails."""
        if self._server is not None:
            return self.port
        credentials = None
        if self._tls is not None:
            credentials = server_credentials(
                cert_file=self._tls.cert_file,
                key_file=self._tls.key_file,
                ca_file=self._tls.ca_file,
                key_prefix=self._tls_key,
            )
        server = grpc.aio.server(options=server_options(self._max_message_bytes, self._min_ping_interval))
        daemon_pb2_grpc.add_DaemonServiceServicer_to_server(self._servicer, server)
        try:
            self.port = bind(server, self._host, self._port, credentials, key=self._port_key)
        except BaseException:
            await server.stop(None)
            raise
        await server.start()
        self._server = server
        mode = "mTLS" if self._tls and self._tls.ca_file else "TLS" if self._tls else "plaintext"
        log.info("daemon gRPC listening on %s:%d (%s)", self._host, self.port, mode)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(grace)
        log.info("daemon gRPC server stopped")
