// Fleet overview: nodes by status, fleet averages, alerts, top nodes by CPU and memory.

import { api } from "../api.js";
import { badge, card, emptyRow, h, replace, table } from "../dom.js";
import { WARN_PERCENT, meter, nodeNames, percent, usage } from "../format.js";
import { href } from "../router.js";
import { POLL_MS } from "../scope.js";

const RESOURCES = [
  ["cpu", "CPU"],
  ["memory", "Memory"],
  ["disk", "Disk"],
];

/** Alerts derived from the newest usage of every node: offline nodes, usage above the threshold. */
export function alertsOf(nodeUsage, nameOf = nodeNames(nodeUsage)) {
  const alerts = [];
  for (const row of nodeUsage) {
    const name = nameOf(row);
    if (row.status === "offline") {
      alerts.push({ level: "bad", label: "offline", node: row, text: `${name} is offline` });
      continue;
    }
    let anyValue = false;
    for (const [key, label] of RESOURCES) {
      const value = row[key];
      if (value === null || value === undefined) continue;
      anyValue = true;
      if (value > WARN_PERCENT) {
        alerts.push({
          level: "warn",
          label: `${key} high`,
          node: row,
          text: `${label} at ${percent(value)} on ${name}`,
        });
      }
    }
    if (!anyValue) {
      alerts.push({
        level: "warn",
        label: "no metrics",
        node: row,
        text: `${name} sent no metrics in the last 15 minutes`,
      });
    }
  }
  return alerts.sort((a, b) => (a.level === b.level ? 0 : a.level === "bad" ? -1 : 1));
}

function stat(label, testid, cls = "") {
  const value = h("div", { class: `stat-value ${cls}`, "data-testid": testid }, "–");
  const el = h("div", { class: "card stat" }, h("div", { class: "stat-label" }, label), value);
  return { el, value };
}

function nodeLink(row, nameOf) {
  return h(
    "a",
    { href: href(["nodes", row.node_id]), class: "node-name", title: row.node_id, "data-testid": "node-name" },
    nameOf(row),
  );
}

export function renderOverview(root, scope) {
  const updated = h("span", { class: "muted small", "data-testid": "overview-updated" }, "");
  const tiles = {
    total: stat("Nodes", "stat-total"),
    online: stat("Online", "stat-online", "ok"),
    offline: stat("Offline", "stat-offline"),
    alerts: stat("Firing alerts", "stat-alerts"),
  };
  const averages = RESOURCES.map(([key, label]) => {
    const value = h("div", { class: "stat-value", "data-testid": `avg-${key}` }, "–");
    const bar = h("div", { class: "stat-bar" });
    const el = h(
      "div",
      { class: "card stat" },
      h("div", { class: "stat-label" }, `Fleet average ${label}`),
      value,
      bar,
    );
    return { key, value, bar, el };
  });
  const alertList = h("ul", { class: "alerts", "data-testid": "alerts" });
  const alertCard = card("Alerts", { body: alertList, flush: true });
  const topCpu = table([["Node"], ["Status"], ["CPU", "num"]], { testid: "top-cpu" });
  const topMemory = table([["Node"], ["Status"], ["Memory", "num"]], { testid: "top-memory" });

  root.append(
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("h1", {}, "Fleet overview"),
        h("div", { class: "sub" }, "Newest usage of every node over the last 15 minutes."),
      ),
      updated,
    ),
    h(
      "div",
      { class: "grid grid-4 keep-2" },
      Object.values(tiles).map((t) => t.el),
    ),
    h(
      "div",
      { class: "grid grid-3 section" },
      averages.map((a) => a.el),
    ),
    h(
      "div",
      { class: "grid grid-3 section" },
      alertCard.el,
      card("Top nodes by CPU", { body: topCpu.el, flush: true }).el,
      card("Top nodes by memory", { body: topMemory.el, flush: true }).el,
    ),
  );

  const fillTop = (tbody, rows, key, nameOf) => {
    replace(
      tbody,
      rows.length
        ? rows.map((row) =>
            h(
              "tr",
              {},
              h("td", {}, nodeLink(row, nameOf)),
              h("td", {}, badge(row.status)),
              h("td", { class: "num" }, usage(row[key])),
            ),
          )
        : emptyRow(3, "No recent samples"),
    );
  };

  scope.every(POLL_MS, "overview", "Loading the overview", async () => {
    const [stats, overview, firing] = await Promise.all([
      api("/nodes/statistics"),
      api("/metrics/cluster/overview"),
      api("/alerts", { query: { state: "firing", page_size: 1 } }),
    ]);
    if (scope.disposed) return;
    const counts = stats.statistics;
    tiles.total.value.textContent = String(counts.total);
    tiles.online.value.textContent = String(counts.online);
    tiles.offline.value.textContent = String(counts.offline);
    tiles.offline.value.className = `stat-value ${counts.offline > 0 ? "bad" : ""}`;
    for (const a of averages) {
      const v = overview.averages[a.key];
      a.value.textContent = percent(v);
      replace(a.bar, v === null || v === undefined ? null : meter(v));
    }
    const nameOf = nodeNames(overview.node_usage);
    const alerts = alertsOf(overview.node_usage, nameOf);
    // The tile counts the Manager's firing alerts; the card lists what the newest usage shows.
    tiles.alerts.value.textContent = String(firing.firing);
    tiles.alerts.value.className = `stat-value ${firing.firing > 0 ? "bad" : ""}`;
    replace(
      alertList,
      alerts.length
        ? alerts.map((alert) =>
            h(
              "li",
              { "data-testid": "alert", "data-level": alert.level },
              h("span", { class: `badge ${alert.level}` }, alert.label),
              h("span", { class: "what" }, alert.text),
              h("a", { href: href(["nodes", alert.node.node_id]), class: "small" }, "Open"),
            ),
          )
        : h("li", { class: "muted" }, `No alerts: every node is online and below ${WARN_PERCENT} %.`),
    );
    fillTop(topCpu.tbody, overview.top_cpu, "cpu", nameOf);
    fillTop(topMemory.tbody, overview.top_memory, "memory", nameOf);
    updated.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${POLL_MS / 1000} s`;
  });
}
