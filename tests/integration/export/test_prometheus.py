"""A real Prometheus (Debian's package, started on a free port with its remote-write receiver)
stores the samples a real Manager forwards after ReportMetrics, with the node's labels."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio

from opsfleet.manager.app import ManagerApp
from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.helpers import assert_eventually, free_port, http_service

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

PROMETHEUS = "/usr/bin/prometheus"
PROMETHEUS_CONFIG = "global:\n  scrape_interval: 1m\n"


def _receiver_flag() -> str:
    """``--web.enable-remote-write-receiver`` (Prometheus >= 2.33), else the older feature flag."""
    help_text = subprocess.run(
        [PROMETHEUS, "--help"], capture_output=True, text=True, check=False, timeout=30
    ).stderr
    if "--web.enable-remote-write-receiver" in help_text:
        return "--web.enable-remote-write-receiver"
    return "--enable-feature=remote-write-receiver"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prometheus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The base URL of a Prometheus of our own: free port, storage in tmp, nothing scraped."""
    if not shutil.which(PROMETHEUS):
        pytest.skip(f"{PROMETHEUS} is not installed (run scripts/ensure_prometheus.sh)")
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG)
    port = free_port()
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        _receiver_flag(),
    ]
    async with http_service(argv, f"http://127.0.0.1:{port}", name="prometheus", ready_timeout=30) as url:
        yield url


async def query(url: str, promql: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_reported_metrics_reach_prometheus(prometheus: str, manager_config: Callable[..., Any]) -> None:
    app = ManagerApp(
        manager_config(
            export__remote_write__url=f"{prometheus}/api/v1/write",
            export__remote_write__labels={"fleet": "test"},
            export__remote_write__batch_size=50,
        )
    )
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    try:
        stub = manager_pb2_grpc.ManagerServiceStub(channel)
        node_id = "node-rw-1"
        registered = await stub.RegisterNode(
            manager_pb2.RegisterNodeRequest(
                node_id=node_id,
                hostname="web-01",
                ip="10.0.0.7",
                os="linux",
                arch="amd64",
                labels={"env": "prod", "team.name": "ops", "hostname": "alias"},
            )
        )
        assert registered.success
        now = int(time.time())
        reported = await stub.ReportMetrics(
            manager_pb2.ReportMetricsRequest(
                node_id=node_id,
                metrics=[
                    manager_pb2.MetricData(type="cpu", timestamp=now - 20, values={"usage_percent": 11.0}),
                    manager_pb2.MetricData(type="cpu", timestamp=now - 10, values={"usage_percent": 42.5}),
                    manager_pb2.MetricData(type="custom.gpu_0", timestamp=now - 10, values={"temp-c": 70.0}),
                ],
            )
        )
        assert reported.success and reported.accepted == 3

        async def exported() -> list[dict[str, Any]]:
            return await query(prometheus, f'opsfleet_cpu_usage_percent{{node_id="{node_id}"}}')

        result = await assert_eventually(exported, timeout=30, interval=0.2)
        assert len(result) == 1
        series = result[0]
        assert float(series["value"][1]) == 42.5 and int(series["value"][0]) >= now - 10
        assert series["metric"] == {
            "__name__": "opsfleet_cpu_usage_percent",
            "node_id": node_id,
            "hostname": "web-01",
            "env": "prod",
            "team_name": "ops",
            "exported_hostname": "alias",
            "fleet": "test",
        }
        gpu = await query(prometheus, f'opsfleet_custom_gpu_0_temp_c{{node_id="{node_id}"}}')
        assert [float(s["value"][1]) for s in gpu] == [70.0]
        # Both cpu samples were stored in time order.
        history = await query(
            prometheus, f'count_over_time(opsfleet_cpu_usage_percent{{node_id="{node_id}"}}[5m])'
        )
        assert [float(s["value"][1]) for s in history] == [2.0]

        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{app.http_port}/metrics")).text
        assert 'opsfleet_remote_write_samples_total{result="sent"} 3.0' in text
        assert 'opsfleet_remote_write_samples_total{result="dropped"} 0.0' in text
    finally:
        await channel.close()
        await app.stop()
    assert app.remote_write is not None and app.remote_write.stats.failed == 0
