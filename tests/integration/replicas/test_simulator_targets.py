"""``opsfleet simulate --target a,b`` spreads its channels over several Managers."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from opsfleet.manager.app import ManagerApp
from opsfleet.simulator.calls import GrpcCaller
from opsfleet.simulator.config import SimConfig
from opsfleet.simulator.payloads import identity_for


async def test_channels_go_round_robin_over_the_targets(
    manager_config: Callable[..., Any], tmp_path: Any
) -> None:
    apps = [
        ManagerApp(manager_config(f"sqlite:///{tmp_path / name}.db", data_dir=str(tmp_path / name)))
        for name in ("a", "b")
    ]
    for app in apps:
        await app.start()
    targets = ",".join(f"127.0.0.1:{app.grpc_port}" for app in apps)
    assert SimConfig(target=targets).target == targets  # validated item by item
    caller = GrpcCaller(targets, channels=1, timeout=5.0)
    await caller.start()
    try:
        rand = random.Random(1)
        for index in range(4):
            assert await caller.register(identity_for(f"sim-{index}", index, rand)) == "OK"
        on_a = {n.node_id for n in await apps[0].nodes.list_all()}
        on_b = {n.node_id for n in await apps[1].nodes.list_all()}
        assert on_a == {"sim-0", "sim-2"} and on_b == {"sim-1", "sim-3"}
    finally:
        await caller.close()
        for app in apps:
            await app.stop()
