"""Corrupt or wrong spool contents never stop delivery nor delete unsent samples."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.faults.support import prefill_spool, recent_samples
from tests.helpers import assert_eventually


async def test_spool_record_without_timestamp_does_not_stop_delivery(apps: Any, tmp_path: Path) -> None:
    work = tmp_path / "node"
    good = recent_samples(10)
    prefill_spool(work, [*good[:5], {"type": "cpu", "values": {"usage_percent": 1.0}}, "junk", *good[5:]])
    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", work_dir=work)

    async def prefill_stored() -> bool:
        stored = await manager.store.query_metrics(daemon.node_id, "custom.fault", 0, 2**40)
        return len(stored) == 10

    await assert_eventually(prefill_stored, timeout=10)
    assert daemon.outbox.quarantine.total == 2
    # The link is alive: live samples keep arriving after the bad records.
    before = await manager.store.count_metrics(daemon.node_id)
    await assert_eventually(
        lambda: _more_than(manager, daemon.node_id, before + 4), timeout=10, message="live samples"
    )


async def _more_than(manager: Any, node_id: str, count: int) -> bool:
    return bool(await manager.store.count_metrics(node_id) >= count)


async def test_state_file_pointing_past_the_segments_is_clamped(
    apps: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "node"
    records = recent_samples(40)
    prefill_spool(work, records)
    state = work / "spool" / "state.json"
    state.write_text(json.dumps({"segment": 999999, "offset": 0, "dropped": 0}))
    manager = await apps.manager()
    with caplog.at_level(logging.WARNING, logger="opsfleet.daemon.spool"):
        daemon = await apps.daemon(
            f"127.0.0.1:{manager.grpc_port}",
            work_dir=work,
            **{f"collectors__{n}__enabled": False for n in ("cpu", "memory", "disk", "network")},
        )
    assert any(str(state) in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

    async def all_stored() -> bool:
        return await manager.store.count_metrics(daemon.node_id) == len(records)

    await assert_eventually(all_stored, timeout=10)
    assert daemon.outbox.dropped == 0
