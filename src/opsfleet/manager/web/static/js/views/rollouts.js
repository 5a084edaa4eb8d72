// Rollouts: every rollout with its progress; one rollout's nodes with pause / resume / cancel.

import { api, session } from "../api.js";
import { badge, card, emptyRow, h, replace, table } from "../dom.js";
import { timeAgo } from "../format.js";
import { reportError } from "../notify.js";
import { href } from "../router.js";
import { POLL_MS } from "../scope.js";

const FAST_POLL_MS = 2000;
const NODE_STATES = ["done", "rolled_back", "failed", "updating", "pending"];

/** A bar of the node states (done green, failures red, updating amber), widths via the CSSOM. */
function progress(counts, total) {
  const bar = h("div", { class: "rollout-progress", "data-testid": "rollout-progress" });
  for (const state of NODE_STATES) {
    const n = counts?.[state] || 0;
    if (!n) continue;
    const part = h("span", { class: `part part-${state}`, title: `${n} ${state}` });
    part.style.width = `${((n * 100) / Math.max(1, total)).toFixed(1)}%`;
    bar.append(part);
  }
  return bar;
}

function summary(counts) {
  const parts = NODE_STATES.filter((s) => counts?.[s]).map((s) => `${counts[s]} ${s.replace("_", " ")}`);
  return parts.join(" · ") || "–";
}

export function renderRollouts(root, scope) {
  const list = table([["Rollout"], ["Component"], ["Version"], ["State"], ["Progress"], ["Started"]], {
    testid: "rollouts-table",
  });
  root.append(
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Rollouts"), h("div", { class: "sub" }, "Updates rolled out across the fleet.")),
    ),
    card(null, { body: list.el, flush: true }).el,
  );
  scope.every(POLL_MS, "rollouts", "Loading rollouts", async () => {
    const data = await api("/rollouts", { query: { limit: 50 } });
    const details = await Promise.all(data.rollouts.map((r) => api(`/rollouts/${r.id}`)));
    if (scope.disposed) return;
    replace(
      list.tbody,
      details.length
        ? details.map((r) =>
            h(
              "tr",
              { "data-testid": "rollout-row", "data-rollout-id": r.id, "data-state": r.state },
              h("td", {}, h("a", { href: href(["rollouts", String(r.id)]), "data-testid": "rollout-link" }, `#${r.id}`)),
              h("td", { class: "mono" }, r.component),
              h("td", { class: "mono" }, r.version),
              h("td", {}, badge(r.state, "rollout-state")),
              h("td", {}, progress(r.counts, r.nodes.length), h("div", { class: "muted small" }, summary(r.counts))),
              h("td", { class: "nowrap" }, timeAgo(r.created_at)),
            ),
          )
        : emptyRow(6, "No rollout yet: start one with `opsfleet rollouts start`."),
    );
  });
}

export function renderRolloutDetail(root, scope, rolloutId) {
  const canOperate = session.canOperate();
  const title = h("h1", {}, `Rollout #${rolloutId}`);
  const sub = h("div", { class: "sub", "data-testid": "rollout-message" }, "");
  const state = h("span", {});
  const bar = h("div", {});
  const nodes = table([["Node"], ["Canary"], ["State"], ["Message"], ["Finished"]], { testid: "rollout-nodes" });
  const buttons = {};
  const act = async (action) => {
    try {
      await api(`/rollouts/${rolloutId}/${action}`, { method: "POST" });
      poll.kick();
    } catch (error) {
      reportError("rollout-action", error, `${action} rollout ${rolloutId}`);
    }
  };
  for (const action of ["pause", "resume", "cancel"]) {
    buttons[action] = h(
      "button",
      {
        type: "button",
        class: action === "cancel" ? "btn btn-sm btn-danger" : "btn btn-sm",
        disabled: true,
        title: canOperate ? `${action} this rollout` : "Needs the operator or admin role",
        "data-testid": `rollout-${action}`,
        onclick: () => act(action),
      },
      action[0].toUpperCase() + action.slice(1),
    );
  }
  root.append(
    h("div", { class: "page-head" }, h("div", {}, title, sub), h("div", { class: "btn-group" }, state, Object.values(buttons))),
    card("Progress", { body: bar }).el,
    card("Nodes", { body: nodes.el, flush: true }).el,
  );
  const poll = scope.every(FAST_POLL_MS, "rollout", "Loading the rollout", async () => {
    const r = await api(`/rollouts/${rolloutId}`);
    if (scope.disposed) return;
    document.title = `opsfleet · rollout ${r.id}`;
    title.textContent = `Rollout #${r.id}: ${r.component} ${r.version}`;
    sub.textContent = `${r.message} · max parallel ${r.max_parallel}, canary ${r.canary}, halts above ${r.pause_on_failure}% failures · by ${r.created_by}`;
    replace(state, badge(r.state, "rollout-state"));
    replace(bar, progress(r.counts, r.nodes.length), h("div", { class: "muted small" }, summary(r.counts)));
    buttons.pause.disabled = !canOperate || r.state !== "running";
    buttons.resume.disabled = !canOperate || (r.state !== "paused" && r.state !== "halted");
    buttons.cancel.disabled = !canOperate || !["running", "paused", "halted"].includes(r.state);
    replace(
      nodes.tbody,
      r.nodes.map((n) =>
        h(
          "tr",
          { "data-testid": "rollout-node", "data-node-id": n.node_id, "data-state": n.state },
          h("td", {}, h("a", { href: href(["nodes", n.node_id]) }, n.node_id)),
          h("td", {}, n.canary ? "yes" : ""),
          h("td", {}, badge(n.state, "rollout-node-state")),
          h("td", { class: "small" }, n.message || "–"),
          h("td", { class: "nowrap" }, n.finished_at ? timeAgo(n.finished_at) : "–"),
        ),
      ),
    );
  });
}
