"""The dashboard in real headless Chromium against a real `opsfleet demo`.

Every step leaves a screenshot in test-artifacts/browser/. The tests share the module's demo
and browser (module event loop) but each uses its own browser context and signs in itself.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

import psutil
import pytest
from playwright.async_api import expect

from opsfleet.common.signing import create_key_pair, sign
from tests.browser.support import OpenSession, Session

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

# The stroke colours of the node charts' series (static/js/charts.js COLORS). Network has two
# series; when both are flat at 0 the second (sent) hides the first.
BLUE, VIOLET, TEAL, ORANGE = (0x25, 0x63, 0xEB), (0x7C, 0x3A, 0xED), (0x0D, 0x94, 0x88), (0xEA, 0x58, 0x0C)
SERIES_RGB = {"cpu": [BLUE], "memory": [VIOLET], "disk": [TEAL], "network": [BLUE, ORANGE]}

SEVERAL = re.compile(r"^([2-9]|\d{2,})$")

# Opaque pixels of a series' colour on the chart canvas: drawn lines, not axes or grid.
COUNT_SERIES_PIXELS = """
([testid, colours]) => {
  const canvas = document.querySelector(`[data-testid="${testid}"]`);
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] < 200) continue;
    if (colours.some(([r, g, b]) => Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40
        && Math.abs(data[i + 2] - b) < 40)) count++;
  }
  return count;
}
"""


async def test_wrong_password_shows_the_api_message(open_session: OpenSession) -> None:
    s = await open_session("login-error")
    await s.login(password="not-the-password")
    banner = s.page.get_by_test_id("error-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("wrong username or password")
    await expect(banner).to_contain_text("code 1009")
    await s.shot("wrong-password")
    await expect(s.page.get_by_label("Password")).to_be_visible()


async def test_login_shows_the_demo_node_online(open_session: OpenSession) -> None:
    s = await open_session("nodes")
    await s.login()
    await expect(s.page.get_by_test_id("stat-online")).to_have_text("1")
    await expect(s.page.get_by_test_id("current-user")).to_contain_text("admin")
    await s.shot("overview")

    await s.page.get_by_role("link", name="Nodes", exact=True).click()
    rows = s.page.get_by_test_id("node-row")
    await expect(rows).to_have_count(1)
    await expect(rows.first.get_by_test_id("node-status")).to_have_text("online")
    await expect(rows.first).to_contain_text("env=demo")
    await s.shot("nodes-table")

    page = s.page
    await page.get_by_label("Status").select_option("offline")
    await expect(page.get_by_test_id("node-row")).to_have_count(0)
    await expect(page.get_by_test_id("nodes-table")).to_contain_text("No node matches")
    await page.get_by_label("Status").select_option("online")
    await expect(page.get_by_test_id("node-row")).to_have_count(1)
    await page.get_by_label("Search").fill("no-such-host")
    await expect(page.get_by_test_id("node-row")).to_have_count(0)
    await page.get_by_label("Search").fill("")
    await page.get_by_label("Labels").fill("env=demo, role=sample")
    await page.get_by_label("Labels").press("Enter")
    await expect(page.get_by_test_id("node-row")).to_have_count(1)
    assert "label=env%3Ddemo%2Crole%3Dsample" in page.url

    # A filter the API refuses: its message is shown, not swallowed.
    await page.get_by_label("Labels").fill("nocolon")
    await page.get_by_label("Labels").press("Enter")
    await expect(page.get_by_test_id("error-banner")).to_contain_text("label must be key=value")
    await expect(page.get_by_test_id("error-banner")).to_contain_text("code 1001")
    await s.shot("bad-label-filter")
    await page.get_by_role("button", name="Clear filters").click()
    await expect(page.get_by_test_id("error-banner")).to_be_hidden()
    await expect(page.get_by_test_id("node-row")).to_have_count(1)

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_test_id("login-form")).to_be_visible()


async def open_node(s: Session) -> str:
    """Sign in, open the demo node from the nodes table; its node id."""
    await s.sign_in()
    await s.page.goto(s.demo.url + "#/nodes")
    row = s.page.get_by_test_id("node-row").first
    node_id = await row.get_attribute("data-node-id")
    assert node_id
    await row.get_by_test_id("node-link").click()
    await expect(s.page.get_by_test_id("node-detail-status")).to_have_text("online")
    return node_id


async def test_node_detail_draws_the_charts(open_session: OpenSession) -> None:
    s = await open_session("node-detail")
    node_id = await open_node(s)
    assert node_id in s.page.url
    for chart, colours in SERIES_RGB.items():
        await expect(s.page.get_by_test_id(f"chart-{chart}")).to_have_attribute("data-points", SEVERAL)
        await s.page.wait_for_function(
            f"(arg) => ({COUNT_SERIES_PIXELS})(arg) > 20", arg=[f"chart-canvas-{chart}", colours]
        )
    await expect(s.page.get_by_test_id("event").first).to_be_visible()
    await expect(s.page.get_by_test_id("agent-logs")).to_contain_text("sample agent")
    await s.shot("charts")

    await s.page.get_by_test_id("range-selector").get_by_role("button", name="24h").click()
    await expect(s.page.get_by_test_id("range-note")).to_contain_text("Averages per")
    await expect(s.page.get_by_test_id("chart-cpu")).not_to_have_attribute("data-points", "0")
    assert "range=24h" in s.page.url
    await s.shot("charts-24h")


async def test_restart_the_sample_agent_shows_a_new_pid(open_session: OpenSession) -> None:
    s = await open_session("agent-restart")
    await open_node(s)
    row = s.page.locator('[data-testid="agent-row"][data-agent-id="sample"]')
    await expect(row.get_by_test_id("agent-status")).to_have_text("running")
    pid_cell = row.get_by_test_id("agent-pid")
    await expect(pid_cell).to_have_text(re.compile(r"^\d+$"))
    old_pid = await pid_cell.inner_text()
    await s.shot("before-restart")

    await row.get_by_test_id("operate-restart").click()
    await expect(s.page.get_by_test_id("operate-result")).to_contain_text("restart sample: done")
    await expect(pid_cell).not_to_have_text(old_pid)
    await expect(pid_cell).to_have_text(re.compile(r"^\d+$"))
    new_pid = await pid_cell.inner_text()
    assert psutil.pid_exists(int(new_pid)), f"the dashboard shows pid {new_pid}, which is not running"
    await expect(row.get_by_test_id("agent-status")).to_have_text("running")
    await expect(s.page.get_by_test_id("operation-row").first).to_contain_text("restart")
    await s.shot("after-restart")


async def test_an_unknown_node_shows_the_api_error(open_session: OpenSession) -> None:
    s = await open_session("unknown-node")
    await s.sign_in()
    await s.page.goto(s.demo.url + "#/nodes/no-such-node")
    banner = s.page.get_by_test_id("error-banner")
    await expect(banner).to_contain_text("node no-such-node is not registered (code 2001)")
    await expect(s.page.get_by_test_id("node-not-found")).to_be_visible()
    await s.shot("not-found")


async def test_a_rejected_token_returns_to_the_login_page(open_session: OpenSession) -> None:
    s = await open_session("token-rejected")
    page = s.page
    await page.goto(s.demo.url + "#/login")
    forged = '{"token": "forged.token.value", "user": {"username": "admin", "role": "admin"}}'
    await page.evaluate("(value) => sessionStorage.setItem('opsfleet.session', value)", forged)
    await page.goto(s.demo.url + "#/nodes")
    await expect(page.get_by_test_id("login-flash")).to_contain_text("code 1007")
    await s.shot("signed-out")
    # Signing in again leads back to the page that was asked for.
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill(s.demo.password)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("node-row")).to_have_count(1)
    assert page.url.endswith("#/nodes")


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (400, 800)])
async def test_pages_fit_the_window(open_session: OpenSession, width: int, height: int) -> None:
    s = await open_session(f"layout-{width}x{height}", width=width, height=height)
    await s.sign_in()
    assert await s.body_overflow() <= 0
    await s.shot("overview")

    await s.page.goto(s.demo.url + "#/nodes")
    await expect(s.page.get_by_test_id("node-row")).to_have_count(1)
    assert await s.body_overflow() <= 0
    await s.shot("nodes")

    await s.page.get_by_test_id("node-link").first.click()
    await expect(s.page.get_by_test_id("chart-cpu")).not_to_have_attribute("data-points", "0")
    await expect(s.page.get_by_test_id("agent-row").first).to_be_visible()
    assert await s.body_overflow() <= 0
    await s.shot("node-detail")

    toggle = s.page.get_by_role("button", name="Menu")
    if width < 760:
        await expect(s.page.get_by_role("link", name="Overview")).to_be_hidden()
        await toggle.click()
        await expect(s.page.get_by_role("link", name="Overview")).to_be_visible()
        await s.shot("menu-open", full_page=False)
    else:
        await expect(toggle).to_be_hidden()


async def test_logout_revokes_the_token_on_the_manager(open_session: OpenSession) -> None:
    s = await open_session("logout")
    await s.sign_in()
    token = await s.page.evaluate("JSON.parse(sessionStorage.getItem('opsfleet.session')).token")
    before = await s.page.request.get(
        s.demo.url + "api/v1/auth/profile", headers={"Authorization": f"Bearer {token}"}
    )
    assert before.status == 200
    await s.page.get_by_role("button", name="Log out").click()
    await expect(s.page.get_by_label("Password")).to_be_visible()
    after = await s.page.request.get(
        s.demo.url + "api/v1/auth/profile", headers={"Authorization": f"Bearer {token}"}
    )
    assert after.status == 401 and (await after.json())["code"] == 1007
    assert after.headers["x-frame-options"] == "DENY"
    await s.shot("logged-out")


async def test_api_docs_render_from_local_assets(open_session: OpenSession) -> None:
    s = await open_session("api-docs")
    outside: list[str] = []
    s.page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(s.demo.url) else None)
    response = await s.page.goto(s.demo.url + "docs")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    await expect(s.page.locator(".opblock-summary-path").first).to_be_visible()
    await expect(s.page.get_by_text("/api/v1/auth/logout", exact=True)).to_be_visible()
    await s.shot("swagger-ui")
    assert outside == []


async def test_policies_page_shows_revisions_diff_and_the_node_state(open_session: OpenSession) -> None:
    import httpx

    s = await open_session("policies")
    node_id = await open_node(s)
    policy = {"name": "demo-collectors", "selector": {"env": "demo"}, "priority": 1}
    async with httpx.AsyncClient(base_url=s.demo.url.rstrip("/") + "/api/v1") as api:
        login = await api.post("/auth/login", json={"username": "admin", "password": s.demo.password})
        auth = {"Authorization": f"Bearer {login.json()['data']['token']}"}
        for interval in ("7s", "6s"):
            body = {**policy, "config": {"collectors": {"disk": {"interval": interval}}}}
            assert (await api.post("/policies", json=body, headers=auth)).status_code == 200
    await expect(s.page.get_by_test_id("node-config-state")).to_have_text("applied")
    await expect(s.page.get_by_test_id("node-config")).to_contain_text("demo-collectors r2")
    await expect(s.page.get_by_test_id("node-config-yaml")).to_contain_text("interval: 6s")
    await s.shot("node-config")

    await s.page.get_by_role("link", name="Policies", exact=True).click()
    row = s.page.locator('[data-testid="policy-row"][data-policy="demo-collectors"]')
    await expect(row).to_contain_text("1 applied")
    await row.get_by_test_id("policy-link").click()
    node = s.page.locator(f'[data-testid="policy-node"][data-node-id="{node_id}"]')
    await expect(node.get_by_test_id("config-state")).to_have_text("applied")
    await expect(s.page.get_by_test_id("policy-revision")).to_have_count(2)
    diff = s.page.get_by_test_id("policy-diff")
    await expect(diff).to_contain_text("-        interval: 7s")
    await expect(diff).to_contain_text("+        interval: 6s")
    await expect(s.page.get_by_test_id("rollout-state")).to_contain_text("No staged rollout")
    await s.shot("policy-detail")
    assert s.script_errors == []


async def test_rollouts_page_shows_a_halted_rollout_and_its_failed_node(open_session: OpenSession) -> None:
    s = await open_session("rollouts")
    await s.sign_in()
    token = await s.page.evaluate("JSON.parse(sessionStorage.getItem('opsfleet.session')).token")
    auth = {"Authorization": f"Bearer {token}"}
    package = b"#!/bin/sh\nexit 0\n"
    signature = sign(
        create_key_pair().private_pem, "agent:sample", "9.9", hashlib.sha256(package).hexdigest()
    )
    upload = await s.page.request.post(
        s.demo.url + f"api/v1/artifacts?component=agent:sample&version=9.9&signature={quote(signature)}",
        data=package,
        headers={**auth, "Content-Type": "application/octet-stream"},
    )
    assert upload.status == 200, await upload.text()
    started = await s.page.request.post(
        s.demo.url + "api/v1/rollouts", data={"component": "agent:sample", "version": "9.9"}, headers=auth
    )
    assert started.status == 200, await started.text()
    rollout_id = (await started.json())["data"]["id"]

    await s.page.goto(s.demo.url + "#/rollouts")
    row = s.page.locator(f'[data-testid="rollout-row"][data-rollout-id="{rollout_id}"]')
    await expect(row.get_by_test_id("rollout-state")).to_have_text("halted")
    await expect(row).to_contain_text("1 failed")
    await s.shot("rollouts")
    await row.get_by_test_id("rollout-link").click()
    node = s.page.get_by_test_id("rollout-node").first
    await expect(node.get_by_test_id("rollout-node-state")).to_have_text("failed")
    await expect(node).to_contain_text("does not run from a package")
    await expect(s.page.get_by_test_id("rollout-cancel")).to_be_enabled()
    await expect(s.page.get_by_test_id("rollout-resume")).to_be_enabled()  # a halted rollout resumes
    await s.page.get_by_test_id("rollout-cancel").click()
    await expect(s.page.get_by_test_id("rollout-state")).to_have_text("cancelled")
    await s.shot("rollout-cancelled")


async def test_enrollment_tokens_page(open_session: OpenSession) -> None:
    s = await open_session("tokens")
    await s.login()
    page = s.page
    await page.get_by_test_id("nav-tokens").click()
    rows = page.get_by_test_id("token-row")
    await expect(rows).to_have_count(1)  # the token the demo enrolled its daemon with
    await expect(rows.first.get_by_test_id("token-state")).to_have_text("used-up")

    await page.get_by_label("Max uses").fill("5")
    await page.get_by_label("Labels").fill("env=prod, zone=eu-1")
    await page.get_by_test_id("token-create").click()
    await expect(page.get_by_test_id("token-secret")).to_have_text(re.compile(r"^oft_\S{20,}$"))
    await expect(rows).to_have_count(2)
    fresh = page.locator('[data-testid="token-row"][data-state="active"]')
    await expect(fresh).to_contain_text("0 / 5")
    await expect(fresh).to_contain_text("zone=eu-1")
    await s.shot("token-created")

    await fresh.get_by_test_id("token-revoke").click()
    await expect(page.locator('[data-testid="token-row"][data-state="revoked"]')).to_have_count(1)
    await s.shot("token-revoked")


async def test_alerts_page_and_the_overview_count(open_session: OpenSession) -> None:
    s = await open_session("alerts")
    await s.sign_in()
    # The demo fleet is healthy: the tile shows the Manager's firing alerts, none.
    await expect(s.page.get_by_test_id("stat-alerts")).to_have_text("0")
    await s.page.get_by_test_id("nav-alerts").click()
    await expect(s.page.get_by_test_id("alerts-table")).to_contain_text("No firing alerts.")
    await expect(s.page.get_by_test_id("alerts-summary")).to_contain_text("0 firing")
    await s.page.get_by_test_id("alerts-filter-state").select_option("all")
    assert "state=all" in s.page.url
    await expect(s.page.get_by_test_id("alerts-table")).to_contain_text("No alerts.")
    await s.shot("alerts")
