"""A client that knows only PROTOCOL.md pushes an agent update (separate process, no opsfleet imports).

Usage: python seed_update_client.py HOST:PORT COMPONENT VERSION PACKAGE_FILE HASH SIGNATURE AGENT_ID
Prints one JSON object: the PushUpdate answer, then the agent's version and status once
ListAgents reports the new version running (or after 20 s).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import grpc
import seed_daemon_pb2 as d
import seed_daemon_pb2_grpc as dg


def main(
    target: str, component: str, version: str, package: str, sha: str, sig: str, agent: str
) -> dict[str, object]:
    with grpc.insecure_channel(target) as channel:
        daemon = dg.DaemonServiceStub(channel)
        request = d.UpdateRequest(
            node_id="",
            component=component,
            version=version,
            hash=sha,
            signature=sig,
            update_data=Path(package).read_bytes(),
        )
        reply = daemon.PushUpdate(request, timeout=10)
        out: dict[str, object] = {"success": reply.success, "message": reply.message}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            agents = {a.id: a for a in daemon.ListAgents(d.ListAgentsRequest(), timeout=5).agents}
            info = agents[agent]
            out["version"], out["status"] = info.version, info.status
            if info.version == version and info.status == "running":
                break
            time.sleep(0.1)
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:8])))
