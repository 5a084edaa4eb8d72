"""/api/v1/enrollment-tokens: create, list and revoke node enrollment tokens (admin role)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import Field

from opsfleet.common.errors import Conflict
from opsfleet.manager.domain import EnrollmentToken
from opsfleet.manager.services.enrollment import EnrollmentService
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx, WebContext
from opsfleet.manager.web.envelope import ok, rfc3339
from opsfleet.manager.web.schemas import Body
from opsfleet.manager.web.security import AdminUser

router = APIRouter(prefix="/api/v1/enrollment-tokens", tags=["enrollment"], route_class=AuditedRoute)

TokenId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$", description="token id")]
DEFAULT_EXPIRES_IN = 24 * 3600


class CreateTokenBody(Body):
    max_uses: int = Field(default=1, ge=1, le=1_000_000, description="how many nodes may enroll with it")
    expires_in: int = Field(default=DEFAULT_EXPIRES_IN, ge=60, description="seconds until it expires")
    labels: dict[str, str] = Field(default_factory=dict, description="labels stamped on the enrolled nodes")


def _service(ctx: WebContext) -> EnrollmentService:
    if ctx.enrollment is None:
        raise Conflict("enrollment needs the fleet CA: this Manager runs with grpc.tls.mode off or files")
    return ctx.enrollment


def token_json(token: EnrollmentToken, state: str) -> dict[str, Any]:
    return {
        "id": token.id,
        "created_by": token.created_by,
        "created_at": rfc3339(token.created_at),
        "expires_at": rfc3339(token.expires_at),
        "max_uses": token.max_uses,
        "uses": token.uses,
        "labels": token.labels,
        "revoked_at": rfc3339(token.revoked_at) if token.revoked_at is not None else None,
        "state": state,
    }


@router.post("", name="enrollment_tokens.create", summary="Create a token (shown once)", status_code=201)
async def create_token(body: CreateTokenBody, request: Request, ctx: Ctx, admin: AdminUser) -> dict[str, Any]:
    service = _service(ctx)
    created = await service.create_token(
        max_uses=body.max_uses, expires_in=body.expires_in, labels=body.labels, created_by=admin.username
    )
    request.state.audit_target = f"enrollment_token:{created.token.id}"
    request.state.audit_detail = f"max_uses={body.max_uses} expires_in={body.expires_in}"
    data = token_json(created.token, service.token_state(created.token))
    data["token"] = created.secret
    return ok(data, "created: the token is shown only this once")


@router.get("", name="enrollment_tokens.list", summary="Tokens, newest first (never their secret)")
async def list_tokens(ctx: Ctx, _admin: AdminUser) -> dict[str, Any]:
    service = _service(ctx)
    tokens = await service.list_tokens()
    return ok({"list": [token_json(t, service.token_state(t)) for t in tokens], "total": len(tokens)})


@router.delete("/{token_id}", name="enrollment_tokens.revoke", summary="Revoke a token")
async def revoke_token(token_id: TokenId, request: Request, ctx: Ctx, _admin: AdminUser) -> dict[str, Any]:
    request.state.audit_target = f"enrollment_token:{token_id}"
    service = _service(ctx)
    token = await service.revoke_token(token_id)
    return ok(token_json(token, service.token_state(token)), "revoked")
