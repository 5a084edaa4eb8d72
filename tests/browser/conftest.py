"""Fixtures of the browser tests: one `opsfleet demo` subprocess and one headless Chromium per
module (module event loop); each test opens its own browser context with ``open_session``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, async_playwright, expect

from tests.browser.support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    Demo,
    OpenSession,
    Session,
)
from tests.helpers import free_port
from tests.processes import Proc

DEMO_START_TIMEOUT = 60.0

expect.set_options(timeout=TIMEOUT_MS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """`opsfleet demo` on free 127.0.0.1 ports with a 1 s interval, running until the module ends."""
    data = tmp_path_factory.mktemp("demo")
    proc = await Proc.start(
        [
            "demo",
            "--data-dir",
            str(data / "state"),
            "--http-listen",
            f"127.0.0.1:{free_port()}",
            "--grpc-listen",
            f"127.0.0.1:{free_port()}",
            "--enroll-listen",
            f"127.0.0.1:{free_port()}",
            "--interval",
            "1s",
        ],
        cwd=data,
    )
    try:
        url = (await proc.wait_for_line(r"Dashboard: (http://\S+)", DEMO_START_TIMEOUT)).group(1)
        password = (await proc.wait_for_line(r"Log in as admin / (\S+)", 5.0)).group(1)
        yield Demo(url=url, password=password, proc=proc)
    finally:
        await proc.stop()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, and the screenshot folder (emptied once per run by tests/conftest.py)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (make test does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def open_session(browser: Browser, demo: Demo) -> AsyncIterator[OpenSession]:
    """open_session(name, width=1280, height=800) -> a Session in a fresh browser context.

    At teardown the contexts are closed and any uncaught script error of their pages fails the test.
    """
    contexts: list[BrowserContext] = []
    sessions: list[Session] = []

    async def open_(name: str, width: int = 1280, height: int = 800) -> Session:
        context = await browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        session = Session(await context.new_page(), demo, name)
        sessions.append(session)
        return session

    yield open_
    for context in contexts:
        await context.close()
    for session in sessions:
        assert not session.script_errors, f"uncaught script errors in {session.name}: {session.script_errors}"
