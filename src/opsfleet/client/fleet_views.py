"""Human views of the fleet-wide answers: agents across nodes, bulk operations, the timeline."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from opsfleet.client.output import Output, ago, number, status, table, text, when
from opsfleet.client.resolve import short_ids
from opsfleet.client.views import agent_after, labels, page_caption


def fleet_agents(out: Output, data: dict[str, Any]) -> None:
    caption = page_caption(data, "agent")
    items = data.get("list", [])
    shorts = short_ids([a["node_id"] for a in items])
    t = table(
        None,
        "AGENT!",
        "NODE~",
        "STATUS",
        "TYPE",
        "VERSION",
        "PID",
        "RESTARTS",
        "LABELS~",
        "SYNCED",
        caption=caption,
    )
    for a in items:
        t.add_row(
            a["agent_id"],
            f"{a.get('hostname') or '?'} ({shorts[a['node_id']]})",
            status(a.get("status")),
            text(a.get("type")),
            text(a.get("version")),
            text(a.get("pid") or None),
            number(a.get("restart_count")),
            labels(a.get("labels")),
            ago(a.get("last_sync_at")),
        )
    out.show(t)


def bulk_plan(out: Output, agent_id: str, op: str, names: list[str]) -> None:
    if not names:
        out.message(f"no node has agent {agent_id} and matches the selector: nothing to {op}")
        return
    out.message(f"{op} of agent {agent_id} would reach {len(names)} node(s):")
    for name in names:
        out.line(f"  {name}")


def bulk_progress(out: Output, done: int, total: int, name: str, result: dict[str, Any]) -> None:
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {name}: "
    if result.get("success"):
        after = (
            agent_after({"status": result.get("status"), "pid": result.get("pid")})
            if result.get("status")
            else ""
        )
        out.message(Text.assemble(head, ("ok", "green"), f" ({after})" if after else ""))
    else:
        out.message(Text.assemble(head, ("failed", "bold red"), f" {result.get('error', '')}"))


def bulk_summary(out: Output, data: dict[str, Any]) -> None:
    failed = int(data.get("failed", 0))
    style = "bold red" if failed else "green"
    out.message(
        Text.assemble(
            f"{data.get('operation')} of agent {data.get('agent_id')}: ",
            (f"{data.get('succeeded')} ok, {failed} failed", style),
        )
    )


def events(out: Output, data: dict[str, Any]) -> None:
    items = data.get("list", [])
    shorts = short_ids([e["node_id"] for e in items])
    t = table(None, "AT (UTC)", "NODE~", "KIND", "DETAIL~", caption=page_caption(data, "event"))
    for e in items:
        t.add_row(
            when(e.get("at")),
            f"{e.get('hostname') or '?'} ({shorts[e['node_id']]})",
            status(e.get("kind")),
            text(e.get("detail")),
        )
    out.show(t)
