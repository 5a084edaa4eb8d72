"""A rollout over real daemons: artifacts uploaded to a real Manager, downloaded by the daemons."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from opsfleet.common.signing import create_key_pair
from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import load_daemon_config
from opsfleet.manager.app import ManagerApp
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.helpers import assert_eventually
from tests.integration.updates.support import agent_package, agent_spec

ADMIN_PASSWORD = "rollout-keeper-3141"
KEYS = create_key_pair()
NODES = ("n1", "n2", "n3", "n4")
FAILING = "n3"


class Fleet:
    def __init__(self, manager: ManagerApp, daemons: dict[str, DaemonApp], http: httpx.AsyncClient) -> None:
        self.manager = manager
        self.daemons = daemons
        self.http = http
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        r = await self.http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        self.headers = {"Authorization": f"Bearer {r.json()['data']['token']}"}

    async def upload(self, version: str) -> dict[str, Any]:
        r = await self.http.post(
            "/api/v1/artifacts",
            params={"component": "agent:web", "version": version},
            content=agent_package(version),
            headers=self.headers,
        )
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    async def rollout(self, **body: Any) -> dict[str, Any]:
        r = await self.http.post(
            "/api/v1/rollouts", json={"component": "agent:web", **body}, headers=self.headers
        )
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    async def wait_state(self, rollout_id: int, *states: str) -> dict[str, Any]:
        async def settled() -> dict[str, Any] | None:
            r = await self.http.get(f"/api/v1/rollouts/{rollout_id}", headers=self.headers)
            data: dict[str, Any] = r.json()["data"]
            return data if data["state"] in states else None

        result: dict[str, Any] = await assert_eventually(settled, timeout=40, interval=0.1)
        return result

    async def running_version(self, node_id: str) -> tuple[str, str]:
        app = self.daemons[node_id]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            reply = await daemon_pb2_grpc.DaemonServiceStub(channel).ListAgents(
                daemon_pb2.ListAgentsRequest()
            )
        info = reply.agents[0]
        return info.version, info.status


def daemon_config(tmp_path: Path, manager: ManagerApp, node_id: str, role: str = "web") -> Any:
    markers = tmp_path / f"markers-{node_id}"
    markers.mkdir()
    env = {"FAIL_VERSION": "2"} if node_id == FAILING else {}
    settings = {
        "daemon.id": node_id,
        "daemon.work_dir": str(tmp_path / node_id),
        "daemon.grpc_host": "127.0.0.1",
        "daemon.grpc_port": 0,
        "daemon.labels": {"role": role},
        "manager.address": f"127.0.0.1:{manager.grpc_port}",
        "manager.heartbeat_interval": 1.0,
        "manager.reconnect_interval": 0.2,
        "collectors.cpu.enabled": False,
        "collectors.memory.enabled": False,
        "collectors.disk.enabled": False,
        "collectors.network.enabled": False,
        "agents": [agent_spec("web", markers, **env)],
        "update.trusted_keys": [KEYS.public_b64],
        "update.grace_period": 1.0,
    }
    return load_daemon_config(None, {}, settings)


@pytest.fixture
async def fleet(tmp_path: Path, manager_config: Callable[..., Any]) -> AsyncIterator[Fleet]:
    key_file = tmp_path / "signing.key"
    key_file.write_bytes(KEYS.private_pem)
    manager = ManagerApp(
        manager_config(
            f"sqlite:///{tmp_path / 'm.db'}",
            **{
                "auth.admin_password": ADMIN_PASSWORD,
                "artifacts.signing_key_file": str(key_file),
                "rollouts.poll_interval": 0.1,
                "rollouts.node_timeout": 20.0,
                "rollouts.pin_interval": 0.2,
            },
        )
    )
    await manager.start()
    daemons: dict[str, DaemonApp] = {}
    for node_id in NODES:
        app = DaemonApp(daemon_config(tmp_path, manager, node_id))
        await app.start()
        daemons[node_id] = app
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{manager.http_port}", timeout=10)
    f = Fleet(manager, daemons, http)
    await f.login()

    async def all_synced() -> bool:
        return all([await manager.store.list_agents(node_id) for node_id in NODES])

    try:
        await assert_eventually(all_synced, timeout=15)
        yield f
    finally:
        await http.aclose()
        for app in daemons.values():
            await app.stop()
        await manager.stop()


async def test_rollout_halts_at_the_threshold_and_the_failed_node_is_rolled_back(fleet: Fleet) -> None:
    await fleet.upload("1")
    await fleet.upload("2")
    first = await fleet.rollout(version="1", selector={"role": "web"}, max_parallel="100%")
    assert [n["node_id"] for n in first["nodes"]] == list(NODES)
    done = await fleet.wait_state(first["id"], "done", "halted")
    assert done["state"] == "done", done
    assert done["counts"] == {"done": 4}
    for node_id in NODES:
        assert await fleet.running_version(node_id) == ("1", "running")

    second = await fleet.rollout(version="2", selector={"role": "web"}, max_parallel="1", pause_on_failure=20)
    halted = await fleet.wait_state(second["id"], "halted", "done")
    states = {n["node_id"]: n["state"] for n in halted["nodes"]}
    assert halted["state"] == "halted", halted
    assert states == {"n1": "done", "n2": "done", "n3": "rolled_back", "n4": "pending"}
    assert "1 of 4 nodes failed (n3)" in halted["message"]
    failed = next(n for n in halted["nodes"] if n["node_id"] == FAILING)
    assert "exit code 3" in failed["message"] and "rolled back" in failed["message"]
    assert await fleet.running_version("n1") == ("2", "running")
    assert await fleet.running_version("n2") == ("2", "running")
    assert await fleet.running_version("n3") == ("1", "running")
    assert await fleet.running_version("n4") == ("1", "running")

    audit = await fleet.http.get("/api/v1/admin/audit", params={"page_size": 100}, headers=fleet.headers)
    actions = [e["action"] for e in audit.json()["data"]["list"]]
    assert actions.count("rollouts.node.done") == 6
    assert actions.count("rollouts.node.rolled_back") == 1
    assert {"rollouts.start", "rollouts.halted", "rollouts.done", "artifacts.upload"} <= set(actions)

    # Resumed from halted: the failure so far is accepted (20% -> 1 of 4 nodes = 25%), n4 goes on.
    resumed = await fleet.http.post(f"/api/v1/rollouts/{second['id']}/resume", headers=fleet.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["data"]["state"] == "running"
    assert resumed.json()["data"]["pause_on_failure"] == 25
    assert "1 failed nodes accepted, pause_on_failure 20% -> 25%" in resumed.json()["data"]["message"]
    finished = await fleet.wait_state(second["id"], "done", "halted")
    assert finished["state"] == "done", finished
    assert {n["node_id"]: n["state"] for n in finished["nodes"]} == {**states, "n4": "done"}
    assert await fleet.running_version("n4") == ("2", "running")
    again = await fleet.http.post(f"/api/v1/rollouts/{second['id']}/resume", headers=fleet.headers)
    assert again.status_code == 409 and "is done; this needs paused, halted" in again.text


async def test_pause_stops_after_the_batch_and_resume_finishes(fleet: Fleet) -> None:
    await fleet.upload("1")
    rollout = await fleet.rollout(version="1", selector={"role": "web"}, max_parallel="1", canary=1)
    assert [n["canary"] for n in rollout["nodes"]] == [True, False, False, False]
    paused = await fleet.http.post(f"/api/v1/rollouts/{rollout['id']}/pause", headers=fleet.headers)
    assert paused.json()["data"]["state"] == "paused"

    async def first_settled() -> dict[str, Any] | None:
        data: dict[str, Any] = (
            await fleet.http.get(f"/api/v1/rollouts/{rollout['id']}", headers=fleet.headers)
        ).json()["data"]
        return data if data["nodes"][0]["state"] == "done" else None

    data = await assert_eventually(first_settled, timeout=20)
    assert [n["state"] for n in data["nodes"][1:]] == ["pending"] * 3
    resumed = await fleet.http.post(f"/api/v1/rollouts/{rollout['id']}/resume", headers=fleet.headers)
    assert resumed.json()["data"]["state"] == "running"
    finished = await fleet.wait_state(rollout["id"], "done", "halted")
    assert finished["counts"] == {"done": 4}


async def test_a_policy_pin_brings_selected_nodes_and_newcomers_to_the_version(
    fleet: Fleet, tmp_path: Path
) -> None:
    manager = fleet.manager
    await fleet.upload("1")
    policy = {"name": "web-pin", "selector": {"role": "web"}, "priority": 0, "update": {"agent:web": "1"}}
    r = await fleet.http.post("/api/v1/policies", json=policy, headers=fleet.headers)
    assert r.status_code in (200, 201), r.text

    async def versions(*node_ids: str) -> set[tuple[str, str]]:
        return {await fleet.running_version(n) for n in node_ids}

    async def all_at(version: str, *node_ids: str) -> bool:
        return await versions(*node_ids) == {(version, "running")}

    await assert_eventually(lambda: all_at("1", *NODES), timeout=30, interval=0.2)

    # A node that joins the policy later gets the pinned version; one it does not select does not.
    for node_id, role in (("n5", "web"), ("n6", "db")):
        app = DaemonApp(daemon_config(tmp_path, manager, node_id, role))
        await app.start()
        fleet.daemons[node_id] = app
    await assert_eventually(lambda: all_at("1", "n5"), timeout=30, interval=0.2)
    await assert_eventually(
        lambda: (
            {n: a.outcome for (n, _), a in manager.pins.attempts().items()}
            == dict.fromkeys((*NODES, "n5"), "done")
        ),
        timeout=20,
        interval=0.2,
    )
    assert not any(node_id == "n6" for node_id, _ in manager.pins.attempts())
    assert (await fleet.running_version("n6"))[0] == "0"

    # A new pin: the node where it does not stay up is rolled back, and not pushed again.
    await fleet.upload("2")
    r = await fleet.http.post(
        "/api/v1/policies", json={**policy, "update": {"agent:web": "2"}}, headers=fleet.headers
    )
    assert r.status_code in (200, 201), r.text
    ok_nodes = ("n1", "n2", "n4", "n5")

    def outcomes() -> dict[str, str]:
        return {n: a.outcome for (n, _), a in manager.pins.attempts().items() if a.version == "2"}

    expected = {**dict.fromkeys(ok_nodes, "done"), "n3": "rolled_back"}
    await assert_eventually(lambda: outcomes() == expected, timeout=40, interval=0.2)
    assert await versions(*ok_nodes) == {("2", "running")}
    assert await fleet.running_version("n3") == ("1", "running")
    audit = await fleet.http.get("/api/v1/admin/audit", params={"page_size": 100}, headers=fleet.headers)
    entries = [(e["username"], e["action"]) for e in audit.json()["data"]["list"]]
    assert entries.count(("policy:web-pin", "pins.node.rolled_back")) == 1
    assert entries.count(("policy:web-pin", "pins.node.done")) == 5 + 4, entries
    passes = 0

    async def later_passes() -> bool:
        nonlocal passes
        await manager.pins.reconcile_once()
        passes += 1
        return passes >= 3

    await assert_eventually(later_passes)
    assert outcomes() == expected
    assert await fleet.running_version("n3") == ("1", "running")
