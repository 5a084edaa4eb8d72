"""Central configuration on the daemon: fetch, validate, apply the difference, verify, report.

The link calls :meth:`CentralConfig.on_config_hash` after every registration (``None``:
fetch unconditionally) and with the hash of every HeartbeatResponse (fetch when it is not
the hash applied or the one that last failed; "" means the manager has no opinion). One
owned worker task then:

1. fetches the document with ``GetConfig(node_id, "daemon")`` on the link's channel;
2. reports ``applying``, validates it with the daemon's schema and lays it over the local
   daemon.yaml (:func:`~opsfleet.daemon.effective.overlay`);
3. applies it through the app (the supervisor restarts only the agents whose spec changed,
   starts new ones and stops removed ones; collectors and intervals change in place);
4. waits up to ``grace`` seconds for every new or changed enabled agent to be running at
   once; if one fails or the grace period ends, the last-known-good document is applied
   again and ``failed`` is reported with the reason;
5. on success stores the document as last-known-good and reports ``applied``.

A report that cannot be delivered is sent again after the next registration or heartbeat.
Lifecycle: ``start()`` spawns the worker, ``stop()`` ends it (idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from opsfleet.common.central_config import parse_central_yaml
from opsfleet.common.daemon_schema import AgentSpec, DaemonConfig
from opsfleet.common.errors import ConfigError
from opsfleet.common.lifecycle import TaskOwner
from opsfleet.daemon.effective import Effective, KnownGood, overlay, save_known_good
from opsfleet.daemon.supervisor.states import AgentStatus, AgentView
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc

log = logging.getLogger(__name__)

POLL = 0.1
RPC_TIMEOUT = 10.0


class CentralConfig:
    def __init__(
        self,
        *,
        node_id: str,
        work_dir: Path,
        local: Callable[[], DaemonConfig],
        apply: Callable[[Effective], Awaitable[None]],
        agents: Callable[[], list[AgentView]],
        channel: Callable[[], grpc.aio.Channel | None],
        known_good: KnownGood | None,
        grace: float,
    ) -> None:
        self._node_id = node_id
        self._work_dir = work_dir
        self._local = local
        self._apply = apply
        self._agents = agents
        self._channel = channel
        self.known_good = known_good
        self._grace = grace
        self.applied_hash = known_good.hash if known_good is not None else ""
        self.failed_hash = ""
        self.state = "applied" if known_good is not None else ""
        self.error = ""
        self._unreported: daemon_pb2.ConfigStateRequest | None = None
        self._wanted = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("central-config")

    @property
    def document(self) -> dict[str, object]:
        return self.known_good.document if self.known_good is not None else {}

    def effective(self) -> Effective:
        """The local config with the applied central document over it."""
        return overlay(self._local(), dict(self.document))

    async def start(self) -> None:
        self._tasks.spawn("worker", self._worker())

    async def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        await self._tasks.stop()

    def on_config_hash(self, config_hash: str | None) -> None:
        """From the link: ``None`` after a registration, else a HeartbeatResponse's hash."""
        settled = config_hash is not None and (
            not config_hash or config_hash in (self.applied_hash, self.failed_hash)
        )
        if settled and self._unreported is None:
            return
        self._wanted.set()

    # -- the worker --------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            await self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            channel = self._channel()
            if channel is None:
                continue
            stub: daemon_pb2_grpc.DaemonServiceAsyncStub = daemon_pb2_grpc.DaemonServiceStub(channel)
            try:
                await self._flush_report(stub)
                await self._fetch_and_apply(stub)
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "central config: %s %s (retried on the next heartbeat)", exc.code().name, exc.details()
                )

    async def _fetch_and_apply(self, stub: daemon_pb2_grpc.DaemonServiceAsyncStub) -> None:
        response = await stub.GetConfig(
            daemon_pb2.ConfigRequest(node_id=self._node_id, config_type="daemon"), timeout=RPC_TIMEOUT
        )
        config_hash = response.config_hash
        if not config_hash:
            log.debug("manager has no central config opinion; keeping the current one")
            return
        if config_hash in (self.applied_hash, self.failed_hash):
            return
        if not response.config_data.strip() and self.known_good is None:
            # Nothing central before, nothing now: adopt the hash without a report per node.
            self.applied_hash = config_hash
            return
        await self._apply_revision(stub, config_hash, response.config_data)

    async def _apply_revision(
        self, stub: daemon_pb2_grpc.DaemonServiceAsyncStub, config_hash: str, data: bytes
    ) -> None:
        log.info("central config %s: applying", config_hash[:12])
        await self._report(stub, config_hash, "applying", "")
        try:
            document = parse_central_yaml(data)
            effective = overlay(self._local(), document)
        except ConfigError as exc:
            await self._failed(stub, config_hash, f"invalid config: {exc}")
            return
        before = {spec.id: spec for spec in self.effective().specs}
        watched = [s for s in effective.specs if s.enabled and before.get(s.id) != s]
        try:
            await self._apply(effective)
            problem = await self._verify(watched)
        except Exception as exc:
            problem = f"apply failed: {exc}"
        if problem:
            log.warning("central config %s failed: %s; back to last-known-good", config_hash[:12], problem)
            try:
                await self._apply(self.effective())
            except Exception:
                log.exception("could not re-apply the last-known-good config")
            await self._failed(stub, config_hash, problem)
            return
        self.known_good = KnownGood(config_hash, document)
        try:
            save_known_good(self._work_dir, self.known_good)
        except OSError as exc:
            log.error("cannot store the last-known-good central config: %s", exc)
        self.applied_hash, self.failed_hash = config_hash, ""
        self.state, self.error = "applied", ""
        log.info("central config %s: applied", config_hash[:12])
        await self._report(stub, config_hash, "applied", "")

    async def _verify(self, watched: list[AgentSpec]) -> str:
        """ "" when the watched agents are fine, else why not.

        Fine: every one is running at the same time within the grace period. Agents with a
        health check (probe or heartbeat timeout) must also stay up, without a restart,
        until the grace period ends, since a failed check restarts them.
        """
        if not watched:
            return ""
        ids = {spec.id for spec in watched}
        checked = {s.id for s in watched if s.health_check.has_probe or s.health_check.heartbeat_timeout > 0}
        deadline = time.monotonic() + self._grace
        first_up: dict[str, int] = {}  # agent id -> its restart count when first seen running
        while True:
            views = {v.id: v for v in self._agents() if v.id in ids}
            for agent_id in sorted(ids):
                view = views.get(agent_id)
                if view is None:
                    continue
                if view.state is AgentStatus.FAILED:
                    return f"agent {agent_id} failed: {view.last_exit_reason or 'no reason given'}"
                if agent_id in first_up and view.restart_count != first_up[agent_id]:
                    return f"agent {agent_id} restarted: {view.last_exit_reason or 'no reason given'}"
                if view.state is AgentStatus.RUNNING:
                    first_up.setdefault(agent_id, view.restart_count)
            all_up = len(views) == len(ids) and all(v.state is AgentStatus.RUNNING for v in views.values())
            if all_up and (not checked or time.monotonic() >= deadline):
                return ""
            if time.monotonic() >= deadline:
                late = sorted(i for i in ids if i not in views or views[i].state is not AgentStatus.RUNNING)
                reasons = [
                    f"{i} is {views[i].state.value}"
                    + (f" ({views[i].last_exit_reason})" if views[i].last_exit_reason else "")
                    if i in views
                    else f"{i} is missing"
                    for i in late
                ]
                return f"agents not running after {self._grace:g}s: " + "; ".join(reasons)
            if self._stop.is_set():
                return "daemon stopping"
            await asyncio.sleep(POLL)

    async def _failed(
        self, stub: daemon_pb2_grpc.DaemonServiceAsyncStub, config_hash: str, reason: str
    ) -> None:
        self.failed_hash = config_hash
        self.state, self.error = "failed", reason
        await self._report(stub, config_hash, "failed", reason)

    async def _report(
        self, stub: daemon_pb2_grpc.DaemonServiceAsyncStub, config_hash: str, state: str, error: str
    ) -> None:
        self._unreported = daemon_pb2.ConfigStateRequest(
            node_id=self._node_id, config_hash=config_hash, state=state, error=error[:1024]
        )
        try:
            await self._flush_report(stub)
        except grpc.aio.AioRpcError as exc:
            log.warning("cannot report config state %s yet: %s", state, exc.code().name)

    async def _flush_report(self, stub: daemon_pb2_grpc.DaemonServiceAsyncStub) -> None:
        request = self._unreported
        if request is None:
            return
        try:
            await stub.ReportConfigState(request, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            log.debug("manager does not take config state reports")
        if self._unreported is request:
            self._unreported = None
