"""Health checks of a running agent: HTTP/TCP probes and resource thresholds.

A probe answers ``None`` when healthy or a short reason when not; it never raises for a
failed check. The agent's state machine decides what a failure means (see ``run.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from opsfleet.daemon.supervisor.config import HealthCheckSection

if TYPE_CHECKING:
    import httpx

PROBE_HOST = "127.0.0.1"


class Probe(Protocol):
    async def check(self) -> str | None:
        """``None`` when healthy, otherwise why not."""
        ...


class HttpProbe:
    """GET ``url``; any 2xx/3xx answer within ``timeout`` is healthy.

    ``client`` is called at each check (see ``daemon/http_client.py``: httpx is imported
    only once a probe runs).
    """

    def __init__(self, client: Callable[[], httpx.AsyncClient], url: str, timeout: float) -> None:
        self._client = client
        self._url = url
        self._timeout = timeout

    async def check(self) -> str | None:
        import httpx

        try:
            response = await self._client().get(self._url, timeout=self._timeout)
        except httpx.TimeoutException:
            return f"GET {self._url}: no answer within {self._timeout:g}s"
        except httpx.HTTPError as exc:
            return f"GET {self._url}: {type(exc).__name__}: {exc}"
        if response.status_code >= 400:
            return f"GET {self._url}: HTTP {response.status_code}"
        return None


class TcpProbe:
    """Connect to ``host:port``; an accepted connection within ``timeout`` is healthy."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout

    async def check(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                _, writer = await asyncio.open_connection(self._host, self._port)
        except TimeoutError:
            return f"TCP {self._host}:{self._port}: no connection within {self._timeout:g}s"
        except OSError as exc:
            return f"TCP {self._host}:{self._port}: {exc.strerror or exc}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None


def build_probes(health: HealthCheckSection, client: Callable[[], httpx.AsyncClient]) -> list[Probe]:
    probes: list[Probe] = []
    if health.http_url:
        probes.append(HttpProbe(client, health.http_url, health.probe_timeout))
    if health.tcp_port:
        probes.append(TcpProbe(PROBE_HOST, health.tcp_port, health.probe_timeout))
    return probes


async def run_probes(probes: Sequence[Probe]) -> str | None:
    """The first failure among ``probes`` (checked in order), or ``None``."""
    for probe in probes:
        reason = await probe.check()
        if reason is not None:
            return reason
    return None


class ThresholdTracker:
    """Reports when a value has stayed above ``limit`` for ``duration`` seconds (``limit`` 0: off)."""

    def __init__(self, limit: float, duration: float) -> None:
        self._limit = limit
        self._duration = duration
        self._above_since: float | None = None

    def reset(self) -> None:
        self._above_since = None

    def observe(self, value: float, now: float) -> float | None:
        """Seconds above the limit once that reaches ``duration`` (then starts over), else None."""
        if self._limit <= 0 or value <= self._limit:
            self._above_since = None
            return None
        if self._above_since is None:
            self._above_since = now
        above = now - self._above_since
        if above >= self._duration:
            self._above_since = None
            return above
        return None
