"""The SQLite database's filesystem fills up: writes answer UNAVAILABLE, /ready 503, no corruption,
and everything works again once space is freed.

The filesystem is a small tmpfs mounted for the test (needs root / CAP_SYS_ADMIN); where
mounting is impossible the test is skipped with the reason. Before /ready looked at write
outcomes, it stayed 200 on a full disk (its check was a read).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.faults.outages import (
    Manager,
    assert_stays_not_ready,
    integrity_ok,
    recent_timestamps,
    start_manager,  # noqa: F401 (fixture)
)
from tests.helpers import assert_eventually

SIZE = "32m"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs, unmounted at teardown; the test is skipped where mounting is impossible."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; the file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    with pytest.raises(OSError) as info:
        (directory / "probe").write_bytes(b"\0" * 4096)
    assert info.value.errno == errno.ENOSPC
    return filler


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)


async def test_full_disk_answers_unavailable_and_recovers(
    start_manager: Callable[..., Any],  # noqa: F811
    small_fs: Path,
) -> None:
    db = small_fs / "opsfleet.db"
    m: Manager = await start_manager(f"sqlite:///{db}")
    assert (await m.register("n1")).code == grpc.StatusCode.OK
    before = recent_timestamps(100)
    assert (await m.report("n1", before)).code == grpc.StatusCode.OK
    assert await m.ready() == 200

    filler = fill(small_fs)
    refused = recent_timestamps(1000, start=10_000)
    result = await m.report("n1", refused, timeout=8.0)
    assert result.code == grpc.StatusCode.UNAVAILABLE, result
    assert result.retry_ms is not None and result.retry_ms > 0, result
    assert (await m.register("n2", timeout=8.0)).code == grpc.StatusCode.UNAVAILABLE
    assert await m.ready() == 503
    await assert_stays_not_ready(m)

    os.unlink(filler)
    await assert_eventually(lambda: _is(m.ready(), 200), timeout=10, message="/ready 200 once space is free")
    after = recent_timestamps(1000, start=20_000)
    assert (await m.report("n1", after)).code == grpc.StatusCode.OK
    assert (await m.register("n2")).code == grpc.StatusCode.OK
    assert await m.stored("n1") == set(before) | set(after)
    assert integrity_ok(db)
