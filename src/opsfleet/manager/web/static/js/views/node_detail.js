// One node: its facts, resource charts, agents (with the selected agent's panel) and events.

import { api } from "../api.js";
import { badge, card, h, replace, select } from "../dom.js";
import { dateTime, timeAgo } from "../format.js";
import { clearAllErrors, reportError } from "../notify.js";
import { href, setQuery } from "../router.js";
import { POLL_MS, Scope } from "../scope.js";
import { renderAgentPanel } from "./agent_panel.js";
import { renderNodeConfig } from "./node_config.js";
import { renderAgents } from "./agents.js";
import { renderNodeCharts } from "./node_charts.js";

const NODE_NOT_FOUND = 2001;
const EVENT_TONE = {
  online: "ok",
  offline: "bad",
  registered: "info",
  "re-registered": "info",
  enrolled: "info",
  "clone-suspected": "bad",
  "agent-state": "info",
  operation: "info",
  config: "info",
  update: "info",
};

// The timeline filter: [value sent as `kind`, label].
export const EVENT_FILTERS = [
  ["", "All events"],
  ["agent-state", "Agent state changes"],
  ["operation", "Operator actions"],
  ["config", "Config apply"],
  ["update", "Updates"],
  ["registered,re-registered,enrolled", "Registrations"],
  ["online,offline", "Online / offline"],
];

/** The tone of one event: failures and crashes red, whatever the kind. */
function eventTone(e) {
  if (/-> error|failed|offline/.test(`${e.kind} ${e.detail}`)) return "bad";
  return EVENT_TONE[e.kind] || "";
}

/** A warning badge when two daemons seem to present this node's identity. */
function cloneBadge(node) {
  if (!node.clone_warning) return null;
  return h(
    "span",
    { class: "badge bad", "data-testid": "clone-warning", title: node.clone_warning.detail },
    "possible clone",
  );
}

function fact(key, value, testid) {
  return h(
    "div",
    { class: "fact" },
    h("div", { class: "k" }, key),
    h("div", { class: "v", "data-testid": testid }, value),
  );
}

function labels(node) {
  const entries = Object.entries(node.labels || {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)) : "–";
}

/** The node does not exist (or was deleted): one message instead of every panel failing. */
function showNotFound(root, scope, nodeId, error) {
  scope.dispose();
  clearAllErrors();
  reportError("node", error, "Opening the node");
  root.replaceChildren(
    h(
      "div",
      { class: "breadcrumb" },
      h("a", { href: href(["nodes"]) }, "Nodes"),
      " / ",
      h("span", { class: "mono" }, nodeId),
    ),
    h(
      "section",
      { class: "card", "data-testid": "node-not-found" },
      h(
        "div",
        { class: "empty" },
        h("h2", {}, "No such node"),
        h("p", {}, "This node is not registered with the Manager, or it was deleted."),
        h("a", { href: href(["nodes"]), class: "btn" }, "Back to the nodes"),
      ),
    ),
  );
}

export function renderNodeDetail(root, scope, nodeId, query) {
  const state = {
    range: query.get("range") || "1h",
    agent: query.get("agent") || null,
    events: EVENT_FILTERS.some(([v]) => v === query.get("events")) ? query.get("events") : "",
  };
  const writeQuery = () =>
    setQuery({ range: state.range === "1h" ? "" : state.range, agent: state.agent, events: state.events });

  const title = h("h1", { class: "wrap-any", "data-testid": "node-title" }, nodeId);
  const status = h("span", {});
  const facts = h("div", { class: "facts" });
  const timeline = h("ol", { class: "timeline", "data-testid": "events" });

  root.append(
    h(
      "div",
      { class: "breadcrumb" },
      h("a", { href: href(["nodes"]) }, "Nodes"),
      " / ",
      h("span", { class: "mono" }, nodeId),
    ),
    h("div", { class: "page-head" }, h("div", { class: "title-row" }, title, status)),
    card(null, { body: facts }).el,
  );

  const chartsRoot = h("div", {});
  root.append(chartsRoot);
  renderNodeCharts(chartsRoot, scope, nodeId, state.range, (range) => {
    state.range = range;
    writeQuery();
  });

  const configRoot = h("div", { class: "section" });
  root.append(configRoot);
  renderNodeConfig(configRoot, scope, nodeId);

  const agentsRoot = h("div", { class: "section" });
  const panelRoot = h("div", { "data-testid": "agent-panel" });
  root.append(agentsRoot, panelRoot);

  let panelScope = null;
  const showAgent = (agentId) => {
    if (panelScope) panelScope.dispose();
    panelRoot.replaceChildren();
    state.agent = agentId;
    writeQuery();
    panelScope = new Scope();
    renderAgentPanel(panelRoot, panelScope, nodeId, agentId);
  };
  scope.onDispose(() => panelScope && panelScope.dispose());

  const { operationsCard } = renderAgents(agentsRoot, scope, nodeId, { selected: state.agent, onSelect: showAgent });
  if (state.agent) showAgent(state.agent);

  const eventKind = select(EVENT_FILTERS, state.events, { "data-testid": "events-filter", "aria-label": "Show events" });
  root.append(
    h(
      "div",
      { class: "grid grid-2 section" },
      card("Events", { body: timeline, flush: true, actions: eventKind }).el,
      operationsCard,
    ),
  );

  const nodePoll = scope.every(POLL_MS, "node", "Loading the node", async () => {
    let node;
    let events;
    try {
      [node, events] = await Promise.all([
        api(`/nodes/${encodeURIComponent(nodeId)}`),
        api(`/nodes/${encodeURIComponent(nodeId)}/events`, { query: { limit: 50, kind: state.events } }),
      ]);
    } catch (error) {
      if (error.code === NODE_NOT_FOUND && !scope.disposed) {
        showNotFound(root, scope, nodeId, error);
        return;
      }
      throw error;
    }
    if (scope.disposed) return;
    title.textContent = node.hostname || node.node_id;
    document.title = `${node.hostname || node.node_id} · opsfleet`;
    replace(status, badge(node.status, "node-detail-status"), " ", cloneBadge(node));
    replace(
      facts,
      fact("Node ID", h("span", { class: "mono" }, node.node_id)),
      fact("IP address", h("span", { class: "mono" }, node.ip || "–")),
      fact("OS / arch", `${node.os || "?"} / ${node.arch || "?"}`),
      fact("Labels", labels(node)),
      fact("Daemon", `${node.daemon_version || "–"} at ${node.daemon_address || "unknown address"}`),
      fact("Agent version", node.agent_version || "–"),
      node.clone_warning ? fact("Identity warning", node.clone_warning.detail, "clone-detail") : null,
      fact("Registered", dateTime(node.registered_at)),
      fact(
        "Last seen",
        [timeAgo(node.last_seen_at), h("span", { class: "muted" }, ` · ${dateTime(node.last_seen_at)}`)],
        "node-last-seen",
      ),
    );
    replace(
      timeline,
      events.events.length
        ? events.events.map((e) =>
            h(
              "li",
              { class: eventTone(e), "data-testid": "event", "data-kind": e.kind },
              h("div", {}, h("strong", {}, e.kind), e.detail ? h("span", { class: "muted" }, ` · ${e.detail}`) : null),
              h("div", { class: "when" }, dateTime(e.at), " · ", timeAgo(e.at)),
            ),
          )
        : h("li", { class: "muted" }, state.events ? "No events of this kind." : "No events recorded."),
    );
  });
  eventKind.addEventListener("change", () => {
    state.events = eventKind.value;
    writeQuery();
    nodePoll.kick();
  });
}
