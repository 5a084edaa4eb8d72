"""/api/v1/alerts: alerts (firing and resolved), acknowledge and silence (operator, admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from opsfleet.common.errors import Unavailable
from opsfleet.manager.alerts.model import Alert
from opsfleet.manager.alerts.payloads import alert_fields
from opsfleet.manager.alerts.service import AlertService
from opsfleet.manager.services.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx, WebContext
from opsfleet.manager.web.envelope import ok, paged, rfc3339
from opsfleet.manager.web.schemas import Body
from opsfleet.manager.web.security import CurrentUser, OperatorUser

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], route_class=AuditedRoute)

PageNo = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page (max {MAX_PAGE_SIZE})")]
AlertId = Annotated[int, Path(ge=1, le=2**62, description="alert id")]


class SilenceBody(Body):
    duration: str = Field(max_length=32, description="how long, e.g. 30m, 2h, 1d (at most 30d)")


def _service(ctx: WebContext) -> AlertService:
    if ctx.alerts is None:
        raise Unavailable("alerting is not running in this Manager")
    return ctx.alerts


def alert_json(alert: Alert, now: float | None = None) -> dict[str, Any]:
    silenced = alert.silenced_until > (now if now is not None else 0) and alert.firing
    return {
        **alert_fields(alert),
        "acknowledged": bool(alert.acked_by),
        "acked_by": alert.acked_by or None,
        "acked_at": rfc3339(alert.acked_at) if alert.acked_at else None,
        "silenced": silenced,
        "silenced_by": alert.silenced_by or None,
        "silenced_until": rfc3339(alert.silenced_until) if alert.silenced_until else None,
    }


@router.get("", name="alerts.list", summary="Alerts, newest first, paged")
async def list_alerts(
    ctx: Ctx,
    _user: CurrentUser,
    state: Annotated[str, Query(max_length=16, description="firing or resolved")] = "",
    node: Annotated[str, Query(max_length=128, description="node id")] = "",
    rule: Annotated[str, Query(max_length=64, description="rule name")] = "",
    page: PageNo = 1,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    service = _service(ctx)
    result = await service.search(page, page_size, state=state, node_id=node, rule=rule)
    now = service.now()
    body = paged(result, [alert_json(a, now) for a in result.items])
    body["data"]["firing"] = await service.count_firing()
    return body


@router.get("/notifications", name="alerts.notifications", summary="Delivery counters per receiver")
async def notifications(ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    stats = _service(ctx).notification_stats()
    return ok(
        {
            "targets": [
                {
                    "name": s.name,
                    "url": s.url,
                    "sent": s.sent,
                    "failures": s.failures,
                    "dropped": s.dropped,
                    "last_error": s.last_error,
                }
                for s in stats
            ]
        }
    )


@router.get("/{alert_id}", name="alerts.show", summary="One alert")
async def show(alert_id: AlertId, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    service = _service(ctx)
    return ok(alert_json(await service.get(alert_id), service.now()))


@router.post("/{alert_id}/ack", name="alerts.ack", summary="Acknowledge a firing alert (operator, admin)")
async def ack(alert_id: AlertId, request: Request, ctx: Ctx, user: OperatorUser) -> dict[str, Any]:
    service = _service(ctx)
    request.state.audit_target = f"alert:{alert_id}"
    alert = await service.acknowledge(alert_id, user.username)
    request.state.audit_detail = f"{alert.key.rule} node={alert.key.node_id}"
    return ok(alert_json(alert, service.now()), "acknowledged")


@router.post(
    "/{alert_id}/silence",
    name="alerts.silence",
    summary="Silence a firing alert for a duration (operator, admin)",
)
async def silence(
    alert_id: AlertId, body: SilenceBody, request: Request, ctx: Ctx, user: OperatorUser
) -> dict[str, Any]:
    service = _service(ctx)
    request.state.audit_target = f"alert:{alert_id}"
    alert = await service.silence(alert_id, body.duration, user.username)
    request.state.audit_detail = f"{alert.key.rule} node={alert.key.node_id} for {body.duration}"
    return ok(alert_json(alert, service.now()), "silenced")
