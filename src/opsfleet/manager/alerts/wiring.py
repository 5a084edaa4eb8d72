"""Connects an AlertService to the Manager's services (the composition root calls this)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from opsfleet.manager.alerts.model import Alert
from opsfleet.manager.alerts.notifier import Notifier
from opsfleet.manager.alerts.relay import ALERT_INPUTS, ALERT_OPERATOR, InputRelay
from opsfleet.manager.alerts.service import AlertService, NodeInfo
from opsfleet.manager.services.nodes import NodeNotFound
from opsfleet.manager.store.alerts_sql import SqlAlertStore
from opsfleet.manager.store.changes_pg import PgChanges

if TYPE_CHECKING:
    from opsfleet.manager.app import ManagerApp


def build_alerts(app: ManagerApp) -> AlertService:
    """The alert service of ``app``, listening to liveness, agent syncs, metric ingest and
    central-config reports (rollout outcomes come through ``RunnerDeps.on_node_done``)."""
    settings = app.config.alerts

    def base_url() -> str:
        if settings.external_url:
            return settings.external_url.rstrip("/")
        host = app.config.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"http://{host}:{app.http_port}"

    def firing() -> list[Alert]:
        return service.engine.firing()

    async def lookup(node_id: str) -> NodeInfo | None:
        try:
            node = await app.nodes.get(node_id)
        except NodeNotFound:
            return None
        return node.hostname, node.labels

    service = AlertService(
        settings,
        SqlAlertStore(app.store),
        Notifier(
            settings,
            base_url=base_url,
            firing=firing,
            clock=time.time,
            registry=app.telemetry.registry,
        ),
        lookup=lookup,
        clock=time.time,
        relay=InputRelay(app.changes.publish) if isinstance(app.changes, PgChanges) else None,
        is_leader=lambda: app.leadership.is_leader,
    )
    app.changes.subscribe(ALERT_INPUTS, service.inputs_forwarded)
    app.changes.subscribe(ALERT_OPERATOR, service.operator_changed)
    app.nodes.add_status_listener(lambda node_id, online: service.node_status(node_id, online=online))
    app.nodes.add_register_listener(service.node_registered)
    app.nodes.add_forget_listener(service.forget)
    app.agents.add_sync_listener(
        lambda node_id, states: service.agents_synced(
            node_id, ((s.agent_id, s.status, s.pid) for s in states)
        )
    )
    app.metrics.add_ingest_listener(
        lambda node_id, samples: service.metrics_ingested(
            node_id, ((s.type, s.timestamp, s.values) for s in samples)
        )
    )
    app.configs.add_state_listener(service.config_state)
    return service
