"""Asking the operator for names and passwords: on the terminal, or one line each from stdin.

Prompts go to stderr so that stdout stays clean for ``--json``.
"""

from __future__ import annotations

import getpass
import sys

from opsfleet.client.errors import UsageError


def stdin_line(what: str) -> str:
    """The next line of stdin without its line ending (UsageError at end of input)."""
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"--password-stdin: stdin ended before the {what}")
    return line.rstrip("\r\n")


def ask(prompt: str, default: str = "") -> str:
    """A visible answer (e.g. a username); ``default`` when the answer is empty."""
    shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
    sys.stderr.write(shown)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"no {prompt.lower()} given")
    return line.strip() or default


def secret(what: str, *, from_stdin: bool) -> str:
    """A password: the next stdin line with ``--password-stdin``, else asked without echo."""
    value = stdin_line(what) if from_stdin else getpass.getpass(f"{what.capitalize()}: ", stream=sys.stderr)
    if not value:
        raise UsageError(f"the {what} is empty")
    return value


def new_secret(what: str, *, from_stdin: bool) -> str:
    """A new password; asked twice on the terminal (UsageError when the two differ)."""
    value = secret(what, from_stdin=from_stdin)
    if not from_stdin and getpass.getpass(f"Repeat the {what}: ", stream=sys.stderr) != value:
        raise UsageError(f"the two entries of the {what} differ")
    return value
