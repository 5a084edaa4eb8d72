"""Support code of the browser tests: the demo's address and password, and a dashboard page.

Chromium is Debian's package at /usr/bin/chromium (``scripts/ensure_chromium.sh`` installs it;
``make test`` runs that first), driven by Playwright; Playwright's own browser downloads are
never used. Screenshots go to ``test-artifacts/browser/`` at the repository root.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from opsfleet.manager.app import ManagerApp
from opsfleet.manager.config import load_manager_config
from tests.processes import Proc

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# The dashboard polls every 5 s: waiting for the next poll must fit in an expectation.
TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Demo:
    """A running `opsfleet demo`: its dashboard URL and admin password, as it printed them."""

    url: str
    password: str
    proc: Proc | None = None


@contextlib.asynccontextmanager
async def in_process_manager(data: Path, password: str, **overrides: Any) -> AsyncIterator[ManagerApp]:
    """A started Manager in this process: plaintext gRPC and HTTP on 127.0.0.1:0, SQLite in
    ``data``, ``admin`` / ``password``; ``overrides`` are dotted config keys."""
    config = load_manager_config(
        None,
        {},
        {
            "grpc.host": "127.0.0.1",
            "grpc.port": 0,
            "grpc.tls.mode": "off",
            "grpc.shutdown_grace": 1.0,
            "server.host": "127.0.0.1",
            "server.port": 0,
            "enrollment.port": 0,
            "data_dir": str(data / "data"),
            "database.url": f"sqlite:///{data / 'manager.db'}",
            "auth.admin_password": password,
            **overrides,
        },
    )
    app = ManagerApp(config)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


class Session:
    """A page of the dashboard; collects uncaught script errors and Content-Security-Policy
    violations, and takes numbered screenshots."""

    def __init__(self, page: Page, demo: Demo, name: str) -> None:
        self.page = page
        self.demo = demo
        self.name = name
        self.script_errors: list[str] = []
        self._shots = 0
        page.on("pageerror", lambda exc: self.script_errors.append(str(exc)))
        # The Manager's Content-Security-Policy: anything it blocks is a broken page.
        page.on(
            "console",
            lambda msg: (
                self.script_errors.append(msg.text) if "Content Security Policy" in msg.text else None
            ),
        )
        page.set_default_timeout(TIMEOUT_MS)

    async def shot(self, step: str, *, full_page: bool = True) -> Path:
        self._shots += 1
        path = ARTIFACTS / f"{self.name}-{self._shots:02d}-{step}.png"
        if full_page:  # from the top, so that the sticky top bar stays at the top of the picture
            await self.page.evaluate("window.scrollTo(0, 0)")
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    async def login(self, password: str | None = None) -> None:
        """Sign in as admin from the login page (only submits: the caller checks the outcome)."""
        page = self.page
        await page.goto(self.demo.url)
        await page.get_by_label("Username").fill("admin")
        await page.get_by_label("Password").fill(password or self.demo.password)
        await page.get_by_test_id("login-submit").click()

    async def sign_in(self) -> None:
        """Sign in as admin and wait for the overview to show the fleet's numbers."""
        await self.login()
        await expect(self.page.get_by_test_id("stat-total")).to_have_text(re.compile(r"^\d+$"))

    async def body_overflow(self) -> int:
        """How many CSS pixels the page is wider than the window (0: no horizontal scrolling)."""
        width: int = await self.page.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth"
        )
        return width


OpenSession = Callable[..., Awaitable[Session]]
