"""A daemon-side client that knows only PROTOCOL.md (run as a separate process, no opsfleet imports).

Usage: python seed_client.py HOST:PORT   (with the modules generated from seed_proto/ on sys.path)
Prints one JSON object with what each call returned.
"""

from __future__ import annotations

import json
import sys
import time

import grpc
import seed_daemon_pb2 as d
import seed_daemon_pb2_grpc as dg
import seed_manager_pb2 as m
import seed_manager_pb2_grpc as mg


def main(target: str) -> dict[str, object]:
    out: dict[str, object] = {}
    with grpc.insecure_channel(target) as channel:
        manager = mg.ManagerServiceStub(channel)
        daemon = dg.DaemonServiceStub(channel)
        req = m.RegisterNodeRequest(
            node_id="seed-1", hostname="seedhost", ip="10.9.9.9", os="linux", arch="amd64"
        )
        out["register"] = manager.RegisterNode(req, timeout=5).success
        out["heartbeat"] = manager.Heartbeat(
            m.HeartbeatRequest(node_id="seed-1", timestamp=1), timeout=5
        ).success
        metrics = [m.MetricData(type="cpu", timestamp=int(time.time()), values={"usage_percent": 5.0})]
        report = manager.ReportMetrics(m.ReportMetricsRequest(node_id="seed-1", metrics=metrics), timeout=5)
        out["metrics"] = report.success
        assigned = daemon.Register(d.RegisterRequest(hostname="seedhost2", ip="10.9.9.8"), timeout=5)
        out["assigned_id"] = assigned.node_id if assigned.success else ""
        hb = daemon.Heartbeat(d.HeartbeatRequest(node_id=assigned.node_id, status="ok"), timeout=5)
        out["daemon_heartbeat"] = hb.success
        data = json.dumps({"memory": {"usage_percent": 33.0}}).encode()
        mr = daemon.ReportMetrics(
            d.MetricsRequest(node_id=assigned.node_id, timestamp=int(time.time()), data=data)
        )
        out["daemon_metrics"] = mr.success
        cfg = daemon.GetConfig(d.ConfigRequest(node_id=assigned.node_id, config_type="agent"), timeout=5)
        out["config"] = cfg.success
        states = [d.AgentState(agent_id="filebeat", status="running", pid=42, type="filebeat", version="8.1")]
        sync = daemon.SyncAgentStates(
            d.SyncAgentStatesRequest(node_id=assigned.node_id, states=states), timeout=5
        )
        out["sync"] = sync.success
        try:
            manager.Heartbeat(m.HeartbeatRequest(node_id="never-registered"), timeout=5)
            out["unknown_heartbeat"] = "OK"
        except grpc.RpcError as exc:
            out["unknown_heartbeat"] = exc.code().name
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
