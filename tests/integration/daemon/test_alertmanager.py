"""A real Alertmanager (Debian's prometheus-alertmanager) receives the agent_failed alert of
a real Daemon's crashing agent, and sees it end once the agent is fixed and started again."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import assert_eventually, free_port, http_service

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
AM_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[str]:
    """The base URL of an Alertmanager of our own (no clustering, storage in tmp)."""
    if not shutil.which(ALERTMANAGER):
        pytest.skip(f"{ALERTMANAGER} is not installed (run scripts/ensure_alertmanager.sh)")
    config = tmp_path / "alertmanager.yml"
    config.write_text(AM_CONFIG)
    port = free_port()
    argv = [
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    async with http_service(argv, f"http://127.0.0.1:{port}", name="alertmanager", ready_timeout=20) as url:
        yield url


def crashing_agent(flag: Path) -> dict[str, Any]:
    return {
        "id": "crashy",
        "type": "custom",
        "version": "1.0.0",
        "binary_path": sys.executable,
        "args": [str(PROGRAMS / "crash.py"), "--after", "0.05", "--unless-exists", str(flag)],
        "start_seconds": 0.3,
        "stop_timeout": 3,
        "restart": {"max_retries": 1, "backoff_base": 0.1, "backoff_max": 0.2, "retry_window": 60},
    }


async def am_alerts(url: str, rule: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/api/v2/alerts", params={"filter": f'alertname="{rule}"'})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


async def test_agent_failed_reaches_alertmanager_and_resolves(
    apps: Any, alertmanager: str, tmp_path: Path
) -> None:
    manager = await apps.manager(
        alerts__alertmanager__url=alertmanager,
        alerts__alertmanager__resend_interval=1.0,
        alerts__evaluation_interval=0.2,
    )
    flag = tmp_path / "fixed"
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", agents=[crashing_agent(flag)])
    node_id = daemon.node_id

    async def firing() -> dict[str, Any] | None:
        for alert in await am_alerts(alertmanager, "agent_failed"):
            if alert["status"]["state"] == "active":
                return alert
        return None

    alert = await assert_eventually(firing, timeout=30)
    labels = alert["labels"]
    assert labels["node_id"] == node_id and labels["agent"] == "crashy"
    assert labels["severity"] == "critical" and labels["hostname"]
    assert alert["generatorURL"].startswith(f"http://127.0.0.1:{manager.http_port}/#/alerts")
    stored = await manager.alerts.search(1, 10, state="firing", rule="agent_failed")
    assert [a.fingerprint for a in stored.items] == [alert["annotations"]["fingerprint"]]

    flag.touch()
    await manager.agent_ops.operate(node_id, "crashy", "start", username="alice")

    async def gone() -> bool:
        return await firing() is None

    await assert_eventually(gone, timeout=30)
    resolved = await manager.alerts.search(1, 10, state="resolved", rule="agent_failed")
    assert resolved.total == 1 and resolved.items[0].ends_at > resolved.items[0].starts_at
    stats = manager.alerts.notification_stats()
    assert stats[0].name == "alertmanager" and stats[0].sent >= 2 and stats[0].dropped == 0
