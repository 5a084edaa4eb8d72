"""Login throttling with an injected clock: limits per username and address, growing lockouts,
the right password refused while locked, expiry, and the bound on tracked keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsfleet.common.errors import ResourceExhausted
from opsfleet.manager.secret_file import SecretFile
from opsfleet.manager.services.auth import AuthService
from opsfleet.manager.services.login_throttle import LoginThrottle, LoginThrottled, ThrottlePolicy
from opsfleet.manager.services.users import BadCredentials, UserService
from tests.unit.web.test_tokens import Clock, MemoryUserStore

POLICY = ThrottlePolicy(
    max_failures=3, max_failures_per_address=5, window=300.0, lockout_base=60.0, lockout_max=600.0
)
PASSWORD = "first-keeper-pw"


def fail_until_locked(throttle: LoginThrottle, username: str, address: str, attempts: int) -> float:
    """Fail ``attempts`` times; the retry_after of the failure that locked (the last one)."""
    for _ in range(attempts - 1):
        throttle.failed(username, address)
    with pytest.raises(LoginThrottled) as locked:
        throttle.failed(username, address)
    assert locked.value.retry_after is not None
    return locked.value.retry_after


def test_username_limit_locks_then_expires_and_grows() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock=clock)
    assert fail_until_locked(throttle, "admin", "10.0.0.1", 3) == 60
    with pytest.raises(LoginThrottled) as refused:
        throttle.check("admin", "10.0.0.2")  # any address: the username is locked
    assert refused.value.retry_after == 60 and "try again in 60 seconds" in refused.value.message
    assert isinstance(refused.value, ResourceExhausted)
    clock.now += 30
    with pytest.raises(LoginThrottled) as refused:
        throttle.check("ADMIN", "10.0.0.3")  # usernames compare case-insensitively
    assert refused.value.retry_after == 30
    clock.now += 30
    throttle.check("admin", "10.0.0.3")  # expired
    # The next failure while the username still has a strike locks again at once, for twice as long.
    assert fail_until_locked(throttle, "admin", "10.0.0.4", 1) == 120
    clock.now += 121
    assert fail_until_locked(throttle, "admin", "10.0.0.5", 1) == 240
    clock.now += 241
    assert fail_until_locked(throttle, "admin", "10.0.0.6", 1) == 480
    clock.now += 481
    assert fail_until_locked(throttle, "admin", "10.0.0.7", 1) == 600  # capped at lockout_max
    # Quiet for longer than lockout_max after the lock: the strikes are forgotten.
    clock.now += 600 + 601
    throttle.failed("admin", "10.0.0.8")
    throttle.failed("admin", "10.0.0.8")
    assert fail_until_locked(throttle, "admin", "10.0.0.8", 1) == 60


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for _ in range(10):
        throttle.failed("bob", "")
        throttle.failed("bob", "")
        clock.now += 301  # never three within 300 s
    throttle.check("bob", "")


def test_success_resets_the_username_but_not_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock=clock)
    throttle.failed("carol", "10.0.0.9")
    throttle.failed("carol", "10.0.0.9")
    throttle.succeeded("carol")
    throttle.failed("carol", "10.0.0.9")
    throttle.failed("carol", "10.0.0.9")  # 2 since the success: not locked
    throttle.check("carol", "10.0.0.9")
    # The address has 4 failures; one more (any username) locks it for everyone.
    with pytest.raises(LoginThrottled):
        throttle.failed("dave", "10.0.0.9")
    with pytest.raises(LoginThrottled):
        throttle.check("erin", "10.0.0.9")
    throttle.check("erin", "10.0.0.10")


def test_address_limit_across_usernames() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for i in range(4):
        throttle.failed(f"user{i}", "192.0.2.7")
    with pytest.raises(LoginThrottled) as locked:
        throttle.failed("user4", "192.0.2.7")
    assert locked.value.retry_after == 60
    with pytest.raises(LoginThrottled):
        throttle.check("never-tried", "192.0.2.7")
    throttle.check("never-tried", "192.0.2.8")


def test_tracked_keys_are_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock=clock, max_keys=100)
    for i in range(1000):
        throttle.failed(f"random-{i}", "")
    assert len(throttle) <= 100
    # A locked key survives the pruning.
    fail_until_locked(throttle, "target", "", 3)
    for i in range(1000):
        throttle.failed(f"more-{i}", "")
    with pytest.raises(LoginThrottled):
        throttle.check("target", "")


@pytest.fixture
async def auth(tmp_path: Path) -> tuple[AuthService, Clock]:
    store, clock = MemoryUserStore(), Clock()
    users = UserService(store, clock=clock)
    throttle = LoginThrottle(POLICY, clock=clock)
    service = AuthService(
        users, store, secret_store=SecretFile(tmp_path / "jwt.secret"), clock=clock, throttle=throttle
    )
    await service.start()
    await users.bootstrap_admin(PASSWORD)
    return service, clock


async def test_right_password_refused_while_locked_then_accepted(auth: tuple[AuthService, Clock]) -> None:
    service, clock = auth
    for _ in range(2):
        with pytest.raises(BadCredentials):
            await service.login("admin", "wrong-password-1", "10.1.1.1")
    with pytest.raises(LoginThrottled):
        await service.login("admin", "wrong-password-1", "10.1.1.1")
    with pytest.raises(LoginThrottled):
        await service.login("admin", PASSWORD, "10.1.1.2")
    clock.now += 61
    issued, user = await service.login("admin", PASSWORD, "10.1.1.2")
    assert user.username == "admin" and issued.token
    # The success reset the username: two more failures do not lock it.
    for _ in range(2):
        with pytest.raises(BadCredentials):
            await service.login("admin", "wrong-password-1", "10.1.1.3")
    await service.login("admin", PASSWORD, "10.1.1.3")
