"""``opsfleet tokens create|list|revoke``: node enrollment tokens (admin role)."""

from __future__ import annotations

import argparse
from typing import Any

from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.output import Output, number, status, table, when
from opsfleet.client.session import Session
from opsfleet.client.views import labels as labels_text

CREATE_HELP = """\
Create an enrollment token (admin role). It is printed once, on stdout: give it to
`opsfleet daemon enroll --token` on the nodes (with the CA fingerprint from
`opsfleet ca fingerprint`). Labels are stamped on every node that enrolls with it.

examples:
  opsfleet tokens create
  opsfleet tokens create --max-uses 50 --expires-in 2h --label env=prod --label zone=eu-1
  TOKEN=$(opsfleet tokens create --max-uses 10)
"""

LIST_HELP = """\
List the enrollment tokens, newest first, with their uses and state (active, expired,
used-up, revoked). Secrets are never shown again.

example:
  opsfleet tokens list
"""

REVOKE_HELP = """\
Revoke an enrollment token by id: no node can enroll with it any more (nodes that already
enrolled keep their identity; delete a node to revoke its certificate).

example:
  opsfleet tokens revoke 3f2a9c1d0e4b5a67
"""


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    tokens = group(
        sub,
        "tokens",
        help="node enrollment tokens (admin)",
        description="Create, list and revoke node enrollment tokens.",
    )
    p = add_command(
        tokens, "tokens create", create, help="create a token", description=CREATE_HELP, parents=parents
    )
    p.add_argument(
        "--max-uses",
        type=types.int_range(1, 1_000_000),
        default=1,
        metavar="N",
        help="nodes it may enroll (1)",
    )
    p.add_argument(
        "--expires-in",
        type=types.duration,
        default=24 * 3600,
        metavar="DURATION",
        help="lifetime, e.g. 2h (24h)",
    )
    p.add_argument(
        "--label",
        action="append",
        type=types.label,
        metavar="KEY=VALUE",
        help="label stamped on nodes (repeatable)",
    )
    add_command(
        tokens, "tokens list", list_tokens, help="list tokens", description=LIST_HELP, parents=parents
    )
    p = add_command(
        tokens, "tokens revoke", revoke, help="revoke a token", description=REVOKE_HELP, parents=parents
    )
    p.add_argument("token_id", metavar="TOKEN_ID", help="the token's id (tokens list)")


def create(s: Session, args: argparse.Namespace) -> int:
    labels = dict(types.split_label(item) for item in args.label or [])
    data = s.api().create_enrollment_token(args.max_uses, args.expires_in, labels)

    def render() -> None:
        s.out.line(str(data["token"]))
        s.out.note(
            f"token {data['id']}: {data['max_uses']} use(s), expires {data['expires_at']}; "
            "shown only this once"
        )

    s.out.emit(data, render)
    return EXIT_OK


def list_tokens(s: Session, args: argparse.Namespace) -> int:
    data = s.api().enrollment_tokens()
    s.out.emit(data, lambda: token_table(s.out, data))
    return EXIT_OK


def revoke(s: Session, args: argparse.Namespace) -> int:
    data = s.api().revoke_enrollment_token(args.token_id)
    s.out.emit(data, lambda: s.out.message(f"revoked enrollment token {data['id']}"))
    return EXIT_OK


def token_table(out: Output, data: dict[str, Any]) -> None:
    t = table(None, "ID!", "STATE", "USES", "LABELS", "EXPIRES (UTC)", "CREATED (UTC)", "BY")
    for tok in data.get("list", []):
        t.add_row(
            tok["id"],
            status(tok.get("state", "")),
            f"{number(tok.get('uses'))}/{number(tok.get('max_uses'))}",
            labels_text(tok.get("labels")),
            when(tok.get("expires_at")),
            when(tok.get("created_at")),
            tok.get("created_by", ""),
        )
    out.show(t)
