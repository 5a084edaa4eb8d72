// Time-series charts on uPlot (vendor/uPlot-1.6.32.iife.min.js, the global `uPlot`).
// A chart follows its container's width, shows a message instead of an empty plot, and
// exposes data-points (number of samples drawn) for tests and curious users.

import { h } from "./dom.js";

export const COLORS = {
  cpu: "#2563eb",
  memory: "#7c3aed",
  disk: "#0d9488",
  rx: "#2563eb",
  tx: "#ea580c",
};

const HEIGHT = 190;
const AXIS = { stroke: "#64748b", grid: { stroke: "#edf1f7", width: 1 }, ticks: { stroke: "#e2e8f0", width: 1 } };

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Tick labels of the time axis: clock times, with the date once the span exceeds a day. */
function timeTicks(u, ticks) {
  const span = u.scales.x.max - u.scales.x.min;
  return ticks.map((t) => {
    const d = new Date(t * 1000);
    const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}${span < 300 ? `:${pad(d.getSeconds())}` : ""}`;
    return span > 86400 ? `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${clock}` : clock;
  });
}

// Whole seconds and up: samples are at least a second apart.
const TIME_INCREMENTS = [
  1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
];
const MIN_SPAN = 30;

/** Scale (u, min, max) for byte values: from 0, at least 1 KiB (no "0 B, 0 B, 1 B" ticks). */
function fromZero(_u, _min, max) {
  return [0, Math.max(1024, (max || 0) * 1.15)];
}

export class TimeChart {
  /**
   * name: used in data-testid (chart-<name>, chart-canvas-<name>);
   * series: [{label, color}]; format: value -> text; percent: fixed 0..100 scale.
   */
  constructor(container, { name, series, format, percent = false }) {
    this.name = name;
    this.format = format;
    this.window = null;
    this.empty = h("div", { class: "chart-empty" }, "Waiting for samples…");
    this.el = h("div", { class: "chart", "data-testid": `chart-${name}`, "data-points": "0" }, this.empty);
    container.appendChild(this.el);
    const opts = {
      width: this._width(container),
      height: HEIGHT,
      padding: [12, 24, 0, 0], // room for the last time label
      cursor: { drag: { x: false, y: false } },
      legend: { show: series.length > 1, live: false },
      // 102, not 100: a line at 100 % would lie on the plot's edge, half clipped.
      scales: {
        x: { time: true, range: (_u, min, max) => this._xRange(min, max) },
        y: { range: percent ? [0, 102] : fromZero },
      },
      axes: [
        { ...AXIS, space: 70, incrs: TIME_INCREMENTS, values: timeTicks },
        { ...AXIS, size: 70, values: (_u, ticks) => ticks.map((v) => format(v)) },
      ],
      series: [
        { value: (_u, v) => (v === null ? "–" : new Date(v * 1000).toLocaleTimeString()) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: `${s.color}1f`,
          value: (_u, v) => (v === null || v === undefined ? "–" : format(v)),
        })),
      ],
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], this.el);
    this.plot.ctx.canvas.setAttribute("data-testid", `chart-canvas-${name}`);
    this.plot.ctx.canvas.setAttribute("role", "img");
    this.plot.ctx.canvas.setAttribute("aria-label", `${series.map((s) => s.label).join(", ")} over time`);
    this._observer = new ResizeObserver(() => {
      const width = this._width(container);
      if (width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
    });
    this._observer.observe(container);
  }

  _width(container) {
    return Math.max(200, container.clientWidth - 16);
  }

  _xRange(min, max) {
    if (this.window) return this.window;
    if (min === null || max === null) return [Date.now() / 1000 - MIN_SPAN, Date.now() / 1000];
    if (max - min >= MIN_SPAN) return [min, max];
    return [max - MIN_SPAN, max];
  }

  /**
   * xs: Unix seconds ascending; ys: one array per series (null = no value).
   * window: [from, to] in Unix seconds to show that whole span, else the data's span.
   */
  setData(xs, ys, { window = null, emptyText = "No samples in this range" } = {}) {
    this.window = window;
    this.plot.setData([xs, ...ys]);
    this.el.dataset.points = String(xs.length);
    this.empty.textContent = emptyText;
    this.empty.hidden = xs.length > 0;
  }

  destroy() {
    this._observer.disconnect();
    this.plot.destroy();
  }
}

/**
 * A history that grows by polling: keeps (ts, row) pairs sorted, merges new points,
 * and forgets those older than `windowSeconds`.
 */
export class Series {
  constructor(windowSeconds) {
    this.windowSeconds = windowSeconds;
    this.points = [];
  }

  get last() {
    return this.points.length ? this.points[this.points.length - 1].timestamp : null;
  }

  replace(points) {
    this.points = points.slice().sort((a, b) => a.timestamp - b.timestamp);
  }

  merge(points) {
    const last = this.last;
    for (const p of points) if (last === null || p.timestamp > last) this.points.push(p);
    const cutoff = Date.now() / 1000 - this.windowSeconds;
    let drop = 0;
    while (drop < this.points.length && this.points[drop].timestamp < cutoff) drop += 1;
    if (drop) this.points.splice(0, drop);
  }

  columns(...pickers) {
    return [this.points.map((p) => p.timestamp), pickers.map((pick) => this.points.map((p) => pick(p)))];
  }
}
