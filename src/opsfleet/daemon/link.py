"""The daemon's one reconnecting session with the manager.

One loop: connect -> register (once, and again only when the manager answers NOT_FOUND or
the labels change) -> session (heartbeats, metric delivery, agent state sync) -> when the
session fails, wait and start a new session. The wait is exponential backoff with full
jitter (from ``reconnect_interval``, capped at ``reconnect_max``), cut short as soon as the
channel connects again after a connection failure, so a daemon is back within seconds of
the manager listening again, whatever the outage's length.

Failover: with several Manager addresses (replicas on one database) the link starts on a
random one and stays there while it answers. When a session call fails with UNAVAILABLE
(the connection is lost or refused) or DEADLINE_EXCEEDED (a replica that hangs, or a
network that drops its packets) it moves to the next address after a short pause
(:data:`FAILOVER_PAUSE`); only once every address failed in a row does it back off as
above. The spool carries the samples across: unacknowledged ones are sent again to the
next replica, which stores a (node, type, timestamp) once. A replica that answers with a
retry delay (below) is not left: it is alive and shedding load. The backoff is reset by a
heartbeat answered. A retry delay pushed by the manager (``grpc-retry-pushback-ms`` with
UNAVAILABLE or RESOURCE_EXHAUSTED) is honoured. Metric delivery retries on its own
(:mod:`opsfleet.daemon.delivery`) and never ends the session except on NOT_FOUND. Any other
exception is logged and followed by the same backoff: the loop never dies.

Lifecycle: ``start()`` spawns the loop; ``stop()`` ends it (in-flight calls cancelled,
undelivered samples stay in the spool) and is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import grpc

from opsfleet import __version__
from opsfleet.common import rpc as rpc_opts
from opsfleet.common.backoff import Backoff
from opsfleet.common.certs import MANAGER_DNS_NAME, TLSMaterial
from opsfleet.common.config_sources import split_host_port
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.tls import channel_credentials
from opsfleet.daemon.config import ManagerSection
from opsfleet.daemon.delivery import Delivery, DeliveryStopped, NodeUnknown, pushback
from opsfleet.daemon.identity import HostFacts, local_ip_towards
from opsfleet.daemon.outbox import Outbox
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc

log = logging.getLogger(__name__)

SYNC_DEBOUNCE = 0.5
MAX_STATE_REASON = 255  # AgentState.reason is cut to what the Manager keeps of an event
READY_JITTER = 1.0  # spread a fleet's return over this many seconds once the manager is back
MIN_PAUSE = 1.0  # the shortest wait cut short by a reconnection
REREGISTER_MIN_GAP = 5.0  # NOT_FOUND again sooner than this after a registration: back off
FAILOVER_PAUSE = 0.5  # the most a daemon waits before trying the next Manager replica
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class AgentStateView:
    agent_id: str
    type: str
    version: str
    status: str
    pid: int
    last_heartbeat: int
    restart_count: int = 0
    reason: str = ""


@dataclass
class LinkSettings:
    """What the link may change at runtime (SIGHUP reload)."""

    heartbeat_interval: float
    labels: dict[str, str] = field(default_factory=dict)
    state_sync_interval: float = 30.0
    batch_size: int = 500


_Reregister = NodeUnknown


class _Stopped(Exception):
    """The link is stopping: end the session."""


class _SessionFailed(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, code: grpc.StatusCode | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.code = code


class _CurrentStub:
    """Forwards to the stub of the link's current channel (it changes when the certificate is renewed)."""

    def __init__(self, current: Callable[[], Any]) -> None:
        self._current = current

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)


CHANNEL_RETIRE_GRACE = 30.0


class ManagerLink:
    """``material`` is the enrolled identity: with it the link speaks mTLS and accepts only
    the Manager's certificate (target name ``MANAGER_DNS_NAME``); :meth:`use_material`
    switches to a renewed certificate without ending the session."""

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
        on_config_hash: Callable[[str | None], None] | None = None,
        material: TLSMaterial | None = None,
    ) -> None:
        self._cfg = manager
        self._addresses = manager.addresses
        self._current = random.randrange(len(self._addresses))
        self._failed_in_a_row = 0
        self.failovers = 0
        self._material = material
        self.node_id = node_id
        self._outbox = outbox
        self.settings = settings
        self._daemon_address = daemon_address
        self._agent_states = agent_states
        self._backoff = backoff or Backoff(base=manager.reconnect_interval, cap=manager.reconnect_max)
        self._host = host or HostFacts()
        self._on_config_hash = on_config_hash or (lambda _hash: None)
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("link")
        self._sync_wanted = asyncio.Event()
        self._reregister_wanted = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._stubs: tuple[Any, Any] | None = None
        self._retiring: list[grpc.aio.Channel] = []
        self.connected = False
        self.registrations = 0
        self.heartbeats_sent = 0
        self.sessions = 0
        self.registered = False
        self._registered_at = -math.inf
        self.last_error = ""
        self.delivery = Delivery(
            outbox=outbox,
            node_id=node_id,
            timeout=manager.timeout,
            backoff=Backoff(base=manager.reconnect_interval, cap=manager.reconnect_max),
            stop=self._stop,
            batch_size=lambda: self.settings.batch_size,
            quarantine=outbox.quarantine,
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._set_channel(self._make_channel())
        self._tasks.spawn("session-loop", self._run())

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop(timeout=2.0)
        for old in self._retiring:
            await old.close(grace=None)
        self._retiring.clear()
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None
        self.connected = False

    @property
    def address(self) -> str:
        """The Manager address the link uses now."""
        return self._addresses[self._current]

    @property
    def channel(self) -> grpc.aio.Channel:
        """The current channel to the Manager (after ``start()``)."""
        assert self._channel is not None, "link not started"
        return self._channel

    @property
    def open_channel(self) -> grpc.aio.Channel | None:
        """The current channel to the Manager; None before ``start()`` and after ``stop()``."""
        return self._channel

    def _set_channel(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._stubs = (
            manager_pb2_grpc.ManagerServiceStub(channel),
            daemon_pb2_grpc.DaemonServiceStub(channel),
        )

    def use_material(self, material: TLSMaterial) -> None:
        """Use a renewed certificate: new calls go over a new channel at once; calls in flight
        on the old one finish (it is closed after a grace period). The session goes on."""
        self._material = material
        if self._channel is None or self._stop.is_set():
            return
        old = self._channel
        self._set_channel(self._make_channel())
        self._retiring.append(old)
        self._tasks.spawn(f"retire-channel-{id(old)}", self._retire(old))

    async def _retire(self, old: grpc.aio.Channel) -> None:
        await sleep_or_stop(self._stop, max(CHANNEL_RETIRE_GRACE, self._cfg.timeout))
        if old in self._retiring:
            self._retiring.remove(old)
            await old.close(grace=None)

    def request_sync(self) -> None:
        """Ask for an agent state sync soon (debounced)."""
        self._sync_wanted.set()

    def request_reregister(self) -> None:
        """Register again (e.g. labels changed after a reload)."""
        self._reregister_wanted.set()

    # -- the loop ------------------------------------------------------------------------

    def _make_channel(self) -> grpc.aio.Channel:
        target = self.address
        options = [
            *rpc_opts.channel_options(),
            *rpc_opts.reconnect_options(),
        ]
        if self._material is not None:
            m = self._material
            options.append(("grpc.ssl_target_name_override", MANAGER_DNS_NAME))
            creds = grpc.ssl_channel_credentials(
                root_certificates=m.ca_pem, private_key=m.key_pem, certificate_chain=m.cert_pem
            )
            return grpc.aio.secure_channel(target, creds, options=options)
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
        assert self._stubs is not None
        manager = cast(
            "manager_pb2_grpc.ManagerServiceAsyncStub", _CurrentStub(lambda: self._stubs and self._stubs[0])
        )
        daemon = cast(
            "daemon_pb2_grpc.DaemonServiceAsyncStub", _CurrentStub(lambda: self._stubs and self._stubs[1])
        )
        log.info("link to manager %s starting (node %s)", ",".join(self._addresses), self.node_id)
        while not self._stop.is_set():
            delay: float | None = None
            wake_on_connect = False
            try:
                if not self.registered or self._reregister_wanted.is_set():
                    await self._register(manager)
                self.sessions += 1
                await self._session(manager, daemon)
            except _Reregister:
                self.registered = False
                recent = time.monotonic() - self._registered_at < REREGISTER_MIN_GAP
                if self._reregister_wanted.is_set() or not recent:
                    log.info("manager does not know node %s any more: registering again", self.node_id)
                    continue
                delay = self._backoff.next_delay()
                log.warning("manager forgot node %s again right after registering", self.node_id)
            except _SessionFailed as exc:
                self.last_error = exc.reason
                delay = exc.retry_after if exc.retry_after is not None else self._backoff.next_delay()
                wake_on_connect = exc.retry_after is None and not self._channel_ready()
                if self.connected:
                    log.warning("disconnected from manager %s: %s", self.address, exc.reason)
                else:
                    log.warning("cannot reach manager %s: %s", self.address, exc.reason)
                # A replica pushing back a retry delay is alive and shedding load: honour it there.
                if exc.code in FAILOVER_CODES and exc.retry_after is None and await self._failover():
                    delay = min(delay, random.uniform(FAILOVER_PAUSE / 2, FAILOVER_PAUSE))
                    wake_on_connect = False
            except Exception as exc:  # never a dead link: log, back off, try again
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._backoff.next_delay()
                log.exception("link session failed unexpectedly")
            finally:
                self.connected = False
            if delay is not None:
                log.info("reconnecting in %.1fs%s", delay, " or once connected" if wake_on_connect else "")
                if await self._pause(delay, wake_on_connect=wake_on_connect):
                    break
        log.info("link to manager stopped")

    async def _failover(self) -> bool:
        """Move to the next Manager address; False (and no move) with one address, or once
        every address failed in a row since the last answered heartbeat (then: back off)."""
        if len(self._addresses) < 2 or self._stop.is_set():
            return False
        self._failed_in_a_row += 1
        old, previous = self._channel, self.address
        self._current = (self._current + 1) % len(self._addresses)
        self._set_channel(self._make_channel())
        self.failovers += 1
        log.info("failing over from manager %s to %s", previous, self.address)
        if old is not None:
            await old.close(grace=None)
        return self._failed_in_a_row < len(self._addresses)

    def _channel_ready(self) -> bool:
        channel = self._channel
        return channel is not None and channel.get_state() == grpc.ChannelConnectivity.READY

    async def _pause(self, delay: float, *, wake_on_connect: bool) -> bool:
        """Wait ``delay`` (or, with ``wake_on_connect``, until the channel connects); True when stopping."""
        if not wake_on_connect or delay <= MIN_PAUSE:
            return await sleep_or_stop(self._stop, delay)
        started = time.monotonic()
        connected = asyncio.create_task(self._connected_again())
        try:
            await asyncio.wait_for(asyncio.shield(connected), timeout=delay)
        except TimeoutError:
            pass
        finally:
            connected.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connected
        # A manager that accepts connections but fails every call still gets at most one try a second.
        return await sleep_or_stop(self._stop, MIN_PAUSE - (time.monotonic() - started))

    async def _connected_again(self) -> None:
        """Return once the channel is READY again (then a short jitter), or the link stops.

        gRPC reconnects in the background with its own backoff (0.5 s, capped at 5 s), so a
        dead manager sees at most one connection attempt per few seconds per daemon.
        """
        channel = self._channel
        assert channel is not None
        stop = asyncio.create_task(self._stop.wait())
        try:
            state = channel.get_state(try_to_connect=True)
            while state != grpc.ChannelConnectivity.READY and not self._stop.is_set():
                change = asyncio.create_task(channel.wait_for_state_change(state))
                await asyncio.wait({change, stop}, return_when=asyncio.FIRST_COMPLETED)
                change.cancel()
                state = channel.get_state(try_to_connect=True)
            if not self._stop.is_set():
                log.info("manager %s reachable again", self.address)
                await sleep_or_stop(self._stop, random.uniform(0, READY_JITTER))
        finally:
            stop.cancel()

    def _fail(self, what: str, exc: grpc.aio.AioRpcError) -> _SessionFailed:
        code = exc.code()
        shedding = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
        retry = pushback(exc) if shedding else None
        return _SessionFailed(f"{what}: {code.name} {exc.details() or ''}".strip(), retry, code)

    async def _register(self, manager: manager_pb2_grpc.ManagerServiceAsyncStub) -> None:
        host, port = split_host_port(self.address, key="manager.address")
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
            boot_id=self._host.boot_id,
        )
        try:
            await manager.RegisterNode(request, timeout=self._cfg.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._fail("register", exc) from exc
        self._reregister_wanted.clear()
        self.registered = True
        self._registered_at = time.monotonic()
        self.registrations += 1
        self.connected = True
        self._on_config_hash(None)
        log.info(
            "registered with manager %s as %s (ip %s, registration #%d)",
            self.address,
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
                response = await manager.Heartbeat(request, timeout=self._cfg.timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise _Reregister() from exc
                raise self._fail("heartbeat", exc) from exc
            self._on_config_hash(response.config_hash)
            self.heartbeats_sent += 1
            self.connected = True
            if first:
                self._backoff.reset()
                self._failed_in_a_row = 0
                log.info("reporting to manager %s", self.address)
                first = False
            interval = self.settings.heartbeat_interval
            await sleep_or_stop(self._stop, interval * random.uniform(0.9, 1.1))

    async def _deliver(self, manager: manager_pb2_grpc.ManagerServiceAsyncStub) -> None:
        try:
            await self.delivery.run(manager)
        except DeliveryStopped:
            raise _Stopped() from None

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
                    restart_count=s.restart_count,
                    reason=s.reason[:MAX_STATE_REASON],
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
