"""How every client command runs: common flags, help epilog, and the one error -> exit code table.

A command handler gets a resolved :class:`Session` and the parsed flags and returns an exit
code; errors from the error tree are printed on stderr, prefixed with the command, and
mapped to an exit code by :data:`EXIT_CODES` (most specific class wins).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from opsfleet.client.api import DEFAULT_TIMEOUT
from opsfleet.client.errors import NotLoggedIn, UsageError
from opsfleet.client.output import Output
from opsfleet.client.session import Session
from opsfleet.common.errors import (
    ConfigError,
    NotFound,
    OpsfleetError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNAUTHENTICATED = 4
EXIT_FORBIDDEN = 5
EXIT_NOT_FOUND = 6

EXIT_CODES: dict[type[OpsfleetError], int] = {
    UsageError: EXIT_USAGE,
    ConfigError: EXIT_CONFIG,
    Unauthenticated: EXIT_UNAUTHENTICATED,
    PermissionDenied: EXIT_FORBIDDEN,
    NotFound: EXIT_NOT_FOUND,
}
"""Everything else (server errors, 400/409/429/5xx answers, network failures, timeouts) exits 1."""

EPILOG = """\
connection: --server, then $OPSFLEET_SERVER, then the server of `opsfleet login`
(default http://127.0.0.1:8080); --token, then $OPSFLEET_TOKEN, then the stored token
(stored in $OPSFLEET_CLI_CONFIG, else $XDG_CONFIG_HOME/opsfleet/cli.json, else
~/.config/opsfleet/cli.json; mode 0600).

exit codes: 0 ok; 1 error from the server or the network (unreachable, timeout,
4xx/5xx not listed here); 2 usage (bad flags or values); 3 unusable CLI profile;
4 not authenticated (no token, wrong password, expired or revoked token: 401);
5 forbidden (403: your role may not do this); 6 not found (404: node, agent or user);
130 interrupted.
"""

Handler = Callable[[Session, argparse.Namespace], int]


def exit_code_for(error: OpsfleetError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_ERROR


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def common_options() -> argparse.ArgumentParser:
    """The flags every client command accepts (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("connection and output")
    g.add_argument(
        "--server",
        metavar="URL",
        help="the Manager's REST API, e.g. http://manager:8080 (default: $OPSFLEET_SERVER, "
        "else the server of the stored login, else http://127.0.0.1:8080)",
    )
    g.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token to send (default: $OPSFLEET_TOKEN, else the stored login's token)",
    )
    g.add_argument(
        "--profile-file",
        metavar="FILE",
        help="the stored login (default: $OPSFLEET_CLI_CONFIG, else "
        "$XDG_CONFIG_HOME/opsfleet/cli.json, else ~/.config/opsfleet/cli.json)",
    )
    g.add_argument(
        "--json", action="store_true", help="print the answer's data as JSON on stdout instead of tables"
    )
    g.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up on a request after this long (default %(default)g)",
    )
    return parent


class Command:
    """The argparse handler of one client command: resolve the session, run, map errors."""

    def __init__(self, name: str, handler: Handler) -> None:
        self.name = name
        self.handler = handler

    def __call__(self, args: argparse.Namespace) -> int:
        out = Output(json_mode=args.json)
        session: Session | None = None
        try:
            session = Session.resolve(args, os.environ, out)
            return self.handler(session, args)
        except OpsfleetError as exc:
            print(f"opsfleet {self.name}: {self._explain(exc, session)}", file=sys.stderr)
            return exit_code_for(exc)
        finally:
            if session is not None:
                session.close()

    def _explain(self, exc: OpsfleetError, session: Session | None) -> str:
        """The error's message, plus a hint when the server refused a token we sent."""
        refused = isinstance(exc, Unauthenticated) and not isinstance(exc, NotLoggedIn)
        if refused and session is not None and session.token and self.name != "login":
            hint = f"the token from {session.token_source} was refused: run `opsfleet login` again"
            return f"{exc.message}; {hint}"
        if isinstance(exc, ResourceExhausted) and exc.retry_after is not None:
            wait = max(1, math.ceil(exc.retry_after))
            at = time.strftime("%H:%M:%S", time.gmtime(time.time() + wait))
            return f"{exc.message}; retry after {wait}s (at {at} UTC)"
        return exc.message


def add_command(
    sub: Any,
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str,
    parents: list[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """A leaf command ``name`` under ``sub`` with the common flags and the exit-code epilog."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name.rsplit(" ", 1)[-1],
        help=help,
        description=description,
        epilog=EPILOG,
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=Command(name, handler))
    return parser


def group(sub: Any, name: str, *, help: str, description: str) -> Any:
    """A command group (``nodes``, ``agents``, ...) whose subcommand is required."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)
