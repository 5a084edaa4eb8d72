"""``opsfleet nodes list|show|stats``."""

from __future__ import annotations

import argparse
from typing import Any

from opsfleet.client import views
from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.resolve import resolve_node
from opsfleet.client.session import Session

LIST_HELP = """\
List the fleet's nodes, ordered by node id, one page at a time.

examples:
  opsfleet nodes list
  opsfleet nodes list --status offline
  opsfleet nodes list --label env=prod --label role=web --search web-
  opsfleet nodes list --page 2 --page-size 50 --json
"""

SHOW_HELP = """\
Show one node: its registration details, the latest cpu/memory/disk/network samples and
its most recent events (registered, re-registered, online, offline).

example:
  opsfleet nodes show web-1
"""

STATS_HELP = """\
Count the nodes: total, online and offline.

example:
  opsfleet nodes stats
"""


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    nodes = group(
        sub, "nodes", help="list and inspect nodes", description="List and inspect the fleet's nodes."
    )
    p = add_command(
        nodes, "nodes list", list_nodes, help="list nodes", description=LIST_HELP, parents=parents
    )
    p.add_argument("--status", choices=("online", "offline"), help="only nodes with this status")
    p.add_argument(
        "--label",
        action="append",
        type=types.label,
        metavar="KEY=VALUE",
        help="only nodes with this label (repeatable; all must match)",
    )
    p.add_argument("--search", "-q", default="", metavar="TEXT", help="text in node id, hostname or IP")
    p.add_argument("--page", type=types.int_range(1, 1_000_000), default=1, help="page number (default 1)")
    p.add_argument(
        "--page-size",
        type=types.int_range(1, 100),
        default=20,
        metavar="N",
        help="nodes per page, 1..100 (20)",
    )

    p = add_command(
        nodes, "nodes show", show_node, help="show one node", description=SHOW_HELP, parents=parents
    )
    p.add_argument(
        "node_id", metavar="NODE", help="the node: its id, a unique prefix of its id, or its hostname"
    )
    p.add_argument(
        "--events", type=types.int_range(1, 1000), default=10, metavar="N", help="recent events to show (10)"
    )

    add_command(
        nodes, "nodes stats", stats, help="count nodes by status", description=STATS_HELP, parents=parents
    )


def list_nodes(s: Session, args: argparse.Namespace) -> int:
    data = s.api().list_nodes(
        status=args.status, labels=args.label, search=args.search, page=args.page, page_size=args.page_size
    )
    s.out.emit(data, lambda: views.nodes(s.out, data))
    return EXIT_OK


def show_node(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    node_id = resolve_node(api, args.node_id)
    node = api.node(node_id)
    latest = api.latest_metrics(node_id)
    events = api.node_events(node_id, args.events)
    data = {"node": node, "metrics": latest, "events": events["events"]}
    s.out.emit(data, lambda: views.node_detail(s.out, node, latest, events))
    return EXIT_OK


def stats(s: Session, args: argparse.Namespace) -> int:
    data = s.api().node_statistics()
    s.out.emit(data, lambda: views.node_statistics(s.out, data))
    return EXIT_OK
