"""The fleet-wide agents page (filters, a bulk restart by node selector) and the node
timeline's kind filter, in headless Chromium against a real `opsfleet demo`. Screenshots of
every step go to test-artifacts/browser/ and to the test's tmp dir."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.support import OpenSession, Session

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


async def _shot(s: Session, tmp_path: Path, step: str) -> None:
    path = await s.shot(step)
    shutil.copy(path, tmp_path / path.name)


async def test_fleet_agents_page_bulk_restart(open_session: OpenSession, tmp_path: Path) -> None:
    s = await open_session("fleet-agents")
    await s.sign_in()
    await s.page.get_by_test_id("nav-agents").click()
    row = s.page.locator('[data-testid="fleet-agent-row"][data-agent-id="sample"]')
    await expect(row).to_have_attribute("data-status", "running")
    await expect(row.get_by_test_id("fleet-agent-pid")).to_have_text(re.compile(r"^\d+$"))
    before = await row.get_by_test_id("fleet-agent-pid").inner_text()
    await s.page.get_by_test_id("fleet-filter-state").select_option("error")
    await expect(s.page.get_by_test_id("fleet-agents-table")).to_contain_text("No agent matches")
    await s.page.get_by_test_id("fleet-filter-state").select_option("")
    await expect(row).to_be_visible()
    await _shot(s, tmp_path, "list")

    await s.page.get_by_test_id("bulk-agent").fill("sample")
    await s.page.get_by_test_id("bulk-selector").fill("env=demo")
    await s.page.get_by_test_id("bulk-preview").click()
    await expect(s.page.get_by_test_id("bulk-outcome")).to_have_text("1 node would be operated")
    await expect(s.page.get_by_test_id("bulk-result")).to_have_count(1)
    await _shot(s, tmp_path, "preview")

    await s.page.get_by_test_id("bulk-run").click()
    await expect(s.page.get_by_test_id("bulk-outcome")).to_have_text("restart sample: 1 ok, 0 failed")
    result = s.page.get_by_test_id("bulk-result")
    await expect(result).to_have_attribute("data-success", "true")
    await expect(result).not_to_contain_text(before)
    await expect(row.get_by_test_id("fleet-agent-pid")).not_to_have_text(before)
    await _shot(s, tmp_path, "restarted")

    await s.page.get_by_test_id("bulk-selector").fill("env=nowhere")
    await s.page.get_by_test_id("bulk-preview").click()
    await expect(s.page.get_by_test_id("bulk-outcome")).to_have_text("0 nodes would be operated")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [  # noqa: ASYNC240
        "fleet-agents-01-list.png",
        "fleet-agents-02-preview.png",
        "fleet-agents-03-restarted.png",
    ]


async def test_node_timeline_filters_by_kind(open_session: OpenSession, tmp_path: Path) -> None:
    s = await open_session("timeline")
    await s.sign_in()
    await s.page.get_by_test_id("nav-agents").click()  # a fresh operation to find in the timeline
    await s.page.locator('[data-testid="fleet-agent-row"][data-agent-id="sample"] a.node-name').click()
    agent = s.page.locator('[data-testid="agent-row"][data-agent-id="sample"]')
    await expect(agent).to_have_attribute("data-status", "running")
    await expect(agent.get_by_test_id("operate-stop")).to_be_visible()
    await expect(agent.get_by_test_id("operate-start")).to_have_count(0)  # not offered while running
    await expect(agent.get_by_test_id("agent-restarts")).to_have_text(
        re.compile(r"^\d+$")
    )  # the daemon's count
    await agent.get_by_test_id("operate-restart").click()
    await expect(s.page.get_by_test_id("operate-result")).to_contain_text(re.compile(r"now \w+ \(pid \d+\)"))

    events = s.page.get_by_test_id("event")
    await s.page.get_by_test_id("events-filter").select_option("operation")
    await expect(events.first).to_have_attribute("data-kind", "operation")
    await expect(events.first).to_contain_text("restart of agent sample by operator admin: ok")
    await expect(s.page.locator('[data-testid="event"]:not([data-kind="operation"])')).to_have_count(0)
    await _shot(s, tmp_path, "operations")

    await s.page.get_by_test_id("events-filter").select_option("agent-state")
    await expect(events.first).to_have_attribute("data-kind", "agent-state")
    await expect(events.first).to_contain_text("by operator admin")
    await _shot(s, tmp_path, "agent-states")

    await s.page.get_by_test_id("events-filter").select_option("")
    await expect(s.page.locator('[data-testid="event"][data-kind="registered"]').first).to_be_visible()
    assert "events=agent-state" not in s.page.url
    await _shot(s, tmp_path, "all")

    # A stopped agent (no PID) is offered Start only; Stop and Restart come back once it runs.
    await agent.get_by_test_id("operate-stop").click()
    await expect(agent).to_have_attribute("data-status", "stopped")
    await expect(agent.get_by_test_id("operate-stop")).to_have_count(0)
    await expect(agent.get_by_test_id("operate-restart")).to_have_count(0)
    await _shot(s, tmp_path, "stopped")
    await agent.get_by_test_id("operate-start").click()
    await expect(agent.get_by_test_id("operate-stop")).to_be_visible()

    # The fleet-wide timeline page filters by kind too.
    await s.page.get_by_test_id("nav-events").click()
    await s.page.get_by_test_id("fleet-events-kind").select_option("operation")
    rows = s.page.get_by_test_id("fleet-event")
    await expect(rows.first).to_contain_text("start of agent sample by operator admin: ok")
    await expect(s.page.locator('[data-testid="fleet-event"]:not([data-kind="operation"])')).to_have_count(0)
    assert await rows.count() >= 3  # restart, stop, start
    await _shot(s, tmp_path, "fleet-events")
