"""The fleet's update keys handed over at enrollment, kept in ``work_dir/tls/update-keys.json``.

The Manager's EnrollResponse and RenewResponse carry the public keys (base64 Ed25519) it
signs packages with; the daemon trusts them for PushUpdate besides ``update.trusted_keys``.
Each renewal replaces the list (an empty list removes the file), so a key the Manager no
longer holds stops being trusted at the next renewal. The file is read at every PushUpdate:
an ``opsfleet daemon enroll`` run while the daemon is up takes effect at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from opsfleet.common.certs import node_tls_dir, write_public
from opsfleet.common.errors import InvalidArgument
from opsfleet.common.signing import check_public_key

log = logging.getLogger(__name__)

FILE_NAME = "update-keys.json"


def keys_path(work_dir: Path) -> Path:
    return node_tls_dir(work_dir) / FILE_NAME


def check_keys(keys: Sequence[str]) -> list[str]:
    """The keys, stripped; InvalidArgument when one is not a base64 Ed25519 public key."""
    cleaned = [key.strip() for key in keys]
    for key in cleaned:
        try:
            check_public_key(key)
        except InvalidArgument as exc:
            raise InvalidArgument(f"the Manager handed over an invalid update key: {exc.message}") from exc
    return cleaned


def save_keys(work_dir: Path, keys: Sequence[str]) -> None:
    """Replace the stored fleet keys (atomically); no keys: remove the file."""
    cleaned = check_keys(keys)
    path = keys_path(work_dir)
    if not cleaned:
        path.unlink(missing_ok=True)
        return
    write_public(path, (json.dumps({"keys": cleaned}, indent=2) + "\n").encode())


def load_keys(work_dir: Path) -> list[str]:
    """The stored fleet keys; [] without the file. A damaged file is logged and trusts nothing."""
    path = keys_path(work_dir)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("cannot read the fleet update keys in %s (%s): they are not trusted", path, exc)
        return []
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        log.warning("%s holds no list of keys: they are not trusted", path)
        return []
    try:
        return check_keys(keys)
    except InvalidArgument as exc:
        log.warning("%s: %s; they are not trusted", path, exc.message)
        return []
