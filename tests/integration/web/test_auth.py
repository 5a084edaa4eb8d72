"""Sign-in, profile, password changes, revocation, roles, the first admin, the shared JWT secret."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.integration.web.support import ADMIN_PASSWORD, Web, bearer, expect


async def test_login_profile_and_envelope(web: Web) -> None:
    r = await web.http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    data = expect(r, 200, 0)["data"]
    assert data["token_type"] == "Bearer" and data["user"]["username"] == "admin"
    assert data["user"]["role"] == "admin" and "password_hash" not in data["user"]
    profile = expect(await web.http.get("/api/v1/auth/profile", headers=bearer(data["token"])), 200, 0)
    assert profile["data"]["username"] == "admin" and profile["data"]["last_login_at"] is not None
    assert profile["timestamp"].endswith("Z")


async def test_bad_credentials_and_bad_bodies(web_sqlite: Web) -> None:
    web = web_sqlite
    r = await web.http.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"})
    assert expect(r, 401, 1009)["message"] == "wrong username or password"
    r = await web.http.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong-password"})
    expect(r, 401, 1009)
    r = await web.http.post("/api/v1/auth/login", json={"username": "admin"})
    env = expect(r, 400, 1001)
    assert env["data"]["field"] == "password" and env["message"].startswith("password:")
    r = await web.http.post(
        "/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    expect(r, 400, 1001)


async def test_missing_garbage_and_expired_tokens(start_web: Callable[..., Any], tmp_path: Path) -> None:
    web: Web = await start_web(f"sqlite:///{tmp_path / 'a.db'}", jwt__secret="configured-secret")
    expect(await web.http.get("/api/v1/nodes"), 401, 1002)
    expect(await web.http.get("/api/v1/nodes", headers={"Authorization": "Basic abc"}), 401, 1002)
    expect(await web.http.get("/api/v1/nodes", headers=bearer("not.a.jwt")), 401, 1007)
    key = hashlib.sha256(b"configured-secret").digest()
    now = int(time.time())
    claims = {"sub": "1", "ver": 0, "iss": "opsfleet", "iat": now - 100, "exp": now - 10, "jti": "t-1"}
    expired = jwt.encode(claims, key, algorithm="HS256")
    expect(await web.http.get("/api/v1/nodes", headers=bearer(expired)), 401, 1008)
    forged = jwt.encode({**claims, "exp": now + 100}, b"another-key-of-32-bytes-xxxxxxxx", algorithm="HS256")
    expect(await web.http.get("/api/v1/nodes", headers=bearer(forged)), 401, 1007)
    valid = jwt.encode({**claims, "exp": now + 100}, key, algorithm="HS256")
    expect(await web.http.get("/api/v1/nodes", headers=bearer(valid)), 200, 0)


async def test_no_self_registration(web_sqlite: Web) -> None:
    r = await web_sqlite.http.post(
        "/api/v1/auth/register", json={"username": "eve", "password": "password-123"}
    )
    assert r.status_code in (404, 405)
    assert r.json()["code"] == 1004


async def test_change_password_revokes_old_tokens(web: Web) -> None:
    headers = await web.user_headers("operator", "olga")
    r = await web.http.post(
        "/api/v1/auth/change-password",
        json={"old_password": "password-123", "new_password": "new-password-456"},
        headers=headers,
    )
    fresh = bearer(expect(r, 200, 0)["data"]["token"])
    assert (await web.http.get("/api/v1/auth/profile", headers=headers)).json()["code"] == 1007
    expect(await web.http.get("/api/v1/auth/profile", headers=headers), 401, 1007)
    expect(await web.http.get("/api/v1/auth/profile", headers=fresh), 200, 0)
    r = await web.http.post("/api/v1/auth/login", json={"username": "olga", "password": "password-123"})
    expect(r, 401, 1009)
    await web.login("olga", "new-password-456")


async def test_change_password_checks(web_sqlite: Web) -> None:
    web = web_sqlite
    headers = await web.admin()
    cases = [
        ({"old_password": "wrong-password", "new_password": "new-password-456"}, "old_password"),
        ({"old_password": ADMIN_PASSWORD, "new_password": "short"}, "new_password"),
        ({"old_password": ADMIN_PASSWORD}, "new_password"),
    ]
    for body, field in cases:
        r = await web.http.post("/api/v1/auth/change-password", json=body, headers=headers)
        assert field in expect(r, 400, 1001)["message"]
    expect(await web.http.post("/api/v1/auth/change-password", json=cases[0][0]), 401, 1002)


async def test_disable_revokes_at_once_and_enable(web: Web) -> None:
    viewer = await web.user_headers("viewer", "vic")
    user_id = (await web.http.get("/api/v1/auth/profile", headers=viewer)).json()["data"]["id"]
    r = await web.http.post(f"/api/v1/admin/users/{user_id}/disable", headers=await web.admin())
    assert expect(r, 200, 0)["data"]["disabled"] is True
    expect(await web.http.get("/api/v1/nodes", headers=viewer), 401, 1007)
    r = await web.http.post("/api/v1/auth/login", json={"username": "vic", "password": "password-123"})
    expect(r, 403, 2008)
    expect(await web.http.post(f"/api/v1/admin/users/{user_id}/enable", headers=await web.admin()), 200, 0)
    expect(await web.http.get("/api/v1/nodes", headers=viewer), 401, 1007)  # old tokens stay revoked
    expect(
        await web.http.get("/api/v1/nodes", headers=bearer(await web.login("vic", "password-123"))), 200, 0
    )


async def test_admin_user_management(web: Web) -> None:
    admin = await web.admin()
    created = await web.create_user("carol", "viewer")
    assert created["role"] == "viewer" and created["disabled"] is False
    r = await web.http.post(
        "/api/v1/admin/users", json={"username": "carol", "password": "password-123"}, headers=admin
    )
    expect(r, 409, 2009)
    for body, field in [
        ({"username": "x", "password": "password-123"}, "username"),
        ({"username": "dave", "password": "short"}, "password"),
        ({"username": "dave", "password": "password-123", "role": "root"}, "role"),
        ({"username": "dave", "password": "password-123", "extra": 1}, "extra"),
    ]:
        r = await web.http.post("/api/v1/admin/users", json=body, headers=admin)
        assert field in expect(r, 400, 1001)["message"]
    r = await web.http.put(
        f"/api/v1/admin/users/{created['id']}/role", json={"role": "operator"}, headers=admin
    )
    assert expect(r, 200, 0)["data"]["role"] == "operator"
    r = await web.http.post(
        f"/api/v1/admin/users/{created['id']}/role", json={"role": "viewer"}, headers=admin
    )
    assert expect(r, 200, 0)["data"]["role"] == "viewer"
    expect(await web.http.post("/api/v1/admin/users/9999/disable", headers=admin), 404, 2007)
    expect(await web.http.post("/api/v1/admin/users/abc/disable", headers=admin), 400, 1001)
    admin_id = (await web.http.get("/api/v1/auth/profile", headers=admin)).json()["data"]["id"]
    expect(await web.http.post(f"/api/v1/admin/users/{admin_id}/disable", headers=admin), 409, 1005)
    listing = expect(await web.get("/api/v1/admin/users", page_size=1, page=2), 200, 0)["data"]
    assert listing["page_info"] == {"page": 2, "page_size": 1, "total": 2, "pages": 2}
    assert [u["username"] for u in listing["list"]] == ["carol"]


async def test_roles_gate_admin_endpoints(web_sqlite: Web) -> None:
    web = web_sqlite
    for role in ("viewer", "operator"):
        headers = await web.user_headers(role)
        expect(await web.http.get("/api/v1/admin/users", headers=headers), 403, 1003)
        expect(await web.http.get("/api/v1/admin/audit", headers=headers), 403, 1003)
        expect(await web.http.delete("/api/v1/admin/nodes/node-1", headers=headers), 403, 1003)
        r = await web.http.post(
            "/api/v1/admin/users", json={"username": "x" + role, "password": "password-123"}, headers=headers
        )
        expect(r, 403, 1003)


async def test_generated_admin_password_is_logged_once(
    start_web: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    with caplog.at_level(logging.WARNING, logger="opsfleet.manager.services.users"):
        web: Web = await start_web(url, auth__admin_password="")
    banners = [r for r in caplog.records if "generated password" in r.getMessage()]
    assert len(banners) == 1
    password = str(banners[0].args[0])  # type: ignore[index]
    await web.login("admin", password)
    await web.app.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="opsfleet.manager.services.users"):
        again: Web = await start_web(url, auth__admin_password="")
    assert not [r for r in caplog.records if "generated password" in r.getMessage()]
    await again.login("admin", password)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite: one Manager
async def test_replicas_share_the_generated_jwt_secret(web: Web, start_web: Callable[..., Any]) -> None:
    url = web.app.config.database.url
    other: Web = await start_web(url)
    token = await web.login("admin", ADMIN_PASSWORD)
    expect(await other.http.get("/api/v1/auth/profile", headers=bearer(token)), 200, 0)
