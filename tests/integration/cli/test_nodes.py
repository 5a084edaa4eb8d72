"""nodes list / show / stats as real subprocesses against a running Manager."""

from __future__ import annotations

from tests.integration.cli.support import Cli
from tests.integration.web.support import NOW, Web


async def _fleet(web: Web) -> None:
    await web.register(
        "web-1", hostname="web-a.example", ip="10.0.0.1", labels={"env": "prod", "role": "web"}
    )
    await web.register(
        "web-2", hostname="web-b.example", ip="10.0.0.2", labels={"env": "prod", "role": "web"}
    )
    await web.register("db-1", hostname="db.example", ip="10.0.1.9", labels={"env": "prod", "role": "db"})
    await web.register("lab-1", hostname="lab", ip="192.168.7.7", labels={"env": "lab"})


async def test_list_table_filters_and_json(cli: Cli, manager: Web) -> None:
    await _fleet(manager)
    await cli.login()
    table = await cli.run("nodes", "list")
    assert table.code == 0, table
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NODE", "STATUS", "HOSTNAME", "IP", "LABELS", "VERSION", "LAST", "SEEN"]
    rows = [line.split()[0] for line in lines[2:6]]
    assert rows == ["db-1", "lab-1", "web-1", "web-2"]
    assert "online" in lines[2] and "env=prod, role=db" in lines[2]
    assert "page 1 of 1, 4 node(s) in all" in table.stdout

    web = await cli.run("nodes", "list", "--label", "role=web", "--json")
    assert [n["node_id"] for n in web.json()["list"]] == ["web-1", "web-2"]
    assert web.json()["page_info"] == {"page": 1, "page_size": 20, "total": 2, "pages": 1}
    both = await cli.run("nodes", "list", "--label", "env:prod", "--label", "role:db", "--json")
    assert [n["node_id"] for n in both.json()["list"]] == ["db-1"]
    found = await cli.run("nodes", "list", "--search", "192.168", "--status", "online", "--json")
    assert [n["node_id"] for n in found.json()["list"]] == ["lab-1"]
    page = await cli.run("nodes", "list", "--page", "2", "--page-size", "3", "--json")
    assert [n["node_id"] for n in page.json()["list"]] == ["web-2"]
    none = await cli.run("nodes", "list", "--status", "offline")
    assert none.code == 0 and "no nodes" in none.stdout
    bad = await cli.run("nodes", "list", "--status", "sleeping")
    assert bad.code == 2 and "invalid choice" in bad.stderr
    bad_label = await cli.run("nodes", "list", "--label", "novalue")
    assert bad_label.code == 2 and "expected KEY=VALUE" in bad_label.stderr


async def test_show_details_metrics_events_and_unknown_node(cli: Cli, manager: Web) -> None:
    await manager.register("n1", hostname="box.example", labels={"env": "prod"})
    await manager.report("n1", "cpu", NOW - 30, usage_percent=42.5, cores=8)
    await manager.report("n1", "memory", NOW - 30, usage_percent=61.0, used_bytes=2 * 1024**3)
    await cli.login()

    shown = await cli.run("nodes", "show", "n1")
    assert shown.code == 0, shown
    out = shown.stdout
    assert "box.example" in out and "env=prod" in out
    assert "42.5%" in out and "cores=8" in out and "61.0%" in out and "used=2.0GiB" in out
    assert "registered" in out and "Recent events" in out

    data = (await cli.run("nodes", "show", "n1", "--json")).json()
    assert data["node"]["node_id"] == "n1" and data["node"]["status"] == "online"
    assert data["metrics"]["cpu"]["values"] == {"usage_percent": 42.5, "cores": 8}
    assert data["metrics"]["disk"] is None
    assert [e["kind"] for e in data["events"]] == ["registered"]

    missing = await cli.run("nodes", "show", "abc")
    assert missing.code == 6
    assert missing.stderr.strip() == (
        "opsfleet nodes show: no node has the id, id prefix or hostname 'abc' (see `opsfleet nodes list`)"
    )
    assert missing.stdout == ""


async def test_stats(cli: Cli, manager: Web) -> None:
    await _fleet(manager)
    await cli.login()
    stats = await cli.run("nodes", "stats")
    assert stats.code == 0
    assert stats.stdout.splitlines()[0].split() == ["TOTAL", "ONLINE", "OFFLINE"]
    assert stats.stdout.splitlines()[2].split() == ["4", "4", "0"]
    assert (await cli.run("nodes", "stats", "--json")).json() == {
        "statistics": {"total": 4, "online": 4, "offline": 0}
    }
