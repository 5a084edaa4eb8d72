"""The password policy for every password set through REST, the CLI or the first-admin bootstrap.

A password must be 12-128 characters long, must not be a known common password (the shipped
list of 19,640, compared case-insensitively) and must not equal or contain the username
(case-insensitively). Each refusal is an InvalidArgument whose message names the rule.
"""

from __future__ import annotations

import functools
import gzip
from importlib import resources

from opsfleet.common.errors import InvalidArgument

MIN_LENGTH = 12
MAX_LENGTH = 128
_COMMON_FILE = "common-passwords.txt.gz"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lowercased; read once per process."""
    data = resources.files("opsfleet.manager.services").joinpath("data", _COMMON_FILE).read_bytes()
    text = gzip.decompress(data).decode("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def check_password(password: str, username: str, field: str = "password") -> str:
    """``password`` when it satisfies the policy for ``username``; InvalidArgument naming the rule."""
    if len(password) < MIN_LENGTH:
        raise InvalidArgument(f"{field} must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidArgument(f"{field} must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise InvalidArgument(f"{field} must not contain the username")
    if lowered in common_passwords():
        raise InvalidArgument(f"{field} is a commonly used password; choose a less guessable one")
    return password
