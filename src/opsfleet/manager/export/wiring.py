"""Connects the remote-write exporter to the Manager's services (the composition root calls this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsfleet.manager.export.remote_write import NodeInfo, RemoteWriteExporter
from opsfleet.manager.export.sender import HttpSender
from opsfleet.manager.services.nodes import NodeNotFound

if TYPE_CHECKING:
    from opsfleet.manager.app import ManagerApp


def build_remote_write(app: ManagerApp) -> RemoteWriteExporter | None:
    """The exporter of ``app`` listening to metric ingest and node changes; None when
    ``export.remote_write.url`` is empty (then ingestion does no export work at all)."""
    settings = app.config.export.remote_write
    if not settings.enabled:
        return None

    async def lookup(node_id: str) -> NodeInfo | None:
        try:
            node = await app.nodes.get(node_id)
        except NodeNotFound:
            return None
        return node.hostname, node.labels

    exporter = RemoteWriteExporter(
        settings, HttpSender(settings), lookup=lookup, registry=app.telemetry.registry
    )
    app.metrics.add_ingest_listener(exporter.samples_committed)
    app.nodes.add_register_listener(exporter.node_changed)
    app.nodes.add_forget_listener(exporter.node_changed)
    return exporter
