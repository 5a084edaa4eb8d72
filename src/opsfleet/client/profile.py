"""The stored login: server URL and token in a JSON file readable only by its owner.

Location, first match wins: ``--profile-file``, ``$OPSFLEET_CLI_CONFIG``,
``$XDG_CONFIG_HOME/opsfleet/cli.json``, ``~/.config/opsfleet/cli.json``. The file is
replaced atomically and created with mode 0600 (its directory 0700 when created).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from opsfleet.common.errors import ConfigError

ENV_PROFILE = "OPSFLEET_CLI_CONFIG"
FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True)
class Profile:
    """What ``opsfleet login`` remembers. Empty strings mean "not set"."""

    server: str = ""
    token: str = ""
    username: str = ""
    expires_at: str = ""


def profile_path(flag: str | None, env: Mapping[str, str]) -> Path:
    """Where the profile lives (see the module docstring for the order)."""
    if flag:
        return Path(flag).expanduser()
    if env.get(ENV_PROFILE):
        return Path(env[ENV_PROFILE]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "opsfleet" / "cli.json"


def load_profile(path: Path) -> Profile:
    """The profile in ``path``; an empty one when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Profile()
    except OSError as exc:
        raise ConfigError(f"cannot read the CLI profile {path}: {exc.strerror or exc}") from exc
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the CLI profile {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"the CLI profile {path} must hold a JSON object")
    values: dict[str, str] = {}
    for key in Profile.__dataclass_fields__:
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{key} in the CLI profile {path} must be a string")
        values[key] = value
    return Profile(**values)


def save_profile(path: Path, profile: Profile) -> None:
    """Write ``profile`` to ``path`` atomically with mode 0600."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=DIR_MODE, parents=True)
        fd, tmp = tempfile.mkstemp(prefix=".cli-", suffix=".json", dir=path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(profile), fh, indent=2)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write the CLI profile {path}: {exc.strerror or exc}") from exc
