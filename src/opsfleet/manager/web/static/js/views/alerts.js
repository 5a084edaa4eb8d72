// Alerts: firing and resolved alerts with acknowledge / silence buttons (operator, admin).

import { api, session } from "../api.js";
import { badge, emptyRow, field, h, replace, select, table } from "../dom.js";
import { timeAgo } from "../format.js";
import { notice, reportError } from "../notify.js";
import { href, setQuery } from "../router.js";
import { POLL_MS } from "../scope.js";

const PAGE_SIZE = 50;
const SILENCE_FOR = [
  ["1h", "1 hour"],
  ["4h", "4 hours"],
  ["1d", "1 day"],
];

/** The text of the "Note" column: who acknowledged, until when silenced. */
function note(alert) {
  const parts = [];
  if (alert.acked_by) parts.push(`acked by ${alert.acked_by}`);
  if (alert.silenced) parts.push(`silenced until ${new Date(alert.silenced_until).toLocaleString()}`);
  return parts.join(" · ") || "–";
}

export function renderAlerts(root, scope, query) {
  const canOperate = session.canOperate();
  const state = { state: query.get("state") ?? "firing", page: Math.max(1, Number(query.get("page")) || 1) };
  const stateFilter = select(
    [
      ["firing", "Firing"],
      ["resolved", "Resolved"],
      ["all", "All"],
    ],
    state.state,
    { "data-testid": "alerts-filter-state" },
  );
  const silenceFor = select(SILENCE_FOR, "1h", { "data-testid": "alerts-silence-for" });
  const list = table(
    [["State"], ["Severity"], ["Rule"], ["Node"], ["Subject"], ["Summary"], ["Since"], ["Note"], ["Actions"]],
    { testid: "alerts-table" },
  );
  const summary = h("span", { "data-testid": "alerts-summary" }, "");
  const prev = h("button", { type: "button", class: "btn btn-sm" }, "Previous");
  const next = h("button", { type: "button", class: "btn btn-sm" }, "Next");

  root.append(
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("h1", {}, "Alerts"),
        h("div", { class: "sub" }, "Rules evaluated by the Manager; notifications go to Alertmanager and webhooks."),
      ),
    ),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "filters" },
        field("State", stateFilter, "alerts-filter-state"),
        canOperate ? field("Silence for", silenceFor, "alerts-silence-for") : null,
      ),
      list.el,
      h("div", { class: "pager" }, summary, h("div", { class: "btn-group" }, prev, next)),
    ),
  );

  const act = async (alert, action) => {
    try {
      const body = action === "silence" ? { body: { duration: silenceFor.value } } : {};
      await api(`/alerts/${alert.id}/${action}`, { method: "POST", ...body });
      notice(`Alert ${alert.id} ${action === "ack" ? "acknowledged" : "silenced"}.`);
      poll.kick();
    } catch (error) {
      reportError("alert-action", error, `${action} alert ${alert.id}`);
    }
  };

  const actions = (alert) => {
    if (!alert.state || alert.state !== "firing") return "–";
    const title = canOperate ? null : "Needs the operator or admin role";
    return h(
      "div",
      { class: "btn-group" },
      h(
        "button",
        {
          type: "button",
          class: "btn btn-sm",
          disabled: !canOperate || alert.acknowledged,
          title,
          "data-testid": "alert-ack",
          onclick: () => act(alert, "ack"),
        },
        "Acknowledge",
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn btn-sm",
          disabled: !canOperate || alert.silenced,
          title,
          "data-testid": "alert-silence",
          onclick: () => act(alert, "silence"),
        },
        "Silence",
      ),
    );
  };

  const poll = scope.every(POLL_MS, "alerts", "Loading alerts", async () => {
    const params = { page: state.page, page_size: PAGE_SIZE };
    if (state.state !== "all") params.state = state.state;
    const data = await api("/alerts", { query: params });
    if (scope.disposed) return;
    const info = data.page_info;
    replace(
      list.tbody,
      data.list.length
        ? data.list.map((a) =>
            h(
              "tr",
              { "data-testid": "alert-row", "data-alert-id": a.id, "data-state": a.state, "data-rule": a.rule },
              h("td", {}, badge(a.state, "alert-state")),
              h("td", {}, h("span", { class: `badge ${a.severity === "critical" ? "bad" : "warn"}` }, a.severity)),
              h("td", { class: "mono" }, a.rule),
              h("td", {}, h("a", { href: href(["nodes", a.node_id]), title: a.node_id }, a.hostname || a.node_id)),
              h("td", { class: "mono" }, a.subject || "–"),
              h("td", { class: "small" }, a.summary),
              h("td", { class: "nowrap" }, timeAgo(a.starts_at)),
              h("td", { class: "small", "data-testid": "alert-note" }, note(a)),
              h("td", {}, actions(a)),
            ),
          )
        : emptyRow(9, state.state === "firing" ? "No firing alerts." : "No alerts."),
    );
    summary.textContent = `${info.total} alert(s) · ${data.firing} firing · page ${info.page} of ${Math.max(1, info.pages)}`;
    prev.disabled = info.page <= 1;
    next.disabled = info.page >= info.pages;
  });

  stateFilter.addEventListener("change", () => {
    state.state = stateFilter.value;
    state.page = 1;
    setQuery(state);
    poll.kick();
  });
  prev.addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    setQuery(state);
    poll.kick();
  });
  next.addEventListener("click", () => {
    state.page += 1;
    setQuery(state);
    poll.kick();
  });
}
