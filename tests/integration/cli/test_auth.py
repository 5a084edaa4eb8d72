"""login / logout and how every command finds its server and token (real subprocesses)."""

from __future__ import annotations

import json
import re
import socket
import stat
from pathlib import Path

import httpx
import pytest

from opsfleet.client.api import ApiClient
from opsfleet.common.errors import Internal, NotFound, ResourceExhausted
from tests.integration.cli.support import Cli, InProcess
from tests.integration.web.support import ADMIN_PASSWORD, Web


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_login_stores_the_token_and_later_commands_use_it(cli: Cli, manager: Web) -> None:
    await manager.register("n1")
    result = await cli.login()
    assert f"Logged in to {cli.server} as admin (admin)" in result.stdout
    assert str(cli.profile) in result.stdout
    assert stat.S_IMODE(cli.profile.stat().st_mode) == 0o600
    stored = json.loads(cli.profile.read_text())
    assert stored["server"] == cli.server and stored["username"] == "admin"
    assert stored["token"].count(".") == 2 and stored["expires_at"].endswith("Z")

    # no --server, no --token: both come from the profile
    listed = await cli.run("nodes", "list", "--json")
    assert [n["node_id"] for n in listed.json()["list"]] == ["n1"]

    token = stored["token"]
    out = await cli.run("logout")
    assert out.code == 0 and "the token was revoked and removed" in out.stdout, out
    # Revoked on the Manager, not only forgotten: a copy of the token no longer works.
    r = await manager.http.get("/api/v1/auth/profile", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["code"] == 1007
    after = json.loads(cli.profile.read_text())
    assert after["token"] == "" and after["server"] == cli.server
    denied = await cli.run("nodes", "list")
    assert denied.code == 4
    assert "not logged in: run `opsfleet login`" in denied.stderr
    again = await cli.run("logout")
    assert again.code == 0 and "Not logged in" in again.stdout


async def test_locked_out_login_says_when_to_retry(cli: Cli, run_main: InProcess) -> None:
    for attempt in range(10):  # the tenth failure locks the username (auth.login_max_failures)
        bad = await run_main(
            "login", "--server", cli.server, "-u", "admin", "--password-stdin", stdin="wrong-password-1\n"
        )
        assert bad.code == (4 if attempt < 9 else 1), bad
    locked = await cli.run(
        "login", "--server", cli.server, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n"
    )
    assert locked.code == 1 and locked.stdout == ""
    # e.g. "... try again in 60 seconds (429, code 1006); retry after 60s (at 12:34:56 UTC)"
    assert re.fullmatch(
        r"opsfleet login: too many failed sign-ins; try again in \d+ seconds \(429, code 1006\); "
        r"retry after \d+s \(at \d\d:\d\d:\d\d UTC\)",
        locked.stderr.strip(),
    ), locked.stderr


async def test_logout_when_the_manager_refuses_still_forgets_the_token(cli: Cli, run_main: InProcess) -> None:
    await run_main.login()
    profile = json.loads(cli.profile.read_text())
    profile["token"] = "not.a.token"
    cli.profile.write_text(json.dumps(profile))
    out = await run_main("logout", "--json")
    data = json.loads(out.stdout)
    assert out.code == 0 and data["logged_out"] is True and data["revoked"] is False
    assert json.loads(cli.profile.read_text())["token"] == ""


async def test_wrong_password_and_not_logged_in_exit_4(cli: Cli) -> None:
    bad = await cli.run(
        "login", "--server", cli.server, "-u", "admin", "--password-stdin", stdin="nope-nope\n"
    )
    assert bad.code == 4
    assert bad.stderr.strip() == "opsfleet login: wrong username or password (401, code 1009)"
    assert not cli.profile.exists()

    missing = await cli.run("nodes", "stats", "--server", cli.server)
    assert missing.code == 4 and "not logged in" in missing.stderr and missing.stdout == ""


async def test_json_login_and_the_token_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    token = (await cli.login("admin", ADMIN_PASSWORD, "--json")).json()["token"]
    other = tmp_path / "other.json"
    env = {"OPSFLEET_SERVER": cli.server, "OPSFLEET_TOKEN": token, "OPSFLEET_CLI_CONFIG": str(other)}
    stats = await cli.run("nodes", "stats", "--json", env=env)
    assert stats.json() == {"statistics": {"total": 0, "online": 0, "offline": 0}}
    assert not other.exists()
    garbage = await cli.run("nodes", "stats", "--token", "not.a.jwt", env=env)
    assert garbage.code == 4
    assert "(401, code 1007)" in garbage.stderr and "the token from --token was refused" in garbage.stderr

    # login --token checks the token and stores it
    stored = await cli.run(
        "login", "--token", token, "--profile-file", str(other), env={"OPSFLEET_SERVER": cli.server}
    )
    assert stored.code == 0, stored
    assert json.loads(other.read_text())["token"] == token


async def test_stored_token_is_only_sent_to_its_server(cli: Cli) -> None:
    await cli.login()
    port = closed_port()
    result = await cli.run("nodes", "list", "--server", f"127.0.0.1:{port}")
    assert result.code == 4
    assert f"not logged in to http://127.0.0.1:{port} (the stored login is for {cli.server})" in result.stderr


async def test_unreachable_server_exits_1(cli: Cli) -> None:
    port = closed_port()
    result = await cli.run("nodes", "list", "--server", f"http://127.0.0.1:{port}", "--token", "t")
    assert result.code == 1
    assert (
        result.stderr.strip()
        == f"opsfleet nodes list: cannot reach http://127.0.0.1:{port}: connection refused"
    )


async def test_usage_and_profile_errors(cli: Cli, tmp_path: Path) -> None:
    assert (await cli.run("nodes")).code == 2
    bad_flag = await cli.run("nodes", "list", "--page-size", "500")
    assert bad_flag.code == 2 and "--page-size: must be 1..100" in bad_flag.stderr
    bad_url = await cli.run("nodes", "list", "--server", "ftp://x")
    assert bad_url.code == 2 and "--server: expected a URL" in bad_url.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = await cli.run("nodes", "list", "--profile-file", str(broken))
    assert result.code == 3 and f"the CLI profile {broken} is not valid JSON" in result.stderr
    no_user = await cli.run("login", "--password-stdin", stdin="x\n")
    assert no_user.code == 2 and "--password-stdin needs --username" in no_user.stderr


async def test_default_location_respects_xdg_config_home(cli: Cli, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    env = {"OPSFLEET_CLI_CONFIG": "", "XDG_CONFIG_HOME": str(xdg)}
    result = await cli.run(
        "login",
        "--server",
        cli.server,
        "-u",
        "admin",
        "--password-stdin",
        stdin=ADMIN_PASSWORD + "\n",
        env=env,
    )
    assert result.code == 0, result
    path = xdg / "opsfleet" / "cli.json"
    assert json.loads(path.read_text())["server"] == cli.server
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (await cli.run("nodes", "stats", env=env)).code == 0
    home_default = await cli.run("nodes", "stats", env={"OPSFLEET_CLI_CONFIG": ""})
    assert home_default.code == 4  # ~/.config/opsfleet/cli.json (HOME is a fresh directory) has no login


def test_answers_that_are_not_opsfleet_envelopes() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/statistics"):
            return httpx.Response(200, text="<html>hello</html>")
        if request.url.path.endswith("/nodes"):
            body = {"code": 1006, "message": "slow down", "data": None, "timestamp": ""}
            return httpx.Response(429, json=body, headers={"Retry-After": "3"})
        return httpx.Response(404, text="not here")

    with ApiClient("http://proxy", token="t", transport=httpx.MockTransport(answer)) as api:
        with pytest.raises(Internal, match="without an opsfleet envelope"):
            api.node_statistics()
        with pytest.raises(ResourceExhausted, match=r"slow down \(429, code 1006\)") as busy:
            api.list_nodes()
        assert busy.value.retry_after == 3.0
        with pytest.raises(NotFound, match="is http://proxy an opsfleet Manager's REST API"):
            api.node("x")
