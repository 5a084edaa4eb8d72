// A node's agents: the stored table (polled), a live refresh from the daemon (POST sync),
// start/stop/restart with visible results, and the recent operations.

import { api, session } from "../api.js";
import { badge, card, emptyRow, h, replace, table } from "../dom.js";
import { dateTime, timeAgo } from "../format.js";
import { clearError, notice, reportError } from "../notify.js";
import { POLL_MS } from "../scope.js";

const OPERATIONS = [
  ["start", "Start", "btn btn-sm"],
  ["stop", "Stop", "btn btn-sm btn-danger"],
  ["restart", "Restart", "btn btn-sm"],
];

/**
 * Whether `op` is valid for the agent as it is: start a stopped or failed agent; stop one that
 * has a process (or is starting); restart one that runs or failed. Invalid operations are not
 * offered at all (a failed agent without a PID has nothing to stop).
 */
export function validOperation(op, agent) {
  const status = agent.status;
  if (status === "removed" || status === "stopping") return false;
  if (op === "start") return ["stopped", "error", "failed", "crashed"].includes(status);
  if (op === "stop") return Boolean(agent.pid) || ["running", "starting"].includes(status);
  return ["running", "starting", "error", "failed", "crashed"].includes(status);
}

function seconds(from, to) {
  const ms = new Date(to).getTime() - new Date(from).getTime();
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "";
}

/**
 * Renders the agents card into `root`; calls onSelect(agentId) when the user opens an agent's
 * details (and once for the first agent when none was selected). Returns {operationsCard},
 * the recent operations card for the caller to place.
 */
export function renderAgents(root, scope, nodeId, { selected, onSelect }) {
  const base = `/nodes/${encodeURIComponent(nodeId)}/agents`;
  const canOperate = session.canOperate();
  const busy = new Set();
  let current = selected;
  let agents = [];

  const result = h("span", { class: "op-result", "data-testid": "operate-result", role: "status" }, "");
  const refresh = h(
    "button",
    { type: "button", class: "btn btn-sm", "data-testid": "agents-sync" },
    "Refresh from daemon",
  );
  const agentsTable = table(
    [
      ["Agent"],
      ["Type"],
      ["Version"],
      ["Status"],
      ["PID", "num"],
      ["Restarts", "num"],
      ["Last heartbeat"],
      ["Actions"],
    ],
    { testid: "agents-table" },
  );
  const ops = table([["Requested"], ["Agent"], ["Operation"], ["By"], ["Result"]], { testid: "operations-table" });

  const agentsCard = card("Agents", {
    actions: h("div", { class: "toolbar" }, result, refresh),
    body: agentsTable.el,
    flush: true,
  });
  agentsCard.el.setAttribute("data-testid", "agents-card");
  const opsCard = card("Recent operations", { body: ops.el, flush: true });
  root.append(agentsCard.el);

  const row = (agent) => {
    const disabledWhy = !canOperate ? "Needs the operator or admin role" : null;
    const buttons = OPERATIONS.filter(([op]) => validOperation(op, agent)).map(([op, text, cls]) =>
      h(
        "button",
        {
          type: "button",
          class: cls,
          disabled: !canOperate || busy.has(agent.agent_id),
          title: disabledWhy || `${text} ${agent.agent_id}`,
          "data-testid": `operate-${op}`,
          "data-agent-id": agent.agent_id,
          onclick: () => operate(agent.agent_id, op),
        },
        text,
      ),
    );
    const details = h(
      "button",
      {
        type: "button",
        class: "btn btn-sm btn-ghost",
        "data-testid": "agent-details",
        "aria-pressed": String(agent.agent_id === current),
        onclick: () => {
          current = agent.agent_id;
          draw();
          onSelect(agent.agent_id);
        },
      },
      "Details",
    );
    return h(
      "tr",
      {
        "data-testid": "agent-row",
        "data-agent-id": agent.agent_id,
        "data-status": agent.status,
        class: agent.agent_id === current ? "selected" : null,
      },
      h("td", { class: "nowrap" }, h("strong", {}, agent.agent_id)),
      h("td", {}, agent.type || "–"),
      h("td", { class: "mono" }, agent.version || "–"),
      h("td", {}, badge(agent.status, "agent-status")),
      h("td", { class: "num mono", "data-testid": "agent-pid" }, agent.pid ? String(agent.pid) : "–"),
      h(
        "td",
        { class: "num", "data-testid": "agent-restarts" },
        String(agent.restart_count ?? 0),
      ),
      h("td", { class: "nowrap" }, agent.last_heartbeat ? timeAgo(agent.last_heartbeat) : "–"),
      h("td", {}, h("div", { class: "btn-group" }, buttons, details)),
    );
  };

  const draw = () => {
    replace(
      agentsTable.tbody,
      agents.length ? agents.map(row) : emptyRow(8, "The daemon reported no agents on this node."),
    );
  };

  const opRow = (r) =>
    h(
      "tr",
      { "data-testid": "operation-row" },
      h("td", { class: "nowrap" }, dateTime(r.requested_at)),
      h("td", {}, r.agent_id),
      h("td", {}, r.operation),
      h("td", {}, r.username),
      h(
        "td",
        {},
        r.success
          ? h("span", { class: "op-text ok" }, `done in ${seconds(r.requested_at, r.finished_at)}`)
          : h("span", { class: "op-text bad" }, r.error ? `failed: ${r.error}` : "failed"),
      ),
    );

  const loadOperations = async () => {
    const answer = await api(`${base}/operations`, { query: { limit: 10 } });
    replace(ops.tbody, answer.operations.length ? answer.operations.map(opRow) : emptyRow(5, "No operations yet."));
  };

  const sync = async () => {
    const answer = await api(`${base}/sync`, { method: "POST" });
    if (scope.disposed) return;
    agents = answer.agents.map((a) => ({ ...a, node_id: nodeId }));
    draw();
  };

  async function operate(agentId, op) {
    busy.add(agentId);
    draw();
    result.className = "op-result";
    result.textContent = `${op} ${agentId}…`;
    try {
      const record = await api(`${base}/${encodeURIComponent(agentId)}/operate`, {
        method: "POST",
        body: { operation: op },
      });
      if (scope.disposed) return;
      if (record.success) {
        clearError("operate");
        result.className = "op-result ok";
        const after = record.agent ? `, now ${record.agent.status}${record.agent.pid ? ` (pid ${record.agent.pid})` : ""}` : "";
        result.textContent = `${op} ${agentId}: done in ${seconds(record.requested_at, record.finished_at)}${after}`;
        notice(`${op} ${agentId} succeeded`);
      } else {
        result.className = "op-result bad";
        result.textContent = `${op} ${agentId} failed`;
        reportError("operate", new Error(record.error || "the daemon reported a failure"), `${op} ${agentId} failed`);
      }
    } catch (error) {
      if (scope.disposed) return;
      result.className = "op-result bad";
      result.textContent = `${op} ${agentId} failed`;
      reportError("operate", error, `${op} ${agentId} failed`);
    } finally {
      busy.delete(agentId);
      draw();
    }
    try {
      await sync();
      await loadOperations();
    } catch (error) {
      reportError("agents-sync", error, "Refreshing agents from the daemon");
    }
  }

  refresh.addEventListener("click", async () => {
    refresh.disabled = true;
    try {
      await sync();
      clearError("agents-sync");
      notice("Agents refreshed from the daemon");
    } catch (error) {
      reportError("agents-sync", error, "Refreshing agents from the daemon");
    } finally {
      refresh.disabled = false;
    }
  });

  scope.every(POLL_MS, "agents", "Loading agents", async () => {
    const [stored] = await Promise.all([api(base), loadOperations()]);
    if (scope.disposed) return;
    agents = stored.agents;
    if (current === null && agents.length) {
      current = agents[0].agent_id;
      onSelect(current);
    }
    draw();
  });

  return {
    operationsCard: opsCard.el,
  };
}
