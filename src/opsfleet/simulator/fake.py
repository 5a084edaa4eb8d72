"""An in-memory Manager behind the :class:`~opsfleet.simulator.calls.Caller` protocol, for tests.

It keeps the rules the simulator reacts to: calls for an unregistered node are NOT_FOUND,
and while ``available`` is false every call is UNAVAILABLE (a restarting Manager). Every
call yields to the event loop once, as a network call would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from opsfleet.simulator.calls import Method
from opsfleet.simulator.payloads import AgentReport, NodeIdentity
from opsfleet.simulator.stats import OK


class FakeManager:
    def __init__(self) -> None:
        self.available = True
        self.current_config_hash = ""
        self.registered: set[str] = set()
        self.calls: list[tuple[Method, str]] = []
        self.metrics: list[tuple[str, int, dict[str, dict[str, float]]]] = []
        self.agent_syncs: list[tuple[str, list[AgentReport]]] = []
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    def forget(self, node_id: str) -> None:
        """Lose a node, as a Manager with a wiped database would."""
        self.registered.discard(node_id)

    def count(self, method: Method) -> int:
        return sum(1 for m, _ in self.calls if m is method)

    async def _answer(self, method: Method, node_id: str) -> str:
        await asyncio.sleep(0)
        self.calls.append((method, node_id))
        if not self.available:
            return "UNAVAILABLE"
        if method is Method.REGISTER:
            self.registered.add(node_id)
            return OK
        return OK if node_id in self.registered else "NOT_FOUND"

    async def register(self, node: NodeIdentity) -> str:
        return await self._answer(Method.REGISTER, node.node_id)

    async def heartbeat(self, node: NodeIdentity, timestamp: int) -> str:
        return await self._answer(Method.HEARTBEAT, node.node_id)

    async def report_metrics(
        self, node: NodeIdentity, timestamp: int, metrics: Mapping[str, Mapping[str, float]]
    ) -> str:
        code = await self._answer(Method.METRICS, node.node_id)
        if code == OK:
            self.metrics.append((node.node_id, timestamp, {t: dict(v) for t, v in metrics.items()}))
        return code

    def config_hash(self, node: NodeIdentity) -> str:
        return self.current_config_hash

    def enrolled(self) -> int:
        return 0

    async def get_config(self, node: NodeIdentity) -> tuple[str, str]:
        code = await self._answer(Method.GET_CONFIG, node.node_id)
        return code, self.current_config_hash if code == OK else ""

    async def sync_agents(self, node: NodeIdentity, states: Sequence[AgentReport]) -> str:
        code = await self._answer(Method.SYNC, node.node_id)
        if code == OK:
            self.agent_syncs.append((node.node_id, list(states)))
        return code
