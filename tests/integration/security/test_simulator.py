"""`opsfleet simulate --enroll`: every simulated node enrolls and speaks mTLS as itself."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.security.support import Fleet
from tests.processes import Proc


async def test_simulated_nodes_enroll_and_use_their_identity(fleet: Fleet, tmp_path: Path) -> None:
    token = await fleet.token(max_uses=20)
    report_file = tmp_path / "report.json"
    sim = await Proc.start(
        [
            *("simulate", "--target", f"127.0.0.1:{fleet.app.grpc_port}", "--nodes", "20", "--workers", "1"),
            *("--enroll", fleet.enroll_address, "--token", token, "--ca-fingerprint", fleet.fingerprint),
            *(
                "--duration",
                "3s",
                "--stagger",
                "0.5s",
                "--heartbeat-interval",
                "1s",
                "--progress-interval",
                "1",
                "--json",
                str(report_file),
            ),
        ]
    )
    assert await sim.wait(timeout=60) == 0, sim.output
    report = json.loads(report_file.read_text())
    assert report["registered_nodes"] == 20, report
    assert not report["errors_by_code"], report["errors_by_code"]
    identities = await fleet.app.enrollment_store.active_identities(0.0)
    assert len({i.node_id for i in identities}) == 20
    assert fleet.rpc_codes() == {"OK"}
    assert "enrolled 20 (" in sim.output  # the progress lines count enrollments
