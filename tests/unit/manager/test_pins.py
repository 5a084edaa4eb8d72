"""The version-pin reconciler against fakes: what it reads, pushes, remembers and retries."""

from __future__ import annotations

from typing import Any

from opsfleet.common.errors import FailedPrecondition
from opsfleet.manager.domain import Agent, Artifact, Node, NodeStatus, UpdateOutcome
from opsfleet.manager.services.pins import PinDeps, PinReconciler

ARTIFACT = Artifact(1, "agent:web", "2", "a.tgz", 10, "f" * 64, "sig", True, 0.0, "admin")


class FakeFleet:
    def __init__(self) -> None:
        self.pins: dict[str, dict[str, tuple[str, str]]] = {"n1": {"agent:web": ("2", "p")}}
        self.agents: dict[str, list[Agent]] = {"n1": [agent("1")]}
        self.node_reads = 0
        self.pushes: list[str] = []
        self.refuse: Exception | None = None
        self.outcome = "done"
        self.audit: list[str] = []

    async def node(self, node_id: str) -> Node:
        self.node_reads += 1
        return Node(
            node_id, "h", "10.0.0.1", "linux", "amd64", {}, "1.0", "", NodeStatus.ONLINE, 0.0, 0.0, "d:1"
        )

    async def list_agents(self, node_id: str) -> list[Agent]:
        return self.agents.get(node_id, [])

    async def client_for(self, node_id: str) -> Any:
        fleet = self

        class Client:
            async def push_update(self, **kw: Any) -> str:
                if fleet.refuse is not None:
                    raise fleet.refuse
                fleet.pushes.append(node_id)
                return "accepted"

            async def update_status(self, component: str) -> UpdateOutcome | None:
                return UpdateOutcome(component, "2", fleet.outcome, "msg", "1", 1)

        return Client()

    async def find(self, component: str, version: str) -> Artifact:
        return ARTIFACT

    async def record(self, user: str, action: str, target: str, detail: str) -> None:
        self.audit.append(f"{user} {action}")

    def reconciler(self) -> PinReconciler:
        deps = PinDeps(
            pinned=lambda: self.pins,
            node=self.node,
            agents=self.list_agents,
            client_for=self.client_for,
            find_artifact=self.find,
            download_url=lambda a: "http://m/x",
            audit=self.record,
            node_timeout=60.0,
        )
        return PinReconciler(deps, interval=1.0, recheck=300.0)


def agent(version: str) -> Agent:
    return Agent("n1", "web", "custom", version, "running", 1, 0, 0.0)


async def test_pushes_once_follows_the_outcome_then_leaves_the_node_alone() -> None:
    fleet = FakeFleet()
    pins = fleet.reconciler()
    await pins.reconcile_once()
    assert fleet.pushes == ["n1"]
    await pins.reconcile_once()  # follows: done
    assert pins.attempts()[("n1", "agent:web")].outcome == "done"
    assert fleet.audit == ["policy:p pins.node.done"]
    fleet.agents["n1"] = [agent("2")]
    reads = fleet.node_reads
    for _ in range(3):
        await pins.reconcile_once()
    assert fleet.pushes == ["n1"] and fleet.node_reads == reads

    # A new pin drops the old outcome; the node at the new version is not read again...
    fleet.pins = {"n1": {"agent:web": ("1", "p")}}
    fleet.agents["n1"] = [agent("1")]
    await pins.reconcile_once()
    await pins.reconcile_once()
    assert fleet.node_reads == reads + 1 and fleet.pushes == ["n1"]
    # ...until it registers again.
    pins.node_registered("n1", {})
    await pins.reconcile_once()
    assert fleet.node_reads == reads + 2


async def test_a_busy_node_is_retried_a_node_without_reported_agents_too_a_rollback_is_not() -> None:
    fleet = FakeFleet()
    pins = fleet.reconciler()
    fleet.refuse = FailedPrecondition("an update of agent:web to 3 is in progress")
    await pins.reconcile_once()
    assert fleet.pushes == [] and pins.attempts() == {}
    fleet.refuse = None
    fleet.agents["n1"] = []  # registered, agents not reported yet
    await pins.reconcile_once()
    assert fleet.pushes == []
    fleet.agents["n1"] = [agent("1")]
    fleet.outcome = "rolled_back"
    await pins.reconcile_once()
    await pins.reconcile_once()
    assert fleet.pushes == ["n1"] and pins.attempts()[("n1", "agent:web")].outcome == "rolled_back"
    pins.node_registered("n1", {})
    for _ in range(3):
        await pins.reconcile_once()
    assert fleet.pushes == ["n1"] and fleet.audit == ["policy:p pins.node.rolled_back"]
