"""/api/v1/artifacts on a real Manager: streamed upload, signing, listing, download tokens, deletion."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.errors import PermissionDenied
from opsfleet.common.signing import Verifier, create_key_pair, sign
from tests.integration.web.support import Web

KEYS = create_key_pair()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "manager-signing.key"
    path.write_bytes(KEYS.private_pem)
    return path


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def test_upload_signed_by_the_manager_list_show_download_delete(
    database_url: str, start_web: Callable[..., Any], key_file: Path, tmp_path: Path
) -> None:
    store_dir = tmp_path / "artifacts"
    web: Web = await start_web(
        database_url, artifacts__signing_key_file=str(key_file), artifacts__dir=str(store_dir)
    )
    admin = await web.admin()
    package = b"#!/bin/sh\necho v2\n" * 1000
    digest = hashlib.sha256(package).hexdigest()
    r = await web.http.post(
        "/api/v1/artifacts",
        params={"component": "agent:web", "version": "2.0", "filename": "web-2.0.sh"},
        content=package,
        headers={**admin, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    art = r.json()["data"]
    assert (art["component"], art["version"], art["size"], art["sha256"]) == (
        "agent:web",
        "2.0",
        len(package),
        digest,
    )
    assert art["signed_by_manager"] is True and art["created_by"] == "admin"
    Verifier([KEYS.public_b64]).verify("agent:web", "2.0", digest, art["signature"])
    with pytest.raises(PermissionDenied):
        Verifier([KEYS.public_b64]).verify("agent:web", "2.1", digest, art["signature"])
    assert files_in(store_dir) == [digest]

    again = await web.http.post(
        "/api/v1/artifacts", params={"component": "agent:web", "version": "2.0"}, content=b"x", headers=admin
    )
    assert again.status_code == 409
    assert files_in(store_dir) == [digest]

    listed = (await web.http.get("/api/v1/artifacts", headers=admin)).json()["data"]
    assert [a["id"] for a in listed["artifacts"]] == [art["id"]]
    shown = (await web.http.get(f"/api/v1/artifacts/{art['id']}", headers=admin)).json()["data"]
    assert shown == art

    token = web.app.artifacts.download_token(art["id"])
    got = await web.http.get(f"/api/v1/artifacts/{art['id']}/download", params={"token": token})
    assert got.status_code == 200 and got.content == package
    partial = await web.http.get(
        f"/api/v1/artifacts/{art['id']}/download", params={"token": token}, headers={"Range": "bytes=100-"}
    )
    assert partial.status_code == 206 and partial.content == package[100:]
    for bad in ("", token[:-1] + ("0" if token[-1] != "0" else "1"), f"999.{token.split('.', 1)[1]}"):
        refused = await web.http.get(f"/api/v1/artifacts/{art['id']}/download", params={"token": bad})
        assert refused.status_code == 403, bad

    gone = await web.http.delete(f"/api/v1/artifacts/{art['id']}", headers=admin)
    assert gone.status_code == 200
    assert files_in(store_dir) == []
    assert (await web.http.get(f"/api/v1/artifacts/{art['id']}", headers=admin)).status_code == 404
    audit = (await web.http.get("/api/v1/admin/audit", headers=admin)).json()["data"]
    actions = [entry["action"] for entry in audit["list"]]
    assert "artifacts.upload" in actions and "artifacts.delete" in actions


async def test_uploads_without_signature_or_key_too_large_or_by_a_viewer_are_refused(
    tmp_path: Path, start_web: Callable[..., Any]
) -> None:
    store_dir = tmp_path / "artifacts"
    web: Web = await start_web(
        f"sqlite:///{tmp_path / 'w.db'}", artifacts__dir=str(store_dir), artifacts__max_bytes=4096
    )
    admin = await web.admin()
    target = {"component": "agent:web", "version": "1"}
    unsigned = await web.http.post("/api/v1/artifacts", params=target, content=b"abc", headers=admin)
    assert unsigned.status_code == 400
    assert "signing key" in unsigned.json()["message"]

    signature = sign(KEYS.private_pem, "agent:web", "1", hashlib.sha256(b"x" * 5000).hexdigest())
    big = await web.http.post(
        "/api/v1/artifacts", params={**target, "signature": signature}, content=b"x" * 5000, headers=admin
    )
    assert big.status_code == 400 and "limit of 4096 bytes" in big.json()["message"]
    assert files_in(store_dir) == []  # nothing left behind

    viewer = await web.user_headers("viewer")
    denied = await web.http.post(
        "/api/v1/artifacts", params={**target, "signature": signature}, content=b"x", headers=viewer
    )
    assert denied.status_code == 403
    bad_component = await web.http.post(
        "/api/v1/artifacts", params={"component": "agent", "version": "1"}, content=b"x", headers=admin
    )
    assert bad_component.status_code == 400

    small = b"y" * 100
    own = sign(KEYS.private_pem, "agent:web", "1", hashlib.sha256(small).hexdigest())
    kept = await web.http.post(
        "/api/v1/artifacts", params={**target, "signature": own}, content=small, headers=admin
    )
    assert kept.status_code == 200
    data = kept.json()["data"]
    assert (data["signature"], data["signed_by_manager"]) == (own, False)
