"""Human views of the REST answers: one function per kind of answer, drawing on an Output."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from opsfleet.client.output import (
    Output,
    ago,
    key_values,
    metric_value,
    number,
    percent,
    rate,
    role,
    status,
    success,
    table,
    text,
    when,
)
from opsfleet.common.durations import format_duration
from opsfleet.common.labels import format_labels

METRIC_TYPES = ("cpu", "memory", "disk", "network")
MAX_HISTORY_KEYS = 6
DETAIL_KEYS = {
    "cpu": ("cores", "mhz"),
    "memory": ("used_bytes", "total_bytes", "swap_percent"),
    "disk": ("used_bytes", "total_bytes", "partition_count"),
    "network": ("bytes_recv", "bytes_sent", "interface_count"),
}


def page_caption(data: dict[str, Any], noun: str) -> str:
    info = data.get("page_info", {})
    total = int(info.get("total", 0))
    if not data.get("list"):
        return f"no {noun}s on page {info.get('page', 1)} ({total} in all)" if total else f"no {noun}s"
    return f"page {info.get('page', 1)} of {max(int(info.get('pages', 1)), 1)}, {total} {noun}(s) in all"


def labels(value: dict[str, str] | None) -> str:
    return format_labels(value) or "-"


def nodes(out: Output, data: dict[str, Any]) -> None:
    caption = page_caption(data, "node")
    t = table(None, "NODE!", "STATUS", "HOSTNAME~", "IP", "LABELS~", "VERSION", "LAST SEEN", caption=caption)
    for n in data.get("list", []):
        t.add_row(
            n["node_id"],
            status(n.get("status")),
            text(n.get("hostname")),
            text(n.get("ip")),
            labels(n.get("labels")),
            text(n.get("daemon_version")),
            ago(n.get("last_seen_at")),
        )
    out.show(t)


def node_detail(out: Output, node: dict[str, Any], latest: dict[str, Any], events: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("node", node["node_id"]),
        ("status", status(node.get("status"))),
        ("hostname", node.get("hostname")),
        ("ip", node.get("ip")),
        ("os/arch", f"{text(node.get('os'))}/{text(node.get('arch'))}"),
        ("labels", labels(node.get("labels"))),
        ("daemon", text(node.get("daemon_version"))),
        ("agent version", text(node.get("agent_version"))),
        ("daemon address", text(node.get("daemon_address"))),
        ("registered", f"{when(node.get('registered_at'))} UTC"),
        ("last seen", f"{when(node.get('last_seen_at'))} UTC ({ago(node.get('last_seen_at'))})"),
    ]
    out.print(key_values(None, rows))
    out.print("")
    latest_metrics(out, latest)
    out.print("")
    t = table("Recent events", "AT (UTC)", "EVENT", "DETAIL~")
    for e in events.get("events", []):
        t.add_row(when(e.get("at")), status(e.get("kind")), text(e.get("detail")))
    if not events.get("events"):
        t.caption = "no events"
    out.show(t)


def node_statistics(out: Output, data: dict[str, Any]) -> None:
    stats = data.get("statistics", {})
    t = table(None, "TOTAL", "ONLINE", "OFFLINE")
    t.add_row(
        number(stats.get("total")),
        Text(number(stats.get("online")), style="green"),
        Text(number(stats.get("offline")), style="red" if stats.get("offline") else ""),
    )
    out.show(t)


def detail_keys(metric_type: str, values: dict[str, Any]) -> list[str]:
    """The keys worth a column for ``metric_type`` (usage_percent aside); all keys of custom types."""
    keys = [k for k in DETAIL_KEYS.get(metric_type, ()) if k in values]
    if metric_type not in DETAIL_KEYS:
        keys = sorted(k for k in values if k != "usage_percent")
    return keys


def network_rates(values: dict[str, Any]) -> str:
    """``rx 1.2 KiB/s  tx 300 B/s`` from a network sample (bytes since the previous sample over
    ``interval_seconds``); "" when the sample cannot tell (the first after a daemon start)."""
    interval = values.get("interval_seconds")
    if not isinstance(interval, int | float) or interval <= 0:
        return ""
    rx, tx = values.get("rx_bytes"), values.get("tx_bytes")
    if not isinstance(rx, int | float) or not isinstance(tx, int | float):
        return ""
    return f"rx {rate(rx / interval)}  tx {rate(tx / interval)}"


def _details(metric_type: str, values: dict[str, Any]) -> str:
    shown = detail_keys(metric_type, values)
    return "  ".join(f"{k.removesuffix('_bytes')}={metric_value(k, values[k])}" for k in shown) or "-"


def latest_metrics(out: Output, latest: dict[str, Any], summary: dict[str, Any] | None = None) -> None:
    """Newest sample per type; with ``summary`` also min/avg/max of usage_percent over its window."""
    columns = ["TYPE!", "UPDATED", "USAGE"]
    if summary is not None:
        columns += ["MIN", "AVG", "MAX", "SAMPLES"]
    title = "Latest metrics"
    if summary is not None:
        title += f" (min/avg/max over the last {format_duration(float(summary.get('duration') or 0))})"
    t = table(title, *columns, "DETAILS~")
    stats = (summary or {}).get("summary", {})
    for metric_type in sorted(set(latest) | set(stats), key=_type_order):
        sample = latest.get(metric_type) or {}
        values = sample.get("values", {})
        usage = percent(values.get("usage_percent"))
        if metric_type == "network" and "usage_percent" not in values:
            usage = network_rates(values) or "-"
        row: list[Any] = [metric_type, ago(sample.get("timestamp")), usage]
        if summary is not None:
            s = stats.get(metric_type) or {}
            row += [
                percent(s.get("min")),
                percent(s.get("avg")),
                percent(s.get("max")),
                number(s.get("samples")),
            ]
        t.add_row(*row, _details(metric_type, values) if sample else "no samples")
    out.show(t)


def _type_order(name: str) -> tuple[int, str]:
    return (METRIC_TYPES.index(name) if name in METRIC_TYPES else len(METRIC_TYPES), name)


def metric_history(out: Output, data: dict[str, Any]) -> None:
    points = data.get("points", [])
    every: dict[str, Any] = {}
    for p in points:
        every.update(p.get("values", {}))
    keys = (["usage_percent"] if "usage_percent" in every else []) + detail_keys(str(data.get("type")), every)
    shown = keys[:MAX_HISTORY_KEYS]
    hidden = len(every) - len(shown)
    aggregated = bool(data.get("aggregated"))
    span = f"{when(data.get('start_time'))} .. {when(data.get('end_time'))} UTC"
    title = f"{data.get('type')} on {data.get('node_id')}, {span}"
    if aggregated:
        title += f", averages per {number(data.get('bucket_seconds'))}s"
    caption = f"{len(points)} point(s)"
    if hidden:
        caption += f"; {hidden} more value(s) per point with --json"
    columns = ["TIME (UTC)", *shown] + (["SAMPLES"] if aggregated else [])
    t = table(title, *columns, caption=caption)
    for p in points:
        values = p.get("values", {})
        row = [when(p.get("timestamp")), *(metric_value(k, values.get(k)) for k in shown)]
        if aggregated:
            row.append(number(p.get("samples")))
        t.add_row(*row)
    out.show(t)


def overview(out: Output, data: dict[str, Any]) -> None:
    counts = data.get("nodes", {})
    averages = data.get("averages", {})
    out.print(
        key_values(
            None,
            [
                (
                    "nodes",
                    f"{number(counts.get('total'))} total, {number(counts.get('online'))} online, "
                    f"{number(counts.get('offline'))} offline",
                ),
                (
                    "averages",
                    "  ".join(f"{k} {percent(averages.get(k))}" for k in ("cpu", "memory", "disk")),
                ),
            ],
        )
    )
    t = table(
        "Latest usage per node (last 15 minutes)",
        "NODE!",
        "STATUS",
        "HOSTNAME",
        "CPU",
        "MEMORY",
        "DISK",
        "UPDATED",
    )
    rows = sorted(data.get("node_usage", []), key=lambda r: -(r.get("cpu") or -1.0))
    for r in rows:
        t.add_row(
            r["node_id"],
            status(r.get("status")),
            text(r.get("hostname")),
            percent(r.get("cpu")),
            percent(r.get("memory")),
            percent(r.get("disk")),
            ago(r.get("updated_at")),
        )
    out.show(t)


def agents(out: Output, data: dict[str, Any], *, live: bool) -> None:
    if live:
        t = table(
            "Agents (live from the daemon)",
            "AGENT!",
            "STATUS",
            "TYPE",
            "VERSION",
            "PID",
            "STARTED (UTC)",
            "RESTARTS",
            "HEARTBEAT",
        )
    else:
        t = table(
            "Agents (as last synced)",
            "AGENT!",
            "STATUS",
            "TYPE",
            "VERSION",
            "PID",
            "RESTARTS",
            "HEARTBEAT",
            "SYNCED",
        )
    for a in data.get("agents", []):
        row: list[Any] = [
            a["agent_id"],
            status(a.get("status")),
            text(a.get("type")),
            text(a.get("version")),
            text(a.get("pid") or None),
        ]
        if live:
            row += [when(a.get("start_time")), number(a.get("restart_count")), ago(a.get("last_heartbeat"))]
        else:
            row += [number(a.get("restart_count")), ago(a.get("last_heartbeat")), ago(a.get("last_sync_at"))]
        t.add_row(*row)
    if not data.get("agents"):
        t.caption = "no agents" + ("" if live else " stored; try --live")
    out.show(t)


def agent_after(agent: dict[str, Any] | None) -> str:
    """``now running, pid 4242`` from the agent the Manager listed right after an operation."""
    if not agent:
        return ""
    pid = agent.get("pid") or 0
    restarts = agent.get("restart_count")
    words = f"now {agent.get('status', '?')}" + (f", pid {pid}" if pid else ", no process")
    return words + (f", {restarts} restart(s)" if restarts else "")


def operation(out: Output, record: dict[str, Any]) -> None:
    verb = record.get("operation", "operation")
    where = f"agent {record.get('agent_id')} on node {record.get('node_id')}"
    if record.get("success"):
        after = agent_after(record.get("agent"))
        out.message(
            Text.assemble((f"{verb}", "bold"), f" {where}: ", ("ok", "green"), f" ({after})" if after else "")
        )
    else:
        outcome = Text.assemble(("failed", "bold red"), f" {record.get('error', '')}")
        out.message(Text.assemble((f"{verb}", "bold"), f" {where}: ", outcome))


def operations(out: Output, data: dict[str, Any]) -> None:
    t = table(None, "ID", "REQUESTED (UTC)", "AGENT!", "OPERATION", "BY", "RESULT", "ERROR~")
    for r in data.get("operations", []):
        t.add_row(
            number(r.get("id")),
            when(r.get("requested_at")),
            text(r.get("agent_id")),
            text(r.get("operation")),
            text(r.get("username")),
            success(bool(r.get("success"))),
            text(r.get("error")),
        )
    if not data.get("operations"):
        t.caption = "no operations recorded"
    out.show(t)


def log_entry(out: Output, entry: dict[str, Any]) -> None:
    """``2026-01-31 12:00:00.123 stderr text`` (time and stream left out when unknown)."""
    stamp = str(entry.get("time") or "").replace("T", " ").removesuffix("Z")
    stream = str(entry.get("stream") or "")
    head = f"{stamp} {stream:<6} " if stamp else ""
    out.line(head + str(entry.get("text", "")))


def agent_metrics(out: Output, data: dict[str, Any]) -> None:
    t = table(
        f"Resources of agent {data.get('agent_id')}",
        "TIME (UTC)",
        "CPU",
        "RSS",
        "VMS",
        "READ",
        "WRITTEN",
        "FILES",
    )
    for p in data.get("data_points", []):
        t.add_row(
            when(p.get("timestamp")),
            percent(p.get("cpu")),
            metric_value("bytes", p.get("memory_rss")),
            metric_value("bytes", p.get("memory_vms")),
            metric_value("bytes", p.get("disk_read_bytes")),
            metric_value("bytes", p.get("disk_write_bytes")),
            number(p.get("open_files")),
        )
    out.show(t)


def users(out: Output, data: dict[str, Any]) -> None:
    caption = page_caption(data, "user")
    t = table(None, "ID", "USERNAME!", "ROLE", "STATE", "LAST LOGIN (UTC)", "CREATED (UTC)", caption=caption)
    for u in data.get("list", []):
        t.add_row(
            number(u.get("id")),
            u["username"],
            role(u.get("role", "")),
            status("disabled" if u.get("disabled") else "ok"),
            when(u.get("last_login_at")),
            when(u.get("created_at")),
        )
    out.show(t)


def user(out: Output, data: dict[str, Any], verb: str) -> None:
    state = "disabled" if data.get("disabled") else "enabled"
    out.message(
        Text.assemble(
            f"{verb} user ",
            (str(data.get("username")), "bold"),
            f" (id {data.get('id')}, role ",
            role(str(data.get("role"))),
            f", {state})",
        )
    )
