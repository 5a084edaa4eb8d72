// One agent's resource charts (from the daemon: cpu, memory) and its log viewer.

import { api } from "../api.js";
import { COLORS, TimeChart } from "../charts.js";
import { card, field, h, replace, segmented, select } from "../dom.js";
import { bytes, percent } from "../format.js";
import { POLL_MS } from "../scope.js";

const DURATIONS = [
  ["900", "15m"],
  ["3600", "1h"],
  ["21600", "6h"],
  ["86400", "24h"],
];
const LINE_COUNTS = ["50", "100", "500", "1000"];

/** Renders the panel of `agentId` into `root`; polls in `scope` (dispose it to switch agent). */
export function renderAgentPanel(root, scope, nodeId, agentId) {
  const base = `/nodes/${encodeURIComponent(nodeId)}/agents/${encodeURIComponent(agentId)}`;
  let duration = "900";

  const cpuNow = h("span", { class: "chart-now", "data-testid": "agent-now-cpu" }, "–");
  const memNow = h("span", { class: "chart-now", "data-testid": "agent-now-memory" }, "–");
  const cpuCard = card("CPU", { actions: cpuNow, extraClass: "chart-card" });
  const memCard = card("Memory", { actions: memNow, extraClass: "chart-card" });
  const cpu = new TimeChart(cpuCard.body, {
    name: "agent-cpu",
    series: [{ label: "CPU", color: COLORS.cpu }],
    format: (v) => percent(v, v < 10 ? 1 : 0),
    kind: "cores",
    syncKey: `agent-${nodeId}-${agentId}`,
  });
  const memory = new TimeChart(memCard.body, {
    name: "agent-memory",
    series: [
      { label: "RSS", color: COLORS.memory },
      { label: "Virtual", color: COLORS.disk },
    ],
    format: bytes,
    kind: "bytes",
    syncKey: `agent-${nodeId}-${agentId}`,
  });
  scope.onDispose(() => {
    cpu.destroy();
    memory.destroy();
  });

  /** One log line: its time (UTC) and stream when the daemon stamped them, then its text. */
  const logLine = (entry) =>
    h(
      "span",
      { class: `log-line${entry.stream === "stderr" ? " stderr" : ""}`, "data-testid": "log-line", "data-stream": entry.stream },
      entry.time ? h("span", { class: "log-time" }, entry.time.replace("T", " ").replace("Z", "")) : null,
      entry.stream ? h("span", { class: "log-stream" }, entry.stream) : null,
      entry.text,
      "\n",
    );

  const lines = select(
    LINE_COUNTS.map((n) => [n, `${n} lines`]),
    "100",
  );
  const filter = h("input", { type: "search", placeholder: "text the lines contain", "data-testid": "logs-filter" });
  const follow = h("input", { type: "checkbox", checked: true, id: "logs-follow", "data-testid": "logs-follow" });
  const reload = h("button", { type: "button", class: "btn", "data-testid": "logs-refresh" }, "Refresh");
  const output = h(
    "pre",
    { class: "logs", "data-testid": "agent-logs", tabindex: "0", "aria-label": `Log of ${agentId}` },
    "",
  );
  const count = h("span", { class: "muted small", "data-testid": "logs-count" }, "");

  const durationSel = segmented(
    "Agent metrics range",
    DURATIONS,
    duration,
    (value) => {
      duration = value;
      metricsPoll.kick();
    },
    "agent-range",
  );

  root.append(
    h(
      "div",
      { class: "page-head section" },
      h("h2", { "data-testid": "agent-panel-title" }, `Agent ${agentId}`),
      h(
        "div",
        { class: "toolbar" },
        h("span", { class: "muted small" }, "Resource usage reported by the daemon"),
        durationSel,
      ),
    ),
    h("div", { class: "grid grid-2" }, cpuCard.el, memCard.el),
    h(
      "div",
      { class: "section" },
      card("Logs", {
        actions: count,
        flush: true,
        testid: "logs-card",
        body: [
          h(
            "div",
            { class: "logs-toolbar" },
            field("Filter", filter, `logs-filter-${agentId}`),
            field("Lines", lines, `logs-lines-${agentId}`),
            h("label", { class: "check", for: "logs-follow" }, follow, "Follow"),
            reload,
          ),
          output,
        ],
      }).el,
    ),
  );

  const metricsPoll = scope.every(POLL_MS, "agent-metrics", `Loading metrics of ${agentId}`, async () => {
    const answer = await api(`${base}/metrics`, { query: { duration } });
    if (scope.disposed) return;
    const points = answer.data_points.slice().sort((a, b) => a.timestamp - b.timestamp);
    const xs = points.map((p) => p.timestamp);
    cpu.setData(xs, [points.map((p) => p.cpu)]);
    memory.setData(xs, [points.map((p) => p.memory_rss), points.map((p) => p.memory_vms)]);
    const last = points[points.length - 1];
    cpuNow.textContent = last ? percent(last.cpu) : "–";
    memNow.textContent = last ? `${bytes(last.memory_rss)} RSS` : "–";
  });

  const logsPoll = scope.every(POLL_MS, "agent-logs", `Loading the log of ${agentId}`, async () => {
    if (!follow.checked && output.dataset.loaded) return;
    const answer = await api(`${base}/logs`, { query: { lines: lines.value, filter: filter.value } });
    if (scope.disposed) return;
    const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 8;
    const entries = answer.entries || answer.lines.map((text) => ({ time: "", stream: "", text }));
    replace(
      output,
      entries.length ? entries.map(logLine) : filter.value ? "(no line matches the filter)" : "(no output yet)",
    );
    output.dataset.loaded = "1";
    count.textContent = `${answer.count} line${answer.count === 1 ? "" : "s"}${filter.value ? " matching" : ""}`;
    if (atBottom || follow.checked) output.scrollTop = output.scrollHeight;
  });

  const reloadLogs = () => {
    delete output.dataset.loaded;
    logsPoll.kick();
  };
  let debounce = null;
  filter.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(reloadLogs, 300);
  });
  scope.onDispose(() => clearTimeout(debounce));
  lines.addEventListener("change", reloadLogs);
  reload.addEventListener("click", reloadLogs);
  follow.addEventListener("change", reloadLogs);
}
