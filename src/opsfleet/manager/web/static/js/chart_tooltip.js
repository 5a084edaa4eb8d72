// The hover tooltip of a TimeChart: the time at the cursor and every series' value there.
// Shown only on the chart under the mouse; charts sharing a cursor (cursor.sync) show the
// cursor line and points at the same time.

import { h } from "./dom.js";

const OFFSET = 12;

function timeText(t) {
  return new Date(t * 1000).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** A uPlot plugin; chart: {name, format, series: [{label, color}]}. */
export function tooltipPlugin(chart) {
  const tip = h("div", { class: "chart-tooltip", "data-testid": `chart-tooltip-${chart.name}`, role: "status" });
  tip.hidden = true;
  let hovered = false;

  const render = (u) => {
    const idx = u.cursor.idx;
    if (!hovered || idx === null || idx === undefined || u.cursor.left < 0) {
      tip.hidden = true;
      return;
    }
    const rows = chart.series.map((s, i) => {
      const v = u.data[i + 1][idx];
      const swatch = h("span", { class: "chart-swatch" });
      swatch.style.background = s.color;
      return h(
        "div",
        { class: "chart-tooltip-row", "data-testid": "chart-tooltip-row" },
        swatch,
        h("span", { class: "chart-tooltip-label" }, s.label),
        h("span", { class: "chart-tooltip-value" }, v === null || v === undefined ? "no data" : chart.format(v)),
      );
    });
    tip.replaceChildren(h("div", { class: "chart-tooltip-time" }, timeText(u.data[0][idx])), ...rows);
    tip.hidden = false;
    // Beside the cursor, on the side with room, inside the plot.
    const width = tip.offsetWidth;
    const room = u.over.clientWidth;
    let left = u.cursor.left + OFFSET;
    if (left + width > room) left = Math.max(0, u.cursor.left - OFFSET - width);
    tip.style.left = `${left}px`;
    tip.style.top = `${Math.max(0, Math.min(u.cursor.top, u.over.clientHeight - tip.offsetHeight))}px`;
  };

  return {
    hooks: {
      init: (u) => {
        u.over.appendChild(tip);
        u.over.addEventListener("mouseenter", () => {
          hovered = true;
        });
        u.over.addEventListener("mouseleave", () => {
          hovered = false;
          tip.hidden = true;
        });
      },
      setCursor: render,
    },
  };
}
