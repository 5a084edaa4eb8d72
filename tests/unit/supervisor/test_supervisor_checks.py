"""Health probes, thresholds, the heartbeat endpoint and the restart budget, without processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from opsfleet.common.schema import parse
from opsfleet.daemon.supervisor.config import RestartSection
from opsfleet.daemon.supervisor.health import HttpProbe, TcpProbe, ThresholdTracker
from opsfleet.daemon.supervisor.heartbeat import Heartbeat, HeartbeatServer
from opsfleet.daemon.supervisor.restarts import RestartBudget, decide


def test_threshold_reports_after_the_duration_and_starts_over() -> None:
    tracker = ThresholdTracker(limit=100.0, duration=5.0)
    assert tracker.observe(150.0, now=0.0) is None
    assert tracker.observe(150.0, now=4.0) is None
    assert tracker.observe(150.0, now=5.5) == 5.5
    assert tracker.observe(150.0, now=6.0) is None  # counting again
    assert tracker.observe(50.0, now=20.0) is None  # below: reset
    assert tracker.observe(150.0, now=21.0) is None
    assert ThresholdTracker(limit=0.0, duration=0.0).observe(1e9, now=0.0) is None  # 0 = off


async def test_http_probe_reports_status_errors_and_timeouts() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ok":
            return httpx.Response(200, text="ok")
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("slow", request=request)
        if request.url.path == "/refused":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        assert await HttpProbe(lambda: client, "http://agent/ok", 1.0).check() is None
        assert (
            await HttpProbe(lambda: client, "http://agent/bad", 1.0).check()
            == "GET http://agent/bad: HTTP 503"
        )
        assert "no answer within 1s" in (
            await HttpProbe(lambda: client, "http://agent/slow", 1.0).check() or ""
        )
        assert "ConnectError" in (await HttpProbe(lambda: client, "http://agent/refused", 1.0).check() or "")


async def test_tcp_probe_connects_or_reports() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert await TcpProbe("127.0.0.1", port, 1.0).check() is None
    server.close()
    await server.wait_closed()
    failure = await TcpProbe("127.0.0.1", port, 1.0).check()
    assert failure is not None and failure.startswith(f"TCP 127.0.0.1:{port}:")


def test_restart_budget_gives_up_within_the_window_and_recovers_after_it() -> None:
    restart = RestartSection(max_retries=2, backoff_base=1.0, backoff_max=8.0, retry_window=60.0)
    budget = RestartBudget(restart, rand=lambda: 1.0)
    assert budget.take(0.0) == 1.0
    assert budget.take(1.0) == 2.0
    assert budget.take(2.0) is None
    assert budget.take(61.5) == 4.0  # the first restart left the window; the backoff kept growing
    budget.reset()
    assert budget.take(62.0) == 1.0


def test_backoff_stays_between_base_and_max() -> None:
    restart = RestartSection(max_retries=100, backoff_base=0.5, backoff_max=3.0)
    low = RestartBudget(restart, rand=lambda: 0.0)
    high = RestartBudget(restart, rand=lambda: 0.999)
    assert {low.take(float(i)) for i in range(10)} == {0.5}
    delays = [high.take(float(i)) for i in range(10)]
    assert delays[0] == 0.5
    assert max(d for d in delays if d is not None) <= 3.0
    assert delays[-1] == pytest.approx(3.0, rel=0.01)


@pytest.mark.parametrize(
    ("policy", "failure", "outcome"),
    [
        ("always", False, "backoff"),
        ("always", True, "backoff"),
        ("on-failure", False, "stopped"),
        ("on-failure", True, "backoff"),
        ("never", False, "stopped"),
        ("never", True, "failed"),
    ],
)
def test_restart_policies(policy: str, failure: bool, outcome: str) -> None:
    restart = parse(RestartSection, {"policy": policy})
    decision = decide(restart, RestartBudget(restart), "exit code 3", failure=failure, now=0.0)
    assert decision.outcome == outcome
    assert decision.reason.startswith("exit code 3")


@pytest.fixture
async def heartbeats() -> AsyncIterator[tuple[HeartbeatServer, list[Heartbeat]]]:
    received: list[Heartbeat] = []

    def record(heartbeat: Heartbeat) -> bool:
        if heartbeat.agent_id != "known":
            return False
        received.append(heartbeat)
        return True

    server = HeartbeatServer("127.0.0.1", 0, record)
    await server.start()
    yield server, received
    await server.stop()


async def test_heartbeat_endpoint(heartbeats: tuple[HeartbeatServer, list[Heartbeat]]) -> None:
    server, received = heartbeats
    url = f"http://127.0.0.1:{server.port}/heartbeat"
    async with httpx.AsyncClient(trust_env=False) as client:
        ok = await client.post(url, json={"agent_id": "known", "status": "ok", "cpu": 2.5, "memory": 1024})
        assert ok.status_code == 200
        assert received == [Heartbeat("known", "ok", 2.5, 1024)]
        assert (await client.post(url, json={"agent_id": "known"})).status_code == 200
        assert received[-1] == Heartbeat("known", "")
        unknown = await client.post(url, json={"agent_id": "stranger", "status": "ok"})
        assert unknown.status_code == 404 and "stranger" in unknown.json()["error"]
        assert (await client.post(url, content=b"{nope")).status_code == 400
        assert (await client.post(url, json={"agent_id": 7})).status_code == 400
        assert (await client.post(url, json={"agent_id": "known", "cpu": "high"})).status_code == 400
        assert (await client.get(url)).status_code == 405
        assert (await client.post(url.replace("heartbeat", "other"), json={})).status_code == 404
    assert len(received) == 2


async def test_heartbeat_endpoint_stop_closes_idle_connections() -> None:
    server = HeartbeatServer("127.0.0.1", 0, lambda hb: True)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /heartbeat HTTP/1.1\r\n")  # and then nothing: a stuck client
    await writer.drain()
    await asyncio.wait_for(server.stop(), timeout=5)
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()
    await server.stop()  # idempotent
