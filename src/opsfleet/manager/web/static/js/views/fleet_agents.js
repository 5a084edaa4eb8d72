// Agents across the fleet: filters (text, state, agent id, node selector), a paged table, and
// one operation on one agent of every node a selector picks (preview first, then run), with
// the outcome of each node.

import { api, session } from "../api.js";
import { badge, card, emptyRow, field, h, replace, select, table } from "../dom.js";
import { nodeNames, timeAgo } from "../format.js";
import { clearError, notice, reportError } from "../notify.js";
import { href, setQuery } from "../router.js";
import { POLL_MS } from "../scope.js";

const STATES = ["", "running", "starting", "stopping", "stopped", "error", "removed"];

function labelChips(labels) {
  const entries = Object.entries(labels || {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)) : "–";
}

/** "env=prod, role=db" -> ["env=prod", "role=db"]. */
function selectorItems(text) {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
}

export function renderFleetAgents(root, scope, query) {
  const state = {
    q: query.get("q") || "",
    state: query.get("state") || "",
    agent: query.get("agent") || "",
    selector: query.get("selector") || "",
    page: Math.max(1, Number(query.get("page")) || 1),
  };
  const q = h("input", { type: "search", placeholder: "agent, node id or hostname", value: state.q });
  const stateSel = select(
    STATES.map((s) => [s, s || "Any state"]),
    state.state,
    { "data-testid": "fleet-filter-state" },
  );
  const agentIn = h("input", { type: "text", placeholder: "filebeat", value: state.agent });
  const selectorIn = h("input", { type: "text", placeholder: "env=prod, role=db", value: state.selector });
  const agentsTable = table(
    [["Agent"], ["Node"], ["Status"], ["Type"], ["Version"], ["PID", "num"], ["Restarts", "num"], ["Labels"], ["Synced"]],
    { testid: "fleet-agents-table" },
  );
  const summary = h("span", { "data-testid": "fleet-agents-summary" }, "");
  const prev = h("button", { type: "button", class: "btn btn-sm" }, "Previous");
  const next = h("button", { type: "button", class: "btn btn-sm" }, "Next");

  root.append(
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("h1", {}, "Agents"),
        h("div", { class: "sub" }, "Every agent of every node, as the daemons last reported them."),
      ),
    ),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "filters", role: "search" },
        field("Search", q, "fleet-filter-q"),
        field("State", stateSel, "fleet-filter-state"),
        field("Agent id", agentIn, "fleet-filter-agent"),
        field("Node labels (key=value,…)", selectorIn, "fleet-filter-selector"),
      ),
      agentsTable.el,
      h("div", { class: "pager" }, summary, h("div", { class: "btn-group" }, prev, next)),
    ),
  );

  const row = (a, nameOf) =>
    h(
      "tr",
      { "data-testid": "fleet-agent-row", "data-agent-id": a.agent_id, "data-node-id": a.node_id, "data-status": a.status },
      h("td", { class: "nowrap" }, h("strong", {}, a.agent_id)),
      h(
        "td",
        {},
        h("a", { href: href(["nodes", a.node_id], { agent: a.agent_id }), class: "node-name", title: a.node_id }, nameOf(a)),
      ),
      h("td", {}, badge(a.status, "fleet-agent-status")),
      h("td", {}, a.type || "–"),
      h("td", { class: "mono" }, a.version || "–"),
      h("td", { class: "num mono", "data-testid": "fleet-agent-pid" }, a.pid ? String(a.pid) : "–"),
      h("td", { class: "num" }, String(a.restart_count ?? 0)),
      h("td", {}, labelChips(a.labels)),
      h("td", { class: "nowrap" }, timeAgo(a.last_sync_at)),
    );

  const poll = scope.every(POLL_MS, "fleet-agents", "Loading agents", async () => {
    const page = await api("/agents", {
      query: {
        page: state.page,
        page_size: 50,
        q: state.q,
        state: state.state,
        agent_id: state.agent,
        selector: selectorItems(state.selector),
      },
    });
    if (scope.disposed) return;
    const nameOf = nodeNames(page.list);
    replace(
      agentsTable.tbody,
      page.list.length ? page.list.map((a) => row(a, nameOf)) : emptyRow(9, "No agent matches these filters."),
    );
    const info = page.page_info;
    const pages = Math.max(1, info.pages);
    summary.textContent = `${info.total} agent${info.total === 1 ? "" : "s"} · page ${info.page} of ${pages}`;
    prev.disabled = info.page <= 1;
    next.disabled = info.page >= pages;
  });

  const apply = (resetPage = true) => {
    if (resetPage) state.page = 1;
    setQuery({ ...state, page: state.page > 1 ? state.page : "" });
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
  stateSel.addEventListener("change", () => {
    state.state = stateSel.value;
    apply();
  });
  agentIn.addEventListener("change", () => {
    state.agent = agentIn.value.trim();
    bulkAgent.value = bulkAgent.value || state.agent;
    apply();
  });
  selectorIn.addEventListener("change", () => {
    state.selector = selectorItems(selectorIn.value).join(",");
    bulkSelector.value = bulkSelector.value || state.selector;
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

  // -- bulk operation ----------------------------------------------------------------------
  const canOperate = session.canOperate();
  const bulkAgent = h("input", { type: "text", placeholder: "filebeat", value: state.agent, "data-testid": "bulk-agent" });
  const bulkOp = select(
    [
      ["restart", "Restart"],
      ["start", "Start"],
      ["stop", "Stop"],
    ],
    "restart",
    { "data-testid": "bulk-operation" },
  );
  const bulkSelector = h("input", {
    type: "text",
    placeholder: "env=prod",
    value: state.selector,
    "data-testid": "bulk-selector",
  });
  const bulkParallel = h("input", { type: "number", min: "1", max: "100", value: "5", "data-testid": "bulk-parallel" });
  const preview = h("button", { type: "button", class: "btn", "data-testid": "bulk-preview" }, "Preview nodes");
  const run = h("button", { type: "button", class: "btn btn-primary", "data-testid": "bulk-run" }, "Run");
  const outcome = h("span", { class: "op-result", "data-testid": "bulk-outcome", role: "status" }, "");
  const results = table([["Node"], ["Result"], ["State after"], ["PID", "num"]], { testid: "bulk-results" });
  for (const control of [bulkAgent, bulkOp, bulkSelector, bulkParallel, preview, run]) control.disabled = !canOperate;

  root.append(
    h(
      "div",
      { class: "section" },
      card("Operate an agent on many nodes", {
        testid: "bulk-card",
        actions: canOperate ? outcome : h("span", { class: "muted small" }, "Needs the operator or admin role"),
        body: [
          h(
            "div",
            { class: "filters" },
            field("Agent id", bulkAgent, "bulk-agent"),
            field("Operation", bulkOp, "bulk-operation"),
            field("Nodes with labels (key=value, comma-separated)", bulkSelector, "bulk-selector"),
            field("At most in parallel", bulkParallel, "bulk-parallel"),
            h("div", { class: "btn-group" }, preview, run),
          ),
          results.el,
        ],
      }).el,
    ),
  );

  const bulk = async (dryRun) => {
    const agentId = bulkAgent.value.trim();
    const selector = selectorItems(bulkSelector.value);
    if (!agentId || !selector.length) {
      reportError("bulk", new Error("give an agent id and at least one key=value label"), "Bulk operation");
      return;
    }
    preview.disabled = run.disabled = true;
    outcome.className = "op-result";
    outcome.textContent = dryRun ? "Finding the nodes…" : `${bulkOp.value} ${agentId} on the selected nodes…`;
    try {
      const answer = await api(`/agents/${encodeURIComponent(agentId)}/operate`, {
        method: "POST",
        body: {
          operation: bulkOp.value,
          selector,
          max_parallel: Math.max(1, Math.min(100, Number(bulkParallel.value) || 5)),
          dry_run: dryRun,
        },
      });
      if (scope.disposed) return;
      clearError("bulk");
      const nameOf = nodeNames(answer.results);
      replace(
        results.tbody,
        answer.results.length
          ? answer.results.map((r) =>
              h(
                "tr",
                { "data-testid": "bulk-result", "data-node-id": r.node_id, "data-success": String(r.success) },
                h("td", {}, h("a", { href: href(["nodes", r.node_id]), class: "node-name" }, nameOf(r))),
                h(
                  "td",
                  {},
                  dryRun
                    ? h("span", { class: "muted" }, "would be operated")
                    : r.success
                      ? h("span", { class: "op-text ok" }, "ok")
                      : h("span", { class: "op-text bad" }, `failed: ${r.error}`),
                ),
                h("td", {}, r.status ? badge(r.status) : "–"),
                h("td", { class: "num mono" }, r.pid ? String(r.pid) : "–"),
              ),
            )
          : emptyRow(4, "No node has this agent and these labels."),
      );
      const total = answer.results.length;
      outcome.className = `op-result ${answer.failed ? "bad" : "ok"}`;
      outcome.textContent = dryRun
        ? `${total} node${total === 1 ? "" : "s"} would be operated`
        : `${answer.operation} ${answer.agent_id}: ${answer.succeeded} ok, ${answer.failed} failed`;
      if (!dryRun) {
        notice(outcome.textContent);
        poll.kick();
      }
    } catch (error) {
      if (scope.disposed) return;
      outcome.className = "op-result bad";
      outcome.textContent = "failed";
      reportError("bulk", error, "Bulk operation");
    } finally {
      preview.disabled = run.disabled = !canOperate;
    }
  };
  preview.addEventListener("click", () => bulk(true));
  run.addEventListener("click", () => bulk(false));
}
