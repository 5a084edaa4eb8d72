"""``opsfleet login`` and ``opsfleet logout``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.text import Text

from opsfleet.client import prompts
from opsfleet.client.api import ApiClient
from opsfleet.client.dispatch import EXIT_OK, add_command
from opsfleet.client.errors import UsageError
from opsfleet.client.output import when
from opsfleet.client.profile import Profile
from opsfleet.client.session import Session, normalize_server
from opsfleet.common.errors import OpsfleetError

LOGIN_HELP = """\
Sign in to a Manager and store its URL and the token in the CLI profile (mode 0600), so
later commands need neither --server nor --token.

The password is asked without echo, or read from the first line of stdin with
--password-stdin (for scripts: `printf '%s\\n' "$PW" | opsfleet login -u admin
--password-stdin`). With --token TOKEN the token is checked (GET /auth/profile) and stored
instead; $OPSFLEET_TOKEN is not used by login.

The token lives until it expires (jwt.expire on the Manager, 24h by default), `opsfleet
logout` revokes it, the user changes the password or is disabled. Signing in again replaces
the stored login. After repeated wrong passwords the Manager refuses sign-ins for the
username or the client address for a while (HTTP 429); the message says when to retry.

examples:
  opsfleet login --server http://manager:8080 --username admin
  opsfleet login --json -u ci --password-stdin < password.txt
"""

LOGOUT_HELP = """\
Revoke the stored token on the Manager (POST /auth/logout: it stops working at once, on
every replica) and forget it (the server URL and username stay, for the next login). When
the Manager cannot be reached or refuses the token, the token is still forgotten locally
and a warning says it was not revoked.

example:
  opsfleet logout
"""


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, "login", login, help="sign in and store the token", description=LOGIN_HELP, parents=parents
    )
    p.add_argument("--username", "-u", metavar="NAME", help="user to sign in as (asked when not given)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of asking (needs --username)",
    )
    add_command(
        sub, "logout", logout, help="forget the stored token", description=LOGOUT_HELP, parents=parents
    )


def login(s: Session, args: argparse.Namespace) -> int:
    if args.token:
        data: dict[str, Any] = {"token": args.token, "token_type": "Bearer", "expires_at": None}
        data["user"] = s.api().profile()
    else:
        username = args.username
        if not username:
            if args.password_stdin:
                raise UsageError("--password-stdin needs --username")
            default = s.profile.username if s.profile.server == s.server else ""
            username = prompts.ask("Username", default)
        password = prompts.secret("password", from_stdin=args.password_stdin)
        data = s.api(auth=False).login(username, password)
    user = data["user"]
    s.save(
        Profile(
            server=s.server,
            token=data["token"],
            username=user["username"],
            expires_at=data.get("expires_at") or "",
        )
    )
    expires = f", valid until {when(data['expires_at'])} UTC" if data.get("expires_at") else ""

    def render() -> None:
        s.out.message(
            Text.assemble(
                f"Logged in to {s.server} as ",
                (str(user["username"]), "bold"),
                f" ({user['role']}); token stored in {s.profile_file}{expires}.",
            )
        )

    s.out.emit(data, render)
    return EXIT_OK


def logout(s: Session, args: argparse.Namespace) -> int:
    had_token = bool(s.profile.token)
    revoked, problem = False, ""
    if had_token:
        server = normalize_server(s.profile.server) if s.profile.server else s.server
        try:
            with ApiClient(server, token=s.profile.token, timeout=s.timeout) as api:
                api.logout()
            revoked = True
        except OpsfleetError as exc:
            problem = exc.message
        s.save(Profile(server=s.profile.server, username=s.profile.username))
    data = {
        "logged_out": had_token,
        "revoked": revoked,
        "server": s.profile.server or None,
        "profile_file": str(s.profile_file),
    }

    def render() -> None:
        if not had_token:
            s.out.message(f"Not logged in (no token in {s.profile_file}).")
            return
        if revoked:
            s.out.message(
                f"Logged out of {s.profile.server}: the token was revoked and removed from {s.profile_file}."
            )
        else:
            s.out.message(
                f"Logged out locally: the token was removed from {s.profile_file}, but the Manager "
                f"did not revoke it ({problem}); it stays valid until it expires."
            )

    s.out.emit(data, render)
    return EXIT_OK
