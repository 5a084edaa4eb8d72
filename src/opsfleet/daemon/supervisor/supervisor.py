"""The daemon's agent supervisor: every configured agent, the heartbeat endpoint, and queries.

Lifecycle: ``start()`` binds the heartbeat endpoint, stops the agent processes a previous
daemon left running (``orphans.py``; this may take up to an agent's ``stop_timeout``) and
starts the enabled agents in config order (an agent an operator stopped stays stopped);
``stop()`` closes the endpoint, then stops the agents gracefully in reverse order.
``stop()`` is idempotent, safe before ``start()``, and once it returns no ``on_change`` or
``on_crash`` callback fires.

Files: ``<state_dir>/agents/<id>.json`` (restart counts, last exit reason, manual stop,
the running process's pid, process group and start time),
``<state_dir>/agents/<id>.metrics.jsonl`` (resource history), ``<log_dir>/<id>.log[.N]``.
All methods are called from the event loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from opsfleet.common.errors import ConfigError, InvalidArgument, NotFound, Unavailable
from opsfleet.daemon.http_client import LazyHttpClient
from opsfleet.daemon.supervisor.clock import Clock, SystemClock
from opsfleet.daemon.supervisor.config import DEFAULT_STOP_TIMEOUT, AgentSpec, is_valid_agent_id
from opsfleet.daemon.supervisor.events import OPERATIONS, Operation
from opsfleet.daemon.supervisor.health import build_probes
from opsfleet.daemon.supervisor.heartbeat import Heartbeat, HeartbeatServer
from opsfleet.daemon.supervisor.logs import AgentLog
from opsfleet.daemon.supervisor.metadata import AgentMetadata, MetadataStore, ProcessRecord
from opsfleet.daemon.supervisor.orphans import stop_leftover
from opsfleet.daemon.supervisor.process import AgentProcess
from opsfleet.daemon.supervisor.resources import DEFAULT_RETENTION, ResourceHistory, ResourcePoint
from opsfleet.daemon.supervisor.spawner import Spawner, SubprocessSpawner
from opsfleet.daemon.supervisor.states import AgentView

log = logging.getLogger(__name__)

_Phase = Literal["new", "running", "stopping", "stopped"]


def _check_unique(specs: Sequence[AgentSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.id in seen:
            raise ConfigError(f"config key 'agents': duplicate agent id {spec.id!r}")
        seen.add(spec.id)


class Supervisor:
    def __init__(
        self,
        specs: Sequence[AgentSpec],
        *,
        state_dir: Path,
        log_dir: Path,
        heartbeat_listen: tuple[str, int] = ("127.0.0.1", 0),
        on_change: Callable[[], None] | None = None,
        on_crash: Callable[[str, BaseException], None] | None = None,
        spawner: Spawner | None = None,
        clock: Clock | None = None,
        history_retention: float = DEFAULT_RETENTION,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        _check_unique(specs)
        self._specs = list(specs)
        self._agent_dir = state_dir / "agents"
        self._log_dir = log_dir
        self._on_change = on_change
        self._on_crash = on_crash
        self._spawner: Spawner = spawner or SubprocessSpawner()
        self._clock: Clock = clock or SystemClock()
        self._retention = history_retention
        # The daemon's own OPSFLEET_* settings are not the agents' business.
        inherited = os.environ if base_env is None else base_env
        self._base_env = {k: v for k, v in inherited.items() if not k.startswith("OPSFLEET_")}
        self._listen = heartbeat_listen
        self._heartbeats = HeartbeatServer(heartbeat_listen[0], heartbeat_listen[1], self._on_heartbeat)
        # Shared by the HTTP probes of every agent, made when the first one runs.
        self._http = LazyHttpClient()
        self._agents: dict[str, AgentProcess] = {}
        self._phase: _Phase = "new"
        self._lock = asyncio.Lock()
        self._stopped = asyncio.Event()

    @property
    def heartbeat_port(self) -> int:
        """The bound port of the heartbeat endpoint (0 before ``start()``)."""
        return self._heartbeats.port

    @property
    def heartbeat_url(self) -> str:
        return f"http://{self._listen[0]}:{self.heartbeat_port}/heartbeat"

    async def start(self) -> None:
        """Bind the heartbeat endpoint and start the enabled agents in order. Once only."""
        async with self._lock:
            if self._phase != "new":
                return
            try:
                self._agent_dir.mkdir(parents=True, exist_ok=True)
                self._log_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the agent state/log directories: {exc}") from exc
            try:
                await self._heartbeats.start()
            except OSError as exc:
                host, port = self._listen
                raise ConfigError(f"cannot listen for agent heartbeats on {host}:{port}: {exc}") from exc
            self._phase = "running"
            try:
                await self._stop_leftovers()
                for spec in self._specs:
                    await self._launch(spec)
            except BaseException:
                await self._teardown()
                raise
        log.info("supervisor started: %d agents", len(self._agents))

    async def stop(self) -> None:
        """Stop accepting heartbeats, then stop every agent gracefully, last first."""
        if self._phase == "new":
            self._phase = "stopped"
            self._stopped.set()
            return
        if self._phase in ("stopping", "stopped"):
            await self._stopped.wait()
            return
        self._phase = "stopping"
        try:
            async with self._lock:
                await self._teardown()
        finally:
            self._phase = "stopped"
            self._stopped.set()
        log.info("supervisor stopped")

    async def reload(self, specs: Sequence[AgentSpec]) -> None:
        """Apply a new agent list: removed or changed agents are stopped, new or changed ones started."""
        _check_unique(specs)
        async with self._lock:
            self._require_running()
            wanted = {spec.id: spec for spec in specs}
            for agent_id in reversed(list(self._agents)):
                agent = self._agents[agent_id]
                if wanted.get(agent_id) != agent.spec:
                    change = "changed" if agent_id in wanted else "removed"
                    log.info("agent %s: %s by config reload", agent_id, change)
                    await agent.shutdown()
                    del self._agents[agent_id]
            for spec in specs:
                if spec.id not in self._agents:
                    await self._launch(spec)
            self._agents = {spec.id: self._agents[spec.id] for spec in specs}
            self._specs = list(specs)

    async def replace_agent(self, spec: AgentSpec) -> None:
        """Stop agent ``spec.id`` and supervise it again with ``spec`` (an update or a rollback).

        The new process starts unless the agent is disabled or an operator stopped it.
        NotFound for an unknown agent, Unavailable when the supervisor is not running.
        """
        async with self._lock:
            self._require_running()
            old = self._get(spec.id)
            log.info(
                "agent %s: replaced (version %s -> %s)", spec.id, old.spec.version or "-", spec.version or "-"
            )
            await old.shutdown()
            await self._launch(spec)
            self._specs = [spec if item.id == spec.id else item for item in self._specs]

    # -- queries and operations -----------------------------------------------------------

    def agents(self) -> list[AgentView]:
        """Every agent, sorted by id."""
        return sorted((agent.view() for agent in self._agents.values()), key=lambda view: view.id)

    def agent(self, agent_id: str) -> AgentView:
        return self._get(agent_id).view()

    def restart_reasons(self, agent_id: str) -> list[str]:
        """Why the agent was restarted, oldest first (the most recent ones only)."""
        return self._get(agent_id).restart_reasons()

    async def operate(self, agent_id: str, operation: str, timeout: float) -> None:
        """start | stop | restart, returning when it finished (running / stopped).

        InvalidArgument for another operation or a malformed id, NotFound for an unknown
        agent, DeadlineExceeded after ``timeout``, Unavailable when the agent cannot reach
        running or the supervisor is not running. Start of a running agent and stop of a
        stopped one return at once.
        """
        if operation not in OPERATIONS:
            raise InvalidArgument(f"operation must be one of start, stop, restart; got {operation!r}")
        agent = self._get(agent_id)
        self._require_running()
        op: Operation = "start" if operation == "start" else "stop" if operation == "stop" else "restart"
        await agent.operate(op, timeout)

    def resource_history(self, agent_id: str, duration_seconds: float) -> list[ResourcePoint]:
        """Samples of the last ``duration_seconds``, oldest first ([] when none)."""
        agent = self._get(agent_id)
        return agent.history.since(self._clock.time() - duration_seconds)

    def tail_logs(self, agent_id: str, lines: int, filter: str = "") -> list[str]:
        """The last ``lines`` lines of the agent's output (containing ``filter``), oldest first."""
        return self._get(agent_id).log.tail(lines, filter)

    # -- internals ------------------------------------------------------------------------

    def _get(self, agent_id: str) -> AgentProcess:
        if not is_valid_agent_id(agent_id):
            raise InvalidArgument(f"malformed agent id {agent_id[:140]!r}")
        if self._phase == "new":
            raise Unavailable("the supervisor has not started yet")
        agent = self._agents.get(agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r} on this node")
        return agent

    def _require_running(self) -> None:
        if self._phase != "running":
            raise Unavailable(f"the supervisor is {self._phase}")

    async def _launch(self, spec: AgentSpec) -> None:
        history = ResourceHistory(self._agent_dir / f"{spec.id}.metrics.jsonl", retention=self._retention)
        history.load(self._clock.time())
        agent = AgentProcess(
            spec,
            spawner=self._spawner,
            agent_log=AgentLog(
                self._log_dir, spec.id, max_bytes=spec.log_max_bytes, backups=spec.log_backups
            ),
            history=history,
            metadata=MetadataStore(self._agent_dir / f"{spec.id}.json"),
            probes=build_probes(spec.health_check, self._http.get),
            heartbeat_url=self.heartbeat_url,
            clock=self._clock,
            on_change=self._changed,
            on_crash=self._crashed,
            base_env=self._base_env,
        )
        self._agents[spec.id] = agent
        agent.start()
        if agent.manually_stopped:
            log.info("agent %s: stays stopped (stopped by an operator)", spec.id)
        elif spec.enabled:
            await agent.submit("start")

    async def _stop_leftovers(self) -> None:
        """Stop every agent process a previous daemon left running (see orphans.py), all at once."""
        timeouts = {spec.id: spec.stop_timeout for spec in self._specs}
        pending: list[tuple[str, MetadataStore, AgentMetadata, ProcessRecord]] = []
        for path in sorted(self._agent_dir.glob("*.json")):
            agent_id = path.stem
            if not is_valid_agent_id(agent_id):
                continue
            store = MetadataStore(path)
            meta = store.load()
            if meta.process is not None:
                pending.append((agent_id, store, meta, meta.process))
        if not pending:
            return
        await asyncio.gather(
            *(
                stop_leftover(agent_id, record, timeouts.get(agent_id, DEFAULT_STOP_TIMEOUT), self._clock)
                for agent_id, _, _, record in pending
            )
        )
        for _, store, meta, _ in pending:
            meta.process = None
            store.save(meta)

    async def _teardown(self) -> None:
        await self._heartbeats.stop()
        for agent_id in reversed(list(self._agents)):
            await self._agents[agent_id].shutdown()
        await self._http.aclose()

    def _on_heartbeat(self, heartbeat: Heartbeat) -> bool:
        agent = self._agents.get(heartbeat.agent_id)
        if agent is None:
            return False
        agent.record_heartbeat(heartbeat)
        return True

    def _changed(self) -> None:
        if self._on_change is not None and self._phase != "stopped":
            try:
                self._on_change()
            except Exception:
                log.exception("on_change callback failed")

    def _crashed(self, name: str, exc: BaseException) -> None:
        if self._on_crash is not None and self._phase != "stopped":
            self._on_crash(name, exc)
