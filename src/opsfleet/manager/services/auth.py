"""Sign-in tokens: HS256 JWTs checked against the user's row on every request.

The signing key is SHA-256 of the secret: ``jwt.secret`` from the config when set (Manager
replicas must all be given the same), else a random secret generated once into a 0600 file
(``<data_dir>/jwt.secret``). The secret is never kept in the database: a secret that an
older version stored there is moved to the file (or dropped, when ``jwt.secret`` is set) at
start. A token carries the user's id, ``token_version`` and a unique id (``jti``); disabling
a user or changing its password bumps the version, which makes older tokens fail at once, and
logging out records the ``jti`` as revoked until the token's expiry.

Sign-ins go through the :class:`LoginThrottle` (per username and client address).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import jwt

from opsfleet.common.errors import ConfigError, Unauthenticated, Unavailable
from opsfleet.manager.domain import User
from opsfleet.manager.services.login_throttle import LoginThrottle
from opsfleet.manager.services.users import BadCredentials, UserService
from opsfleet.manager.store.base import UserStore

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "opsfleet"
SECRET_SETTING = "jwt_secret"
MAX_JTI = 64


class TokenInvalid(Unauthenticated):
    """The token is malformed, forged or revoked (REST code 1007)."""


class TokenExpired(Unauthenticated):
    """The token's lifetime is over (REST code 1008)."""


class SecretStore(Protocol):
    """Where a generated signing secret lives (a 0600 file: ``manager.secret_file.SecretFile``)."""

    path: Path

    def read(self) -> str | None: ...

    def create(self, value: str) -> str:
        """Store ``value`` unless a secret exists already; the stored secret."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: float


@dataclass(frozen=True)
class _Claims:
    user_id: int
    version: int
    expires: float
    jti: str


class AuthService:
    """``start()`` settles the signing key; then issue and check tokens."""

    def __init__(
        self,
        users: UserService,
        store: UserStore,
        *,
        secret: str = "",
        secret_store: SecretStore | None = None,
        ttl: float = 86400.0,
        clock: Callable[[], float] = time.time,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._users = users
        self._store = store
        self._configured_secret = secret
        self._secret_store = secret_store
        self._ttl = ttl
        self._clock = clock
        self.throttle = throttle if throttle is not None else LoginThrottle()
        self._key: bytes | None = None

    def derived_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from the token secret (shared by replicas); after ``start()``."""
        if self._key is None:
            raise RuntimeError("AuthService.derived_key before start()")
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    async def start(self) -> None:
        secret, source = await self._settle_secret()
        self._key = hashlib.sha256(secret.encode("utf-8")).digest()
        pruned = await self._store.prune_revocations(self._clock())
        log.info(
            "JWT signing key from %s; tokens live %.0fs; %d expired revocations pruned",
            source,
            self._ttl,
            pruned,
        )

    async def _settle_secret(self) -> tuple[str, str]:
        legacy = await self._store.get_setting(SECRET_SETTING)
        if self._configured_secret:
            if legacy is not None:
                await self._store.delete_setting(SECRET_SETTING)
                log.warning("removed the JWT secret an older version kept in the database (jwt.secret set)")
            return self._configured_secret, "config key jwt.secret"
        if self._secret_store is None:
            raise ConfigError("config key 'jwt.secret': not set and no secret file to keep a generated one")
        path = self._secret_store.path
        existing = self._secret_store.read()
        if existing is not None:
            source = str(path)
        elif legacy is not None:
            existing = self._secret_store.create(legacy)
            source = f"{path} (moved from the database)"
            log.warning("moved the JWT secret from the database to %s (mode 0600)", path)
        else:
            existing = self._secret_store.create(secrets.token_urlsafe(48))
            source = f"{path} (generated)"
        if legacy is not None:
            # Deleted only once the file holds a secret, so a failed write loses nothing.
            await self._store.delete_setting(SECRET_SETTING)
            log.warning("removed the JWT secret from the database; it is kept in %s", path)
        return existing, source

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
            "jti": secrets.token_urlsafe(16),
        }
        return IssuedToken(jwt.encode(claims, self._signing_key, algorithm=ALGORITHM), float(expires))

    async def login(self, username: str, password: str, address: str = "") -> tuple[IssuedToken, User]:
        """Sign in from client ``address``; LoginThrottled (even for the right password) while
        the username or the address is locked out after repeated failures."""
        self.throttle.check(username, address)
        try:
            user = await self._users.authenticate(username, password)
        except BadCredentials:
            self.throttle.failed(username, address)
            raise
        self.throttle.succeeded(username)
        return self.issue(user), user

    def _decode(self, token: str) -> _Claims:
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # Expiry is checked below against the injected clock.
                options={
                    "require": ["sub", "exp", "iat", "ver", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"invalid token: {exc}") from None
        try:
            parsed = _Claims(int(claims["sub"]), int(claims["ver"]), float(claims["exp"]), str(claims["jti"]))
        except (TypeError, ValueError):
            raise TokenInvalid("invalid token: bad claims") from None
        if not 0 < len(parsed.jti) <= MAX_JTI:
            raise TokenInvalid("invalid token: bad claims")
        if parsed.expires <= self._clock():
            raise TokenExpired("token has expired; sign in again")
        return parsed

    async def _check(self, token: str) -> tuple[User, _Claims]:
        claims = self._decode(token)
        user = await self._store.get_user(claims.user_id)
        if user is None or user.disabled or user.token_version != claims.version:
            raise TokenInvalid("token has been revoked; sign in again")
        if await self._store.token_revoked(claims.jti):
            raise TokenInvalid("token has been revoked (logged out); sign in again")
        return user, claims

    async def authenticate(self, token: str) -> User:
        """The user a token stands for, if it is genuine, unexpired and not revoked."""
        user, _ = await self._check(token)
        return user

    async def logout(self, token: str) -> User:
        """Revoke ``token`` until its expiry (on every replica: the revocation is in the database)."""
        user, claims = await self._check(token)
        await self._store.revoke_token(claims.jti, user.id, claims.expires, self._clock())
        log.info("user %s logged out; token revoked", user.username)
        return user

    async def change_password(
        self, user: User, old_password: str, new_password: str
    ) -> tuple[IssuedToken, User]:
        """Change the password, revoking older tokens; a fresh token for the caller."""
        updated = await self._users.change_password(user, old_password, new_password)
        return self.issue(updated), updated
