"""Helpers of the fault-injection suite: spool prefills, row counts straight from SQLite, figures."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsfleet.daemon.spool import Spool
from opsfleet.manager.store.metric_codec import block_points, point_entries
from opsfleet.manager.store.metric_raw import union
from opsfleet.proto import manager_pb2, manager_pb2_grpc

FIGURES_FILE = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability" / "figures.txt"


def prefill_spool(work_dir: Path, records: list[dict[str, Any]]) -> None:
    """Leave ``records`` in the daemon's spool, as an earlier outage would have."""
    with Spool(work_dir / "spool") as spool:
        spool.append(records)


def recent_samples(count: int, *, type_: str = "custom.fault") -> list[dict[str, Any]]:
    """``count`` distinct samples of one type, one second apart, the last one an hour ago."""
    start = int(time.time()) - 3600 - count
    return [{"type": type_, "timestamp": start + i, "values": {"seq": float(i)}} for i in range(count)]


def row_counts(db_file: Path, node_id: str) -> dict[tuple[str, int], int]:
    """Samples per (type, timestamp) of one node, read with SQL (not through the store's API)."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
    try:
        conn.execute("BEGIN")  # one read snapshot: a sample folded meanwhile is seen once
        names = dict(conn.execute("SELECT type_key, name FROM metric_types").fetchall())
        rows = conn.execute(
            "SELECT p.ts, p.data FROM metric_points AS p JOIN node_keys AS k ON k.node_key = p.node_key "
            "WHERE k.node_id = ?",
            (node_id,),
        ).fetchall()
        blocks = conn.execute(
            "SELECT b.bucket, b.data FROM metric_blocks AS b JOIN node_keys AS k ON k.node_key = b.node_key "
            "WHERE k.node_id = ?",
            (node_id,),
        ).fetchall()
    finally:
        conn.close()
    # Point rows and the blocks the rollup job folded them into: one sample in both is stored once.
    folded = ((ts, point) for bucket, data in blocks for ts, point in block_points(bucket, data))
    counts: dict[tuple[str, int], int] = {}
    for ts, data in union(folded, ((ts, bytes(data)) for ts, data in rows)).items():
        for type_key, _ in point_entries(data):
            counts[(names[type_key], ts)] = counts.get((names[type_key], ts), 0) + 1
    return counts


@dataclass(frozen=True)
class Figures:
    """What a delivery fault run did, for docs/reliability.md."""

    sent: int  # samples carried by ReportMetrics calls, resends included
    acked: int  # samples the daemon saw confirmed
    stored: int  # rows in the database
    duplicated: int  # rows beyond one per (node, type, timestamp)
    lost: int  # samples taken that are not stored

    def line(self, name: str) -> str:
        return (
            f"FIGURES {name}: sent={self.sent} acked={self.acked} stored={self.stored}"
            f" duplicated={self.duplicated} lost={self.lost}"
        )


def figures(daemon: Any, counts: dict[tuple[str, int], int], expected: set[tuple[str, int]]) -> Figures:
    stored = sum(counts.values())
    return Figures(
        sent=daemon.link.delivery.samples_sent,
        acked=daemon.link.delivery.samples_stored,
        stored=stored,
        duplicated=stored - len(counts),
        lost=len(expected - set(counts)),
    )


def publish(line: str) -> None:
    """Print a FIGURES line and append it, timestamped, to test-artifacts/reliability/figures.txt."""
    print(line)
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with FIGURES_FILE.open("a", encoding="utf-8") as out:
        out.write(f"{stamp} {line}\n")


class ScriptedManager(manager_pb2_grpc.ManagerServiceServicer):
    """A ManagerService that accepts every registration and heartbeat (counting registrations);
    subclasses script ReportMetrics to inject a fault."""

    def __init__(self) -> None:
        self.registrations = 0

    async def RegisterNode(self, request: Any, context: Any) -> manager_pb2.RegisterNodeResponse:
        self.registrations += 1
        return manager_pb2.RegisterNodeResponse(success=True, message="ok")

    async def Heartbeat(self, request: Any, context: Any) -> manager_pb2.HeartbeatResponse:
        return manager_pb2.HeartbeatResponse(success=True, message="ok")
