"""What the REST routes reach: the shared services of one Manager process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from opsfleet.manager.alerts.service import AlertService
from opsfleet.manager.leadership import Leadership
from opsfleet.manager.services.agent_ops import AgentOpsService
from opsfleet.manager.services.agents import AgentService
from opsfleet.manager.services.artifacts import ArtifactService
from opsfleet.manager.services.audit import AuditService
from opsfleet.manager.services.auth import AuthService
from opsfleet.manager.services.configs import ConfigService
from opsfleet.manager.services.enrollment import EnrollmentService
from opsfleet.manager.services.fleet import FleetService
from opsfleet.manager.services.fleet_agents import FleetAgentService
from opsfleet.manager.services.identities import IdentityRegistry
from opsfleet.manager.services.metric_queries import MetricQueryService
from opsfleet.manager.services.metrics import MetricService
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.services.policies import PolicyService
from opsfleet.manager.services.rollouts import RolloutService
from opsfleet.manager.services.timeline import TimelineService
from opsfleet.manager.services.users import UserService
from opsfleet.manager.store.base import Store
from opsfleet.manager.telemetry import Telemetry


@dataclass(frozen=True)
class WebContext:
    store: Store
    nodes: NodeService
    metrics: MetricService
    agents: AgentService
    agent_ops: AgentOpsService
    fleet: FleetService
    metric_queries: MetricQueryService
    users: UserService
    auth: AuthService
    audit: AuditService
    telemetry: Telemetry
    policies: PolicyService
    configs: ConfigService
    artifacts: ArtifactService
    rollouts: RolloutService
    timeline: TimelineService
    fleet_agents: FleetAgentService
    enrollment: EnrollmentService | None = None  # None unless grpc.tls.mode is auto
    identities: IdentityRegistry | None = None
    alerts: AlertService | None = None
    leadership: Leadership | None = None


def get_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


Ctx = Annotated[WebContext, Depends(get_context)]
