"""The security-related commands as real processes: ca fingerprint, --insecure, daemon enroll."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from opsfleet.cli import main
from tests.integration.security.support import Fleet
from tests.processes import Proc


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``opsfleet ARGV`` in this process (in a thread: the commands block); (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_manager_creates_the_ca_and_ca_fingerprint_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    proc = await Proc.start(
        [
            "manager",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data),
            "--database-url",
            f"sqlite:///{tmp_path / 'm.db'}",
        ],
        env={"OPSFLEET_ENROLLMENT__PORT": "0"},
    )
    try:
        logged = (await proc.wait_for_line(r"fleet CA created .*fingerprint (sha256:[0-9a-f]{64})")).group(1)
        await proc.wait_for_line(r"gRPC listening on \S+ \(mTLS, fleet CA\)")
        await proc.wait_for_line(r"enrollment listening on \S+:\d+ \(TLS\)")
    finally:
        assert await proc.stop() == 0
    assert (data / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert "INSECURE" not in proc.output

    code, out, _ = await run_cli(capsys, "ca", "fingerprint", "--data-dir", str(data))
    assert code == 0
    assert out.splitlines() == [logged]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", logged)

    code, _, err = await run_cli(capsys, "ca", "fingerprint", "--data-dir", str(tmp_path / "none"))
    assert code == 3
    assert "no fleet CA" in err


async def test_insecure_manager_warns_at_start(tmp_path: Path) -> None:
    proc = await Proc.start(
        [
            "manager",
            "--insecure",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "d"),
        ]
    )
    try:
        await proc.wait_for_line(r"gRPC listening on \S+ \(plaintext, INSECURE\)")
    finally:
        await proc.stop()
    warnings = [line for line in proc.lines if "INSECURE MODE" in line]
    assert len(warnings) >= 2, proc.output  # on stderr before logging starts, and in the log
    assert not (tmp_path / "d" / "ca").exists()


async def test_daemon_enroll_command(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = await fleet.token(max_uses=1)
    work = tmp_path / "w"
    args = ["daemon", "enroll", "--manager", fleet.enroll_address, "--token", token]

    code, _, err = await run_cli(
        capsys, *args, "--work-dir", str(work), "--ca-fingerprint", "sha256:" + "0" * 64
    )
    assert code != 0
    assert "fingerprint mismatch" in err and "nothing was written" in err
    assert not (work / "tls").exists()

    bare_hex = fleet.fingerprint.upper().replace("SHA256:", "")
    code, out, err = await run_cli(capsys, *args, "--work-dir", str(work), "--ca-fingerprint", bare_hex)
    assert code == 0, err
    node_id = (work / "node_id").read_text().strip()
    assert out.splitlines() == [node_id]
    assert sorted(p.name for p in (work / "tls").iterdir()) == ["ca.pem", "node.key", "node.pem"]

    other = tmp_path / "w2"
    code, _, err = await run_cli(
        capsys, *args, "--work-dir", str(other), "--ca-fingerprint", fleet.fingerprint
    )
    assert code != 0
    assert "used up" in err
    assert not (other / "tls").exists()
