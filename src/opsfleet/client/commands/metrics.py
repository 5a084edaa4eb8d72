"""``opsfleet metrics show|overview``."""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime
from typing import Any

from opsfleet.client import views
from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.resolve import resolve_node
from opsfleet.client.session import Session

MAX_SPAN = 30 * 86400
_TYPE = re.compile(r"[a-z0-9_.]{1,32}")

SHOW_HELP = """\
Without --type: the newest sample of each metric type of a node (cpu, memory, disk,
network) with min/avg/max of usage_percent over the --since window.
With --type: the samples of that type over the --since window as a table (raw samples up
to 6h; averages per time bucket for longer windows). Custom types such as custom.gpu_0
work too.

examples:
  opsfleet metrics show web-1
  opsfleet metrics show web-1 --type cpu --since 30m
  opsfleet metrics show web-1 --type memory --since 7d --json
"""

OVERVIEW_HELP = """\
The fleet at a glance: node counts, average cpu/memory/disk usage, and each node's latest
usage of the last 15 minutes (busiest cpu first).

example:
  opsfleet metrics overview
"""


def metric_type(text: str) -> str:
    if not _TYPE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a type like cpu or custom.gpu_0 ([a-z0-9_.]{{1,32}}), got {text!r}"
        )
    return text


def since(text: str) -> int:
    seconds = types.duration(text)
    if seconds > MAX_SPAN:
        raise argparse.ArgumentTypeError(f"must be at most 30d, got {text!r}")
    return seconds


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    metrics = group(
        sub, "metrics", help="show node and fleet metrics", description="Show node and fleet metrics."
    )
    p = add_command(
        metrics,
        "metrics show",
        show,
        help="a node's latest metrics or history",
        description=SHOW_HELP,
        parents=parents,
    )
    p.add_argument(
        "node_id", metavar="NODE", help="the node: its id, a unique prefix of its id, or its hostname"
    )
    p.add_argument(
        "--type",
        "-t",
        type=metric_type,
        metavar="TYPE",
        help="cpu, memory, disk, network or a custom type: show its history instead of the latest values",
    )
    p.add_argument(
        "--since",
        type=since,
        default=3600,
        metavar="DURATION",
        help="window like 30m, 6h, 7d; at most 30d (1h)",
    )
    add_command(
        metrics,
        "metrics overview",
        overview,
        help="fleet-wide usage",
        description=OVERVIEW_HELP,
        parents=parents,
    )


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def show(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    node_id = resolve_node(api, args.node_id)
    if args.type:
        now = time.time()
        data = api.metric_history(node_id, args.type, _rfc3339(now - args.since), _rfc3339(now))
        s.out.emit(data, lambda: views.metric_history(s.out, data))
        return EXIT_OK
    latest = api.latest_metrics(node_id)
    summary = api.metric_summary(node_id, str(args.since))
    s.out.emit(
        {"node_id": node_id, "latest": latest, "summary": summary},
        lambda: views.latest_metrics(s.out, latest, summary),
    )
    return EXIT_OK


def overview(s: Session, args: argparse.Namespace) -> int:
    data = s.api().cluster_overview()
    s.out.emit(data, lambda: views.overview(s.out, data))
    return EXIT_OK
