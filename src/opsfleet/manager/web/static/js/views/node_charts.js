// A node's cpu, memory, disk and network history over a selectable range.
// Ranges up to 6 h are raw samples: the first load fetches the whole range, later polls only
// what is newer than the last sample. Longer ranges are bucket averages, refetched every minute.
// The four charts share one cursor; dragging over one zooms all four to that span (fetched
// once, finer where the span allows) until "Back to live" or another range is chosen.

import { api } from "../api.js";
import { COLORS, Series, TimeChart } from "../charts.js";
import { card, h, segmented } from "../dom.js";
import { bytes, dateTime, percent, rate } from "../format.js";
import { POLL_MS } from "../scope.js";

export const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 86400 };
const RAW_LIMIT = 6 * 3600;
const AGGREGATED_REFRESH_MS = 60000;
// A zoom narrower than this many seconds is widened around its middle.
const MIN_ZOOM = 60;

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
    format: (v) => percent(v),
    kind: "percent",
    now: (p) => `${percent(usagePercent(p))}${p.values.cores ? ` of ${p.values.cores} cores` : ""}`,
  },
  {
    type: "memory",
    title: "Memory",
    series: [{ label: "Memory used", color: COLORS.memory }],
    pickers: [usagePercent],
    format: (v) => percent(v),
    kind: "percent",
    now: (p) => `${percent(usagePercent(p))} · ${bytes(p.values.used_bytes)} of ${bytes(p.values.total_bytes)}`,
  },
  {
    type: "disk",
    title: "Disk",
    series: [{ label: "Disk used", color: COLORS.disk }],
    pickers: [usagePercent],
    format: (v) => percent(v),
    kind: "percent",
    now: (p) => `${percent(usagePercent(p))} · ${bytes(p.values.used_bytes)} of ${bytes(p.values.total_bytes)}`,
  },
  {
    type: "network",
    title: "Network",
    // Received is solid and filled, Sent dashed on top of it: where they coincide both show.
    series: [
      { label: "Received", color: COLORS.rx, width: 2.5 },
      { label: "Sent", color: COLORS.tx, width: 2, dash: [7, 5], fill: false },
    ],
    pickers: [perSecond("rx_bytes"), perSecond("tx_bytes")],
    format: rate,
    kind: "rate",
    now: (p) => `↓ ${rate(perSecond("rx_bytes")(p))} · ↑ ${rate(perSecond("tx_bytes")(p))}`,
  },
];

/** Renders the range selector and the four chart cards into `root`; polls in `scope`; onRange(range). */
export function renderNodeCharts(root, scope, nodeId, initialRange, onRange) {
  let range = RANGES[initialRange] ? initialRange : "1h";
  let generation = 0;
  let lastFullLoad = 0;
  let zoom = null; // [from, to] in Unix seconds while the user looks at a span of their own

  const live = h(
    "button",
    { type: "button", class: "btn btn-sm", "data-testid": "chart-live", hidden: true },
    "Back to live",
  );
  const restart = () => {
    generation += 1;
    lastFullLoad = 0;
    for (const p of panels) p.data = new Series(RANGES[range]);
    live.hidden = zoom === null;
    poll.kick();
  };
  const onZoom = ([from, to]) => {
    const middle = (from + to) / 2;
    const half = Math.max(MIN_ZOOM, to - from) / 2;
    zoom = [Math.floor(middle - half), Math.ceil(middle + half)];
    restart();
  };
  live.addEventListener("click", () => {
    zoom = null;
    restart();
  });

  const grid = h("div", { class: "grid grid-2" });
  const panels = PANELS.map((panel) => {
    const now = h("span", { class: "chart-now", "data-testid": `now-${panel.type}` }, "–");
    const c = card(panel.title, { actions: now, extraClass: "chart-card" });
    grid.appendChild(c.el);
    const chart = new TimeChart(c.body, {
      name: panel.type,
      series: panel.series,
      format: panel.format,
      kind: panel.kind,
      syncKey: `node-${nodeId}`,
      onZoom,
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
      zoom = null;
      onRange(value);
      restart();
    },
    "range-selector",
  );
  root.append(
    h("div", { class: "page-head section" }, h("h2", {}, "Resources"), h("div", { class: "toolbar" }, note, live, selector)),
    grid,
  );

  const draw = (panel, aggregated) => {
    const [xs, ys] = panel.data.columns(...panel.pickers);
    // Averages show the whole chosen span (a young node's buckets sit at its end); raw samples fill the chart.
    const nowS = Date.now() / 1000;
    const window = zoom || (aggregated ? [nowS - RANGES[range], nowS] : null);
    panel.chart.setData(xs, ys, { window, interval: panel.bucketSeconds || null });
    const last = panel.data.points[panel.data.points.length - 1];
    panel.nowEl.textContent = last ? panel.now(last) : "–";
    panel.nowEl.title = aggregated ? "average of the newest bucket" : "newest sample";
  };

  const poll = scope.every(POLL_MS, "node-metrics", "Loading metrics", async () => {
    const mine = generation;
    if (zoom && lastFullLoad) return; // a chosen span does not change: loaded once
    const nowS = Math.floor(Date.now() / 1000);
    const [start, end] = zoom || [nowS - RANGES[range], nowS];
    const aggregated = end - start > RAW_LIMIT;
    const full = zoom || aggregated ? Date.now() - lastFullLoad >= AGGREGATED_REFRESH_MS : lastFullLoad === 0;
    if ((zoom || aggregated) && !full) return;
    const answers = await Promise.all(
      panels.map((panel) => {
        const since = full || panel.data.last === null ? start : panel.data.last + 1;
        if (since >= end) return null;
        return api(`/metrics/nodes/${encodeURIComponent(nodeId)}/${panel.type}/history`, {
          query: { start_time: iso(since), end_time: iso(end) },
        });
      }),
    );
    if (scope.disposed || mine !== generation) return;
    panels.forEach((panel, i) => {
      const answer = answers[i];
      if (answer) {
        panel.bucketSeconds = answer.aggregated ? answer.bucket_seconds : null;
        if (full) panel.data.replace(answer.points);
        else panel.data.merge(answer.points);
      }
      draw(panel, aggregated);
    });
    if (full) lastFullLoad = Date.now();
    const bucket = answers.find((a) => a && a.aggregated);
    const kind = bucket ? `Averages per ${Math.round(bucket.bucket_seconds / 60)} min` : "Raw samples";
    if (zoom) note.textContent = `${kind}, ${dateTime(zoom[0])} – ${dateTime(zoom[1])}`;
    else note.textContent = bucket ? `${kind}, refreshed every minute` : `${kind}, live`;
  });
}
