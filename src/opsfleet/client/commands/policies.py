"""``opsfleet policies apply|list|show|diff|rollback|delete|status|resume``: central configuration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from opsfleet.client import output as o
from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.session import Session
from opsfleet.common.errors import InvalidArgument

APPLY_HELP = """\
Create or update a policy from a YAML (or JSON) file. An unchanged document makes no new
revision. The diff against the current revision is printed.

example:
  opsfleet policies apply -f web-logs.yaml
"""

DIFF_HELP = """\
Show a unified diff between two revisions of a policy.

example:
  opsfleet policies diff web-logs --from 1 --to 3
"""

ROLLBACK_HELP = """\
Make an old revision of a policy current again (it reaches the nodes like any change).

example:
  opsfleet policies rollback web-logs --revision 2
"""

STATUS_HELP = """\
Per node the policy selects: the revision it should run, its config state (pending,
applying, applied, failed) and the error; plus the rollout's progress.

example:
  opsfleet policies status web-logs --json
"""


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the policy's name")


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    cmd = group(
        sub,
        "policies",
        help="central configuration policies",
        description="Write, inspect, diff and roll back the fleet's configuration policies.",
    )
    p = add_command(
        cmd,
        "policies apply",
        apply,
        help="create or update a policy",
        description=APPLY_HELP,
        parents=parents,
    )
    p.add_argument("-f", "--file", required=True, type=Path, metavar="FILE", help="the policy document")
    add_command(
        cmd,
        "policies list",
        list_policies,
        help="list policies",
        description="List the current policies.",
        parents=parents,
    )
    p = add_command(
        cmd,
        "policies show",
        show,
        help="show a policy and its revisions",
        description="Show a policy's current document and its revision history.",
        parents=parents,
    )
    _name(p)
    p = add_command(
        cmd, "policies diff", diff, help="diff two revisions", description=DIFF_HELP, parents=parents
    )
    _name(p)
    p.add_argument("--from", dest="from_", type=int, required=True, metavar="R1", help="older revision")
    p.add_argument("--to", type=int, required=True, metavar="R2", help="newer revision")
    p = add_command(
        cmd,
        "policies rollback",
        rollback,
        help="make an old revision current",
        description=ROLLBACK_HELP,
        parents=parents,
    )
    _name(p)
    p.add_argument("--revision", type=int, required=True, metavar="R", help="the revision to restore")
    p = add_command(
        cmd,
        "policies delete",
        delete,
        help="delete a policy (revisions are kept)",
        description="Delete a policy: its agents stop on the nodes it selected.",
        parents=parents,
    )
    _name(p)
    p = add_command(
        cmd,
        "policies status",
        status,
        help="per-node state of a policy",
        description=STATUS_HELP,
        parents=parents,
    )
    _name(p)
    p = add_command(
        cmd,
        "policies resume",
        resume,
        help="resume a halted rollout",
        description="Resume a rollout halted by its failure threshold.",
        parents=parents,
    )
    _name(p)


def read_document(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path} must hold one policy mapping (name, selector, priority, config)")
    return doc


def apply(s: Session, args: argparse.Namespace) -> int:
    data = s.api().apply_policy(read_document(args.file))

    def render() -> None:
        word = "updated" if data.get("changed") else "unchanged"
        s.out.message(f"policy {data['name']} {word}: revision {data['revision']} ({data['hash'][:12]})")
        if data.get("diff"):
            s.out.line(data["diff"].rstrip("\n"))

    s.out.emit(data, render)
    return EXIT_OK


def list_policies(s: Session, args: argparse.Namespace) -> int:
    data = s.api().policies()

    def render() -> None:
        t = o.table(
            None, "NAME!", "REVISION", "PRIORITY", "SELECTOR~", "APPLIED", "FAILED", "PENDING", "HASH"
        )
        for p in data["policies"]:
            counts = p.get("counts", {})
            selector = ",".join(f"{k}={v}" for k, v in sorted(p["selector"].items())) or "(all nodes)"
            t.add_row(
                p["name"],
                str(p["revision"]),
                str(p["priority"]),
                selector,
                str(counts.get("applied", 0)),
                str(counts.get("failed", 0)),
                str(counts.get("pending", 0) + counts.get("applying", 0)),
                p["hash"][:12],
            )
        s.out.show(t)

    s.out.emit(data, render)
    return EXIT_OK


def show(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    policy = api.policy(args.name)
    revisions = api.policy_revisions(args.name)
    data = {"policy": policy, "revisions": revisions["revisions"]}

    def render() -> None:
        s.out.message(f"policy {policy['name']}: revision {policy['revision']} ({policy['hash']})")
        s.out.line(yaml.safe_dump(policy["document"], sort_keys=True).rstrip("\n"))
        t = o.table("revisions", "REVISION", "HASH", "AUTHOR", "CREATED")
        for r in revisions["revisions"]:
            t.add_row(str(r["revision"]), r["hash"][:12], r["author"], o.when(r["created_at"]))
        s.out.show(t)

    s.out.emit(data, render)
    return EXIT_OK


def diff(s: Session, args: argparse.Namespace) -> int:
    data = s.api().policy_diff(args.name, args.from_, args.to)
    s.out.emit(data, lambda: s.out.line(data["diff"].rstrip("\n") or "(no difference)"))
    return EXIT_OK


def rollback(s: Session, args: argparse.Namespace) -> int:
    data = s.api().rollback_policy(args.name, args.revision)

    def render() -> None:
        s.out.message(f"policy {data['name']} is on revision {data['revision']} ({data['hash'][:12]})")
        if data.get("diff"):
            s.out.line(data["diff"].rstrip("\n"))

    s.out.emit(data, render)
    return EXIT_OK


def delete(s: Session, args: argparse.Namespace) -> int:
    data = s.api().delete_policy(args.name)
    s.out.emit(data, lambda: s.out.message(f"policy {args.name} deleted"))
    return EXIT_OK


def status(s: Session, args: argparse.Namespace) -> int:
    data = s.api().policy_status(args.name)

    def render() -> None:
        counts = data["counts"]
        s.out.message(
            f"policy {data['name']} revision {data['revision']} ({data['hash'][:12]}): "
            f"{counts.get('applied', 0)} applied, {counts.get('failed', 0)} failed, "
            f"{counts.get('pending', 0) + counts.get('applying', 0)} pending"
        )
        rollout = data.get("rollout")
        if rollout:
            word = "HALTED" if rollout["paused"] else "in progress"
            s.out.message(
                f"rollout {word}: {rollout['inflight']} in flight, {rollout['waiting']} waiting "
                f"(max {rollout['max_parallel']} at a time)"
            )
        t = o.table(None, "NODE!", "REVISION", "STATE", "HASH", "ERROR~")
        for n in data["nodes"]:
            t.add_row(
                n["node_id"], str(n["revision"]), o.status(n["state"]), n["revision_hash"][:12], n["error"]
            )
        s.out.show(t)

    s.out.emit(data, render)
    return EXIT_OK


def resume(s: Session, args: argparse.Namespace) -> int:
    data = s.api().resume_policy(args.name)
    s.out.emit(data, lambda: s.out.message(f"rollout of policy {args.name} resumed"))
    return EXIT_OK
