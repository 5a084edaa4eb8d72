"""Waiting for supervised processes costs no thread per child (a daemon supervises many agents)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, threading
    from opsfleet.common.lifecycle import watch_children_without_threads

    async def main() -> None:
        installed = watch_children_without_threads()
        child = "import sys, time; time.sleep(0.5); sys.exit({})"
        run = asyncio.create_subprocess_exec
        procs = [await run(sys.executable, "-c", child.format(n)) for n in range(4)]
        waiters = sum(t.name.startswith("asyncio-waitpid") for t in threading.enumerate())
        codes = [await p.wait() for p in procs]
        print(installed, waiters, codes)

    asyncio.run(main())
    """
)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+ waits on pidfds by default")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pidfds are Linux's")
def test_four_children_are_awaited_without_a_waitpid_thread_each() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    # Before: Python 3.11's ThreadedChildWatcher, "False 4 [0, 1, 2, 3]".
    assert out.stdout.strip().split(maxsplit=2) == ["True", "0", "[0, 1, 2, 3]"], out
