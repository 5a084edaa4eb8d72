"""``opsfleet alerts list|ack|silence``."""

from __future__ import annotations

import argparse
from typing import Any

from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.output import table
from opsfleet.client.session import Session
from opsfleet.common.durations import parse_duration

LIST_HELP = """\
List alerts, newest first: firing ones until their condition ends, resolved ones after.

examples:
  opsfleet alerts list
  opsfleet alerts list --state firing
  opsfleet alerts list --node web-1 --rule agent_failed --json
"""

ACK_HELP = """\
Acknowledge a firing alert (operator, admin): it stays firing, marked as seen by you.

example:
  opsfleet alerts ack 42
"""

SILENCE_HELP = """\
Silence a firing alert for a while (operator, admin): no notifications are sent for it
until the silence ends.

example:
  opsfleet alerts silence 42 --for 2h
"""


def _duration(text: str) -> str:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return text


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    alerts = group(
        sub,
        "alerts",
        help="firing and resolved alerts: list, acknowledge, silence",
        description="List, acknowledge and silence alerts.",
    )
    p = add_command(
        alerts, "alerts list", list_alerts, help="list alerts", description=LIST_HELP, parents=parents
    )
    p.add_argument("--state", choices=("firing", "resolved"), help="only alerts in this state")
    p.add_argument("--node", default="", metavar="NODE_ID", help="only alerts of this node")
    p.add_argument("--rule", default="", metavar="RULE", help="only alerts of this rule")
    p.add_argument("--page", type=types.int_range(1, 1_000_000), default=1, help="page number (default 1)")
    p.add_argument("--page-size", type=types.int_range(1, 100), default=20, metavar="N", help="(default 20)")
    p = add_command(
        alerts, "alerts ack", ack, help="acknowledge an alert", description=ACK_HELP, parents=parents
    )
    p.add_argument("alert_id", type=types.int_range(1, 2**62), metavar="ID")
    p = add_command(
        alerts, "alerts silence", silence, help="silence an alert", description=SILENCE_HELP, parents=parents
    )
    p.add_argument("alert_id", type=types.int_range(1, 2**62), metavar="ID")
    p.add_argument(
        "--for", dest="duration", required=True, type=_duration, metavar="DURATION", help="e.g. 30m, 2h"
    )


def list_alerts(s: Session, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"page": args.page, "page_size": args.page_size}
    for key, value in (("state", args.state), ("node", args.node), ("rule", args.rule)):
        if value:
            params[key] = value
    data = s.api().alerts(params)

    def render() -> None:
        info = data["page_info"]
        pages = max(1, info["pages"])
        title = f"alerts (page {info['page']} of {pages}, {info['total']} in all, {data['firing']} firing)"
        t = table(title, "ID", "STATE", "SEVERITY", "RULE", "NODE", "SUBJECT", "SINCE", "NOTE", "SUMMARY")
        for a in data["list"]:
            note = ", ".join(
                part
                for part in (
                    f"acked by {a['acked_by']}" if a["acked_by"] else "",
                    f"silenced until {a['silenced_until']}" if a["silenced"] else "",
                )
                if part
            )
            t.add_row(
                str(a["id"]),
                a["state"],
                a["severity"],
                a["rule"],
                a["hostname"] or a["node_id"],
                a["subject"],
                a["starts_at"],
                note,
                a["summary"],
            )
        s.out.show(t)

    s.out.emit(data, render)
    return EXIT_OK


def ack(s: Session, args: argparse.Namespace) -> int:
    data = s.api().alert_action(args.alert_id, "ack")
    s.out.emit(data, lambda: s.out.message(f"alert {data['id']} ({data['rule']}) acknowledged"))
    return EXIT_OK


def silence(s: Session, args: argparse.Namespace) -> int:
    data = s.api().alert_action(args.alert_id, "silence", {"duration": args.duration})
    s.out.emit(
        data,
        lambda: s.out.message(f"alert {data['id']} ({data['rule']}) silenced until {data['silenced_until']}"),
    )
    return EXIT_OK
