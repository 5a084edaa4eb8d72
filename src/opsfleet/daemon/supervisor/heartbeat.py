"""The local endpoint where agents send heartbeats: ``POST /heartbeat`` on 127.0.0.1.

Body: ``{"agent_id": "...", "status": "...", "cpu": 1.5, "memory": 123456}`` (``cpu`` and
``memory`` optional). Answers 200 when recorded, 404 for an agent the daemon does not
supervise, 400 for a malformed body. A deliberately small HTTP/1.1 server on asyncio
streams: one request per connection, bounded sizes and a read timeout.

Lifecycle: ``start()`` binds; ``stop()`` closes the listener and cancels open connections;
no heartbeat is delivered after ``stop()`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_HEADER_LINES = 64
READ_TIMEOUT = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
}


@dataclass(frozen=True)
class Heartbeat:
    agent_id: str
    status: str
    cpu: float | None = None
    memory: int | None = None


HeartbeatHandler = Callable[[Heartbeat], bool]
"""Records a heartbeat; False when the agent is unknown."""


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_heartbeat(body: bytes) -> Heartbeat:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(400, f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _BadRequest(400, "body must be a JSON object")
    agent_id = data.get("agent_id")
    status = data.get("status", "")
    cpu = data.get("cpu")
    memory = data.get("memory")
    if not isinstance(agent_id, str) or not agent_id:
        raise _BadRequest(400, "agent_id must be a non-empty string")
    if not isinstance(status, str):
        raise _BadRequest(400, "status must be a string")
    if cpu is not None and (
        isinstance(cpu, bool) or not isinstance(cpu, int | float) or not math.isfinite(cpu)
    ):
        raise _BadRequest(400, "cpu must be a number")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int | float)):
        raise _BadRequest(400, "memory must be a number")
    return Heartbeat(
        agent_id=agent_id,
        status=status,
        cpu=float(cpu) if cpu is not None else None,
        memory=int(memory) if memory is not None and math.isfinite(memory) else None,
    )


class HeartbeatServer:
    def __init__(self, host: str, port: int, on_heartbeat: HeartbeatHandler) -> None:
        self._host = host
        self._requested_port = port
        self._on_heartbeat = on_heartbeat
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[object]] = set()
        self._closed = False
        self.port = 0

    async def start(self) -> None:
        """Bind and accept; OSError when the address cannot be used."""
        self._server = await asyncio.start_server(self._handle, self._host, self._requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("agent heartbeat endpoint listening on http://%s:%d/heartbeat", self._host, self.port)

    async def stop(self) -> None:
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    heartbeat = await self._read_request(reader)
                if self._closed:
                    return
                payload: dict[str, object]
                if self._on_heartbeat(heartbeat):
                    status, payload = 200, {"ok": True}
                else:
                    status, payload = 404, {"error": f"unknown agent {heartbeat.agent_id!r}"}
            except _BadRequest as exc:
                status, payload = exc.status, {"error": exc.message}
            body = json.dumps(payload).encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ValueError:  # a line over the stream limit
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)

    async def _read_request(self, reader: asyncio.StreamReader) -> Heartbeat:
        request_line = (await reader.readline()).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3:
            raise _BadRequest(400, "malformed request line")
        method, target, _ = parts
        length: int | None = None
        for _ in range(MAX_HEADER_LINES):
            line = (await reader.readline()).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                if not value.strip().isdigit():
                    raise _BadRequest(400, "bad Content-Length")
                length = int(value.strip())
        else:
            raise _BadRequest(400, "too many headers")
        if target.split("?", 1)[0] != "/heartbeat":
            raise _BadRequest(404, f"no such path {target!r}")
        if method != "POST":
            raise _BadRequest(405, "use POST")
        if length is None:
            raise _BadRequest(411, "Content-Length required")
        if length > MAX_BODY_BYTES:
            raise _BadRequest(400, f"body larger than {MAX_BODY_BYTES} bytes")
        return parse_heartbeat(await reader.readexactly(length))
