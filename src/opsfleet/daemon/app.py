"""The Daemon's composition root: identity, spool, collectors, the manager link, agents.

Shutdown order: stop sampling, stop applying central configs, stop the link (undelivered
samples stay in the spool), cancel an update in progress, stop agents in reverse order,
stop the DaemonService server, close the spool, log "stopped".

Crash policy: the owned tasks of the sampler, the manager link and the agent supervisor run
in this app's crash scope. When one dies, ``run()`` shuts down in the order above (agents
are stopped as usual) and returns EXIT_CRASHED, so ``opsfleet daemon`` exits non-zero and
its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from opsfleet import __version__
from opsfleet.common.certs import TLSMaterial, load_node_material
from opsfleet.common.config_sources import split_host_port
from opsfleet.common.errors import ConfigError
from opsfleet.common.lifecycle import EXIT_CRASHED, Crashes, crash_scope, stop_step, wait_stop_or_crash
from opsfleet.daemon.central_config import CentralConfig
from opsfleet.daemon.config import DaemonConfig
from opsfleet.daemon.effective import Effective, load_known_good
from opsfleet.daemon.identity import load_node_id, local_ip_towards
from opsfleet.daemon.link import AgentStateView, LinkSettings, ManagerLink
from opsfleet.daemon.outbox import Outbox
from opsfleet.daemon.renewal import CertificateRenewer, expired_message
from opsfleet.daemon.rpc.artifact_fetch import ManagerArtifacts
from opsfleet.daemon.rpc.server import DaemonRpcServer, server_tls
from opsfleet.daemon.rpc.servicer import DaemonServicer
from opsfleet.daemon.sampler import Sampler
from opsfleet.daemon.spool import Spool
from opsfleet.daemon.supervisor.supervisor import Supervisor
from opsfleet.daemon.updates.installer import UpdateManager

log = logging.getLogger(__name__)


def link_settings(config: DaemonConfig, heartbeat_interval: float | None = None) -> LinkSettings:
    return LinkSettings(
        heartbeat_interval=heartbeat_interval or config.manager.heartbeat_interval,
        labels=dict(config.daemon.labels),
        state_sync_interval=config.daemon.state_sync_interval,
        batch_size=config.spool.batch_size,
    )


class DaemonApp:
    """One Daemon process. ``start()`` then ``stop()``; ``stop()`` is idempotent.

    ``reload_config`` (when given) re-reads the config file for SIGHUP.
    """

    def __init__(
        self, config: DaemonConfig, *, reload_config: Callable[[], DaemonConfig] | None = None
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self.node_id = ""
        self.outbox: Outbox | None = None
        self.link: ManagerLink | None = None
        self.tls_material: TLSMaterial | None = None
        self.renewer: CertificateRenewer | None = None
        self.sampler: Sampler | None = None
        self.supervisor: Supervisor | None = None
        self.updates: UpdateManager | None = None
        self.rpc: DaemonRpcServer | None = None
        self.central: CentralConfig | None = None
        self.grpc_port = 0
        self.handover_requested = False
        self._stop_event: asyncio.Event | None = None
        self._stopped = False
        self.crashes = Crashes("daemon")

    @property
    def work_dir(self) -> Path:
        return self.config.work_dir

    async def start(self) -> None:
        """Start everything; owned tasks started here report crashes to ``self.crashes``."""
        with crash_scope(self.crashes.report):
            await self._start()

    async def _start(self) -> None:
        cfg = self.config
        log.info("opsfleet daemon %s starting (work dir %s)", __version__, self.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.node_id = load_node_id(cfg.daemon.id, self.work_dir)
        self.tls_material = self._load_identity()
        spool = Spool(
            self.work_dir / "spool",
            max_bytes=cfg.spool.max_bytes,
            segment_bytes=min(1024 * 1024, cfg.spool.max_bytes // 8),
        )
        self.outbox = Outbox(spool)
        pending = await self.outbox.pending()
        if pending:
            log.info("spool holds %d undelivered samples; they will be sent first", pending)
        self.central = CentralConfig(
            node_id=self.node_id,
            work_dir=self.work_dir,
            local=lambda: self.config,
            apply=self._apply_effective,
            agents=lambda: self.supervisor.agents() if self.supervisor is not None else [],
            channel=lambda: self.link.open_channel if self.link is not None else None,
            known_good=load_known_good(self.work_dir),
            grace=cfg.daemon.config_grace,
        )
        effective = self.central.effective()
        if self.central.known_good is not None:
            log.info("running the last-known-good central config %s", self.central.applied_hash[:12])
        source = None
        if self.tls_material is not None:  # enrolled: packages come over the node's mTLS channel
            source = ManagerArtifacts(lambda: self.link.open_channel if self.link else None, self.node_id)
        self.updates = UpdateManager(
            cfg.update, work_dir=self.work_dir, base_specs=effective.specs, source=source
        )
        self.supervisor = Supervisor(
            self.updates.resolve_specs(effective.specs),
            state_dir=self.work_dir / "agents",
            log_dir=self.work_dir / "logs",
            heartbeat_listen=("127.0.0.1", cfg.daemon.agent_heartbeat_port),
            on_change=self._agents_changed,
            on_crash=self.crashes.report,
        )
        self.rpc = DaemonRpcServer(
            DaemonServicer(self.supervisor, updates=self.updates if cfg.update.enabled else None),
            host=cfg.daemon.grpc_host,
            port=cfg.daemon.grpc_port,
            tls=server_tls(cfg.daemon.tls, self.work_dir),
        )
        self.grpc_port = await self.rpc.start()
        await self.supervisor.start()
        self.updates.attach(self.supervisor, handover=self._handover if cfg.update.self_update else None)
        self.link = ManagerLink(
            manager=cfg.manager,
            node_id=self.node_id,
            outbox=self.outbox,
            settings=link_settings(cfg, effective.heartbeat_interval),
            daemon_address=self.daemon_address,
            agent_states=self._agent_states,
            on_config_hash=self.central.on_config_hash,
            material=self.tls_material,
        )
        await self.link.start()
        link = self.link
        self.updates.spawn(
            "confirm-self-update", self.updates.confirm_when_registered(lambda: link.registered)
        )
        if self.tls_material is not None:
            self.renewer = CertificateRenewer(
                node_id=self.node_id,
                work_dir=self.work_dir,
                material=self.tls_material,
                link=self.link,
                timeout=cfg.manager.timeout,
            )
            await self.renewer.start()
        self.sampler = Sampler(self.outbox)
        await self.sampler.apply(effective.collectors)
        await self.central.start()
        log.info("daemon running as node %s", self.node_id)

    def _load_identity(self) -> TLSMaterial | None:
        """The enrolled identity in the work dir (None: plaintext or configured TLS files)."""
        material = load_node_material(self.work_dir)
        if material is None:
            if not self.config.manager.tls_enabled:
                log.warning(
                    "WARNING: no enrolled identity and manager.tls.enabled is false: speaking PLAINTEXT "
                    "to the Manager, unauthenticated (seed-compatible mode; run `opsfleet daemon enroll`)"
                )
            return None
        identity = material.identity
        if identity is None or identity.kind != "node":
            raise ConfigError(
                f"config key 'daemon.work_dir': {self.work_dir / 'tls'} holds no node certificate"
            )
        if identity.node_id != self.node_id:
            raise ConfigError(
                f"config key 'daemon.id': the enrolled identity is node {identity.node_id!r} "
                f"but this daemon's node id is {self.node_id!r}"
            )
        expired = expired_message(material)
        if expired is not None:
            log.error(expired)
        log.info("using the enrolled identity of node %s (mTLS to the Manager)", self.node_id)
        return material

    def daemon_address(self) -> str:
        """Where the Manager should dial this daemon's DaemonService."""
        cfg = self.config.daemon
        if cfg.advertise_address:
            return cfg.advertise_address
        host = cfg.grpc_host
        if host in ("0.0.0.0", "::", ""):
            first = self.config.manager.addresses[0]
            manager_host, manager_port = split_host_port(first, key="manager.address")
            host = local_ip_towards(manager_host, manager_port) or "127.0.0.1"
        return f"[{host}]:{self.grpc_port}" if ":" in host else f"{host}:{self.grpc_port}"

    def _agent_states(self) -> list[AgentStateView]:
        if self.supervisor is None:
            return []
        return [
            AgentStateView(
                a.id, a.type, a.version, a.status, a.pid, a.last_heartbeat, a.restart_count, a.reason
            )
            for a in self.supervisor.agents()
        ]

    def _handover(self) -> None:
        """A new daemon version is installed: stop, then the CLI execs the launcher (selfupdate.py)."""
        self.handover_requested = True
        if self._stop_event is not None:
            self._stop_event.set()

    def _agents_changed(self) -> None:
        if self.link is not None:
            self.link.request_sync()

    async def _apply_effective(self, effective: Effective) -> None:
        """Apply a (central) effective config: only changed agents restart."""
        if self.link is not None:
            self.link.settings = link_settings(self.config, effective.heartbeat_interval)
        if self.sampler is not None:
            await self.sampler.apply(effective.collectors)
        if self.supervisor is not None:
            specs = self.updates.resolve_specs(effective.specs) if self.updates else effective.specs
            await self.supervisor.reload(specs)

    async def reload(self) -> None:
        """Apply a re-read config: intervals, collectors and labels (new labels re-register)."""
        with crash_scope(self.crashes.report):
            await self._reload()

    async def _reload(self) -> None:
        if self._reload_config is None or self.link is None or self.sampler is None:
            return
        try:
            new = self._reload_config()
        except Exception as exc:
            log.error("config reload failed, keeping the running config: %s", exc)
            return
        old = self.config
        self.config = new
        if self.central is not None:  # the local file with the central config laid over it again
            await self._apply_effective(self.central.effective())
        if new.daemon.labels != old.daemon.labels:
            self.link.request_reregister()
        if new.manager != old.manager:
            log.warning("manager connection settings changed; they take effect after a restart")
        log.info("config reloaded")

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        log.info("stopping")
        if self.sampler is not None:
            await stop_step("sampler", self.sampler.stop())
        if self.central is not None:
            await stop_step("central config", self.central.stop())
        if self.renewer is not None:
            await stop_step("certificate renewal", self.renewer.stop())
        if self.link is not None:
            await stop_step("manager link", self.link.stop())
        if self.updates is not None:
            await stop_step("updates", self.updates.stop())
        if self.supervisor is not None:
            await stop_step("agents", self.supervisor.stop())
        if self.rpc is not None:
            await stop_step("DaemonService server", self.rpc.stop(grace=1.0))
        if self.outbox is not None:
            await stop_step("spool", self._close_outbox(self.outbox))
        log.info("stopped")

    @staticmethod
    async def _close_outbox(outbox: Outbox) -> None:
        try:
            pending = await outbox.pending()
        finally:
            await outbox.close()
        if pending:
            log.info("%d undelivered samples kept in the spool", pending)

    async def run(self, stop: asyncio.Event) -> int:
        """Start, wait for ``stop`` or a crashed owned task, shut down in order; the exit code
        (0, or EXIT_CRASHED after a crash)."""
        self._stop_event = stop
        try:
            await self.start()
            await wait_stop_or_crash(stop, self.crashes)
        finally:
            await self.stop()
        return EXIT_CRASHED if self.crashes.happened else 0
