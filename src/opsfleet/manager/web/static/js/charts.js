// Time-series charts on uPlot (vendor/uPlot-1.6.32.iife.min.js, the global `uPlot`).
// A chart follows its container's width, shows a message instead of an empty plot, and
// exposes data-points (number of samples drawn) for tests and curious users; the chart
// element's `timeChart` property is the TimeChart (its `plot` the uPlot instance).
// Gaps in the data (no sample for over GAP_FACTOR expected intervals) are drawn as breaks.

import { tooltipPlugin } from "./chart_tooltip.js";
import {
  LABEL_GAP,
  timeIncrements,
  timeLabel,
  timeStyle,
  widestTimeLabels,
  yLabel,
  ySplits,
  yTicks,
} from "./chart_axes.js";
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
const MIN_SPAN = 30;
// A distance between samples above this many expected intervals is a gap in the data.
export const GAP_FACTOR = 2.5;
// Room between a y label and the canvas' left edge, in CSS pixels.
const AXIS_MARGIN = 6;
// A drag narrower than this (CSS pixels) is a click, not a zoom.
const MIN_DRAG = 5;

function median(values) {
  if (!values.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * xs and ys with a null row inserted wherever two samples are more than GAP_FACTOR expected
 * intervals apart (uPlot breaks the line at a null: spanGaps is false). `interval`: the
 * expected distance in seconds; by default the median distance between the samples.
 */
export function withGaps(xs, ys, interval = null) {
  if (xs.length < 2) return [xs, ys];
  const steps = [];
  for (let i = 1; i < xs.length; i++) steps.push(xs[i] - xs[i - 1]);
  const expected = interval || median(steps);
  if (!(expected > 0)) return [xs, ys];
  const outX = [xs[0]];
  const outY = ys.map((col) => [col[0]]);
  for (let i = 1; i < xs.length; i++) {
    if (xs[i] - xs[i - 1] > GAP_FACTOR * expected) {
      outX.push(xs[i - 1] + expected);
      for (const col of outY) col.push(null);
    }
    outX.push(xs[i]);
    ys.forEach((col, k) => outY[k].push(col[i]));
  }
  return [outX, outY];
}

export class TimeChart {
  /**
   * name: used in data-testid (chart-<name>, chart-canvas-<name>, chart-tooltip-<name>);
   * series: [{label, color, dash?, width?, fill?}], drawn in that order (the last on top);
   * format: value -> text (tooltip); kind: the y axis, see chart_axes.yTicks ("percent",
   * "cores", "bytes", "rate"); syncKey: charts with the same key share the cursor;
   * onZoom([from, to]): called with the span the user selected by dragging (no zoom without it).
   */
  constructor(container, { name, series, format, kind = "bytes", syncKey = null, onZoom = null }) {
    this.name = name;
    this.format = format;
    this.series = series;
    this.kind = kind;
    this.window = null;
    this._ticks = yTicks(kind, 0);
    this._measure = document.createElement("canvas").getContext("2d");
    this.empty = h("div", { class: "chart-empty" }, "Waiting for samples…");
    this.el = h("div", { class: "chart", "data-testid": `chart-${name}`, "data-points": "0" }, this.empty);
    this.el.timeChart = this;
    container.appendChild(this.el);
    const tooltip = tooltipPlugin(this);
    let ownDrag = false;
    const opts = {
      width: this._width(container),
      height: HEIGHT,
      padding: [12, 24, 0, 0], // room for the last time label
      cursor: {
        drag: onZoom ? { x: true, y: false, setScale: false } : { x: false, y: false },
        ...(syncKey ? { sync: { key: syncKey } } : {}),
      },
      legend: { show: series.length > 1, live: false },
      scales: {
        x: { time: true, range: (_u, min, max) => this._xRange(min, max) },
        y: { range: (_u, _min, max) => this._yRange(max) },
      },
      axes: [
        {
          ...AXIS,
          space: (u, _i, min, max) => this._xSpace(u, max - min),
          incrs: (_u, _i, min, max) => timeIncrements(max - min),
          values: (u, ticks, _i, _space, increment) => {
            const style = timeStyle(u.scales.x.max - u.scales.x.min);
            return ticks.map((t) => timeLabel(t, style, increment));
          },
        },
        {
          ...AXIS,
          splits: () => ySplits(this._ticks),
          values: (_u, ticks) => ticks.map((v) => yLabel(this._ticks, v)),
          size: (u, values, i) => this._ySize(u, values, i),
        },
      ],
      series: [
        { value: (_u, v) => (v === null ? "–" : new Date(v * 1000).toLocaleTimeString()) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width || 2,
          ...(s.dash ? { dash: s.dash } : {}),
          ...(s.fill === false ? {} : { fill: `${s.color}1f` }),
          spanGaps: false,
          value: (_u, v) => (v === null || v === undefined ? "–" : format(v)),
        })),
      ],
      plugins: [tooltip],
      hooks: {
        init: [
          (u) => {
            // uPlot's own listeners come first: its mouseup (which ends the selection) runs
            // before this one forgets the drag.
            u.over.addEventListener("mousedown", () => {
              ownDrag = true;
              document.addEventListener("mouseup", () => (ownDrag = false), { once: true });
            });
          },
        ],
        // Only the chart dragged on zooms; charts sharing its cursor see the same selection.
        setSelect: [
          (u) => {
            if (!onZoom || !ownDrag) return;
            ownDrag = false;
            const { left, width } = u.select;
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (width >= MIN_DRAG) onZoom([u.posToVal(left, "x"), u.posToVal(left + width, "x")]);
          },
        ],
      },
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

  _yRange(max) {
    this._ticks = yTicks(this.kind, max);
    return [0, this._ticks.max];
  }

  /** Width in CSS pixels of the widest of `texts` in the font of axis `i`. */
  textWidth(u, i, texts) {
    this._measure.font = u.axes[i].font[0];
    let widest = 0;
    for (const text of texts) widest = Math.max(widest, this._measure.measureText(text).width);
    return widest / uPlot.pxRatio;
  }

  /** Pixels between x ticks: the widest label of the span's style plus a gap. */
  _xSpace(u, span) {
    return Math.ceil(this.textWidth(u, 0, widestTimeLabels(timeStyle(span))) + LABEL_GAP);
  }

  /** The y axis is as wide as its widest label, its tick and the gap between them. */
  _ySize(u, values, i) {
    if (!values) return 50;
    const axis = u.axes[i];
    return Math.ceil(this.textWidth(u, i, values) + axis.ticks.size + axis.gap + AXIS_MARGIN);
  }

  /**
   * xs: Unix seconds ascending; ys: one array per series (null = no value).
   * window: [from, to] in Unix seconds to show that whole span, else the data's span.
   * interval: seconds expected between samples (gap detection), else their median distance.
   */
  setData(xs, ys, { window = null, emptyText = "No samples in this range", interval = null } = {}) {
    this.window = window;
    const [gx, gy] = withGaps(xs, ys, interval);
    this.plot.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    this.plot.setData([gx, ...gy]);
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
