"""SQLite stays single-replica: a second Manager on the same file is refused at start."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.processes import Proc


def _manager(data_dir: Path) -> list[str]:
    return [
        "manager",
        "--insecure",
        "--grpc-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
    ]


async def test_second_manager_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    first = await Proc.start(_manager(tmp_path / "d"))
    try:
        await first.grpc_port()
        second = await Proc.start(_manager(tmp_path / "d"))
        assert await second.wait(timeout=30) != 0
        assert "SQLite supports one Manager only" in second.output, second.output
        assert f"pid {first.proc.pid}" in second.output
        assert "gRPC listening" not in second.output
        assert "leader" in first.output  # the single Manager is the leader
    finally:
        await first.stop()

    # The lock dies with its process (kill -9 included): a new Manager starts at once.
    again = await Proc.start(_manager(tmp_path / "d"))
    await again.grpc_port()
    again.proc.send_signal(signal.SIGKILL)
    await again.wait()
    last = await Proc.start(_manager(tmp_path / "d"))
    try:
        await last.grpc_port()
    finally:
        assert await last.stop() == 0
