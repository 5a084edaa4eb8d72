"""The password policy, the first admin's password, and the JWT secret kept out of the database."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from opsfleet.common.errors import ConfigError, InvalidArgument
from opsfleet.manager.secret_file import SecretFile
from opsfleet.manager.services.auth import SECRET_SETTING, AuthService, TokenInvalid
from opsfleet.manager.services.password_policy import check_password, common_passwords
from opsfleet.manager.services.users import UserService
from tests.unit.web.test_tokens import Clock, MemoryUserStore


@pytest.mark.parametrize(
    ("password", "username", "rule"),
    [
        ("12345678", "bob", "at least 12 characters"),
        ("short-pw", "bob", "at least 12 characters"),
        ("x" * 129, "bob", "at most 128 characters"),
        ("password1234", "bob", "commonly used"),
        ("PassWord1234", "bob", "commonly used"),  # compared case-insensitively
        ("123qweasdzxc", "bob", "commonly used"),
        ("alice-is-great-2024", "alice", "must not contain the username"),
        ("ALICE-IS-GREAT-2024", "alice", "must not contain the username"),
        ("longusername", "LongUserName", "must not contain the username"),
    ],
)
def test_refusals_name_the_rule(password: str, username: str, rule: str) -> None:
    with pytest.raises(InvalidArgument, match=rule) as refused:
        check_password(password, username, "new_password")
    assert refused.value.message.startswith("new_password ")


def test_accepted_passwords_and_the_shipped_list() -> None:
    assert check_password("correct-horse-battery", "bob") == "correct-horse-battery"
    assert check_password("x" * 128, "bob")
    listed = common_passwords()
    assert len(listed) > 10_000 and "password" in listed and "qwerty" in listed
    assert all(p == p.lower() for p in listed)


async def test_user_service_applies_the_policy() -> None:
    store = MemoryUserStore()
    users = UserService(store)
    await users.bootstrap_admin("strong-keeper-pw")
    with pytest.raises(InvalidArgument, match="at least 12"):
        await users.create("bob", "12345678", "viewer")
    with pytest.raises(InvalidArgument, match="username"):
        await users.create("bobby", "bobby-bobby-bobby", "viewer")
    bob = await users.create("bob", "a-fine-password", "viewer")
    with pytest.raises(InvalidArgument, match=r"^new_password .*common"):
        await users.change_password(bob, "a-fine-password", "Qwerty123456")


@pytest.mark.parametrize("password", ["12345678", "admin-password-1", "qwertyuiop123"])
async def test_bootstrap_admin_password_must_pass(password: str) -> None:
    store = MemoryUserStore()
    with pytest.raises(ConfigError, match=r"^config key 'auth.admin_password'"):
        await UserService(store).bootstrap_admin(password)
    assert store.users == {}


async def _auth(store: MemoryUserStore, path: Path, secret: str = "") -> AuthService:
    clock = Clock()
    service = AuthService(
        UserService(store, clock=clock), store, secret=secret, secret_store=SecretFile(path), clock=clock
    )
    await service.start()
    return service


async def test_generated_secret_is_a_0600_file_not_in_the_database(tmp_path: Path) -> None:
    store, path = MemoryUserStore(), tmp_path / "data" / "jwt.secret"
    users = UserService(store)
    await users.bootstrap_admin("strong-keeper-pw")
    first = await _auth(store, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET_SETTING not in store.settings
    token = (await first.login("admin", "strong-keeper-pw"))[0].token
    second = await _auth(store, path)  # a restart reads the same file
    assert (await second.authenticate(token)).username == "admin"
    path.chmod(0o644)
    await _auth(store, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened


async def test_legacy_database_secret_moves_to_the_file(tmp_path: Path) -> None:
    store, path = MemoryUserStore(), tmp_path / "jwt.secret"
    store.settings[SECRET_SETTING] = "legacy-secret-from-the-database"
    users = UserService(store)
    await users.bootstrap_admin("strong-keeper-pw")
    legacy = await _auth(
        MemoryUserStore(), tmp_path / "other.secret", secret="legacy-secret-from-the-database"
    )
    old_token = legacy.issue(await users.authenticate("admin", "strong-keeper-pw")).token

    moved = await _auth(store, path)
    assert SECRET_SETTING not in store.settings
    assert path.read_text().strip() == "legacy-secret-from-the-database"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (await moved.authenticate(old_token)).username == "admin"  # tokens stay valid


async def test_configured_secret_drops_the_legacy_one(tmp_path: Path) -> None:
    store = MemoryUserStore()
    store.settings[SECRET_SETTING] = "legacy-secret-from-the-database"
    await UserService(store).bootstrap_admin("strong-keeper-pw")
    configured = await _auth(store, tmp_path / "jwt.secret", secret="configured-replica-secret")
    assert SECRET_SETTING not in store.settings
    assert not (tmp_path / "jwt.secret").exists()
    other = await _auth(MemoryUserStore(), tmp_path / "x.secret")
    token = other.issue(await UserService(store).authenticate("admin", "strong-keeper-pw")).token
    with pytest.raises(TokenInvalid):
        await configured.authenticate(token)
