"""``opsfleet agents list|start|stop|restart|logs|history|metrics``."""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from typing import Any

from opsfleet.client import fleet_views, views
from opsfleet.client.api import Operation
from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_ERROR, EXIT_OK, add_command, group
from opsfleet.client.errors import OperationFailed, UsageError
from opsfleet.client.resolve import describe, resolve_node
from opsfleet.client.session import Session
from opsfleet.common.errors import OpsfleetError

NODE_HELP = "the node: its id, a unique prefix of its id, or its hostname"
FOLLOW_INTERVAL = 1.0
MAX_FOLLOW_LINES = 1000
BULK_PAGE = 100

LIST_HELP = """\
List a node's agents: as the Manager stored them from the daemon's last sync, or with
--live as the node's daemon reports them right now (the Manager stores that answer too).
With --all: agents across the fleet, filtered by --state, --type, --agent, --selector
(node labels) and --search, one page at a time.

examples:
  opsfleet agents list web-1
  opsfleet agents list web-1 --live --json
  opsfleet agents list --all --state error
  opsfleet agents list --all --selector env=prod --agent filebeat
"""

OPERATE_HELP = """\
{verb} an agent on a node, or on every node a --selector picks. The Manager asks each
node's daemon and records the operation (see `opsfleet agents history`); the agent's new
state and PID are printed. Needs the operator or admin role; a failed operation exits 1.

With --selector (repeatable key=value, all must match) or --all-nodes, AGENT is the only
argument: every node that has the agent is operated, --max-parallel at a time, with a
progress line per node and a summary; exit 1 when any node failed. --dry-run only lists
the nodes.

examples:
  opsfleet agents {op} web-1 node-exporter
  opsfleet agents {op} filebeat --selector env=prod --max-parallel 5
"""

LOGS_HELP = """\
Print an agent's last log lines, fetched from the node's daemon: the time each line was
read (UTC), its stream (stdout/stderr) and its text. --follow keeps printing new lines
until Ctrl-C.

examples:
  opsfleet agents logs web-1 node-exporter
  opsfleet agents logs web-1 node-exporter --lines 500 --filter ERROR
  opsfleet agents logs web-1 node-exporter --follow
"""

HISTORY_HELP = """\
List the agent operations requested on a node through the Manager, newest first: who
asked, when, and whether it worked.

examples:
  opsfleet agents history web-1
  opsfleet agents history web-1 --agent node-exporter --limit 20
"""

METRICS_HELP = """\
Show an agent's resource usage (cpu, memory, disk I/O, open files) over a recent window,
fetched from the node's daemon.

example:
  opsfleet agents metrics web-1 node-exporter --since 30m
"""


def _node_agent(p: argparse.ArgumentParser) -> None:
    p.add_argument("node_id", metavar="NODE", help=NODE_HELP)
    p.add_argument("agent_id", metavar="AGENT_ID", help="the agent's id on that node")


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    agents = group(
        sub,
        "agents",
        help="list, operate and inspect agents",
        description="List, operate and inspect agents.",
    )
    p = add_command(
        agents,
        "agents list",
        list_agents,
        help="list a node's agents, or the fleet's with --all",
        description=LIST_HELP,
        parents=parents,
    )
    p.add_argument("node_id", metavar="NODE", nargs="?", help=NODE_HELP)
    p.add_argument(
        "--live", action="store_true", help="ask the node's daemon now instead of the stored state"
    )
    fleet = p.add_argument_group("fleet-wide (--all)")
    fleet.add_argument("--all", action="store_true", help="agents of every node")
    fleet.add_argument("--state", default="", help="only agents in this state (running, error, ...)")
    fleet.add_argument("--type", default="", dest="agent_type", help="only agents of this type")
    fleet.add_argument("--agent", default="", metavar="AGENT_ID", help="only agents with this id")
    fleet.add_argument(
        "--selector",
        action="append",
        type=types.label,
        default=[],
        metavar="KEY=VALUE",
        help="only nodes with this label (repeatable; all must match)",
    )
    fleet.add_argument(
        "--search", "-q", default="", metavar="TEXT", help="text in agent id, node or hostname"
    )
    fleet.add_argument("--page", type=types.int_range(1, 1_000_000), default=1, help="page number (1)")
    fleet.add_argument(
        "--page-size", type=types.int_range(1, 100), default=20, metavar="N", help="agents per page (20)"
    )

    for op in ("start", "stop", "restart"):
        p = add_command(
            agents,
            f"agents {op}",
            partial(operate, op),
            help=f"{op} an agent on a node or by selector (operator role)",
            description=OPERATE_HELP.format(verb=op.capitalize(), op=op),
            parents=parents,
        )
        p.add_argument(
            "refs", metavar="[NODE] AGENT_ID", nargs="+", help="NODE AGENT_ID, or AGENT_ID with --selector"
        )
        p.add_argument(
            "--selector",
            action="append",
            type=types.label,
            default=[],
            metavar="KEY=VALUE",
            help="operate the agent on every node with this label (repeatable; all must match)",
        )
        p.add_argument("--all-nodes", action="store_true", help="operate the agent on every node that has it")
        p.add_argument(
            "--max-parallel",
            type=types.int_range(1, 100),
            default=5,
            metavar="N",
            help="nodes operated at the same time, 1..100 (5)",
        )
        p.add_argument("--dry-run", action="store_true", help="only list the nodes a selector picks")

    p = add_command(
        agents,
        "agents logs",
        logs,
        help="print an agent's last log lines",
        description=LOGS_HELP,
        parents=parents,
    )
    _node_agent(p)
    p.add_argument(
        "--lines", "-n", type=types.int_range(1, 1000), default=100, metavar="N", help="lines, 1..1000 (100)"
    )
    p.add_argument("--filter", default="", metavar="TEXT", help="only lines containing TEXT")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until Ctrl-C")

    p = add_command(
        agents,
        "agents history",
        history,
        help="list agent operations on a node",
        description=HISTORY_HELP,
        parents=parents,
    )
    p.add_argument("node_id", metavar="NODE", help=NODE_HELP)
    p.add_argument("--agent", metavar="AGENT_ID", help="only operations on this agent")
    p.add_argument(
        "--limit", type=types.int_range(1, 1000), default=100, metavar="N", help="entries, 1..1000 (100)"
    )

    p = add_command(
        agents,
        "agents metrics",
        metrics,
        help="show an agent's resource usage",
        description=METRICS_HELP,
        parents=parents,
    )
    _node_agent(p)
    p.add_argument(
        "--since", type=types.duration, default=3600, metavar="DURATION", help="window like 30m, 1h, 7d (1h)"
    )


def list_agents(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    if args.all:
        if args.node_id or args.live:
            raise UsageError("--all lists the fleet's stored agents: give no NODE and no --live")
        data = api.fleet_agents(
            agent_id=args.agent,
            agent_type=args.agent_type,
            state=args.state,
            selector=args.selector,
            search=args.search,
            page=args.page,
            page_size=args.page_size,
        )
        s.out.emit(data, lambda: fleet_views.fleet_agents(s.out, data))
        return EXIT_OK
    if not args.node_id:
        raise UsageError("give a NODE, or --all for the agents of every node")
    if args.state or args.agent_type or args.agent or args.selector or args.search:
        raise UsageError("--state, --type, --agent, --selector and --search need --all")
    node_id = resolve_node(api, args.node_id)
    data = api.sync_agents(node_id) if args.live else api.agents(node_id)
    s.out.emit(data, lambda: views.agents(s.out, data, live=args.live))
    return EXIT_OK


def operate(op: Operation, s: Session, args: argparse.Namespace) -> int:
    if args.selector or args.all_nodes:
        if len(args.refs) != 1:
            raise UsageError("with --selector or --all-nodes give only the AGENT_ID")
        return _bulk(op, s, args, args.refs[0])
    if args.dry_run:
        raise UsageError("--dry-run needs --selector or --all-nodes")
    if len(args.refs) != 2:
        raise UsageError("give NODE and AGENT_ID (or AGENT_ID with --selector)")
    api = s.api()
    node_ref, agent_id = args.refs
    node_id = resolve_node(api, node_ref)
    record = api.operate(node_id, agent_id, op)
    if not record.get("success"):
        if s.out.json_mode:
            s.out.json(record)
        reason = record.get("error") or "unknown error"
        raise OperationFailed(f"{op} of agent {agent_id} on node {node_id} failed: {reason}")
    s.out.emit(record, lambda: views.operation(s.out, record))
    return EXIT_OK


def _bulk(op: Operation, s: Session, args: argparse.Namespace, agent_id: str) -> int:
    """Operate through the Manager one node at a time per worker: a progress line per node."""
    api = s.api()
    plan = api.bulk_operate(agent_id, op, selector=args.selector, all_nodes=args.all_nodes, dry_run=True)
    targets: list[dict[str, Any]] = plan.get("results", [])
    names = dict(zip((t["node_id"] for t in targets), describe(targets), strict=True))
    if args.dry_run or not targets:
        s.out.emit(
            {"agent_id": agent_id, "operation": op, "nodes": targets},
            lambda: fleet_views.bulk_plan(s.out, agent_id, op, [names[t["node_id"]] for t in targets]),
        )
        return EXIT_OK
    total = len(targets)
    s.out.note(f"{op} of agent {agent_id} on {total} node(s), {args.max_parallel} at a time")

    def one(node_id: str) -> dict[str, Any]:
        client = s.api()
        try:
            record = client.operate(node_id, agent_id, op)
        except OpsfleetError as exc:
            return {"node_id": node_id, "success": False, "error": exc.message, "agent": None}
        return record

    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=args.max_parallel) as pool:
        futures = {pool.submit(one, t["node_id"]): t for t in targets}
        for done, future in enumerate(as_completed(futures), 1):
            target = futures[future]
            record = future.result()
            result = {
                "node_id": target["node_id"],
                "hostname": target.get("hostname", ""),
                "success": bool(record.get("success")),
                "error": record.get("error") or "",
                "status": (record.get("agent") or {}).get("status", ""),
                "pid": (record.get("agent") or {}).get("pid", 0),
            }
            results.append(result)
            if not s.out.json_mode:
                fleet_views.bulk_progress(s.out, done, total, names[target["node_id"]], result)
                s.out.flush()
    order = {t["node_id"]: i for i, t in enumerate(targets)}
    results.sort(key=lambda r: order[r["node_id"]])
    failed = sum(not r["success"] for r in results)
    summary = {"agent_id": agent_id, "operation": op, "results": results, "succeeded": total - failed}
    summary["failed"] = failed
    s.out.emit(summary, lambda: fleet_views.bulk_summary(s.out, summary))
    return EXIT_ERROR if failed else EXIT_OK


def logs(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    node_id = resolve_node(api, args.node_id)
    data = api.agent_logs(node_id, args.agent_id, args.lines, args.filter)
    if args.follow:
        return _follow(s, args, node_id, data)

    def render() -> None:
        for entry in _entries(data):
            views.log_entry(s.out, entry)
        if not data.get("lines"):
            s.out.note("(no log lines" + (f" containing {args.filter!r})" if args.filter else ")"))

    s.out.emit(data, render)
    return EXIT_OK


def _entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's entries (time, stream, text); plain lines from a Manager that has none."""
    entries = data.get("entries")
    if entries is None:
        return [{"time": "", "stream": "", "text": line} for line in data.get("lines", [])]
    return list(entries)


def new_lines(seen: list[str], fresh: list[str]) -> list[str]:
    """The lines of ``fresh`` after the newest line of ``seen`` (all of them when it is gone)."""
    if not seen:
        return fresh
    last = seen[-1]
    for index in range(len(fresh) - 1, -1, -1):
        if fresh[index] == last:
            return fresh[index + 1 :]
    return fresh


def _follow(s: Session, args: argparse.Namespace, node_id: str, first: dict[str, Any]) -> int:
    """Print new lines every second until interrupted (one JSON entry per line with --json)."""
    api = s.api()
    seen: list[str] = []
    data = first
    while True:
        lines: list[str] = data.get("lines", [])
        entries = _entries(data)
        fresh = new_lines(seen, lines)
        for entry in entries[len(entries) - len(fresh) :] if fresh else []:
            if s.out.json_mode:
                s.out.line(json.dumps(entry, ensure_ascii=False))
            else:
                views.log_entry(s.out, entry)
        if lines:
            seen = lines
        s.out.flush()
        try:
            time.sleep(FOLLOW_INTERVAL)
        except KeyboardInterrupt:
            return EXIT_OK
        data = api.agent_logs(node_id, args.agent_id, MAX_FOLLOW_LINES if seen else args.lines, args.filter)


def history(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    data = api.operations(resolve_node(api, args.node_id), args.agent, args.limit)
    s.out.emit(data, lambda: views.operations(s.out, data))
    return EXIT_OK


def metrics(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    data = api.agent_metrics(resolve_node(api, args.node_id), args.agent_id, args.since)
    s.out.emit(data, lambda: views.agent_metrics(s.out, data))
    return EXIT_OK
