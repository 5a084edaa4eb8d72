"""The alert service: feeds the in-memory engine from Manager events, writes transitions,
hands them to the notifier, and serves the operators' list / acknowledge / silence.

Hot paths (heartbeats, agent syncs, metric ingest) only touch dictionaries: transitions
go to a writer task that stores them in one transaction per batch and then notifies.
Lifecycle: ``start()`` loads the firing alerts (one read) and starts the evaluator and the
writer; ``stop()`` (idempotent) writes what is pending and stops the notifier.

Several Manager replicas (a ``relay`` is given): only the leader evaluates, writes
transitions and notifies. A follower forwards each rule input to the leader
(:mod:`opsfleet.manager.alerts.relay`) and holds no alert state; its reads come from the
database and its acknowledgements and silences are written there (the leader is told to
re-read the alert). A replica elected leader loads every firing alert from the database
once and carries it on (it resolves when its condition is seen to end, it is not fired
again); a replica that loses leadership drops its alert state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from opsfleet.common.durations import parse_duration
from opsfleet.common.errors import Conflict, InvalidArgument, NotFound
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.alerts.engine import NODE_OFFLINE, RULES, AgentSnapshot, AlertEngine
from opsfleet.manager.alerts.model import Alert, AlertState
from opsfleet.manager.alerts.notifier import Notifier, TargetStats
from opsfleet.manager.alerts.relay import ALERT_OPERATOR, Event, InputRelay, decode, text
from opsfleet.manager.alerts.settings import AlertsSection
from opsfleet.manager.services.paging import Page, page_window

log = logging.getLogger(__name__)

MAX_SILENCE = 30 * 86400.0
MAX_BACKLOG = 100_000  # inputs held while a new leader loads the firing alerts
USAGE_TYPES = ("cpu", "memory", "disk")


class AlertNotFound(NotFound):
    """No alert with that id."""


class AlertStore(Protocol):
    async def save_alerts(self, batch: Sequence[Alert]) -> list[int]: ...

    async def load_firing(self) -> list[Alert]: ...

    async def save_operator(self, alert: Alert) -> None:
        """Store the acknowledgement and silence fields of a stored alert (only those)."""
        ...

    async def get_alert(self, alert_id: int) -> Alert | None: ...

    async def list_alerts(
        self, offset: int, limit: int, *, state: str = "", node_id: str = "", rule: str = ""
    ) -> tuple[list[Alert], int]: ...


NodeInfo = tuple[str, dict[str, str]]
"""(hostname, labels) of a node."""


class AlertService:
    def __init__(
        self,
        settings: AlertsSection,
        store: AlertStore,
        notifier: Notifier,
        *,
        lookup: Callable[[str], Awaitable[NodeInfo | None]],
        clock: Callable[[], float],
        relay: InputRelay | None = None,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._settings = settings
        self._relay = relay
        self._is_leader = is_leader
        self._store = store
        self.notifier = notifier
        self._lookup = lookup
        self._nodes: dict[str, NodeInfo] = {}
        self._clock = clock
        self.engine = AlertEngine(settings.rules, clock=clock, emit=self._transition)
        self._dirty: dict[int, Alert] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("alerts")
        self._write_lock = asyncio.Lock()
        self._adopt_wanted = False
        self._adopt_now = asyncio.Event()
        self._backlog: deque[Event] | None = None
        self.transitions = 0

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    async def start(self, nodes: Iterable[tuple[str, str, dict[str, str], bool]] = ()) -> None:
        """Load firing alerts; ``nodes`` are (node_id, hostname, labels, online) as stored at
        start: offline nodes get their alert, node_offline alerts of online nodes resolve.
        With a relay (several replicas) nothing is loaded here: the leader loads the firing
        alerts when it is elected."""
        if self._relay is None:
            self.engine.restore(await self._store.load_firing())
        for node_id, hostname, labels, online in nodes:
            self._nodes[node_id] = (hostname, dict(labels))
            if self._relay is None:
                self.node_status(node_id, online=online)
        if self._relay is not None:
            await self._relay.start()
        await self.notifier.start()
        self._tasks.spawn("writer", self._writer_loop())
        self._tasks.spawn("evaluator", self._evaluate_loop())
        self._tasks.spawn("adopter", self._adopt_loop())

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._adopt_now.set()
        await self._tasks.stop()
        try:
            if self._relay is not None:
                await self._relay.stop()
            await self.flush()
        finally:
            await self.notifier.stop()

    # -- events (synchronous, in-memory) ---------------------------------------------------

    def node_status(self, node_id: str, *, online: bool) -> None:
        self._input(["s", node_id, online])

    def agents_synced(self, node_id: str, agents: Iterable[tuple[str, str, int]]) -> None:
        if self.enabled:
            self._input(["a", node_id, [[a, s, p] for a, s, p in agents]])

    def metrics_ingested(self, node_id: str, samples: Iterable[tuple[str, int, dict[str, float]]]) -> None:
        """(type, timestamp, values) of accepted samples: the newest usage_percent per type counts."""
        if not self.enabled:
            return
        newest: dict[str, tuple[int, float]] = {}
        for type_, timestamp, values in samples:
            if type_ not in USAGE_TYPES:
                continue
            value = values.get("usage_percent")
            if value is None:
                continue
            seen = newest.get(type_)
            if seen is None or timestamp >= seen[0]:
                newest[type_] = (timestamp, float(value))
        for type_, (_, value) in newest.items():
            self._input(["u", node_id, type_, value])

    def config_state(self, node_id: str, state: str, error: str) -> None:
        self._input(["c", node_id, state, text(error)])

    def update_outcome(self, node_id: str, component: str, state: str, message: str) -> None:
        self._input(["o", node_id, component, state, text(message)])

    def node_registered(self, node_id: str, labels: dict[str, str]) -> None:
        hostname = self._nodes.get(node_id, ("", {}))[0]
        self._nodes[node_id] = (hostname, dict(labels))

    def forget(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
        self._input(["f", node_id])

    def _input(self, event: Event) -> None:
        """Evaluate here (single Manager, or the leader) or forward to the leader."""
        if not self.enabled:
            return
        if self._relay is None or self._is_leader():
            self._evaluate(event)
        else:
            self._relay.add(event)

    def _evaluate(self, event: Event) -> None:
        if self._backlog is not None:
            self._backlog.append(event)
        else:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        engine, kind, node_id, args = self.engine, event[0], event[1], event[2:]
        try:
            if kind == "s":
                engine.node_status(node_id, bool(args[0]))
            elif kind == "a":
                engine.agents_synced(node_id, [AgentSnapshot(str(a), str(s), int(p)) for a, s, p in args[0]])
            elif kind == "u":
                engine.usage(node_id, str(args[0]), float(args[1]))
            elif kind == "c":
                engine.config_state(node_id, str(args[0]), str(args[1]))
            elif kind == "o":
                engine.update_outcome(node_id, str(args[0]), str(args[1]), str(args[2]))
            elif kind == "f":
                engine.forget(node_id)
        except (IndexError, TypeError, ValueError):
            log.warning("alerts: ignoring a malformed %r input of node %s", kind, node_id)

    async def inputs_forwarded(self, payload: str) -> None:
        """A follower's inputs (change feed): the leader evaluates them, the others ignore them."""
        if not self.enabled or not self._is_leader():
            return
        for event in decode(payload):
            self._evaluate(event)

    async def operator_changed(self, key: str) -> None:
        """An alert acknowledged or silenced through another replica: the leader re-reads it."""
        held = self.engine.firing_by_id(int(key)) if key.isdigit() else None
        if held is None:
            return
        stored = await self._store.get_alert(held.id)
        if stored is not None:
            _copy_operator(stored, held)

    # -- several Manager replicas ------------------------------------------------------------

    def offline_nodes(self) -> list[str]:
        """Nodes with a firing node_offline alert here (the leader checks whether they are back)."""
        return [a.key.node_id for a in self.engine.firing() if a.key.rule == NODE_OFFLINE]

    def leadership_changed(self, leader: bool) -> None:
        """Elected: take over the alerts a previous leader left firing, so that they resolve
        when their condition ends instead of firing again; with several replicas the inputs
        received meanwhile wait until they are loaded. No longer leader (several replicas):
        drop the alert state; the transitions already made are still written."""
        if leader:
            self._adopt_wanted = True
            if self._relay is not None:
                self._backlog = deque(maxlen=MAX_BACKLOG)
            self._adopt_now.set()
        elif self._relay is not None:
            self._adopt_wanted = False
            self._backlog = None
            self.engine = AlertEngine(self._settings.rules, clock=self._clock, emit=self._transition)

    async def adopt_firing_alerts(self) -> int:
        """Load the firing alerts this replica does not hold (one read); how many."""
        await self.flush()
        stored = await self._store.load_firing()
        held = {a.key for a in self.engine.firing()}
        found = [a for a in stored if a.key not in held]
        if not self._is_leader():
            return 0
        self.engine.restore(found)
        backlog, self._backlog = self._backlog, None
        self._adopt_wanted = False
        for event in backlog or ():
            self._apply(event)
        if found:
            log.info("alerts: took over %d firing alerts as the leader", len(found))
        return len(found)

    def _transition(self, alert: Alert) -> None:
        self.transitions += 1
        if alert.firing and not alert.id:
            info = self._nodes.get(alert.key.node_id)
            if info is not None:
                alert.hostname, alert.node_labels = info[0], dict(info[1])
        log.info(
            "alert %s %s on node %s%s: %s",
            alert.key.rule,
            alert.state.value,
            alert.key.node_id,
            f" ({alert.key.subject})" if alert.key.subject else "",
            alert.summary,
        )
        self._dirty[id(alert)] = alert
        self._wake.set()

    # -- writer ---------------------------------------------------------------------------

    async def flush(self) -> int:
        """Store the pending transitions in one transaction, then notify; how many."""
        async with self._write_lock:
            if not self._dirty:
                return 0
            batch, self._dirty = list(self._dirty.values()), {}
            await self._fill_hostnames(batch)
            new = {id(a) for a in batch if not a.id}
            try:
                ids = await self._store.save_alerts(batch)
            except Exception:
                for alert in batch:
                    self._dirty.setdefault(id(alert), alert)
                raise
            for alert, alert_id in zip(batch, ids, strict=True):
                alert.id = alert_id
            for alert in batch:
                # An alert that fired and resolved before it was stored is still notified once firing.
                if id(alert) in new and not alert.firing:
                    self.notifier.enqueue(_as_firing(alert))
                self.notifier.enqueue(alert)
            return len(batch)

    async def _fill_hostnames(self, batch: Sequence[Alert]) -> None:
        """New alerts of nodes registered since start: one read per node, then cached."""
        for alert in batch:
            if alert.id or alert.hostname:
                continue
            node_id = alert.key.node_id
            info = self._nodes.get(node_id)
            if info is None or not info[0]:
                try:
                    found = await self._lookup(node_id)
                except Exception:
                    found = None
                if found is None:
                    continue
                info = self._nodes[node_id] = found
            alert.hostname, alert.node_labels = info[0], dict(info[1])

    async def _writer_loop(self) -> None:
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("storing alert transitions failed; will retry")
                if await sleep_or_stop(self._stop, 1.0):
                    return
                self._wake.set()

    async def _adopt_loop(self) -> None:
        while True:
            await self._adopt_now.wait()
            self._adopt_now.clear()
            if self._stop.is_set():
                return
            while self._adopt_wanted and self.enabled and not self._stop.is_set():
                try:
                    await self.adopt_firing_alerts()
                    break
                except Exception:
                    log.exception("alerts: loading the firing alerts failed; will retry")
                    if await sleep_or_stop(self._stop, 1.0):
                        return

    async def _evaluate_loop(self) -> None:
        while not await sleep_or_stop(self._stop, self._settings.evaluation_interval):
            if self.enabled:
                self.engine.tick()

    # -- operators ------------------------------------------------------------------------

    async def search(
        self, page: int, page_size: int, *, state: str = "", node_id: str = "", rule: str = ""
    ) -> Page[Alert]:
        if state and state not in ("firing", "resolved"):
            raise InvalidArgument(f"state must be firing or resolved, got {state[:20]!r}")
        if rule and rule not in RULES:
            raise InvalidArgument(f"rule must be one of {', '.join(RULES)}, got {rule[:64]!r}")
        offset, limit = page_window(page, page_size)
        await self.flush()
        items, total = await self._store.list_alerts(offset, limit, state=state, node_id=node_id, rule=rule)
        return Page([self.engine.firing_by_id(a.id) or a for a in items], page, page_size, total)

    def now(self) -> float:
        return self._clock()

    def firing_count(self) -> int:
        """Firing alerts held here (all of them on the leader, none on a follower)."""
        return len(self.engine.firing())

    async def count_firing(self) -> int:
        """Firing alerts of the fleet, whichever replica answers."""
        if self._relay is None or self._is_leader():
            return self.firing_count()
        return (await self._store.list_alerts(0, 0, state=AlertState.FIRING.value))[1]

    async def get(self, alert_id: int) -> Alert:
        await self.flush()
        alert = self.engine.firing_by_id(alert_id) or await self._store.get_alert(alert_id)
        if alert is None:
            raise AlertNotFound(f"alert {alert_id} not found")
        return alert

    async def acknowledge(self, alert_id: int, username: str) -> Alert:
        alert = await self._firing(alert_id, "acknowledged")
        alert.acked_by, alert.acked_at = username, self._clock()
        return await self._save(alert)

    async def silence(self, alert_id: int, duration: str | float, username: str) -> Alert:
        seconds = _duration(duration)
        alert = await self._firing(alert_id, "silenced")
        now = self._clock()
        alert.silenced_by, alert.silenced_until = username, now + seconds
        return await self._save(alert)

    async def _firing(self, alert_id: int, verb: str) -> Alert:
        alert = await self.get(alert_id)
        if alert.state is not AlertState.FIRING:
            raise Conflict(f"alert {alert_id} is {alert.state.value}; only firing alerts can be {verb}")
        return alert

    async def _save(self, alert: Alert) -> Alert:
        alert.updated_at = self._clock()
        async with self._write_lock:
            await self._store.save_operator(alert)
        held = self.engine.firing_by_id(alert.id)
        if held is not None and held is not alert:
            _copy_operator(alert, held)
        if self._relay is not None:
            await self._relay.tell(ALERT_OPERATOR, str(alert.id))
        return alert

    def notification_stats(self) -> list[TargetStats]:
        return self.notifier.stats


def _copy_operator(source: Alert, target: Alert) -> None:
    target.acked_by, target.acked_at = source.acked_by, source.acked_at
    target.silenced_by, target.silenced_until = source.silenced_by, source.silenced_until


def _as_firing(alert: Alert) -> Alert:
    return replace(alert, state=AlertState.FIRING, ends_at=0.0)


def _duration(value: str | float) -> float:
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"duration: {exc}") from exc
    if not 0 < seconds <= MAX_SILENCE:
        raise InvalidArgument(f"duration must be more than 0 and at most {MAX_SILENCE / 86400:g} days")
    return seconds
