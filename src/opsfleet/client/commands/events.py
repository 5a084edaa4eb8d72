"""``opsfleet events``: the fleet's node timeline."""

from __future__ import annotations

import argparse
import time
from typing import Any

from opsfleet.client import fleet_views
from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_OK, add_command
from opsfleet.client.resolve import resolve_node
from opsfleet.client.session import Session

HELP = """\
Node events across the fleet, newest first: registrations, online/offline, agent state
changes with their reasons, operator operations, config apply states and update results.

examples:
  opsfleet events
  opsfleet events --node web-1 --kind agent-state --kind operation
  opsfleet events --since 1h --json
"""

KINDS = (
    "registered",
    "re-registered",
    "online",
    "offline",
    "enrolled",
    "clone-suspected",
    "agent-state",
    "operation",
    "config",
    "update",
)


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, "events", list_events, help="the fleet's node timeline", description=HELP, parents=parents
    )
    p.add_argument("--node", metavar="NODE", help="only this node (id, unique id prefix or hostname)")
    p.add_argument("--kind", action="append", choices=KINDS, default=[], help="only this kind (repeatable)")
    p.add_argument("--since", type=types.duration, metavar="DURATION", help="only the last 30m, 6h, 7d, ...")
    p.add_argument("--page", type=types.int_range(1, 1_000_000), default=1, help="page number (1)")
    p.add_argument(
        "--page-size", type=types.int_range(1, 100), default=20, metavar="N", help="events per page (20)"
    )


def list_events(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    node_id = resolve_node(api, args.node) if args.node else ""
    since = str(int(time.time()) - args.since) if args.since else ""
    data = api.events(node_id=node_id, kinds=args.kind, since=since, page=args.page, page_size=args.page_size)
    s.out.emit(data, lambda: fleet_views.events(s.out, data))
    return EXIT_OK
