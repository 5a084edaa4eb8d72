"""metrics show / overview, users and passwd, and --help everywhere (main(argv) in a thread)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.integration.cli.support import InProcess
from tests.integration.web.support import ADMIN_PASSWORD, Web


async def test_metrics_show_latest_summary_and_history(run_main: InProcess, manager: Web) -> None:
    now = int(time.time())
    await manager.register("n1")
    for ago, usage in ((330, 10.0), (270, 30.0), (150, 20.0)):
        await manager.report("n1", "cpu", now - ago, usage_percent=usage, cores=4)
    await manager.report(
        "n1", "memory", now - 60, usage_percent=50.0, used_bytes=1024**3, total_bytes=2 * 1024**3
    )
    await manager.report("n1", "custom.gpu_0", now - 60, temperature=71.5)
    await run_main.login()

    latest = await run_main("metrics", "show", "n1")
    assert latest.code == 0, latest
    cpu = next(line for line in latest.stdout.splitlines() if line.startswith("cpu"))
    # usage, min, avg, max, samples
    assert cpu.split()[3:8] == ["20.0%", "10.0%", "20.0%", "30.0%", "3"]
    assert "used=1.0GiB  total=2.0GiB" in latest.stdout
    assert "no samples" in latest.stdout  # disk and network

    data = (await run_main("metrics", "show", "n1", "--since", "3m", "--json")).json()
    assert data["latest"]["cpu"]["values"] == {"usage_percent": 20.0, "cores": 4}
    assert data["summary"]["duration"] == 180 and data["summary"]["summary"]["cpu"]["samples"] == 1

    history = await run_main("metrics", "show", "n1", "--type", "cpu", "--since", "10m")
    assert history.code == 0, history
    assert "usage_percent" in history.stdout and "3 point(s)" in history.stdout
    assert [
        line.split()[2] for line in history.stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)
    ] == ["10.0%", "30.0%", "20.0%"]
    points = (await run_main("metrics", "show", "n1", "-t", "cpu", "--since", "10m", "--json")).json()
    assert [p["values"]["usage_percent"] for p in points["points"]] == [10.0, 30.0, 20.0]
    assert points["aggregated"] is False

    buckets = (await run_main("metrics", "show", "n1", "--type", "cpu", "--since", "2d", "--json")).json()
    assert buckets["aggregated"] is True and sum(p["samples"] for p in buckets["points"]) == 3
    custom = await run_main("metrics", "show", "n1", "--type", "custom.gpu_0")
    assert custom.code == 0 and "temperature" in custom.stdout and "71.5" in custom.stdout

    assert (await run_main("metrics", "show", "n1", "--type", "CPU!")).code == 2
    assert (await run_main("metrics", "show", "n1", "--since", "31d")).code == 2
    missing = await run_main("metrics", "show", "ghost")
    assert missing.code == 6 and "no node has the id, id prefix or hostname 'ghost'" in missing.stderr


async def test_metrics_overview(run_main: InProcess, manager: Web) -> None:
    now = int(time.time())
    await manager.register("n1", hostname="one")
    await manager.register("n2", hostname="two")
    await manager.report("n1", "cpu", now - 30, usage_percent=20.0)
    await manager.report("n2", "cpu", now - 30, usage_percent=80.0)
    await manager.report("n2", "memory", now - 30, usage_percent=40.0)
    await run_main.login()
    result = await run_main("metrics", "overview")
    assert result.code == 0, result
    assert "2 total, 2 online, 0 offline" in result.stdout and "cpu 50.0%" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("n")]
    assert [r[0] for r in rows if r[0] in ("n1", "n2")] == ["n2", "n1"]  # busiest cpu first
    data = (await run_main("metrics", "overview", "--json")).json()
    assert data["nodes"] == {"total": 2, "online": 2, "offline": 0}
    assert data["top_cpu"][0]["node_id"] == "n2"


async def test_users_create_disable_enable_role(run_main: InProcess, manager: Web) -> None:
    await run_main.login()
    created = await run_main(
        "users", "create", "olga", "--role", "operator", "--password-stdin", stdin="password-123\n"
    )
    assert created.code == 0, created
    assert created.stdout.strip() == "Created user olga (id 2, role operator, enabled)"
    taken = await run_main("users", "create", "olga", "--password-stdin", stdin="password-123\n")
    assert taken.code == 1 and "(409, code 2009)" in taken.stderr
    short = await run_main("users", "create", "bob", "--password-stdin", stdin="short\n")
    assert short.code == 1 and "(400, code 1001)" in short.stderr

    listed = await run_main("users", "list")
    assert [line.split()[1] for line in listed.stdout.splitlines()[2:4]] == ["admin", "olga"]
    users = (await run_main("users", "list", "--json")).json()
    assert [u["username"] for u in users["list"]] == ["admin", "olga"]

    disabled = await run_main("users", "disable", "olga")
    assert disabled.code == 0 and "Disabled user olga" in disabled.stdout
    r = await manager.http.post("/api/v1/auth/login", json={"username": "olga", "password": "password-123"})
    assert r.status_code == 403 and r.json()["code"] == 2008
    enabled = (await run_main("users", "enable", "2", "--json")).json()
    assert enabled["disabled"] is False
    role = (await run_main("users", "role", "olga", "viewer", "--json")).json()
    assert role["role"] == "viewer"

    ghost = await run_main("users", "disable", "ghost")
    assert ghost.code == 6 and "user ghost not found" in ghost.stderr
    ghost_id = await run_main("users", "enable", "99")
    assert ghost_id.code == 6 and "(404, code 2007)" in ghost_id.stderr
    myself = await run_main("users", "disable", "admin")
    assert myself.code == 1 and "(409, code 1005)" in myself.stderr
    assert (await run_main("users", "role", "olga", "superuser")).code == 2


async def test_non_admin_cannot_manage_users(run_main: InProcess, manager: Web) -> None:
    await manager.create_user("opal", "operator", password="password-123")
    await run_main.login("opal", "password-123")
    result = await run_main("users", "list")
    assert (
        result.code == 5 and "this needs the admin role; you are operator (403, code 1003)" in result.stderr
    )


async def test_passwd_replaces_the_stored_token(run_main: InProcess, manager: Web) -> None:
    await manager.create_user("pat", "viewer", password="password-123")
    await run_main.login("pat", "password-123")
    old_token = json.loads(run_main.cli.profile.read_text())["token"]
    wrong = await run_main("users", "passwd", "--password-stdin", stdin="nope-nope\nnew-pass-456\n")
    assert wrong.code == 1 and "old_password" in wrong.stderr

    changed = await run_main("users", "passwd", "--password-stdin", stdin="password-123\nnew-pass-456\n")
    assert changed.code == 0, changed
    assert "older tokens no longer work" in changed.stdout
    new_token = json.loads(run_main.cli.profile.read_text())["token"]
    assert new_token != old_token
    assert (await run_main("nodes", "stats")).code == 0  # uses the new stored token
    revoked = await run_main("nodes", "stats", "--token", old_token)
    assert revoked.code == 4 and "(401, code 1007)" in revoked.stderr
    r = await manager.http.post("/api/v1/auth/login", json={"username": "pat", "password": "new-pass-456"})
    assert r.status_code == 200
    short_stdin = await run_main("users", "passwd", "--password-stdin", stdin="new-pass-456\n")
    assert short_stdin.code == 2 and "stdin ended before the new password" in short_stdin.stderr


COMMANDS = [
    ["login"],
    ["logout"],
    ["nodes"],
    ["nodes", "list"],
    ["nodes", "show"],
    ["nodes", "stats"],
    ["agents"],
    *(["agents", c] for c in ("list", "start", "stop", "restart", "logs", "history", "metrics")),
    ["metrics"],
    ["metrics", "show"],
    ["metrics", "overview"],
    ["users"],
    *(["users", c] for c in ("list", "create", "disable", "enable", "role", "passwd")),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
async def test_help_everywhere(run_main: InProcess, command: list[str]) -> None:
    result = await run_main(*command, "--help")
    assert result.code == 0
    assert result.stdout.startswith(f"usage: opsfleet {' '.join(command)}")
    if len(command) > 1 or command[0] in ("login", "logout"):
        assert "--server URL" in result.stdout and "--json" in result.stdout and "--timeout" in result.stdout
        assert "exit codes: 0 ok" in result.stdout and "6 not found" in result.stdout
        assert "example" in result.stdout


async def test_login_with_wrong_password_in_process(run_main: InProcess, manager: Web) -> None:
    result = await run_main(
        "login", "--server", run_main.cli.server, "-u", "admin", "--password-stdin", stdin="x\n"
    )
    assert result.code == 4
    ok = await run_main(
        "login", "--server", run_main.cli.server, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD
    )
    assert ok.code == 0
