"""A node's channel waits for a slow TLS handshake instead of aborting it and starting over.

After a Manager restart thousands of nodes reconnect at once and their handshakes are
answered late. With a connection timeout of 0.5 s (``grpc.min_reconnect_backoff_ms``,
the daemon's setting before) every handshake slower than that was cut and retried, so the
Manager did each one several times exactly when it had the least time for them.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from opsfleet.common import rpc as rpc_opts
from tests.fleet_certs import FleetPKI

HANDSHAKE_DELAY = 1.5  # seconds the server's first bytes of every connection are held back


class SlowStartProxy:
    """Forwards TCP to ``port``, holding back the server's first bytes of every connection."""

    def __init__(self, port: int) -> None:
        self._target = port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, delay=0.0),
            self._pipe(up_reader, writer, delay=HANDSHAKE_DELAY),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delay: float) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                    delay = 0.0
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@pytest.mark.asyncio
async def test_a_slow_tls_handshake_completes_on_the_first_connection() -> None:
    fleet = FleetPKI()
    material = fleet.manager()
    server = grpc.aio.server()
    port = server.add_secure_port(
        "127.0.0.1:0", grpc.ssl_server_credentials([(material.key_pem, material.cert_pem)])
    )
    await server.start()
    proxy = SlowStartProxy(port)
    await proxy.start()
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{proxy.port}",
        grpc.ssl_channel_credentials(root_certificates=fleet.ca_pem),
        options=[
            *rpc_opts.channel_options(),
            *rpc_opts.reconnect_options(),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout=20)
        assert proxy.connections == 1, f"{proxy.connections} connections for one channel"
    finally:
        await channel.close()
        await proxy.close()
        await server.stop(None)
