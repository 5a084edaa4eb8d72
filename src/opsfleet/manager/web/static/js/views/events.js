// The node timeline across the fleet (GET /events): filtered by kind and age, paged.

import { api } from "../api.js";
import { card, emptyRow, field, h, replace, select, table } from "../dom.js";
import { dateTime, nodeNames, timeAgo } from "../format.js";
import { href, setQuery } from "../router.js";
import { POLL_MS } from "../scope.js";
import { EVENT_FILTERS } from "./node_detail.js";

const SINCE = [
  ["", "Any time"],
  ["3600", "Last hour"],
  ["86400", "Last day"],
  ["604800", "Last week"],
];

export function renderEvents(root, scope, query) {
  const state = {
    kind: EVENT_FILTERS.some(([v]) => v === query.get("kind")) ? query.get("kind") : "",
    since: SINCE.some(([v]) => v === query.get("since")) ? query.get("since") : "",
    page: Math.max(1, Number(query.get("page")) || 1),
  };
  const kind = select(EVENT_FILTERS, state.kind, { "data-testid": "fleet-events-kind" });
  const since = select(SINCE, state.since, { "data-testid": "fleet-events-since" });
  const events = table([["When"], ["Node"], ["Kind"], ["Detail"]], { testid: "fleet-events-table" });
  const summary = h("span", { "data-testid": "fleet-events-summary" }, "");
  const prev = h("button", { type: "button", class: "btn btn-sm" }, "Previous");
  const next = h("button", { type: "button", class: "btn btn-sm" }, "Next");
  root.append(
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Events"), h("div", { class: "sub" }, "What happened to the fleet's nodes and agents.")),
    ),
    card(null, {
      body: [
        h("div", { class: "filters" }, field("Kind", kind, "fleet-events-kind"), field("Since", since, "fleet-events-since")),
        events.el,
        h("div", { class: "pager" }, summary, h("div", { class: "btn-group" }, prev, next)),
      ],
    }).el,
  );

  const poll = scope.every(POLL_MS, "fleet-events", "Loading events", async () => {
    const sinceValue = state.since ? String(Math.floor(Date.now() / 1000) - Number(state.since)) : "";
    const page = await api("/events", { query: { page: state.page, page_size: 50, kind: state.kind, since: sinceValue } });
    if (scope.disposed) return;
    const nameOf = nodeNames(page.list);
    replace(
      events.tbody,
      page.list.length
        ? page.list.map((e) =>
            h(
              "tr",
              { "data-testid": "fleet-event", "data-kind": e.kind, "data-node-id": e.node_id },
              h("td", { class: "nowrap", title: dateTime(e.at) }, timeAgo(e.at)),
              h("td", {}, h("a", { href: href(["nodes", e.node_id]), class: "node-name" }, nameOf(e))),
              h("td", { class: "nowrap" }, e.kind),
              h("td", {}, e.detail || "–"),
            ),
          )
        : emptyRow(4, "No event matches these filters."),
    );
    const info = page.page_info;
    const pages = Math.max(1, info.pages);
    summary.textContent = `${info.total} event${info.total === 1 ? "" : "s"} · page ${info.page} of ${pages}`;
    prev.disabled = info.page <= 1;
    next.disabled = info.page >= pages;
  });

  const apply = (resetPage = true) => {
    if (resetPage) state.page = 1;
    setQuery({ ...state, page: state.page > 1 ? state.page : "" });
    poll.kick();
  };
  kind.addEventListener("change", () => {
    state.kind = kind.value;
    apply();
  });
  since.addEventListener("change", () => {
    state.since = since.value;
    apply();
  });
  prev.addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    apply(false);
  });
  next.addEventListener("click", () => {
    state.page += 1;
    apply(false);
  });
}
