"""The HTTP server of the REST API: uvicorn on the Manager's event loop, as one owned task.

``start()`` binds the socket itself (so port 0 works, and a bad address is a ConfigError
naming ``server.port`` instead of uvicorn's ``sys.exit``), then serves until ``stop()``,
which stops accepting, lets in-flight requests finish within ``grace`` and awaits the task.
uvicorn's own signal handling is disabled: the Manager's signal handlers stay in charge.
If the server task ends while serving (a crash, or uvicorn returning on its own), that is
reported to the crash policy current at ``start()`` (common/lifecycle.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from opsfleet.common.errors import ConfigError
from opsfleet.common.lifecycle import CrashHandler, current_crash_handler

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the Manager owns SIGINT/SIGTERM

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"config key 'server.host': cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"config key 'server.port': cannot listen on {host}:{port}: {exc}") from exc
    return sock


class HttpServer:
    """``start()`` then ``stop()``; ``stop()`` is idempotent and safe before ``start()``."""

    def __init__(self, app: FastAPI, host: str, port: int, *, grace: float = 5.0) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._grace = grace
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._serving = False
        self._on_crash: CrashHandler | None = None
        self.port = 0

    async def start(self) -> None:
        sock = _bind(self._host, self._port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_level="warning",
            log_config=None,
            access_log=False,
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=max(1, round(self._grace)),
        )
        server = _EmbeddedServer(config)
        self._server = server
        self._on_crash = current_crash_handler()
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="http:serve")
        self._task.add_done_callback(self._done)
        ready = asyncio.create_task(server.ready.wait(), name="http:ready")
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            sock.close()
            exc = self._task.exception() if not self._task.cancelled() else None
            raise ConfigError(f"config key 'server.port': HTTP server failed to start: {exc}") from exc
        self._serving = True
        log.info("HTTP listening on %s:%d", self._host, self.port)

    def _done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("HTTP server crashed", exc_info=exc)
        if not self._serving or task.cancelled():
            return  # stopping (or torn down), or start() reports the failure itself
        self._serving = False
        if self._on_crash is not None:
            self._on_crash(task.get_name(), exc or RuntimeError("the HTTP server stopped on its own"))

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        self._serving = False
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self._grace + 2.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("HTTP server stopped")
