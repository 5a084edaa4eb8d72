"""opsfleet tokens create|list|revoke against a Manager with the fleet CA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli.support import InProcess, start_manager
from tests.integration.web.support import ADMIN_PASSWORD, Web


@pytest.fixture
async def manager(tmp_path: Path, manager_config: Callable[..., Any]) -> AsyncIterator[Web]:
    config = manager_config(
        f"sqlite:///{tmp_path / 'cli.db'}", auth__admin_password=ADMIN_PASSWORD, grpc__tls__mode="auto"
    )
    web = await start_manager(config)
    yield web
    await web.close()
    await web.app.stop()


async def test_tokens_create_list_revoke(run_main: InProcess, manager: Web) -> None:
    await run_main.login()
    created = await run_main(
        "tokens", "create", "--max-uses", "3", "--expires-in", "2h", "--label", "env:prod"
    )
    assert created.code == 0, created
    secret = created.stdout.strip()
    assert secret.startswith("oft_") and "shown only this once" in created.stderr

    listed = (await run_main("tokens", "list", "--json")).json()
    [token] = listed["list"]
    assert token["max_uses"] == 3 and token["labels"] == {"env": "prod"} and token["state"] == "active"
    assert secret not in str(listed)
    table = await run_main("tokens", "list")
    assert token["id"] in table.stdout and "0/3" in table.stdout and "env=prod" in table.stdout

    revoked = await run_main("tokens", "revoke", token["id"])
    assert revoked.code == 0 and "revoked" in revoked.stdout
    assert (await run_main("tokens", "list", "--json")).json()["list"][0]["state"] == "revoked"
    assert (await run_main("tokens", "revoke", "0123456789abcdef")).code == 6

    audit = await manager.http.get("/api/v1/admin/audit", headers=await manager.admin())
    actions = [(e["action"], e["target"]) for e in audit.json()["data"]["list"]]
    assert ("enrollment_tokens.create", f"enrollment_token:{token['id']}") in actions
    assert ("enrollment_tokens.revoke", f"enrollment_token:{token['id']}") in actions
    assert secret not in audit.text

    await manager.create_user("viewer-1", "viewer", password="tulip-harbor-9931")
    await run_main.login("viewer-1", "tulip-harbor-9931")
    forbidden = await run_main("tokens", "list")
    assert forbidden.code == 5, forbidden
