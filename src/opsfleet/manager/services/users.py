"""REST API users: the first admin, sign-in checks, admin management, password changes.

Tokens are revoked by bumping a user's ``token_version`` (disable, password change); the
auth service compares it on every request, so revocation takes effect at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from opsfleet.common.errors import (
    ConfigError,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from opsfleet.manager.domain import Role, User
from opsfleet.manager.services.paging import Page, page_window
from opsfleet.manager.services.password_policy import MAX_LENGTH as MAX_PASSWORD
from opsfleet.manager.services.password_policy import check_password
from opsfleet.manager.services.passwords import (
    generate_password,
    hash_password_async,
    verify_password_async,
)
from opsfleet.manager.store.base import UserStore

log = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
USERNAME_RE = re.compile(r"[A-Za-z0-9._-]{3,64}")


class UserNotFound(NotFound):
    """No such user (REST code 2007)."""


class UserExists(Conflict):
    """The username is taken (REST code 2009)."""


class UserDisabled(PermissionDenied):
    """The account is disabled (REST code 2008)."""


class BadCredentials(Unauthenticated):
    """Wrong username or password (REST code 1009)."""


def check_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise InvalidArgument("username must be 3-64 characters of [A-Za-z0-9._-]")
    return username


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidArgument("role must be admin, operator or viewer") from None


def _generate_admin_password() -> str:
    while True:  # a random password fails the policy only by containing "admin": draw again
        candidate = generate_password()
        try:
            return check_password(candidate, ADMIN_USERNAME)
        except InvalidArgument:
            continue


class UserService:
    def __init__(self, store: UserStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        # Compared against when the username is unknown, so both paths cost one scrypt.
        self._dummy_hash = ""

    async def bootstrap_admin(self, password: str = "") -> str | None:
        """Create the user ``admin`` unless it exists.

        ``password`` (OPSFLEET_ADMIN_PASSWORD) is used when given, else a generated one is
        logged once. Returns the generated password, or None when nothing was generated.
        """
        if await self._store.get_credentials(ADMIN_USERNAME) is not None:
            return None
        generated = None if password else _generate_admin_password()
        secret = password or generated or ""
        try:
            check_password(secret, ADMIN_USERNAME)
        except InvalidArgument as exc:
            raise ConfigError(
                f"config key 'auth.admin_password' (env OPSFLEET_ADMIN_PASSWORD): {exc.message}"
            ) from None
        user = await self._store.insert_user(
            ADMIN_USERNAME, await hash_password_async(secret), Role.ADMIN, self._clock()
        )
        if user is None:
            return None  # another replica created it first
        if generated is None:
            log.info(
                "created the first admin user %r with the password from OPSFLEET_ADMIN_PASSWORD",
                user.username,
            )
            return None
        log.warning(
            "\n" + "=" * 72 + "\n"
            "  Created the first admin user 'admin' with the generated password:\n\n"
            "      %s\n\n"
            "  It is shown only this once. Sign in and change it (POST /api/v1/auth/change-password),\n"
            "  or set OPSFLEET_ADMIN_PASSWORD before the first start to choose it.\n" + "=" * 72,
            generated,
        )
        return generated

    async def authenticate(self, username: str, password: str) -> User:
        """The user with these credentials; BadCredentials or UserDisabled otherwise."""
        found = await self._store.get_credentials(username) if USERNAME_RE.fullmatch(username) else None
        if found is None and not self._dummy_hash:
            self._dummy_hash = await hash_password_async(generate_password())
        encoded = found[1] if found else self._dummy_hash
        ok = await verify_password_async(password[:MAX_PASSWORD], encoded)
        if found is None or not ok:
            raise BadCredentials("wrong username or password")
        user = found[0]
        if user.disabled:
            raise UserDisabled(f"user {user.username} is disabled")
        await self._store.note_login(user.id, self._clock())
        return user

    async def get(self, user_id: int) -> User:
        user = await self._store.get_user(user_id)
        if user is None:
            raise UserNotFound(f"user {user_id} does not exist")
        return user

    async def list(self, page: int, page_size: int) -> Page[User]:
        offset, limit = page_window(page, page_size)
        users, total = await self._store.list_users(offset, limit)
        return Page(users, page, page_size, total)

    async def create(self, username: str, password: str, role: str) -> User:
        check_username(username)
        check_password(password, username)
        parsed = parse_role(role)
        user = await self._store.insert_user(
            username, await hash_password_async(password), parsed, self._clock()
        )
        if user is None:
            raise UserExists(f"user {username} already exists")
        log.info("user %s created with role %s", username, parsed.value)
        return user

    async def set_disabled(self, actor: User, user_id: int, disabled: bool) -> User:
        """Disable (revoking every token at once) or enable a user; nobody disables themselves."""
        if disabled and actor.id == user_id:
            raise Conflict("you cannot disable your own account")
        user = await self._store.update_user(
            user_id, self._clock(), disabled=disabled, revoke_tokens=disabled
        )
        if user is None:
            raise UserNotFound(f"user {user_id} does not exist")
        log.info("user %s %s by %s", user.username, "disabled" if disabled else "enabled", actor.username)
        return user

    async def set_role(self, actor: User, user_id: int, role: str) -> User:
        parsed = parse_role(role)
        if actor.id == user_id and parsed is not actor.role:
            raise Conflict("you cannot change your own role")
        user = await self._store.update_user(user_id, self._clock(), role=parsed)
        if user is None:
            raise UserNotFound(f"user {user_id} does not exist")
        log.info("user %s now has role %s (by %s)", user.username, parsed.value, actor.username)
        return user

    async def change_password(self, user: User, old_password: str, new_password: str) -> User:
        """Set a new password; every token issued before stops working."""
        found = await self._store.get_credentials(user.username)
        if found is None:
            raise UserNotFound(f"user {user.username} does not exist")
        if not await verify_password_async(old_password[:MAX_PASSWORD], found[1]):
            raise InvalidArgument("old_password is wrong")
        check_password(new_password, user.username, "new_password")
        if new_password == old_password:
            raise InvalidArgument("new_password must differ from old_password")
        updated = await self._store.update_user(
            user.id, self._clock(), password_hash=await hash_password_async(new_password), revoke_tokens=True
        )
        if updated is None:
            raise UserNotFound(f"user {user.username} does not exist")
        log.info("user %s changed their password; older tokens revoked", user.username)
        return updated
