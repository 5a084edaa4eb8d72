"""A seed-contract client asking for its central config (separate process, no opsfleet imports).

Usage: python seed_get_config.py HOST:PORT NODE_ID LABEL=VALUE
Registers NODE_ID with the label through the seed ManagerService, then prints one JSON object
with GetConfig(node_id, "daemon")'s success flag and config_data (text).
"""

from __future__ import annotations

import json
import sys

import grpc
import seed_daemon_pb2 as d
import seed_daemon_pb2_grpc as dg
import seed_manager_pb2 as m
import seed_manager_pb2_grpc as mg


def main(target: str, node_id: str, label: str) -> dict[str, object]:
    key, _, value = label.partition("=")
    with grpc.insecure_channel(target) as channel:
        manager = mg.ManagerServiceStub(channel)
        daemon = dg.DaemonServiceStub(channel)
        req = m.RegisterNodeRequest(node_id=node_id, hostname="seedhost", ip="10.9.9.7", labels={key: value})
        manager.RegisterNode(req, timeout=5)
        cfg = daemon.GetConfig(d.ConfigRequest(node_id=node_id, config_type="daemon"), timeout=5)
    return {"success": cfg.success, "config_data": cfg.config_data.decode()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3])))
