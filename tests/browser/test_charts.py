"""The node page's charts in real headless Chromium against a real in-process Manager.

The Manager's own ingest (ReportMetrics over gRPC) stores an hour of samples with a 10-minute
gap; a DaemonService on 127.0.0.1:0 answers the agent-metrics calls the Manager forwards with an
idle agent's near-zero CPU. The checks read what uPlot drew: its data arrays, tick labels (with
their widths measured in the axis font) and canvas pixels. Screenshots go to the test's tmp dir
and to test-artifacts/browser/.
"""

from __future__ import annotations

import itertools
import math
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from playwright.async_api import expect

from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc
from tests.browser.support import Demo, OpenSession, Session, in_process_manager

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

PASSWORD = "chart-keeper-3141"
NODE = "chart-node"
TWIN = "twin-node"  # sends exactly what it receives
AGENT = "idle-agent"
INTERVAL = 10
SPAN = 3000
GAP = (1800, 1200)  # no samples from 30 to 20 minutes ago
RX_KIB = 39.1  # received per second, around which the samples vary
BLUE = (0x25, 0x63, 0xEB)
MANY = re.compile(r"^\d{2,}$")

# Opaque pixels of a colour in the canvas columns [x0, x1) (device px; null: the whole plot)
# within the plot's rows.
COLOUR_PIXELS = """
([testid, columns, [r, g, b]]) => {
  const u = document.querySelector(`[data-testid="chart-${testid}"]`).timeChart.plot;
  const [x0, x1] = columns || [u.bbox.left, u.bbox.left + u.bbox.width];
  const left = Math.round(x0), width = Math.max(1, Math.round(x1 - x0));
  const data = u.ctx.getImageData(left, Math.round(u.bbox.top), width, Math.round(u.bbox.height)).data;
  const near = (i) =>
    Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] >= 200 && near(i)) count++;
  return count;
}
"""

# An axis' tick labels as uPlot drew them, with their widths measured in the axis font (CSS px)
# and the room the axis has for them.
AXIS_LABELS = """
([testid, axis]) => {
  const u = document.querySelector(`[data-testid="chart-${testid}"]`).timeChart.plot;
  const a = u.axes[axis];
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = a.font[0];
  const ratio = uPlot.pxRatio;
  const labels = a._values.map((text, i) => ({
    text, width: ctx.measureText(text).width / ratio, pos: u.valToPos(a._splits[i], a.scale, true) / ratio,
  }));
  return {
    labels, size: a._size, ticks: a.ticks.size, gap: a.gap, canvasWidth: u.ctx.canvas.width / ratio,
    min: u.scales[a.scale].min, max: u.scales[a.scale].max,
  };
}
"""

PLOT_DATA = """
(testid) => {
  const u = document.querySelector(`[data-testid="chart-${testid}"]`).timeChart.plot;
  return {data: u.data, bbox: u.bbox, ratio: uPlot.pxRatio, min: u.scales.x.min, max: u.scales.x.max,
          cursor: u.cursor.left};
}
"""

SPAN_OVER = """
(seconds) => {
  const u = document.querySelector('[data-testid="chart-cpu"]').timeChart.plot;
  return u.scales.x.max - u.scales.x.min > seconds;
}
"""

X_POS = """
([testid, t]) =>
  document.querySelector(`[data-testid="chart-${testid}"]`).timeChart.plot.valToPos(t, "x", true)
"""


class IdleDaemon(daemon_pb2_grpc.DaemonServiceServicer):
    """The node's DaemonService: one agent using well under 1 % of a core."""

    async def ListAgents(self, request: Any, context: Any) -> daemon_pb2.ListAgentsResponse:
        agent = daemon_pb2.AgentInfo(id=AGENT, type="exporter", version="1.0", status="running", pid=4242)
        return daemon_pb2.ListAgentsResponse(agents=[agent])

    async def GetAgentMetrics(self, request: Any, context: Any) -> daemon_pb2.AgentMetricsResponse:
        now = int(time.time())
        points = [
            daemon_pb2.ResourceDataPoint(
                timestamp=now - i * 15,
                cpu=0.2 + 0.1 * math.sin(i),
                memory_rss=30_000_000,
                memory_vms=90_000_000,
            )
            for i in range(min(request.duration_seconds // 15, 60))
        ]
        return daemon_pb2.AgentMetricsResponse(agent_id=request.agent_id, data_points=points)

    async def GetAgentLogs(self, request: Any, context: Any) -> daemon_pb2.AgentLogsResponse:
        return daemon_pb2.AgentLogsResponse(agent_id=request.agent_id, lines=["idle"])


def samples(now: int, twin: bool) -> list[manager_pb2.MetricData]:
    out = []
    for ts in range(now - SPAN, now, INTERVAL):
        if not twin and now - GAP[0] < ts < now - GAP[1]:
            continue
        wave = math.sin(ts / 300)
        rx = (RX_KIB + 3 * wave) * 1024 * INTERVAL
        tx = rx if twin else 12 * 1024 * INTERVAL
        values: dict[str, dict[str, float]] = {
            "cpu": {"usage_percent": 30 + 10 * wave, "cores": 2},
            "memory": {"usage_percent": 55 + 2 * wave, "used_bytes": 4.4e9, "total_bytes": 8e9},
            "disk": {"usage_percent": 61, "used_bytes": 61e9, "total_bytes": 100e9},
            "network": {"rx_bytes": rx, "tx_bytes": tx, "interval_seconds": INTERVAL},
        }
        out += [manager_pb2.MetricData(type=t, timestamp=ts, values=v) for t, v in values.items()]
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """A Manager (plaintext gRPC, HTTP on 127.0.0.1:0) holding two nodes' history, and their daemon."""
    daemon = grpc.aio.server()
    daemon_pb2_grpc.add_DaemonServiceServicer_to_server(IdleDaemon(), daemon)
    daemon_port = daemon.add_insecure_port("127.0.0.1:0")
    await daemon.start()
    try:
        async with in_process_manager(tmp_path_factory.mktemp("charts"), PASSWORD) as app:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
                manager = manager_pb2_grpc.ManagerServiceStub(channel)
                now = int(time.time())
                for node, twin in ((NODE, False), (TWIN, True)):
                    registered = await manager.RegisterNode(
                        manager_pb2.RegisterNodeRequest(
                            node_id=node,
                            hostname=f"host-{node}",
                            ip="127.0.0.1",
                            os="linux",
                            arch="amd64",
                            daemon_version="0.1.0",
                            daemon_address=f"127.0.0.1:{daemon_port}",
                        )
                    )
                    assert registered.success
                    metrics = samples(now, twin)
                    for i in range(0, len(metrics), 500):
                        sent = await manager.ReportMetrics(
                            manager_pb2.ReportMetricsRequest(node_id=node, metrics=metrics[i : i + 500])
                        )
                        assert sent.success and sent.accepted == len(metrics[i : i + 500])
            yield Demo(url=f"http://127.0.0.1:{app.http_port}/", password=PASSWORD)
    finally:
        await daemon.stop(None)


async def open_charts(open_session: OpenSession, name: str, width: int, node: str = NODE) -> Session:
    s = await open_session(name, width=width, height=900)
    await s.sign_in()
    await s.page.goto(s.demo.url + f"#/nodes/{node}?agent={AGENT}")
    for chart in ("cpu", "memory", "disk", "network"):
        await expect(s.page.get_by_test_id(f"chart-{chart}")).to_have_attribute("data-points", MANY)
    return s


async def shot(s: Session, tmp_path: Path, step: str, *, full_page: bool = True) -> None:
    path = await s.shot(step, full_page=full_page)
    shutil.copy(path, tmp_path / path.name)


def assert_no_overlap(axis: dict[str, Any], where: str) -> None:
    boxes = sorted((lb["pos"] - lb["width"] / 2, lb["pos"] + lb["width"] / 2) for lb in axis["labels"])
    assert len(boxes) >= 2, f"{where}: fewer than two x labels: {axis['labels']}"
    for (_, right), (left, _) in itertools.pairwise(boxes):
        assert right + 4 <= left, f"{where}: x labels overlap: {[label['text'] for label in axis['labels']]}"
    assert boxes[0][0] >= 0 and boxes[-1][1] <= axis["canvasWidth"], f"{where}: an x label leaves the canvas"


def assert_round_ticks(axis: dict[str, Any], unit: str) -> list[float]:
    """The labels are 0, step, 2 step, ... in `unit`, step 1, 2, 2.5 or 5 x 10^k; their numbers."""
    numbers = []
    for label in axis["labels"]:
        match = re.fullmatch(rf"(\d+(?:\.\d+)?) {re.escape(unit)}", label["text"])
        assert match, f"tick label {label['text']!r} is not a number in {unit}"
        numbers.append(float(match.group(1)))
    step = numbers[1] - numbers[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert numbers[0] == 0 and any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), numbers
    assert all(math.isclose(b - a, step) for a, b in itertools.pairwise(numbers)), numbers
    return numbers


@pytest.mark.parametrize("width", [400, 1280, 1920])
async def test_node_charts_read_well(open_session: OpenSession, tmp_path: Path, width: int) -> None:
    s = await open_charts(open_session, f"charts-{width}", width)
    page = s.page

    # Network: round ticks in KiB/s reaching just above the data (~39 KiB/s), none clipped.
    network = await page.evaluate(AXIS_LABELS, ["network", 1])
    numbers = assert_round_ticks(network, "KiB/s")
    assert RX_KIB + 3 <= numbers[-1] <= 2.5 * (RX_KIB + 3), numbers
    room = network["size"] - network["ticks"] - network["gap"]
    for label in network["labels"]:
        assert label["width"] <= room, f"{label['text']!r}: {label['width']:.1f} px wide, room for {room}"

    # CPU: a null inside the gap, and no line drawn across it.
    cpu = await page.evaluate(PLOT_DATA, "cpu")
    xs, ys = cpu["data"][0], cpu["data"][1]
    sampled = [x for x, y in zip(xs, ys, strict=True) if y is not None]
    gap_start, gap_end = max(itertools.pairwise(sampled), key=lambda pair: pair[1] - pair[0])
    assert gap_end - gap_start >= GAP[0] - GAP[1], (gap_start, gap_end)
    nulls = [x for x, y in zip(xs, ys, strict=True) if y is None]
    assert any(gap_start < x < gap_end for x in nulls), "no break at the gap"
    inside = await page.evaluate(X_POS, ["cpu", (gap_start + gap_end) / 2])
    outside = await page.evaluate(X_POS, ["cpu", gap_start - 300])
    assert await page.evaluate(COLOUR_PIXELS, ["cpu", [outside, outside + 1], BLUE]) > 0, (
        "no line before the gap"
    )
    assert await page.evaluate(COLOUR_PIXELS, ["cpu", [inside, inside + 1], BLUE]) == 0, (
        "a line across the gap"
    )

    # Percent charts: round ticks from 0 to 100 %.
    assert assert_round_ticks(await page.evaluate(AXIS_LABELS, ["memory", 1]), "%")[-1] == 100

    # Time: clock labels that do not overlap on any chart.
    for chart in ("cpu", "network"):
        axis = await page.evaluate(AXIS_LABELS, [chart, 0])
        assert all(re.fullmatch(r"\d\d:\d\d|\w{3} \d{1,2}", label["text"]) for label in axis["labels"]), axis
        assert_no_overlap(axis, f"{chart} 1h at {width} px")

    # The idle agent: % of one core on an axis scaled to it (10 %), not 0-1000 %.
    await expect(page.get_by_test_id("chart-agent-cpu")).to_have_attribute("data-points", MANY)
    agent = await page.evaluate(AXIS_LABELS, ["agent-cpu", 1])
    assert 1 <= agent["max"] <= 10, agent["max"]
    assert_round_ticks(agent, "%")
    memory = await page.evaluate(AXIS_LABELS, ["agent-memory", 1])
    assert_round_ticks(memory, "MiB")

    # Hover: a tooltip with every series at the cursor; the other charts follow the cursor.
    box = await page.get_by_test_id("chart-canvas-network").bounding_box()
    assert box
    await page.get_by_test_id("chart-network").scroll_into_view_if_needed()
    box = await page.get_by_test_id("chart-canvas-network").bounding_box()
    assert box
    await page.mouse.move(box["x"] + box["width"] * 0.85, box["y"] + box["height"] * 0.4)
    tip = page.get_by_test_id("chart-tooltip-network")
    await expect(tip).to_be_visible()
    rows = tip.get_by_test_id("chart-tooltip-row")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text(re.compile(r"Received\s*\d+(\.\d)? KiB/s"))
    await expect(rows.nth(1)).to_contain_text(re.compile(r"Sent\s*\d+(\.\d)? KiB/s"))
    assert (await page.evaluate(PLOT_DATA, "cpu"))["cursor"] >= 0, "the cpu chart does not share the cursor"
    await shot(s, tmp_path, "hover", full_page=False)  # where the mouse is

    # A day: clock labels (midnight names the day), still apart.
    await page.get_by_test_id("range-selector").get_by_role("button", name="24h").click()
    await page.wait_for_function(SPAN_OVER, arg=20 * 3600)
    for chart in ("cpu", "network"):
        axis = await page.evaluate(AXIS_LABELS, [chart, 0])
        assert all(re.fullmatch(r"\d\d:\d\d|\w{3} \d{1,2}", lb["text"]) for lb in axis["labels"]), axis
        assert_no_overlap(axis, f"{chart} 24h at {width} px")

    # Seven days: day labels ("Mon 12"), still apart.
    await page.get_by_test_id("range-selector").get_by_role("button", name="7d").click()
    await expect(page.get_by_test_id("range-note")).to_contain_text("Averages per")
    await page.wait_for_function(SPAN_OVER, arg=6 * 86400)
    for chart in ("cpu", "network"):
        axis = await page.evaluate(AXIS_LABELS, [chart, 0])
        assert all(re.fullmatch(r"\w{3} \d{1,2}", label["text"]) for label in axis["labels"]), axis
        assert_no_overlap(axis, f"{chart} 7d at {width} px")
    await page.mouse.move(0, 0)
    await shot(s, tmp_path, "7d")
    assert await s.body_overflow() <= 0


async def test_drag_zooms_every_chart_until_back_to_live(open_session: OpenSession, tmp_path: Path) -> None:
    s = await open_charts(open_session, "charts-zoom", 1280)
    page = s.page
    before = await page.evaluate(PLOT_DATA, "cpu")
    canvas = page.get_by_test_id("chart-canvas-cpu")
    await canvas.scroll_into_view_if_needed()
    box = await canvas.bounding_box()
    assert box
    y = box["y"] + box["height"] * 0.4
    await page.mouse.move(box["x"] + box["width"] * 0.3, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=8)
    await page.mouse.up()

    live = page.get_by_test_id("chart-live")
    await expect(live).to_be_visible()
    await expect(page.get_by_test_id("range-note")).to_contain_text("\N{EN DASH}")
    spans = [await page.evaluate(PLOT_DATA, chart) for chart in ("cpu", "memory", "disk", "network")]
    width = before["max"] - before["min"]
    for span in spans:
        assert (span["min"], span["max"]) == (spans[0]["min"], spans[0]["max"]), "the spans differ"
        assert before["min"] < span["min"] < span["max"] < before["max"]
        assert span["max"] - span["min"] < width * 0.5
    await shot(s, tmp_path, "zoomed")

    await live.click()
    await expect(live).to_be_hidden()
    await expect(page.get_by_test_id("range-note")).to_have_text("Raw samples, live")
    after = await page.evaluate(PLOT_DATA, "cpu")
    assert after["max"] - after["min"] > width * 0.9


async def test_received_shows_where_sent_is_equal(open_session: OpenSession, tmp_path: Path) -> None:
    s = await open_charts(open_session, "charts-twin", 1280, node=TWIN)
    count = await s.page.evaluate(COLOUR_PIXELS, ["network", None, list(BLUE)])
    assert count > 50, f"the received line is hidden under the sent line ({count} blue pixels)"
    await shot(s, tmp_path, "twin")
