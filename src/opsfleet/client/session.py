"""One command's connection settings: which server, which token, how long to wait.

Precedence for each: the command-line flag, then the environment (``OPSFLEET_SERVER``,
``OPSFLEET_TOKEN``), then the stored login. The stored token is only sent to the server it
was issued by, so ``--server other`` never leaks it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from opsfleet.client.api import ApiClient
from opsfleet.client.errors import NotLoggedIn, UsageError
from opsfleet.client.output import Output
from opsfleet.client.profile import Profile, load_profile, profile_path, save_profile

DEFAULT_SERVER = "http://127.0.0.1:8080"
ENV_SERVER = "OPSFLEET_SERVER"
ENV_TOKEN = "OPSFLEET_TOKEN"


def normalize_server(url: str, *, key: str = "--server") -> str:
    """``url`` as ``scheme://host[:port][/path]`` without a trailing slash (``http://`` when omitted)."""
    value = url.strip()
    if "://" not in value:
        value = f"http://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{key}: expected a URL like http://manager:8080, got {url!r}")
    return value.rstrip("/")


@dataclass
class Session:
    """Settings resolved from flags, environment and the stored login; owns the API clients it opens."""

    out: Output
    profile_file: Path
    profile: Profile
    server: str
    token: str
    token_source: str
    timeout: float
    _clients: list[ApiClient] = field(default_factory=list)

    @classmethod
    def resolve(cls, args: argparse.Namespace, env: Mapping[str, str], out: Output) -> Session:
        path = profile_path(args.profile_file, env)
        profile = load_profile(path)
        if args.server:
            server = normalize_server(args.server)
        elif env.get(ENV_SERVER):
            server = normalize_server(env[ENV_SERVER], key=ENV_SERVER)
        elif profile.server:
            server = normalize_server(profile.server, key=f"server in {path}")
        else:
            server = DEFAULT_SERVER
        token, source = "", ""
        if args.token:
            token, source = args.token, "--token"
        elif env.get(ENV_TOKEN):
            token, source = env[ENV_TOKEN], ENV_TOKEN
        elif profile.token and profile.server and normalize_server(profile.server) == server:
            token, source = profile.token, str(path)
        return cls(out, path, profile, server, token, source, args.timeout)

    def api(self, *, auth: bool = True) -> ApiClient:
        """A client for the server; with ``auth`` it carries the token (NotLoggedIn without one)."""
        if auth and not self.token:
            raise NotLoggedIn(self._not_logged_in())
        client = ApiClient(self.server, token=self.token if auth else None, timeout=self.timeout)
        self._clients.append(client)
        return client

    def _not_logged_in(self) -> str:
        if self.profile.token and self.profile.server:
            return (
                f"not logged in to {self.server} (the stored login is for {self.profile.server}): "
                f"run `opsfleet login --server {self.server}`"
            )
        return "not logged in: run `opsfleet login` (or pass --token / set OPSFLEET_TOKEN)"

    def save(self, profile: Profile) -> None:
        save_profile(self.profile_file, profile)
        self.profile = profile

    @property
    def token_from_profile(self) -> bool:
        return self.token_source == str(self.profile_file)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
