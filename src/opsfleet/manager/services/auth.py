"""Sign-in tokens: HS256 JWTs checked against the user's row on every request.

The signing key is SHA-256 of the secret: ``jwt.secret`` from the config when set, else a
random secret generated once and stored in the database's ``settings`` table (first writer
wins), so every Manager replica on the same database signs and accepts the same tokens.
A token carries the user's id and ``token_version``; disabling a user or changing its
password bumps the version, which makes older tokens fail at once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from opsfleet.common.errors import Unauthenticated, Unavailable
from opsfleet.manager.domain import User
from opsfleet.manager.services.users import UserService
from opsfleet.manager.store.base import UserStore

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "opsfleet"
SECRET_SETTING = "jwt_secret"


class TokenInvalid(Unauthenticated):
    """The token is malformed, forged or revoked (REST code 1007)."""


class TokenExpired(Unauthenticated):
    """The token's lifetime is over (REST code 1008)."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: float


class AuthService:
    """``start()`` settles the signing key; then issue and check tokens."""

    def __init__(
        self,
        users: UserService,
        store: UserStore,
        *,
        secret: str = "",
        ttl: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._users = users
        self._store = store
        self._configured_secret = secret
        self._ttl = ttl
        self._clock = clock
        self._key: bytes | None = None

    async def start(self) -> None:
        if self._configured_secret:
            secret, source = self._configured_secret, "config key jwt.secret"
        else:
            secret = await self._store.setting(SECRET_SETTING, secrets.token_urlsafe(48))
            source = "the database (generated once)"
        self._key = hashlib.sha256(secret.encode("utf-8")).digest()
        log.info("JWT signing key from %s; tokens live %.0fs", source, self._ttl)

    @property
    def _signing_key(self) -> bytes:
        if self._key is None:
            raise Unavailable("auth service is not started")
        return self._key

    def issue(self, user: User) -> IssuedToken:
        now = int(self._clock())
        expires = now + int(self._ttl)
        claims = {
            "sub": str(user.id),
            "name": user.username,
            "ver": user.token_version,
            "iss": ISSUER,
            "iat": now,
            "exp": expires,
        }
        return IssuedToken(jwt.encode(claims, self._signing_key, algorithm=ALGORITHM), float(expires))

    async def login(self, username: str, password: str) -> tuple[IssuedToken, User]:
        user = await self._users.authenticate(username, password)
        return self.issue(user), user

    async def authenticate(self, token: str) -> User:
        """The user a token stands for, if it is genuine, unexpired and not revoked."""
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # Expiry is checked below against the injected clock.
                options={"require": ["sub", "exp", "iat", "ver"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"invalid token: {exc}") from None
        try:
            user_id, version, expires = int(claims["sub"]), int(claims["ver"]), float(claims["exp"])
        except (TypeError, ValueError):
            raise TokenInvalid("invalid token: bad claims") from None
        if expires <= self._clock():
            raise TokenExpired("token has expired; sign in again")
        user = await self._store.get_user(user_id)
        if user is None or user.disabled or user.token_version != version:
            raise TokenInvalid("token has been revoked; sign in again")
        return user

    async def change_password(
        self, user: User, old_password: str, new_password: str
    ) -> tuple[IssuedToken, User]:
        """Change the password, revoking older tokens; a fresh token for the caller."""
        updated = await self._users.change_password(user, old_password, new_password)
        return self.issue(updated), updated
