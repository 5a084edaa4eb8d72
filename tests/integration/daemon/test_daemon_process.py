"""`opsfleet daemon` as a real process: SIGHUP reload, SIGTERM within 5 s, --help."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from tests.helpers import assert_eventually
from tests.processes import Proc

CONFIG = """
daemon:
  labels: {{role: {role}}}
manager:
  address: 127.0.0.1:{port}
  heartbeat_interval: 1s
  reconnect_interval: 200ms
collectors:
  cpu: {{interval: 1s}}
  memory: {{interval: 1s}}
  disk: {{enabled: false}}
  network: {{enabled: false}}
"""


async def test_reload_and_graceful_stop(apps: Any, tmp_path: Path) -> None:
    manager = await apps.manager()
    cfg = tmp_path / "daemon.yaml"
    cfg.write_text(CONFIG.format(port=manager.grpc_port, role="web"))
    proc = await Proc.start(
        ["daemon", "--config", str(cfg), "--work-dir", str(tmp_path / "w"), "--listen", "127.0.0.1:0"]
    )
    try:
        match = await proc.wait_for_line(r"registered with manager \S+ as (\S+)")
        node_id = match.group(1)
        node = await assert_eventually(lambda: manager.store.get_node(node_id))
        assert node.labels == {"role": "web"}

        cfg.write_text(CONFIG.format(port=manager.grpc_port, role="db"))
        proc.proc.send_signal(signal.SIGHUP)
        await proc.wait_for_line("config reloaded")

        async def relabelled() -> bool:
            node = await manager.store.get_node(node_id)
            return node is not None and node.labels == {"role": "db"}

        await assert_eventually(relabelled, timeout=10)
        await assert_eventually(lambda: manager.store.query_metrics(node_id, "memory", 0, 2**40))
    finally:
        started = time.monotonic()
        code = await proc.stop(signal.SIGTERM)
        elapsed = time.monotonic() - started
    assert code == 0, proc.output
    assert elapsed < 5.0
    assert proc.lines[-1].endswith("stopped")


async def test_help_explains_every_flag() -> None:
    proc = await Proc.start(["daemon", "--help"])
    assert await proc.wait() == 0
    for flag in ("--config", "--manager", "--listen", "--work-dir", "SIGHUP", "OPSFLEET_"):
        assert flag in proc.output


async def test_invalid_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.yaml"
    cfg.write_text("manager:\n  heartbeat_interval: 0.1s\n")
    proc = await Proc.start(["daemon", "--config", str(cfg)])
    assert await proc.wait() == 3
    assert "manager.heartbeat_interval" in proc.output
