"""/api/v1/artifacts: upload (streamed raw body), list, show, delete, and the daemons' download."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from opsfleet.common.signing import COMPONENT_RE, VERSION_RE
from opsfleet.manager.domain import Artifact
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok, rfc3339
from opsfleet.manager.web.security import AdminUser, CurrentUser

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"], route_class=AuditedRoute)


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "component": artifact.component,
        "version": artifact.version,
        "filename": artifact.filename,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "signature": artifact.signature,
        "signed_by_manager": artifact.signed_by_manager,
        "created_at": rfc3339(artifact.created_at),
        "created_by": artifact.created_by,
    }


@router.post(
    "",
    name="artifacts.upload",
    summary="Upload a package: the raw bytes as the body (application/octet-stream) (admin)",
)
async def upload(
    request: Request,
    ctx: Ctx,
    user: AdminUser,
    component: Annotated[str, Query(pattern=COMPONENT_RE.pattern, description="daemon or agent:<id>")],
    version: Annotated[str, Query(pattern=VERSION_RE.pattern)],
    filename: Annotated[str, Query(max_length=255)] = "",
    signature: Annotated[
        str, Query(max_length=200, description="base64 Ed25519; empty: the Manager signs (if it has a key)")
    ] = "",
) -> dict[str, Any]:
    request.state.audit_target = f"{component}@{version}"
    artifact = await ctx.artifacts.upload(
        request.stream(),
        component=component,
        version=version,
        filename=filename or f"{component.replace(':', '-')}-{version}",
        signature=signature,
        username=user.username,
    )
    request.state.audit_detail = f"sha256={artifact.sha256} size={artifact.size}"
    return ok(artifact_json(artifact))


@router.get("", name="artifacts.list", summary="Stored packages, by component, newest first")
async def list_artifacts(
    ctx: Ctx, _user: CurrentUser, component: Annotated[str | None, Query(max_length=160)] = None
) -> dict[str, Any]:
    found = await ctx.artifacts.list(component or None)
    return ok({"artifacts": [artifact_json(a) for a in found], "count": len(found)})


@router.get("/{artifact_id}", name="artifacts.show", summary="One stored package")
async def show(artifact_id: int, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    return ok(artifact_json(await ctx.artifacts.get(artifact_id)))


@router.delete("/{artifact_id}", name="artifacts.delete", summary="Delete a stored package (admin)")
async def delete(artifact_id: int, ctx: Ctx, _user: AdminUser) -> dict[str, Any]:
    return ok(artifact_json(await ctx.artifacts.delete(artifact_id)), "deleted")


@router.get(
    "/{artifact_id}/download",
    name="artifacts.download",
    summary="The package's bytes for a daemon, with the short-lived token of its update (Range supported)",
)
async def download(
    artifact_id: int, ctx: Ctx, token: Annotated[str, Query(max_length=200)] = ""
) -> FileResponse:
    ctx.artifacts.check_token(artifact_id, token)
    artifact = await ctx.artifacts.get(artifact_id)
    return FileResponse(
        ctx.artifacts.path(artifact), media_type="application/octet-stream", filename=artifact.filename
    )
