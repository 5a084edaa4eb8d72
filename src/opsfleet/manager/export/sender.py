"""Posting one remote-write request: the I/O seam of the exporter.

:class:`HttpSender` is the real one (httpx); tests give the exporter a scripted fake with the
same :class:`Sender` shape. A result says whether a failure is worth retrying: connection
errors, timeouts, 5xx and 429 are; other 4xx (the receiver refused the data) are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from opsfleet import __version__
from opsfleet.manager.export import wire
from opsfleet.manager.export.settings import RemoteWriteSection

TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class SendResult:
    ok: bool
    retryable: bool = False
    error: str = ""


SENT = SendResult(ok=True)


class Sender(Protocol):
    async def send(self, body: bytes) -> SendResult: ...

    async def close(self) -> None: ...


def classify(status: int, text: str) -> SendResult:
    if 200 <= status < 300:
        return SENT
    retryable = status >= 500 or status == TOO_MANY_REQUESTS
    return SendResult(ok=False, retryable=retryable, error=f"HTTP {status}: {text[:200].strip()}")


class HttpSender:
    """POSTs bodies to ``settings.url`` with the remote-write headers and the configured auth.

    ``close()`` releases the connection pool; it is idempotent."""

    def __init__(
        self, settings: RemoteWriteSection, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._url = settings.url
        self._headers = {**wire.headers(), "User-Agent": f"opsfleet-manager/{__version__}"}
        if settings.bearer_token:
            self._headers["Authorization"] = f"Bearer {settings.bearer_token}"
        auth = httpx.BasicAuth(settings.username, settings.password) if settings.username else None
        self._client = httpx.AsyncClient(transport=transport, timeout=settings.timeout, auth=auth)

    async def send(self, body: bytes) -> SendResult:
        try:
            response = await self._client.post(self._url, content=body, headers=self._headers)
        except httpx.TransportError as exc:
            return SendResult(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            return SendResult(ok=False, retryable=False, error=f"{type(exc).__name__}: {exc}")
        return classify(response.status_code, response.text)

    async def close(self) -> None:
        await self._client.aclose()
