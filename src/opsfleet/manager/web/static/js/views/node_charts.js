// A node's cpu, memory, disk and network history over a selectable range.
// Ranges up to 6 h are raw samples: the first load fetches the whole range, later polls only
// what is newer than the last sample. Longer ranges are bucket averages, refetched every minute.

import { api } from "../api.js";
import { COLORS, Series, TimeChart } from "../charts.js";
import { card, h, segmented } from "../dom.js";
import { bytes, percent, rate } from "../format.js";
import { POLL_MS } from "../scope.js";

export const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 86400 };
const RAW_LIMIT = 6 * 3600;
const AGGREGATED_REFRESH_MS = 60000;

function iso(seconds) {
  return new Date(seconds * 1000).toISOString();
}

function usagePercent(p) {
  const v = p.values.usage_percent;
  return v === undefined ? null : v;
}

function perSecond(key) {
  return (p) => {
    const interval = p.values.interval_seconds;
    const value = p.values[key];
    return interval > 0 && value !== undefined ? value / interval : null;
  };
}

const PANELS = [
  {
    type: "cpu",
    title: "CPU",
    series: [{ label: "CPU used", color: COLORS.cpu }],
    pickers: [usagePercent],
    format: (v) => percent(v, 0),
    percent: true,
    now: (p) => `${percent(usagePercent(p))}${p.values.cores ? ` of ${p.values.cores} cores` : ""}`,
  },
  {
    type: "memory",
    title: "Memory",
    series: [{ label: "Memory used", color: COLORS.memory }],
    pickers: [usagePercent],
    format: (v) => percent(v, 0),
    percent: true,
    now: (p) => `${percent(usagePercent(p))} · ${bytes(p.values.used_bytes)} of ${bytes(p.values.total_bytes)}`,
  },
  {
    type: "disk",
    title: "Disk",
    series: [{ label: "Disk used", color: COLORS.disk }],
    pickers: [usagePercent],
    format: (v) => percent(v, 0),
    percent: true,
    now: (p) => `${percent(usagePercent(p))} · ${bytes(p.values.used_bytes)} of ${bytes(p.values.total_bytes)}`,
  },
  {
    type: "network",
    title: "Network",
    series: [
      { label: "Received", color: COLORS.rx },
      { label: "Sent", color: COLORS.tx },
    ],
    pickers: [perSecond("rx_bytes"), perSecond("tx_bytes")],
    format: rate,
    percent: false,
    now: (p) => `↓ ${rate(perSecond("rx_bytes")(p))} · ↑ ${rate(perSecond("tx_bytes")(p))}`,
  },
];

/** Renders the range selector and the four chart cards into `root`; polls in `scope`; onRange(range). */
export function renderNodeCharts(root, scope, nodeId, initialRange, onRange) {
  let range = RANGES[initialRange] ? initialRange : "1h";
  let generation = 0;
  let lastFullLoad = 0;

  const grid = h("div", { class: "grid grid-2" });
  const panels = PANELS.map((panel) => {
    const now = h("span", { class: "chart-now", "data-testid": `now-${panel.type}` }, "–");
    const c = card(panel.title, { actions: now, extraClass: "chart-card" });
    grid.appendChild(c.el);
    const chart = new TimeChart(c.body, {
      name: panel.type,
      series: panel.series,
      format: panel.format,
      percent: panel.percent,
    });
    scope.onDispose(() => chart.destroy());
    return { ...panel, chart, nowEl: now, data: new Series(RANGES[range]) };
  });

  const note = h("span", { class: "muted small", "data-testid": "range-note" }, "");
  const selector = segmented(
    "Time range",
    Object.keys(RANGES).map((r) => [r, r]),
    range,
    (value) => {
      range = value;
      generation += 1;
      lastFullLoad = 0;
      onRange(value);
      for (const p of panels) p.data = new Series(RANGES[range]);
      poll.kick();
    },
    "range-selector",
  );
  root.append(
    h("div", { class: "page-head section" }, h("h2", {}, "Resources"), h("div", { class: "toolbar" }, note, selector)),
    grid,
  );

  const draw = (panel, aggregated) => {
    const [xs, ys] = panel.data.columns(...panel.pickers);
    // Averages show the whole chosen span (a young node's buckets sit at its end); raw samples fill the chart.
    const nowS = Date.now() / 1000;
    panel.chart.setData(xs, ys, { window: aggregated ? [nowS - RANGES[range], nowS] : null });
    const last = panel.data.points[panel.data.points.length - 1];
    panel.nowEl.textContent = last ? panel.now(last) : "–";
    panel.nowEl.title = aggregated ? "average of the newest bucket" : "newest sample";
  };

  const poll = scope.every(POLL_MS, "node-metrics", "Loading metrics", async () => {
    const mine = generation;
    const span = RANGES[range];
    const aggregated = span > RAW_LIMIT;
    const nowS = Math.floor(Date.now() / 1000);
    const full = aggregated ? Date.now() - lastFullLoad >= AGGREGATED_REFRESH_MS : lastFullLoad === 0;
    if (aggregated && !full) return;
    const answers = await Promise.all(
      panels.map((panel) => {
        const since = full || panel.data.last === null ? nowS - span : panel.data.last + 1;
        if (since >= nowS) return null;
        return api(`/metrics/nodes/${encodeURIComponent(nodeId)}/${panel.type}/history`, {
          query: { start_time: iso(since), end_time: iso(nowS) },
        });
      }),
    );
    if (scope.disposed || mine !== generation) return;
    panels.forEach((panel, i) => {
      const answer = answers[i];
      if (answer) {
        if (full) panel.data.replace(answer.points);
        else panel.data.merge(answer.points);
      }
      draw(panel, aggregated);
    });
    if (full) lastFullLoad = Date.now();
    const bucket = answers.find((a) => a && a.aggregated);
    note.textContent = bucket
      ? `Averages per ${Math.round(bucket.bucket_seconds / 60)} min, refreshed every minute`
      : "Raw samples, live";
  });
}
