"""Delivery of alert transitions to Alertmanager and webhooks, off the ingestion path.

Each target has its own bounded queue and an owned worker task, so a slow or dead receiver
delays only itself. ``enqueue`` never blocks: when a queue is full the notification is
dropped and counted. A delivery is retried with exponential backoff (full jitter) up to
``max_attempts`` times; every failed attempt is counted and logged. A resend task posts all
firing, unsilenced alerts to Alertmanager every ``resend_interval``, as Alertmanager
expects. Lifecycle: ``start()`` then ``stop()`` (idempotent); nothing is sent after
``stop()`` returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter

from opsfleet.common.backoff import Backoff
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.alerts.model import Alert
from opsfleet.manager.alerts.payloads import SIGNATURE_HEADER, alertmanager_alert, sign, webhook_body
from opsfleet.manager.alerts.settings import AlertsSection

log = logging.getLogger(__name__)


@dataclass
class TargetStats:
    name: str
    url: str
    sent: int = 0
    failures: int = 0
    dropped: int = 0
    last_error: str = ""


@dataclass
class _Target:
    stats: TargetStats
    queue: asyncio.Queue[bytes]
    headers: Callable[[bytes], dict[str, str]]
    timeout: float
    build: Callable[[Alert], bytes]


class Notifier:
    def __init__(
        self,
        settings: AlertsSection,
        *,
        base_url: Callable[[], str],
        firing: Callable[[], list[Alert]],
        clock: Callable[[], float],
        registry: CollectorRegistry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._base_url = base_url
        self._firing = firing
        self._clock = clock
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("alert-notifier")
        self._counter = Counter(
            "opsfleet_alert_notifications",
            "Alert notification attempts by target and result (sent, failed, dropped)",
            ["target", "result"],
            registry=registry,
        )
        self._targets: list[_Target] = []
        am = settings.alertmanager
        if am.url:
            self._targets.append(
                _Target(
                    TargetStats("alertmanager", am.url + "/api/v2/alerts"),
                    asyncio.Queue(settings.queue_size),
                    headers=lambda _body: {"Content-Type": "application/json"},
                    timeout=am.timeout,
                    build=lambda alert: self._am_body([alert]),
                )
            )
        for index, hook in enumerate(settings.webhooks, start=1):
            secret = hook.secret
            self._targets.append(
                _Target(
                    TargetStats(f"webhook-{index}", hook.url),
                    asyncio.Queue(settings.queue_size),
                    headers=lambda body, secret=secret: _webhook_headers(secret, body),  # type: ignore[misc]
                    timeout=hook.timeout,
                    build=self._webhook_body,
                )
            )

    @property
    def stats(self) -> list[TargetStats]:
        return [t.stats for t in self._targets]

    async def start(self) -> None:
        if not self._targets:
            return
        self._client = httpx.AsyncClient(transport=self._transport)
        for target in self._targets:
            self._tasks.spawn(target.stats.name, self._worker(target))
        if self._settings.alertmanager.url:
            self._tasks.spawn("alertmanager-resend", self._resend_loop(self._targets[0]))

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop(timeout=2.0)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def enqueue(self, alert: Alert) -> None:
        """Queue a transition for every target; never blocks (a full queue drops and counts)."""
        if self._stop.is_set():
            return
        for target in self._targets:
            try:
                target.queue.put_nowait(target.build(alert))
            except asyncio.QueueFull:
                self._count(target, "dropped")
                log.warning(
                    "alert notification to %s dropped: queue full (%d)",
                    target.stats.name,
                    target.queue.maxsize,
                )

    # -- delivery -------------------------------------------------------------------------

    def _am_body(self, alerts: list[Alert]) -> bytes:
        now = self._clock()
        interval = self._settings.alertmanager.resend_interval
        base = self._base_url()
        return json.dumps(
            [alertmanager_alert(a, now=now, resend_interval=interval, base_url=base) for a in alerts]
        ).encode()

    def _webhook_body(self, alert: Alert) -> bytes:
        return json.dumps(webhook_body(alert, base_url=self._base_url()), sort_keys=True).encode()

    def _count(self, target: _Target, result: str) -> None:
        stats = target.stats
        if result == "sent":
            stats.sent += 1
        elif result == "failed":
            stats.failures += 1
        else:
            stats.dropped += 1
        self._counter.labels(stats.name, result).inc()

    async def _worker(self, target: _Target) -> None:
        while not self._stop.is_set():
            getter = asyncio.ensure_future(target.queue.get())
            stopper = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                if not getter.done():
                    getter.cancel()
            if not getter.done() or getter.cancelled():
                return
            await self._deliver(target, getter.result(), self._settings.max_attempts)

    async def _deliver(self, target: _Target, body: bytes, attempts: int) -> bool:
        """POST ``body`` until it is accepted (2xx) or ``attempts`` ran out."""
        s = self._settings
        backoff = Backoff(base=s.retry_base, cap=s.retry_max)
        for attempt in range(1, attempts + 1):
            error = await self._post(target, body)
            if error is None:
                self._count(target, "sent")
                return True
            self._count(target, "failed")
            target.stats.last_error = error
            log.warning(
                "alert notification to %s failed (attempt %d of %d): %s",
                target.stats.name,
                attempt,
                attempts,
                error,
            )
            if attempt < attempts and await sleep_or_stop(self._stop, backoff.next_delay()):
                break
        self._count(target, "dropped")
        log.error("alert notification to %s given up after %d attempts", target.stats.name, attempts)
        return False

    async def _post(self, target: _Target, body: bytes) -> str | None:
        assert self._client is not None
        try:
            response = await self._client.post(
                target.stats.url, content=body, headers=target.headers(body), timeout=target.timeout
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    async def _resend_loop(self, target: _Target) -> None:
        interval = self._settings.alertmanager.resend_interval
        while not await sleep_or_stop(self._stop, interval):
            now = self._clock()
            active = [a for a in self._firing() if a.id and not a.silenced(now)]
            if active:
                await self._deliver(target, self._am_body(active), 1)


def _webhook_headers(secret: str, body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Opsfleet-Event": "alert"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers
