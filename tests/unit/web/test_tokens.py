"""AuthService and UserService over an in-memory UserStore: tokens, revocation, expiry, first admin."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from opsfleet.common.errors import Conflict, InvalidArgument
from opsfleet.manager.domain import Role, User
from opsfleet.manager.secret_file import SecretFile
from opsfleet.manager.services.auth import AuthService, TokenExpired, TokenInvalid
from opsfleet.manager.services.users import BadCredentials, UserDisabled, UserExists, UserService


class MemoryUserStore:
    """The UserStore protocol in memory."""

    def __init__(self) -> None:
        self.users: dict[int, tuple[User, str]] = {}
        self.settings: dict[str, str] = {}
        self.revoked: dict[str, float] = {}

    async def insert_user(self, username: str, password_hash: str, role: Role, now: float) -> User | None:
        if any(u.username == username for u, _ in self.users.values()):
            return None
        user = User(len(self.users) + 1, username, role, False, 0, now, now)
        self.users[user.id] = (user, password_hash)
        return user

    async def get_user(self, user_id: int) -> User | None:
        found = self.users.get(user_id)
        return found[0] if found else None

    async def get_credentials(self, username: str) -> tuple[User, str] | None:
        return next((pair for pair in self.users.values() if pair[0].username == username), None)

    async def list_users(self, offset: int, limit: int) -> tuple[list[User], int]:
        users = [u for u, _ in self.users.values()]
        return users[offset : offset + limit], len(users)

    async def update_user(
        self,
        user_id: int,
        now: float,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
        revoke_tokens: bool = False,
    ) -> User | None:
        if user_id not in self.users:
            return None
        user, hashed = self.users[user_id]
        user = dataclasses.replace(
            user,
            role=role or user.role,
            disabled=user.disabled if disabled is None else disabled,
            token_version=user.token_version + (1 if revoke_tokens else 0),
            updated_at=now,
        )
        self.users[user_id] = (user, password_hash or hashed)
        return user

    async def note_login(self, user_id: int, now: float) -> None:
        user, hashed = self.users[user_id]
        self.users[user_id] = (dataclasses.replace(user, last_login_at=now), hashed)

    async def setting(self, key: str, default: str) -> str:
        return self.settings.setdefault(key, default)

    async def get_setting(self, key: str) -> str | None:
        return self.settings.get(key)

    async def delete_setting(self, key: str) -> bool:
        return self.settings.pop(key, None) is not None

    async def revoke_token(self, jti: str, user_id: int, expires_at: float, now: float) -> None:
        self.revoked = {j: e for j, e in self.revoked.items() if e > now}
        self.revoked.setdefault(jti, expires_at)

    async def token_revoked(self, jti: str) -> bool:
        return jti in self.revoked

    async def prune_revocations(self, now: float) -> int:
        before = len(self.revoked)
        self.revoked = {j: e for j, e in self.revoked.items() if e > now}
        return before - len(self.revoked)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def setup(tmp_path: Path) -> tuple[MemoryUserStore, UserService, AuthService, Clock]:
    store, clock = MemoryUserStore(), Clock()
    users = UserService(store, clock=clock)
    auth = AuthService(users, store, secret_store=SecretFile(tmp_path / "jwt.secret"), ttl=3600, clock=clock)
    await auth.start()
    await users.bootstrap_admin("first-keeper-pw")
    return store, users, auth, clock


async def test_token_roundtrip_expiry_and_revocation(
    setup: tuple[MemoryUserStore, UserService, AuthService, Clock],
) -> None:
    store, users, auth, clock = setup
    issued, admin = await auth.login("admin", "first-keeper-pw")
    assert (await auth.authenticate(issued.token)).id == admin.id
    assert "jwt_secret" not in store.settings  # kept in the 0600 file, not in the database
    clock.now += 3601
    with pytest.raises(TokenExpired):
        await auth.authenticate(issued.token)
    clock.now -= 3601
    bob = await users.create("bob", "password-123", "viewer")
    bob_token = auth.issue(bob).token
    await users.set_disabled(admin, bob.id, True)
    with pytest.raises(TokenInvalid):
        await auth.authenticate(bob_token)
    with pytest.raises(UserDisabled):
        await auth.login("bob", "password-123")
    with pytest.raises(TokenInvalid):
        await auth.authenticate(bob_token + "x")


async def test_other_secret_rejects(setup: tuple[MemoryUserStore, UserService, AuthService, Clock]) -> None:
    store, users, auth, clock = setup
    other = AuthService(users, store, secret="configured", clock=clock)
    await other.start()
    issued, _ = await auth.login("admin", "first-keeper-pw")
    with pytest.raises(TokenInvalid):
        await other.authenticate(issued.token)


async def test_user_rules(setup: tuple[MemoryUserStore, UserService, AuthService, Clock]) -> None:
    _, users, auth, _ = setup
    admin = (await auth.login("admin", "first-keeper-pw"))[1]
    assert await users.bootstrap_admin("another-password") is None  # exists: unchanged
    with pytest.raises(BadCredentials):
        await users.authenticate("admin", "another-password")
    with pytest.raises(UserExists):
        await users.create("admin", "password-123", "viewer")
    with pytest.raises(Conflict):
        await users.set_disabled(admin, admin.id, True)
    with pytest.raises(Conflict):
        await users.set_role(admin, admin.id, "viewer")
    with pytest.raises(InvalidArgument, match=r"^role"):
        await users.create("carl", "password-123", "god")
    _, updated = await auth.change_password(admin, "first-keeper-pw", "second-keeper-pw")
    assert updated.token_version == admin.token_version + 1
    with pytest.raises(InvalidArgument, match=r"^old_password"):
        await users.change_password(updated, "first-keeper-pw", "third-keeper-pw")


async def test_generated_admin_password() -> None:
    store = MemoryUserStore()
    users = UserService(store)
    generated = await users.bootstrap_admin("")
    assert generated and len(generated) >= 16
    assert (await users.authenticate("admin", generated)).role is Role.ADMIN
    assert await users.bootstrap_admin("") is None


async def test_logout_revokes_only_that_token_until_it_expires(
    setup: tuple[MemoryUserStore, UserService, AuthService, Clock],
) -> None:
    store, _, auth, clock = setup
    first, _ = await auth.login("admin", "first-keeper-pw")
    second, _ = await auth.login("admin", "first-keeper-pw")
    assert (await auth.logout(first.token)).username == "admin"
    with pytest.raises(TokenInvalid, match="logged out"):
        await auth.authenticate(first.token)
    with pytest.raises(TokenInvalid):
        await auth.logout(first.token)
    assert (await auth.authenticate(second.token)).username == "admin"
    assert len(store.revoked) == 1
    clock.now += 3601  # both expired: the revocation is pruned at the next start
    await auth.start()
    assert store.revoked == {}
