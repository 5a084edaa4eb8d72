// The nodes table: search (q), status and label filters, paging; usage from the overview.

import { api } from "../api.js";
import { badge, emptyRow, field, h, replace, select, table } from "../dom.js";
import { timeAgo, usage } from "../format.js";
import { href, setQuery } from "../router.js";
import { POLL_MS } from "../scope.js";

const PAGE_SIZES = ["20", "50", "100"];

function labelChips(labels) {
  const entries = Object.entries(labels || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h("span", { class: "muted" }, "–");
  return entries.map(([k, v]) => h("span", { class: "chip", "data-testid": "node-label" }, `${k}=${v}`));
}

function nodeRow(node, use) {
  const link = href(["nodes", node.node_id]);
  return h(
    "tr",
    { "data-testid": "node-row", "data-node-id": node.node_id, "data-status": node.status },
    h("td", {}, badge(node.status, "node-status")),
    h(
      "td",
      {},
      h("a", { href: link, class: "node-name", "data-testid": "node-link" }, node.hostname || node.node_id),
      h("div", { class: "muted small mono node-id" }, node.node_id),
    ),
    h("td", { class: "nowrap mono" }, node.ip || "–"),
    h("td", { class: "nowrap" }, `${node.os || "?"} / ${node.arch || "?"}`),
    h("td", {}, labelChips(node.labels)),
    h("td", {}, usage(use?.cpu)),
    h("td", {}, usage(use?.memory)),
    h("td", {}, usage(use?.disk)),
    h("td", { class: "nowrap" }, timeAgo(node.last_seen_at)),
  );
}

export function renderNodes(root, scope, query) {
  const state = {
    q: query.get("q") || "",
    status: query.get("status") || "",
    label: query.get("label") || "",
    page: Math.max(1, Number(query.get("page")) || 1),
    page_size: PAGE_SIZES.includes(query.get("page_size")) ? query.get("page_size") : "20",
  };

  const q = h("input", {
    type: "search",
    placeholder: "node id, hostname or IP",
    value: state.q,
    "data-testid": "filter-q",
  });
  const status = select(
    [
      ["", "Any status"],
      ["online", "Online"],
      ["offline", "Offline"],
    ],
    state.status,
    { "data-testid": "filter-status" },
  );
  const label = h("input", {
    type: "text",
    placeholder: "env=prod, role=db",
    value: state.label,
    "data-testid": "filter-label",
  });
  const pageSize = select(
    PAGE_SIZES.map((n) => [n, n]),
    state.page_size,
    { "data-testid": "filter-page-size" },
  );
  const clear = h("button", { type: "button", class: "btn" }, "Clear filters");

  const nodes = table(
    [["Status"], ["Node"], ["IP"], ["OS / arch"], ["Labels"], ["CPU"], ["Memory"], ["Disk"], ["Last seen"]],
    { testid: "nodes-table" },
  );
  const summary = h("span", { "data-testid": "nodes-summary" }, "");
  const prev = h("button", { type: "button", class: "btn btn-sm" }, "Previous");
  const next = h("button", { type: "button", class: "btn btn-sm" }, "Next");

  root.append(
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Nodes"), h("div", { class: "sub" }, "Every node that registered with this Manager.")),
    ),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "filters", role: "search" },
        field("Search", q, "filter-q"),
        field("Status", status, "filter-status"),
        field("Labels (key=value, comma-separated)", label, "filter-label"),
        field("Per page", pageSize, "filter-page-size"),
        clear,
      ),
      nodes.el,
      h("div", { class: "pager" }, summary, h("div", { class: "btn-group" }, prev, next)),
    ),
  );

  const poll = scope.every(POLL_MS, "nodes", "Loading nodes", async () => {
    const params = {
      page: state.page,
      page_size: state.page_size,
      q: state.q,
      status: state.status,
      label: state.label,
    };
    const [page, overview] = await Promise.all([api("/nodes", { query: params }), api("/metrics/cluster/overview")]);
    if (scope.disposed) return;
    const usageById = new Map(overview.node_usage.map((row) => [row.node_id, row]));
    const info = page.page_info;
    replace(
      nodes.tbody,
      page.list.length
        ? page.list.map((n) => nodeRow(n, usageById.get(n.node_id)))
        : emptyRow(9, "No node matches these filters."),
    );
    const pages = Math.max(1, info.pages);
    summary.textContent = `${info.total} node${info.total === 1 ? "" : "s"} · page ${info.page} of ${pages}`;
    prev.disabled = info.page <= 1;
    next.disabled = info.page >= pages;
  });

  const apply = (resetPage = true) => {
    if (resetPage) state.page = 1;
    setQuery({
      ...state,
      page: state.page > 1 ? state.page : "",
      page_size: state.page_size !== "20" ? state.page_size : "",
    });
    poll.kick();
  };
  let debounce = null;
  q.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      state.q = q.value.trim();
      apply();
    }, 300);
  });
  scope.onDispose(() => clearTimeout(debounce));
  status.addEventListener("change", () => {
    state.status = status.value;
    apply();
  });
  label.addEventListener("change", () => {
    state.label = label.value
      .split(",")
      .map((part) => part.trim())
      .filter(Boolean)
      .join(",");
    apply();
  });
  pageSize.addEventListener("change", () => {
    state.page_size = pageSize.value;
    apply();
  });
  clear.addEventListener("click", () => {
    Object.assign(state, { q: "", status: "", label: "" });
    q.value = "";
    status.value = "";
    label.value = "";
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
