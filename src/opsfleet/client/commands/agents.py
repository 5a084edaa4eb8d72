"""``opsfleet agents list|start|stop|restart|logs|history|metrics``."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from opsfleet.client import views
from opsfleet.client.api import Operation
from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.errors import OperationFailed
from opsfleet.client.session import Session

LIST_HELP = """\
List a node's agents: as the Manager stored them from the daemon's last sync, or with
--live as the node's daemon reports them right now (the Manager stores that answer too).

examples:
  opsfleet agents list web-1
  opsfleet agents list web-1 --live --json
"""

OPERATE_HELP = """\
{verb} an agent on a node. The Manager asks the node's daemon and records the operation
(see `opsfleet agents history`). Needs the operator or admin role; a failed operation exits 1.

example:
  opsfleet agents {op} web-1 node-exporter
"""

LOGS_HELP = """\
Print an agent's last log lines, fetched from the node's daemon.

examples:
  opsfleet agents logs web-1 node-exporter
  opsfleet agents logs web-1 node-exporter --lines 500 --filter ERROR
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
    p.add_argument("node_id", metavar="NODE_ID", help="the node's id")
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
        help="list a node's agents",
        description=LIST_HELP,
        parents=parents,
    )
    p.add_argument("node_id", metavar="NODE_ID", help="the node's id")
    p.add_argument(
        "--live", action="store_true", help="ask the node's daemon now instead of the stored state"
    )

    for op in ("start", "stop", "restart"):
        p = add_command(
            agents,
            f"agents {op}",
            partial(operate, op),
            help=f"{op} an agent (operator role)",
            description=OPERATE_HELP.format(verb=op.capitalize(), op=op),
            parents=parents,
        )
        _node_agent(p)

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

    p = add_command(
        agents,
        "agents history",
        history,
        help="list agent operations on a node",
        description=HISTORY_HELP,
        parents=parents,
    )
    p.add_argument("node_id", metavar="NODE_ID", help="the node's id")
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
    data = api.sync_agents(args.node_id) if args.live else api.agents(args.node_id)
    s.out.emit(data, lambda: views.agents(s.out, data, live=args.live))
    return EXIT_OK


def operate(op: Operation, s: Session, args: argparse.Namespace) -> int:
    record = s.api().operate(args.node_id, args.agent_id, op)
    if not record.get("success"):
        if s.out.json_mode:
            s.out.json(record)
        reason = record.get("error") or "unknown error"
        raise OperationFailed(f"{op} of agent {args.agent_id} on node {args.node_id} failed: {reason}")
    s.out.emit(record, lambda: views.operation(s.out, record))
    return EXIT_OK


def logs(s: Session, args: argparse.Namespace) -> int:
    data = s.api().agent_logs(args.node_id, args.agent_id, args.lines, args.filter)

    def render() -> None:
        for line in data.get("lines", []):
            s.out.line(line)
        if not data.get("lines"):
            s.out.note("(no log lines" + (f" containing {args.filter!r})" if args.filter else ")"))

    s.out.emit(data, render)
    return EXIT_OK


def history(s: Session, args: argparse.Namespace) -> int:
    data = s.api().operations(args.node_id, args.agent, args.limit)
    s.out.emit(data, lambda: views.operations(s.out, data))
    return EXIT_OK


def metrics(s: Session, args: argparse.Namespace) -> int:
    data = s.api().agent_metrics(args.node_id, args.agent_id, args.since)
    s.out.emit(data, lambda: views.agent_metrics(s.out, data))
    return EXIT_OK
