"""Packages the update tests build: a tiny agent script per version, tar.gz'd and signed."""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsfleet.common.signing import KeyPair, create_key_pair, sign
from opsfleet.proto import daemon_pb2

# Records its version in $MARKER_DIR/<pid>, then runs until stopped (or exits at once, also
# when $FAIL_VERSION names its version: one node of a fleet made to fail).
AGENT_SCRIPT = """\
import os, sys, time
version = {version!r}
marker = os.path.join(os.environ["MARKER_DIR"], str(os.getpid()))
with open(marker, "w") as out:
    out.write(version)
if {exit_at_once!r} or os.environ.get("FAIL_VERSION") == version:
    sys.exit(3)
while True:
    time.sleep(0.2)
"""


def agent_package(version: str, *, exit_at_once: bool = False) -> bytes:
    """A .tar.gz with ``bin/agent.py`` printing ``version`` into a marker file."""
    script = AGENT_SCRIPT.format(version=version, exit_at_once=exit_at_once).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("bin/agent.py")
        info.size = len(script)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(script))
    return buffer.getvalue()


def agent_spec(agent_id: str, marker_dir: Path, **env: str) -> dict[str, Any]:
    return {
        "id": agent_id,
        "type": "custom",
        "version": "0",
        "binary_path": sys.executable,
        "args": ["{package_dir}/bin/agent.py"],
        "env": {"MARKER_DIR": str(marker_dir), **env},
        "start_seconds": 0.3,
        "stop_timeout": 3,
        "restart": {"backoff_base": 0.2, "backoff_max": 0.5},
    }


@dataclass(frozen=True)
class Signer:
    keys: KeyPair

    @classmethod
    def new(cls) -> Signer:
        return cls(create_key_pair())

    def request(
        self,
        component: str,
        version: str,
        data: bytes,
        *,
        signed_component: str | None = None,
        signed_version: str | None = None,
        hash_override: str | None = None,
    ) -> daemon_pb2.UpdateRequest:
        digest = hashlib.sha256(data).hexdigest()
        signature = sign(
            self.keys.private_pem, signed_component or component, signed_version or version, digest
        )
        return daemon_pb2.UpdateRequest(
            component=component,
            version=version,
            hash=hash_override or digest,
            signature=signature,
            update_data=data,
        )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
