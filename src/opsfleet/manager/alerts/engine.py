"""Rule evaluation in memory, fed by the events the Manager already handles.

The engine keeps, per node, what the rules need (agent status and last process id, recent
agent starts, since when a usage has been above its threshold) and never reads the
database. Each call that changes an alert's state hands the alert to ``emit`` (firing, or
resolved with its end time); the caller persists and notifies. Single-threaded: call it
from the event loop only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opsfleet.manager.alerts.model import Alert, AlertKey, AlertState
from opsfleet.manager.alerts.settings import AgentFlappingRule, RuleSettings, RulesSection, UsageRule

NODE_OFFLINE = "node_offline"
AGENT_FAILED = "agent_failed"
AGENT_FLAPPING = "agent_flapping"
CONFIG_APPLY_FAILED = "config_apply_failed"
UPDATE_ROLLED_BACK = "update_rolled_back"
USAGE_RULES = {"cpu": "cpu_high", "memory": "memory_high", "disk": "disk_high"}
RULES = (
    NODE_OFFLINE,
    AGENT_FAILED,
    AGENT_FLAPPING,
    *USAGE_RULES.values(),
    CONFIG_APPLY_FAILED,
    UPDATE_ROLLED_BACK,
)
FAILED_AGENT_STATUSES = frozenset({"error", "failed"})


@dataclass(frozen=True)
class AgentSnapshot:
    agent_id: str
    status: str
    pid: int


@dataclass
class _Pending:
    since: float
    summary: str


@dataclass
class _AgentSeen:
    status: str
    pid: int


class AlertEngine:
    def __init__(
        self, rules: RulesSection, *, clock: Callable[[], float], emit: Callable[[Alert], None]
    ) -> None:
        self._rules = rules
        self._clock = clock
        self._emit = emit
        self._pending: dict[AlertKey, _Pending] = {}
        self._firing: dict[AlertKey, Alert] = {}
        self._agents: dict[str, dict[str, _AgentSeen]] = {}
        self._starts: dict[AlertKey, deque[float]] = {}

    # -- state ----------------------------------------------------------------------------

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Firing alerts loaded at start: they resolve when their condition is seen to end."""
        for alert in alerts:
            if alert.firing:
                self._firing[alert.key] = alert

    def firing(self) -> list[Alert]:
        return list(self._firing.values())

    def firing_by_id(self, alert_id: int) -> Alert | None:
        for alert in self._firing.values():
            if alert.id == alert_id:
                return alert
        return None

    def pending_count(self) -> int:
        return len(self._pending)

    # -- events ---------------------------------------------------------------------------

    def node_status(self, node_id: str, online: bool) -> None:
        self._condition(AlertKey(NODE_OFFLINE, node_id), not online, "node is offline (no heartbeat)")

    def agents_synced(self, node_id: str, agents: Iterable[AgentSnapshot]) -> None:
        """A full snapshot of the node's agents; agents missing from it are gone."""
        now = self._clock()
        flapping = self._rules.agent_flapping
        seen = self._agents.setdefault(node_id, {})
        present: set[str] = set()
        for agent in agents:
            present.add(agent.agent_id)
            before = seen.get(agent.agent_id)
            if before is None:
                seen[agent.agent_id] = before = _AgentSeen(agent.status, agent.pid)
            elif agent.pid and before.pid and agent.pid != before.pid:
                key = AlertKey(AGENT_FLAPPING, node_id, agent.agent_id)
                self._starts.setdefault(key, deque()).append(now)
            before.status = agent.status
            if agent.pid:
                before.pid = agent.pid
            self._condition(
                AlertKey(AGENT_FAILED, node_id, agent.agent_id),
                agent.status in FAILED_AGENT_STATUSES,
                f"agent {agent.agent_id} failed (status {agent.status})",
            )
            self._flapping(AlertKey(AGENT_FLAPPING, node_id, agent.agent_id), flapping, now)
        for agent_id in [a for a in seen if a not in present]:
            del seen[agent_id]
            self._condition(AlertKey(AGENT_FAILED, node_id, agent_id), False, "")
            self._starts.pop(AlertKey(AGENT_FLAPPING, node_id, agent_id), None)
            self._condition(AlertKey(AGENT_FLAPPING, node_id, agent_id), False, "")

    def usage(self, node_id: str, metric_type: str, value: float) -> None:
        """The newest ``usage_percent`` of a cpu, memory or disk sample."""
        rule = USAGE_RULES.get(metric_type)
        if rule is None:
            return
        settings: UsageRule = getattr(self._rules, rule)
        active = value > settings.threshold
        # Every report of every node comes here: the summary is only read while active.
        summary = f"{metric_type} usage {value:.1f}% above {settings.threshold:g}%" if active else ""
        self._condition(AlertKey(rule, node_id), active, summary)

    def config_state(self, node_id: str, state: str, error: str) -> None:
        if state == "applying":
            return
        detail = f": {error}" if error else ""
        self._condition(
            AlertKey(CONFIG_APPLY_FAILED, node_id), state == "failed", f"central config apply failed{detail}"
        )

    def update_outcome(self, node_id: str, component: str, state: str, message: str) -> None:
        """The outcome of an update pushed by a rollout (done, rolled_back, failed)."""
        if state not in ("done", "rolled_back"):
            return
        detail = f": {message}" if message else ""
        self._condition(
            AlertKey(UPDATE_ROLLED_BACK, node_id, component),
            state == "rolled_back",
            f"update of {component} rolled back{detail}",
        )

    def forget(self, node_id: str) -> None:
        """The node was deleted: its alerts resolve, its state is dropped."""
        self._agents.pop(node_id, None)
        for key in [k for k in self._starts if k.node_id == node_id]:
            del self._starts[key]
        for key in [k for k in self._pending if k.node_id == node_id]:
            del self._pending[key]
        for key in [k for k in self._firing if k.node_id == node_id]:
            self._condition(key, False, "")

    def tick(self) -> None:
        """Fire conditions that have now held for their rule's ``for``; let flapping decay."""
        now = self._clock()
        for key, pending in list(self._pending.items()):
            if now - pending.since >= self._settings(key.rule).for_:
                self._fire(key, pending.summary, now)
        flapping = self._rules.agent_flapping
        for key in list(self._starts):
            self._flapping(key, flapping, now)

    # -- rules ----------------------------------------------------------------------------

    def _flapping(self, key: AlertKey, settings: AgentFlappingRule, now: float) -> None:
        starts = self._starts.get(key)
        if starts is None:
            return
        while starts and now - starts[0] > settings.window:
            starts.popleft()
        count = len(starts)
        if not starts:
            del self._starts[key]
        self._condition(
            key,
            count >= settings.restarts,
            f"agent {key.subject} restarted {count} times within {settings.window:g}s",
        )

    def _settings(self, rule: str) -> RuleSettings:
        settings: RuleSettings = getattr(self._rules, rule)
        return settings

    def _condition(self, key: AlertKey, active: bool, summary: str) -> None:
        settings = self._settings(key.rule)
        if active and settings.enabled:
            if key in self._firing:
                return
            now = self._clock()
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(now, summary)
            pending.summary = summary
            if now - pending.since >= settings.for_:
                self._fire(key, summary, now)
            return
        self._pending.pop(key, None)
        alert = self._firing.pop(key, None)
        if alert is not None:
            now = self._clock()
            alert.state = AlertState.RESOLVED
            alert.ends_at = now
            alert.updated_at = now
            self._emit(alert)

    def _fire(self, key: AlertKey, summary: str, now: float) -> None:
        pending = self._pending.pop(key, None)
        since = pending.since if pending is not None else now
        alert = Alert(
            key=key,
            severity=self._settings(key.rule).severity,
            summary=summary,
            starts_at=since,
            updated_at=now,
        )
        self._firing[key] = alert
        self._emit(alert)
