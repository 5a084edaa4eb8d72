"""The Daemon's composition root: identity, spool, collectors, the manager link, agents.

Shutdown order: stop sampling, stop the link (undelivered samples stay in the spool),
stop agents in reverse order, stop the DaemonService server, close the spool, log "stopped".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from opsfleet import __version__
from opsfleet.daemon.config import DaemonConfig
from opsfleet.daemon.identity import load_node_id
from opsfleet.daemon.link import LinkSettings, ManagerLink
from opsfleet.daemon.outbox import Outbox
from opsfleet.daemon.sampler import Sampler
from opsfleet.daemon.spool import Spool

log = logging.getLogger(__name__)


def link_settings(config: DaemonConfig) -> LinkSettings:
    return LinkSettings(
        heartbeat_interval=config.manager.heartbeat_interval,
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
        self.sampler: Sampler | None = None
        self._stopped = False

    @property
    def work_dir(self) -> Path:
        return self.config.work_dir

    async def start(self) -> None:
        cfg = self.config
        log.info("opsfleet daemon %s starting (work dir %s)", __version__, self.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.node_id = load_node_id(cfg.daemon.id, self.work_dir)
        spool = Spool(
            self.work_dir / "spool",
            max_bytes=cfg.spool.max_bytes,
            segment_bytes=min(1024 * 1024, cfg.spool.max_bytes // 8),
        )
        self.outbox = Outbox(spool)
        pending = await self.outbox.pending()
        if pending:
            log.info("spool holds %d undelivered samples; they will be sent first", pending)
        self.link = ManagerLink(
            manager=cfg.manager, node_id=self.node_id, outbox=self.outbox, settings=link_settings(cfg)
        )
        await self.link.start()
        self.sampler = Sampler(self.outbox)
        await self.sampler.apply(cfg.collectors)
        log.info("daemon running as node %s", self.node_id)

    async def reload(self) -> None:
        """Apply a re-read config: intervals, collectors and labels (new labels re-register)."""
        if self._reload_config is None or self.link is None or self.sampler is None:
            return
        try:
            new = self._reload_config()
        except Exception as exc:
            log.error("config reload failed, keeping the running config: %s", exc)
            return
        old = self.config
        self.config = new
        self.link.settings = link_settings(new)
        await self.sampler.apply(new.collectors)
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
            await self.sampler.stop()
        if self.link is not None:
            await self.link.stop()
        if self.outbox is not None:
            pending = await self.outbox.pending()
            await self.outbox.close()
            if pending:
                log.info("%d undelivered samples kept in the spool", pending)
        log.info("stopped")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()
