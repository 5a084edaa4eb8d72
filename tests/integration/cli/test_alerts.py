"""alerts list / ack / silence as real subprocesses against a running Manager."""

from __future__ import annotations

from tests.helpers import assert_eventually
from tests.integration.cli.support import Cli
from tests.integration.web.support import Web


async def test_list_ack_silence(cli: Cli, manager: Web) -> None:
    await manager.register("n1", hostname="box.example")
    await manager.app.configs.report("n1", "abc123", "failed", "bad yaml")
    await assert_eventually(lambda: manager.app.alerts.firing_count() == 1)
    await cli.login()

    listed = await cli.run("alerts", "list", "--state", "firing")
    assert listed.code == 0, listed
    assert "config_apply_failed" in listed.stdout and "box.example" in listed.stdout
    assert "1 firing" in listed.stdout
    data = (await cli.run("alerts", "list", "--json", "--rule", "config_apply_failed")).json()
    [alert] = data["list"]
    assert alert["state"] == "firing" and "bad yaml" in alert["summary"]

    acked = await cli.run("alerts", "ack", str(alert["id"]))
    assert acked.code == 0 and "acknowledged" in acked.stdout, acked
    silenced = await cli.run("alerts", "silence", str(alert["id"]), "--for", "2h")
    assert silenced.code == 0 and "silenced until" in silenced.stdout, silenced
    shown = (await cli.run("alerts", "list", "--json")).json()["list"][0]
    assert shown["acked_by"] == "admin" and shown["silenced"]

    bad = await cli.run("alerts", "silence", str(alert["id"]), "--for", "soon")
    assert bad.code == 2 and "duration" in bad.stderr
    missing = await cli.run("alerts", "ack", "999")
    assert missing.code == 6, missing
    none = await cli.run("alerts", "list", "--state", "resolved", "--json")
    assert none.json()["list"] == []
