"""Bearer-token authentication and role checks as FastAPI dependencies.

``CurrentUser`` resolves the token on every request (the user's row is read each time, so
disabling a user or changing a password takes effect at once) and leaves the user on
``request.state.user`` for the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsfleet.common.errors import PermissionDenied, Unauthenticated
from opsfleet.manager.domain import Role, User
from opsfleet.manager.web.context import Ctx

_bearer = HTTPBearer(auto_error=False, description="JWT from POST /api/v1/auth/login")
_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


async def current_user(
    request: Request,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("not authenticated: send Authorization: Bearer <token>")
    user = await ctx.auth.authenticate(credentials.credentials)
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The raw bearer token of the request (after ``CurrentUser`` has checked it)."""
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("not authenticated: send Authorization: Bearer <token>")
    return credentials.credentials


BearerToken = Annotated[str, Depends(bearer_token)]


def require_role(minimum: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency admitting users of ``minimum`` role or higher (admin > operator > viewer)."""

    async def check(user: CurrentUser) -> User:
        if _RANK[user.role] < _RANK[minimum]:
            raise PermissionDenied(f"this needs the {minimum.value} role; you are {user.role.value}")
        return user

    return check


OperatorUser = Annotated[User, Depends(require_role(Role.OPERATOR))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
