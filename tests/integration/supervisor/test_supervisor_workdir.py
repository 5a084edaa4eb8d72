"""An agent's work_dir: created when missing, a clear failure (no restart loop) when impossible."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from opsfleet.common.errors import Unavailable
from opsfleet.daemon.supervisor import AgentSpec, AgentStatus, Supervisor

S = AgentStatus
Program = Callable[..., AgentSpec]
Start = Callable[..., Awaitable[Supervisor]]
Eventually = Callable[..., Awaitable[Any]]


async def test_a_missing_work_dir_is_created_with_its_parents(
    supervisor: Start, program: Program, eventually: Eventually, tmp_path: Path
) -> None:
    work = tmp_path / "not" / "yet" / "there"
    sup = await supervisor(program("a", "forever.py", "--interval", "3600", work_dir=str(work)))
    await eventually(lambda: sup.agent("a").state is S.RUNNING)
    assert work.is_dir()
    assert psutil.Process(sup.agent("a").pid).cwd() == str(work)
    assert sup.agent("a").restart_count == 0


async def test_a_work_dir_that_cannot_be_created_fails_the_agent_at_once(
    supervisor: Start, program: Program, eventually: Eventually, tmp_path: Path
) -> None:
    (tmp_path / "plain-file").write_text("")
    work = tmp_path / "plain-file" / "sub"
    spec = program("a", "forever.py", work_dir=str(work), restart={"policy": "always", "max_retries": 5})
    sup = await supervisor(spec)
    await eventually(lambda: sup.agent("a").state is S.FAILED)
    view = sup.agent("a")
    assert view.last_exit_reason == f"cannot create work_dir '{work}': Not a directory"
    assert (view.restart_count, view.pid, view.status) == (0, 0, "error")
    with pytest.raises(Unavailable, match="cannot create work_dir"):
        await sup.operate("a", "start", timeout=5)
    assert sup.agent("a").restart_count == 0
