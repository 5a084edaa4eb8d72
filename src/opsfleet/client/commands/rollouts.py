"""``opsfleet rollouts start|list|show|pause|resume|cancel``."""

from __future__ import annotations

import argparse
import re
from typing import Any

from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.output import table
from opsfleet.client.session import Session

START_HELP = """\
Roll a stored artifact out to the nodes whose labels match every --selector (operator, admin):
--canary nodes first, then batches of --max-parallel nodes (N, or P% of the nodes). The
rollout halts by itself when failed + rolled-back nodes pass --pause-on-failure percent.

examples:
  opsfleet rollouts start --component agent:filebeat --version 8.12.0 --selector env=prod
  opsfleet rollouts start --component agent:filebeat --version 8.12.0 --selector env=prod \\
      --max-parallel 25% --canary 2 --pause-on-failure 10
"""

_PARALLEL = re.compile(r"[1-9][0-9]*%?")


def _selector(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def _parallel(text: str) -> str:
    if not _PARALLEL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected N or P%, got {text!r}")
    return text


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 0..100, got {text!r}")
    return value


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    rollouts = group(sub, "rollouts", help="fleet rollouts", description="Roll updates out across the fleet.")
    p = add_command(
        rollouts, "rollouts start", start, help="start a rollout", description=START_HELP, parents=parents
    )
    p.add_argument("--component", required=True, help="daemon or agent:<id>")
    p.add_argument("--version", required=True, help="a version stored with `opsfleet artifacts upload`")
    p.add_argument("--selector", action="append", type=_selector, default=[], metavar="KEY=VALUE")
    p.add_argument("--max-parallel", type=_parallel, default="1", metavar="N|P%", help="nodes per batch (1)")
    p.add_argument("--canary", type=int, default=0, metavar="N", help="nodes updated first, alone (0)")
    p.add_argument(
        "--pause-on-failure",
        type=_percent,
        default=0.0,
        metavar="P%",
        help="halt above this failure percent (0)",
    )
    add_command(
        rollouts,
        "rollouts list",
        list_all,
        help="list rollouts",
        description="List rollouts.",
        parents=parents,
    )
    for name, handler, what in (
        ("show", show, "show a rollout and its nodes"),
        ("pause", action, "pause a rollout after its current batch"),
        ("resume", action, "resume a paused or halted rollout"),
        ("cancel", action, "cancel a rollout"),
    ):
        p = add_command(
            rollouts, f"rollouts {name}", handler, help=what, description=what + ".", parents=parents
        )
        p.add_argument("rollout_id", type=int, metavar="ID")
        p.set_defaults(rollout_action=name)


def start(s: Session, args: argparse.Namespace) -> int:
    selector = dict(item.split("=", 1) for item in args.selector)
    body = {
        "component": args.component,
        "version": args.version,
        "selector": selector,
        "max_parallel": args.max_parallel,
        "canary": args.canary,
        "pause_on_failure": args.pause_on_failure,
    }
    data = s.api().start_rollout(body)
    s.out.emit(data, lambda: _detail(s, data))
    return EXIT_OK


def list_all(s: Session, args: argparse.Namespace) -> int:
    data = s.api().list_rollouts()

    def render() -> None:
        t = table(None, "ID", "COMPONENT", "VERSION", "STATE", "MESSAGE", "BY", "CREATED")
        for r in data["rollouts"]:
            t.add_row(
                str(r["id"]),
                r["component"],
                r["version"],
                r["state"],
                r["message"],
                r["created_by"],
                r["created_at"],
            )
        s.out.show(t)

    s.out.emit(data, render)
    return EXIT_OK


def show(s: Session, args: argparse.Namespace) -> int:
    data = s.api().rollout(args.rollout_id)
    s.out.emit(data, lambda: _detail(s, data))
    return EXIT_OK


def action(s: Session, args: argparse.Namespace) -> int:
    data = s.api().rollout_action(args.rollout_id, args.rollout_action)
    s.out.emit(data, lambda: s.out.message(f"rollout {data['id']}: {data['state']} ({data['message']})"))
    return EXIT_OK


def _detail(s: Session, data: dict[str, Any]) -> None:
    s.out.line(
        f"rollout {data['id']}: {data['component']} {data['version']} {data['state']} ({data['message']})"
    )
    t = table(None, "NODE", "CANARY", "STATE", "MESSAGE")
    for n in data.get("nodes", []):
        t.add_row(n["node_id"], "yes" if n["canary"] else "", n["state"], n["message"])
    s.out.show(t)
