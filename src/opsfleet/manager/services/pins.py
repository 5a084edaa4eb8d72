"""Version pins: keep the nodes a policy selects at the versions its ``update`` section names.

A policy ``update: {"agent:web": "2.1"}`` pins agent web to 2.1 on every node it selects
(merged by priority, :func:`opsfleet.manager.services.policy_doc.pins`). Every
``interval`` the reconciler looks at the pinned nodes (from the ConfigService's memory;
the database is read only for those nodes): an online node whose agent (or daemon) runs
another version gets a PushUpdate of the stored, signed artifact, like one node of a
rollout, and its outcome is followed with GetUpdateStatus. This is what brings a node that
joins the policy later (a new node, changed labels) to the pinned version.

Cost: a node seen at the pinned version (or offline, or without the agent) is not read
again for ``recheck`` seconds or until it registers again, so a converged fleet costs no
database reads per pass.

Limits: at most ``max_in_flight`` pinned updates run at a time (a pin is not a rollout:
move existing nodes with a rollout, the pin then keeps new nodes in line). An outcome other
than done (rolled back, failed, no artifact) is not retried for that node and version
until the pin changes or the Manager restarts; "an update is in progress" (a rollout on the
node) is retried at the next pass. Each outcome is audit-logged (``pins.node.<state>``, by
``policy:<name>``).

Lifecycle: ``start()`` spawns the owned loop; ``stop()`` ends it (idempotent). A pass that
fails (database, a bug) is logged and the next pass runs as usual.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opsfleet.common.errors import FailedPrecondition, NotFound, OpsfleetError
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.domain import Agent, Artifact, Node, NodeStatus
from opsfleet.manager.services.rollout_runner import UpdateCalls

log = logging.getLogger(__name__)

DEFAULT_PIN_INTERVAL = 10.0
DEFAULT_MAX_IN_FLIGHT = 10
DEFAULT_RECHECK = 300.0
ABSENT_RECHECK = 60.0
_FINAL = ("done", "rolled_back", "failed")

Pins = dict[str, dict[str, tuple[str, str]]]


@dataclass
class Attempt:
    version: str
    policy: str
    started: float
    outcome: str = ""  # "" while the daemon works on it


@dataclass(frozen=True)
class PinDeps:
    pinned: Callable[[], Pins]
    """node id -> {component: (version, policy)} (ConfigService.pinned_versions)."""
    node: Callable[[str], Awaitable[Node]]
    agents: Callable[[str], Awaitable[list[Agent]]]
    client_for: Callable[[str], Awaitable[UpdateCalls]]
    find_artifact: Callable[[str, str], Awaitable[Artifact]]
    download_url: Callable[[Artifact], str]
    audit: Callable[[str, str, str, str], Awaitable[None]]
    """(username, action, target, detail)."""
    node_timeout: float
    clock: Callable[[], float] = time.monotonic


class PinReconciler:
    def __init__(
        self,
        deps: PinDeps,
        *,
        interval: float = DEFAULT_PIN_INTERVAL,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        recheck: float = DEFAULT_RECHECK,
    ) -> None:
        self._deps = deps
        self._interval = interval
        self._max_in_flight = max_in_flight
        self._recheck = recheck
        self._attempts: dict[tuple[str, str], Attempt] = {}
        # (node id, component) -> (pinned version, look again after): nothing to do there now.
        self._quiet: dict[tuple[str, str], tuple[str, float]] = {}
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("pins")
        self.is_leader: Callable[[], bool] = lambda: True
        """Passes run only while this is true (the elected replica; opsfleet.manager.leadership)."""

    async def start(self) -> None:
        self._tasks.spawn("pin-loop", self._loop())

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop()

    def node_registered(self, node_id: str, labels: dict[str, str]) -> None:
        """A node (re-)registered: look at it again at the next pass."""
        for key in [k for k in self._quiet if k[0] == node_id]:
            del self._quiet[key]

    def attempts(self) -> dict[tuple[str, str], Attempt]:
        """(node id, component) -> the last pinned update (a copy, for views and tests)."""
        return dict(self._attempts)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.is_leader():
                    await self.reconcile_once()
            except Exception:
                log.exception("version pins: the pass failed; the next one runs in %.0fs", self._interval)
            if await sleep_or_stop(self._stop, self._interval):
                return

    async def reconcile_once(self) -> None:
        """One pass over the pinned nodes: follow running updates, start the missing ones."""
        pinned = self._deps.pinned()
        now = self._deps.clock()

        def stale(key: tuple[str, str], version: str) -> bool:
            return pinned.get(key[0], {}).get(key[1], ("",))[0] != version

        for key in [k for k, a in self._attempts.items() if stale(k, a.version)]:
            del self._attempts[key]  # the pin changed or went away
        for key in [k for k, (v, until) in self._quiet.items() if stale(k, v) or now >= until]:
            del self._quiet[key]
        in_flight = sum(1 for a in self._attempts.values() if not a.outcome)
        for node_id in sorted(pinned):
            for component, (version, policy) in sorted(pinned[node_id].items()):
                key = (node_id, component)
                attempt = self._attempts.get(key)
                if attempt is not None:
                    if not attempt.outcome:
                        await self._follow(node_id, component, attempt)
                    continue
                if key in self._quiet or in_flight >= self._max_in_flight:
                    continue
                started, quiet_for = await self._start(node_id, component, version, policy)
                in_flight += started
                if quiet_for:
                    self._quiet[key] = (version, now + quiet_for)

    async def _start(self, node_id: str, component: str, version: str, policy: str) -> tuple[bool, float]:
        """Push the pinned version when the node runs another: (update started, seconds to
        leave the node alone when there is nothing to do; 0: look again at the next pass)."""
        try:
            node = await self._deps.node(node_id)
        except NotFound:
            return False, 0.0
        if node.status is not NodeStatus.ONLINE or not node.daemon_address:
            return False, self._recheck  # it registers again when it comes back
        running, reported = await self._running_version(node, component)
        if running == version:
            return False, self._recheck
        if running is None:  # the node lacks the agent, or has not reported its agents yet
            return False, min(self._recheck, ABSENT_RECHECK) if reported else 0.0
        attempt = Attempt(version, policy, self._deps.clock())
        try:
            artifact = await self._deps.find_artifact(component, version)
            client = await self._deps.client_for(node_id)
            reply = await client.push_update(
                component=component,
                version=version,
                download_url=self._deps.download_url(artifact),
                sha256=artifact.sha256,
                signature=artifact.signature,
            )
        except FailedPrecondition as exc:
            log.info("pin %s %s on node %s: not now (%s)", component, version, node_id, exc.message)
            return False, 0.0
        except OpsfleetError as exc:
            self._attempts[(node_id, component)] = attempt
            await self._finish(node_id, component, attempt, "failed", exc.message)
            return False, 0.0
        self._attempts[(node_id, component)] = attempt
        log.info(
            "pin %s %s (policy %s): node %s runs %s, update pushed",
            component,
            version,
            policy,
            node_id,
            running,
        )
        if "already runs" in reply:
            await self._finish(node_id, component, attempt, "done", reply)
            return False, 0.0
        return True, 0.0

    async def _follow(self, node_id: str, component: str, attempt: Attempt) -> None:
        try:
            client = await self._deps.client_for(node_id)
            status = await client.update_status(component)
        except OpsfleetError as exc:
            status = None
            log.info("pin %s on node %s: no status yet (%s)", component, node_id, exc.message)
        if status is not None and status.version == attempt.version and status.finished_at:
            state = status.state if status.state in _FINAL else "failed"
            await self._finish(node_id, component, attempt, state, status.message)
        elif self._deps.clock() - attempt.started > self._deps.node_timeout:
            message = f"no outcome from the daemon within {self._deps.node_timeout:g}s"
            await self._finish(node_id, component, attempt, "failed", message)

    async def _finish(self, node_id: str, component: str, attempt: Attempt, state: str, message: str) -> None:
        attempt.outcome = state
        log.info("pin %s %s on node %s: %s (%s)", component, attempt.version, node_id, state, message)
        target = f"node={node_id} component={component} version={attempt.version}"
        await self._deps.audit(f"policy:{attempt.policy}", f"pins.node.{state}", target, message)

    async def _running_version(self, node: Node, component: str) -> tuple[str | None, bool]:
        """The version the node runs (None: it has no such agent), and whether the node has
        reported any agents yet (a node that just registered may not have)."""
        if component == "daemon":
            return node.daemon_version, True
        agent_id = component.removeprefix("agent:")
        agents = await self._deps.agents(node.node_id)
        for agent in agents:
            if agent.agent_id == agent_id and agent.status != "removed":
                return agent.version, True
        return None, bool(agents)
