"""REST hardening over real HTTP: login throttling, the password policy, security headers on
every kind of response, Swagger UI without outside hosts, server-side logout, and the JWT
secret kept in a 0600 file instead of the database."""

from __future__ import annotations

import hashlib
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from opsfleet.common.errors import ConfigError
from opsfleet.manager.app import ManagerApp
from opsfleet.manager.store.schema import settings
from opsfleet.manager.web.app import create_app
from tests.integration.web.support import ADMIN_PASSWORD, Web, bearer, expect

THROTTLED = {
    "auth__login_max_failures": 3,
    "auth__login_max_failures_per_address": 6,
    "auth__lockout_base": "1m",
    "auth__lockout_max": "10m",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def login(web: Web, username: str, password: str) -> httpx.Response:
    return await web.http.post("/api/v1/auth/login", json={"username": username, "password": password})


def assert_security_headers(response: httpx.Response) -> None:
    where = (response.request.url, response.headers)
    csp = [p.strip() for p in response.headers.get("Content-Security-Policy", "").split(";")]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ):
        assert directive in csp, (directive, where)
    assert "unsafe-inline" not in str(csp) and "unsafe-eval" not in str(csp), where
    assert response.headers.get("X-Frame-Options") == "DENY", where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "no-referrer", where


# -- login throttling ---------------------------------------------------------------------


async def test_throttle_429_retry_after_and_right_password_refused(
    start_web: Callable[..., Any], tmp_path: Path
) -> None:
    from opsfleet.manager.services.login_throttle import LoginThrottle, ThrottlePolicy

    web: Web = await start_web(f"sqlite:///{tmp_path / 'a.db'}", **THROTTLED)
    clock = Clock()
    # The same policy as configured, on a clock the test moves (lockouts then expire at once).
    assert web.app.auth.throttle.policy == ThrottlePolicy(3, 6, 300.0, 60.0, 600.0)
    web.app.auth.throttle = LoginThrottle(web.app.auth.throttle.policy, clock=clock)
    for _ in range(2):
        expect(await login(web, "admin", "wrong-password-1"), 401, 1009)
    r = await login(web, "admin", "wrong-password-1")
    env = expect(r, 429, 1006)
    assert r.headers["Retry-After"] == "60" and "try again in 60 seconds" in env["message"]
    r = await login(web, "admin", ADMIN_PASSWORD)  # the right password: refused all the same
    expect(r, 429, 1006)
    assert r.headers["Retry-After"] == "60"
    clock.now += 45
    r = await login(web, "admin", ADMIN_PASSWORD)
    assert expect(r, 429, 1006) and r.headers["Retry-After"] == "15"
    clock.now += 15
    expect(await login(web, "admin", ADMIN_PASSWORD), 200, 0)  # lockout over
    # The success reset the username: two failures do not lock it again.
    for _ in range(2):
        expect(await login(web, "admin", "wrong-password-1"), 401, 1009)
    expect(await login(web, "admin", ADMIN_PASSWORD), 200, 0)
    # Failed sign-ins are audited, throttled ones too.
    audit = expect(await web.get("/api/v1/admin/audit", action="auth.login", page_size=100), 200, 0)
    assert {e["code"] for e in audit["data"]["list"]} >= {0, 1009, 1006}


async def test_throttle_per_address_across_usernames(start_web: Callable[..., Any], tmp_path: Path) -> None:
    web: Web = await start_web(f"sqlite:///{tmp_path / 'a.db'}", **THROTTLED)
    await web.create_user("vera", "viewer")
    for name in ("u1", "u2", "u3", "u4", "u5"):
        expect(await login(web, name, "wrong-password-1"), 401, 1009)
    r = await login(web, "u6", "wrong-password-1")  # sixth failure from 127.0.0.1: locked
    expect(r, 429, 1006)
    assert int(r.headers["Retry-After"]) >= 59
    # Every username is refused from this address now, with the right password too.
    expect(await login(web, "vera", "password-123"), 429, 1006)


async def test_default_throttle_stops_a_brute_force(web_sqlite: Web) -> None:
    statuses = [(await login(web_sqlite, "admin", f"guess-{i:04d}-password")).status_code for i in range(12)]
    assert statuses[:9] == [401] * 9 and statuses[9:] == [429] * 3
    expect(await login(web_sqlite, "admin", ADMIN_PASSWORD), 429, 1006)


# -- password policy ----------------------------------------------------------------------


async def test_password_policy_over_rest(web_sqlite: Web) -> None:
    web, admin = web_sqlite, await web_sqlite.admin()
    for password, rule in [
        ("12345678", "password must be at least 12 characters"),
        ("Password1234", "password is a commonly used password"),
        ("dave-the-operator", "password must not contain the username"),
    ]:
        r = await web.http.post(
            "/api/v1/admin/users", json={"username": "dave", "password": password}, headers=admin
        )
        assert expect(r, 400, 1001)["message"].startswith(rule), (password, r.text)
    await web.create_user("dave", "viewer", password="a-decent-passphrase")
    headers = bearer(await web.login("dave", "a-decent-passphrase"))
    for new, rule in [
        ("12345678", "at least 12"),
        ("qwerty123456", "commonly used"),
        ("i-am-dave-2025", "username"),
    ]:
        r = await web.http.post(
            "/api/v1/auth/change-password",
            json={"old_password": "a-decent-passphrase", "new_password": new},
            headers=headers,
        )
        message = expect(r, 400, 1001)["message"]
        assert message.startswith("new_password") and rule in message


@pytest.mark.parametrize("password", ["12345678", "administrator-1", "1q2w3e4r5t6y"])
async def test_weak_bootstrap_admin_password_stops_the_start(
    manager_config: Callable[..., Any], tmp_path: Path, password: str
) -> None:
    app = ManagerApp(manager_config(f"sqlite:///{tmp_path / 'a.db'}", auth__admin_password=password))
    try:
        with pytest.raises(ConfigError, match=r"^config key 'auth.admin_password'"):
            await app.start()
    finally:
        await app.stop()


# -- security headers and /docs -----------------------------------------------------------


async def test_security_headers_on_every_kind_of_response(web_sqlite: Web) -> None:
    web = web_sqlite
    responses = [
        await web.get("/api/v1/auth/profile"),  # API success
        await web.http.get("/api/v1/nodes"),  # 401 error envelope
        await web.http.get("/api/v1/no-such-thing"),  # 404
        await web.http.post(  # 400 validation error
            "/api/v1/auth/login", content=b"{", headers={"content-type": "application/json"}
        ),
        await web.http.get("/health"),
        await web.http.get("/"),  # dashboard index
        await web.http.get("/js/main.js"),  # dashboard static file
        await web.http.get("/docs"),
        await web.http.get("/docs/assets/swagger-ui-bundle.js"),
        await web.http.get("/openapi.json"),
    ]
    assert [r.status_code for r in responses] == [200, 401, 404, 400, 200, 200, 200, 200, 200, 200]
    for response in responses:
        assert_security_headers(response)


async def test_security_headers_on_unhandled_errors(web_sqlite: Web) -> None:
    app = create_app(web_sqlite.app.web_context())

    async def boom() -> None:
        raise RuntimeError("unexpected")

    app.router.add_api_route("/boom", boom)
    app.router.routes.insert(0, app.router.routes.pop())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/boom")
    assert r.status_code == 500 and r.json()["code"] == 5001
    assert_security_headers(r)


async def test_docs_load_nothing_from_other_hosts(web_sqlite: Web) -> None:
    web = web_sqlite
    page = await web.http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text and "cdn." not in page.text
    references = re.findall(r'(?:src|href|data-openapi-url)="([^"]+)"', page.text)
    assert len(references) == 5, references
    for ref in references:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        asset = await web.http.get(ref)
        assert asset.status_code == 200, ref
    assert (await web.http.get("/docs/assets/swagger-ui.LICENSE")).status_code == 200
    assert (await web.http.get("/redoc")).status_code == 404


# -- logout -------------------------------------------------------------------------------


async def test_logout_revokes_the_token_also_after_a_restart(web: Web, start_web: Callable[..., Any]) -> None:
    token = await web.login("admin", ADMIN_PASSWORD)
    other = await web.login("admin", ADMIN_PASSWORD)
    expect(await web.http.post("/api/v1/auth/logout"), 401, 1002)
    r = await web.http.post("/api/v1/auth/logout", headers=bearer(token))
    assert expect(r, 200, 0)["data"] == {"logged_out": True}
    for path in ("/api/v1/auth/profile", "/api/v1/nodes"):
        env = expect(await web.http.get(path, headers=bearer(token)), 401, 1007)
        assert "logged out" in env["message"]
    expect(await web.http.post("/api/v1/auth/logout", headers=bearer(token)), 401, 1007)
    expect(await web.http.get("/api/v1/auth/profile", headers=bearer(other)), 200, 0)

    url = web.app.config.database.url
    await web.close()
    await web.app.stop()
    again: Web = await start_web(url)
    expect(await again.http.get("/api/v1/auth/profile", headers=bearer(token)), 401, 1007)
    expect(await again.http.get("/api/v1/auth/profile", headers=bearer(other)), 200, 0)


# -- the JWT secret -----------------------------------------------------------------------


async def _settings_rows(url: str) -> dict[str, str]:
    engine = create_async_engine(url.replace("sqlite://", "sqlite+aiosqlite://", 1))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(settings.c.key, settings.c.value))).all()
    finally:
        await engine.dispose()
    return {str(k): str(v) for k, v in rows}


async def test_jwt_secret_in_a_0600_file_not_in_the_database(
    start_web: Callable[..., Any], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    web: Web = await start_web(url)
    path = Path(web.app.config.data_dir) / "jwt.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32
    assert "jwt_secret" not in await _settings_rows(url)
    assert secret not in str(await _settings_rows(url))
    token = await web.login("admin", ADMIN_PASSWORD)
    claims = jwt.decode(token, hashlib.sha256(secret.encode()).digest(), algorithms=["HS256"])
    assert claims["name"] == "admin" and claims["jti"]


async def test_legacy_database_secret_is_moved_out_at_start(
    start_web: Callable[..., Any], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    web: Web = await start_web(url)
    await web.close()
    await web.app.stop()
    # What an older version left behind: the secret in the settings table, no file.
    path = Path(web.app.config.data_dir) / "jwt.secret"
    path.unlink()
    engine = create_async_engine(url.replace("sqlite://", "sqlite+aiosqlite://", 1))
    async with engine.begin() as conn:
        await conn.execute(settings.insert().values(key="jwt_secret", value="legacy-secret-in-db"))
    await engine.dispose()
    key = hashlib.sha256(b"legacy-secret-in-db").digest()
    now = int(time.time())
    claims = {"sub": "1", "ver": 0, "iss": "opsfleet", "iat": now, "exp": now + 600, "jti": "legacy-1"}
    old_token = jwt.encode(claims, key, algorithm="HS256")

    again: Web = await start_web(url)
    assert path.read_text().strip() == "legacy-secret-in-db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "jwt_secret" not in await _settings_rows(url)
    expect(await again.http.get("/api/v1/auth/profile", headers=bearer(old_token)), 200, 0)


async def test_configured_secret_is_used_and_no_file_is_written(
    start_web: Callable[..., Any], tmp_path: Path
) -> None:
    web: Web = await start_web(f"sqlite:///{tmp_path / 'a.db'}", jwt__secret="replica-shared-secret")
    assert not (Path(web.app.config.data_dir) / "jwt.secret").exists()
    token = await web.login("admin", ADMIN_PASSWORD)
    jwt.decode(token, hashlib.sha256(b"replica-shared-secret").digest(), algorithms=["HS256"])
