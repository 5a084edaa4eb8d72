"""A firing alert in real headless Chromium: the overview count, the alerts page, and an
operator acknowledging and silencing it with the page's buttons.

The alert comes from the Manager's own rule evaluation: a node reports 99 % CPU through the
real ReportMetrics ingest into an in-process Manager whose ``cpu_high`` rule fires at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from playwright.async_api import expect

from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.browser.support import Demo, OpenSession, in_process_manager

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

PASSWORD = "alert-keeper-2718"
NODE = "hot-node"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """A Manager (plaintext gRPC, HTTP on 127.0.0.1:0) with one node whose CPU is at 99 %."""
    overrides = {"alerts.rules.cpu_high.for": "0s", "alerts.evaluation_interval": "1s"}
    async with in_process_manager(tmp_path_factory.mktemp("alerts"), PASSWORD, **overrides) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            manager = manager_pb2_grpc.ManagerServiceStub(channel)
            registered = await manager.RegisterNode(
                manager_pb2.RegisterNodeRequest(
                    node_id=NODE,
                    hostname="hot-host",
                    ip="127.0.0.1",
                    os="linux",
                    arch="amd64",
                    daemon_version="0.1.0",
                    daemon_address="127.0.0.1:1",
                    labels={"env": "prod"},
                )
            )
            assert registered.success
            sample = manager_pb2.MetricData(
                type="cpu", timestamp=int(time.time()), values={"usage_percent": 99.0, "cores": 2}
            )
            sent = await manager.ReportMetrics(
                manager_pb2.ReportMetricsRequest(node_id=NODE, metrics=[sample])
            )
            assert sent.success and sent.accepted == 1
        yield Demo(url=f"http://127.0.0.1:{app.http_port}/", password=PASSWORD)


async def test_firing_alert_is_counted_acknowledged_and_silenced(open_session: OpenSession) -> None:
    s = await open_session("alerts-firing")
    await s.sign_in()
    await expect(s.page.get_by_test_id("stat-alerts")).to_have_text("1", timeout=15_000)
    await s.page.get_by_test_id("nav-alerts").click()
    row = s.page.get_by_test_id("alert-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-rule", "cpu_high")
    await expect(row).to_have_attribute("data-state", "firing")
    await expect(row).to_contain_text("hot-host")
    await expect(s.page.get_by_test_id("alerts-summary")).to_contain_text("1 firing")
    await s.shot("firing")

    await row.get_by_test_id("alert-ack").click()
    await expect(row.get_by_test_id("alert-note")).to_contain_text("admin")
    await expect(row.get_by_test_id("alert-ack")).to_be_disabled()
    await s.shot("acknowledged")

    await s.page.get_by_test_id("alerts-silence-for").select_option("1h")
    await row.get_by_test_id("alert-silence").click()
    await expect(row.get_by_test_id("alert-note")).to_contain_text("silenced until")
    await expect(row.get_by_test_id("alert-silence")).to_be_disabled()
    await s.shot("silenced")
