"""``opsfleet users list|create|disable|enable|role|passwd``."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from opsfleet.client import prompts, views
from opsfleet.client.api import ApiClient
from opsfleet.client.commands import args as types
from opsfleet.client.dispatch import EXIT_OK, add_command, group
from opsfleet.client.profile import Profile
from opsfleet.client.session import Session
from opsfleet.common.errors import NotFound

ROLES = ("viewer", "operator", "admin")
LOOKUP_PAGE_SIZE = 100

LIST_HELP = """\
List the users (admin role).

example:
  opsfleet users list --page-size 100
"""

CREATE_HELP = """\
Create a user (admin role). Usernames are 3-64 of A-Z a-z 0-9 . _ -; passwords 12-128
characters, not a common password and not containing the username. The password is asked
twice without echo, or read from the first line of stdin with --password-stdin.

examples:
  opsfleet users create alice --role operator
  printf '%s\\n' "$PW" | opsfleet users create ci-bot --password-stdin
"""

TOGGLE_HELP = """\
{verb} a user (admin role), by id or username.{more}

example:
  opsfleet users {cmd} alice
"""

ROLE_HELP = """\
Change a user's role (admin role), by id or username. It takes effect on the user's next
request. You cannot change your own role.

example:
  opsfleet users role alice operator
"""

PASSWD_HELP = """\
Change your own password. Every token issued before stops working; the new token replaces
the stored one when the stored login was used. Asked on the terminal (the new password
twice), or with --password-stdin two lines on stdin: the current, then the new password.

examples:
  opsfleet users passwd
  printf '%s\\n%s\\n' "$OLD" "$NEW" | opsfleet users passwd --password-stdin
"""


def _user_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("user", metavar="USER", help="user id or username")


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    users = group(
        sub, "users", help="manage users and your password", description="Manage users and your password."
    )
    p = add_command(
        users, "users list", list_users, help="list users (admin)", description=LIST_HELP, parents=parents
    )
    p.add_argument("--page", type=types.int_range(1, 1_000_000), default=1, help="page number (default 1)")
    p.add_argument(
        "--page-size",
        type=types.int_range(1, 100),
        default=20,
        metavar="N",
        help="users per page, 1..100 (20)",
    )

    p = add_command(
        users, "users create", create, help="create a user (admin)", description=CREATE_HELP, parents=parents
    )
    p.add_argument("username", metavar="USERNAME", help="the new user's name")
    p.add_argument("--role", choices=ROLES, default="viewer", help="the new user's role (default viewer)")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )

    more = {
        "disable": " Its tokens stop working at once. You cannot disable yourself.",
        "enable": " Old tokens stay revoked; the user signs in again.",
    }
    for cmd, disabled in (("disable", True), ("enable", False)):
        p = add_command(
            users,
            f"users {cmd}",
            partial(toggle, disabled),
            help=f"{cmd} a user (admin)",
            description=TOGGLE_HELP.format(verb=cmd.capitalize(), cmd=cmd, more=more[cmd]),
            parents=parents,
        )
        _user_arg(p)

    p = add_command(
        users,
        "users role",
        set_role,
        help="change a user's role (admin)",
        description=ROLE_HELP,
        parents=parents,
    )
    _user_arg(p)
    p.add_argument("role", choices=ROLES, help="the new role")

    p = add_command(
        users,
        "users passwd",
        passwd,
        help="change your own password",
        description=PASSWD_HELP,
        parents=parents,
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the current and the new password from two lines of stdin",
    )


def user_id(api: ApiClient, user: str) -> int:
    """The id of ``user`` (an id, or a username looked up in the user list)."""
    if user.isdigit():
        return int(user)
    page = 1
    while True:
        data = api.list_users(page, LOOKUP_PAGE_SIZE)
        for u in data.get("list", []):
            if u.get("username") == user:
                return int(u["id"])
        if page >= int(data.get("page_info", {}).get("pages", 0)):
            raise NotFound(f"user {user} not found")
        page += 1


def list_users(s: Session, args: argparse.Namespace) -> int:
    data = s.api().list_users(args.page, args.page_size)
    s.out.emit(data, lambda: views.users(s.out, data))
    return EXIT_OK


def create(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    password = prompts.new_secret("password", from_stdin=args.password_stdin)
    data = api.create_user(args.username, password, args.role)
    s.out.emit(data, lambda: views.user(s.out, data, "Created"))
    return EXIT_OK


def toggle(disabled: bool, s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    data = api.set_user_disabled(user_id(api, args.user), disabled)
    s.out.emit(data, lambda: views.user(s.out, data, "Disabled" if disabled else "Enabled"))
    return EXIT_OK


def set_role(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    data = api.set_user_role(user_id(api, args.user), args.role)
    s.out.emit(data, lambda: views.user(s.out, data, "Updated"))
    return EXIT_OK


def passwd(s: Session, args: argparse.Namespace) -> int:
    api = s.api()
    old = prompts.secret("current password", from_stdin=args.password_stdin)
    new = prompts.new_secret("new password", from_stdin=args.password_stdin)
    data = api.change_password(old, new)
    stored = s.token_from_profile
    if stored:
        s.save(
            Profile(
                server=s.server,
                token=data["token"],
                username=data["user"]["username"],
                expires_at=data.get("expires_at") or "",
            )
        )

    def render() -> None:
        s.out.message(f"Changed the password of {data['user']['username']}; older tokens no longer work.")
        if stored:
            s.out.message(f"The new token is stored in {s.profile_file}.")
        else:
            s.out.note("Sign in again with `opsfleet login` (or use the new token from --json).")

    s.out.emit(data, render)
    return EXIT_OK
