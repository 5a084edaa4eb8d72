"""The daemon's one reconnecting session with the manager.

One loop: connect -> register -> session (heartbeats, metric delivery, agent state sync)
-> on failure back off with full jitter (starting at ``reconnect_interval``, capped at
``reconnect_max``) -> repeat. The backoff is reset after a healthy session (registered and
a heartbeat answered). NOT_FOUND on a heartbeat, a metrics report or a state sync means
the manager lost the node: register again at once. A retry delay pushed by the manager
(``grpc-retry-pushback-ms`` with UNAVAILABLE or RESOURCE_EXHAUSTED) is honoured.

Lifecycle: ``start()`` spawns the loop; ``stop()`` ends it (in-flight calls cancelled,
undelivered samples stay in the spool) and is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from opsfleet import __version__
from opsfleet.common import rpc as rpc_opts
from opsfleet.common.backoff import Backoff
from opsfleet.common.config import split_host_port
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.tls import channel_credentials
from opsfleet.daemon.config import ManagerSection
from opsfleet.daemon.identity import HostFacts, local_ip_towards
from opsfleet.daemon.outbox import Outbox
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc

log = logging.getLogger(__name__)

PUSHBACK_KEY = "grpc-retry-pushback-ms"
SYNC_DEBOUNCE = 0.5


@dataclass(frozen=True)
class AgentStateView:
    agent_id: str
    type: str
    version: str
    status: str
    pid: int
    last_heartbeat: int


@dataclass
class LinkSettings:
    """What the link may change at runtime (SIGHUP reload)."""

    heartbeat_interval: float
    labels: dict[str, str] = field(default_factory=dict)
    state_sync_interval: float = 30.0
    batch_size: int = 500


class _Reregister(Exception):
    """The manager does not know this node any more."""


class _Stopped(Exception):
    """The link is stopping: end the session."""


class _SessionFailed(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _pushback(exc: grpc.aio.AioRpcError) -> float | None:
    metadata: Any = exc.trailing_metadata() or ()
    for key, value in metadata:
        if key == PUSHBACK_KEY:
            try:
                return max(0.0, int(value) / 1000)
            except ValueError:
                return None
    return None


class ManagerLink:
    def __init__(
        self,
        *,
        manager: ManagerSection,
        node_id: str,
        outbox: Outbox,
        settings: LinkSettings,
        daemon_address: Callable[[], str] = lambda: "",
        agent_states: Callable[[], Sequence[AgentStateView]] | None = None,
        backoff: Backoff | None = None,
        host: HostFacts | None = None,
    ) -> None:
        self._cfg = manager
        self.node_id = node_id
        self._outbox = outbox
        self.settings = settings
        self._daemon_address = daemon_address
        self._agent_states = agent_states
        self._backoff = backoff or Backoff(base=manager.reconnect_interval, cap=manager.reconnect_max)
        self._host = host or HostFacts()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("link")
        self._sync_wanted = asyncio.Event()
        self._reregister_wanted = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self.connected = False
        self.registrations = 0
        self.heartbeats_sent = 0
        self.samples_rejected = 0
        self.last_error = ""

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._channel = self._make_channel()
        self._tasks.spawn("session-loop", self._run())

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop(timeout=2.0)
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None
        self.connected = False

    def request_sync(self) -> None:
        """Ask for an agent state sync soon (debounced)."""
        self._sync_wanted.set()

    def request_reregister(self) -> None:
        """Register again (e.g. labels changed after a reload)."""
        self._reregister_wanted.set()

    # -- the loop ------------------------------------------------------------------------

    def _make_channel(self) -> grpc.aio.Channel:
        target = self._cfg.address
        options = [
            *rpc_opts.channel_options(),
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.min_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", 5000),
        ]
        if not self._cfg.tls_enabled:
            return grpc.aio.insecure_channel(target, options=options)
        tls = self._cfg.tls
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        creds = channel_credentials(
            ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file, key_prefix="manager.tls"
        )
        return grpc.aio.secure_channel(target, creds, options=options)

    async def _run(self) -> None:
        assert self._channel is not None
        manager: manager_pb2_grpc.ManagerServiceAsyncStub = manager_pb2_grpc.ManagerServiceStub(self._channel)
        daemon: daemon_pb2_grpc.DaemonServiceAsyncStub = daemon_pb2_grpc.DaemonServiceStub(self._channel)
        log.info("link to manager %s starting (node %s)", self._cfg.address, self.node_id)
        while not self._stop.is_set():
            delay: float | None = None
            try:
                await self._register(manager)
                self.connected = True
                await self._session(manager, daemon)
            except _Reregister:
                log.info("manager does not know node %s any more: registering again", self.node_id)
                continue
            except _SessionFailed as exc:
                self.last_error = exc.reason
                delay = exc.retry_after if exc.retry_after is not None else self._backoff.next_delay()
                if self.connected:
                    log.warning("disconnected from manager %s: %s", self._cfg.address, exc.reason)
                else:
                    log.warning("cannot reach manager %s: %s", self._cfg.address, exc.reason)
            finally:
                self.connected = False
            if delay is not None:
                log.info("reconnecting in %.1fs", delay)
                if await sleep_or_stop(self._stop, delay):
                    break
        log.info("link to manager stopped")

    def _fail(self, what: str, exc: grpc.aio.AioRpcError) -> _SessionFailed:
        code = exc.code()
        retry = (
            _pushback(exc)
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
            else None
        )
        return _SessionFailed(f"{what}: {code.name} {exc.details() or ''}".strip(), retry)

    async def _register(self, manager: manager_pb2_grpc.ManagerServiceAsyncStub) -> None:
        host, port = split_host_port(self._cfg.address, key="manager.address")
        request = manager_pb2.RegisterNodeRequest(
            node_id=self.node_id,
            hostname=self._host.hostname,
            ip=local_ip_towards(host, port),
            os=self._host.os,
            arch=self._host.arch,
            labels=self.settings.labels,
            daemon_version=__version__,
            agent_version=__version__,
            daemon_address=self._daemon_address(),
        )
        try:
            await manager.RegisterNode(request, timeout=self._cfg.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._fail("register", exc) from exc
        self._reregister_wanted.clear()
        self.registrations += 1
        log.info(
            "registered with manager %s as %s (ip %s, registration #%d)",
            self._cfg.address,
            self.node_id,
            request.ip,
            self.registrations,
        )

    async def _session(
        self,
        manager: manager_pb2_grpc.ManagerServiceAsyncStub,
        daemon: daemon_pb2_grpc.DaemonServiceAsyncStub,
    ) -> None:
        self._sync_wanted.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._heartbeats(manager))
                group.create_task(self._deliver(manager))
                group.create_task(self._sync_agents(daemon))
                group.create_task(self._watch_reregister())
        except BaseExceptionGroup as group_error:
            errors = group_error.exceptions
            if any(isinstance(e, _Stopped) for e in errors):
                return
            for exc in errors:
                if isinstance(exc, _Reregister | _SessionFailed):
                    raise exc from None
            raise

    async def _watch_reregister(self) -> None:
        stop = asyncio.create_task(self._stop.wait())
        want = asyncio.create_task(self._reregister_wanted.wait())
        try:
            await asyncio.wait({stop, want}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            want.cancel()
        if not self._stop.is_set():
            raise _Reregister()
        raise _Stopped()

    async def _heartbeats(self, manager: manager_pb2_grpc.ManagerServiceAsyncStub) -> None:
        first = True
        while True:
            request = manager_pb2.HeartbeatRequest(node_id=self.node_id, timestamp=int(time.time()))
            try:
                await manager.Heartbeat(request, timeout=self._cfg.timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise _Reregister() from exc
                raise self._fail("heartbeat", exc) from exc
            self.heartbeats_sent += 1
            if first:
                self._backoff.reset()
                first = False
            interval = self.settings.heartbeat_interval
            await sleep_or_stop(self._stop, interval * random.uniform(0.9, 1.1))

    async def _deliver(self, manager: manager_pb2_grpc.ManagerServiceAsyncStub) -> None:
        while True:
            records, cursor = await self._outbox.peek(self.settings.batch_size)
            if not records:
                self._outbox.ready.clear()
                await self._outbox.ready.wait()
                continue
            request = manager_pb2.ReportMetricsRequest(
                node_id=self.node_id,
                metrics=[
                    manager_pb2.MetricData(type=r["type"], timestamp=int(r["timestamp"]), values=r["values"])
                    for r in records
                ],
            )
            try:
                await manager.ReportMetrics(request, timeout=self._cfg.timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise _Reregister() from exc
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise self._fail("metrics", exc) from exc
                # A batch the manager can never accept would block delivery forever.
                self.samples_rejected += len(records)
                log.error("manager rejected %d samples: %s; discarding them", len(records), exc.details())
            await self._outbox.ack(cursor, len(records))

    async def _sync_agents(self, daemon: daemon_pb2_grpc.DaemonServiceAsyncStub) -> None:
        if self._agent_states is None:
            await asyncio.Event().wait()
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_wanted.wait(), timeout=self.settings.state_sync_interval)
            if self._sync_wanted.is_set():
                await asyncio.sleep(SYNC_DEBOUNCE)  # debounce bursts of state changes
            self._sync_wanted.clear()
            states = [
                daemon_pb2.AgentState(
                    agent_id=s.agent_id,
                    status=s.status,
                    pid=s.pid,
                    last_heartbeat=s.last_heartbeat,
                    type=s.type,
                    version=s.version,
                )
                for s in self._agent_states()
            ]
            try:
                await daemon.SyncAgentStates(
                    daemon_pb2.SyncAgentStatesRequest(node_id=self.node_id, states=states),
                    timeout=self._cfg.timeout,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise _Reregister() from exc
                raise self._fail("agent state sync", exc) from exc
