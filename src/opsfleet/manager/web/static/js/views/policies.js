// Central configuration: the policies list, and one policy's revisions (with a diff view),
// rollout progress and per-node state. Read-only: policies are written with the CLI or REST.

import { api } from "../api.js";
import { badge, card, emptyRow, h, replace, table } from "../dom.js";
import { dateTime, shortId } from "../format.js";
import { reportError } from "../notify.js";
import { href } from "../router.js";
import { POLL_MS } from "../scope.js";

function selectorText(selector) {
  const entries = Object.entries(selector || {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "every node";
}

function counts(c) {
  return h(
    "span",
    { class: "nowrap", "data-testid": "policy-counts" },
    `${c?.applied || 0} applied · ${c?.failed || 0} failed · ${(c?.pending || 0) + (c?.applying || 0)} pending`,
  );
}

export function renderPolicies(root, scope) {
  const list = table([["Policy"], ["Revision"], ["Priority"], ["Selector"], ["Nodes"], ["Hash"]], {
    testid: "policies-table",
  });
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Policies")), card(null, { body: list.el, flush: true }).el);
  scope.every(POLL_MS, "policies", "Loading the policies", async () => {
    const data = await api("/policies");
    if (scope.disposed) return;
    replace(
      list.tbody,
      data.policies.length
        ? data.policies.map((p) =>
            h(
              "tr",
              { "data-testid": "policy-row", "data-policy": p.name },
              h("td", {}, h("a", { href: href(["policies", p.name]), "data-testid": "policy-link" }, p.name)),
              h("td", {}, String(p.revision)),
              h("td", {}, String(p.priority)),
              h("td", {}, selectorText(p.selector)),
              h("td", {}, counts(p.counts)),
              h("td", { class: "mono" }, shortId(p.hash)),
            ),
          )
        : emptyRow(6, "No policies yet: write one with `opsfleet policies apply -f FILE`."),
    );
  });
}

function diffView(text) {
  const pre = h("pre", { class: "logs diff", "data-testid": "policy-diff" });
  const lines = (text || "(no difference)").split("\n");
  replace(
    pre,
    lines.map((line) => {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "diff-add" : line.startsWith("-") && !line.startsWith("---") ? "diff-del" : "";
      return h("span", { class: cls }, `${line}\n`);
    }),
  );
  return pre;
}

export function renderPolicy(root, scope, name) {
  const title = h("h1", { class: "wrap-any", "data-testid": "policy-title" }, name);
  const summary = h("div", { class: "facts", "data-testid": "policy-summary" });
  const nodes = table([["Node"], ["Revision"], ["State"], ["Error"]], { testid: "policy-nodes" });
  const revisions = table([["Revision"], ["Hash"], ["Author"], ["Created"]], { testid: "policy-revisions" });
  const fromSel = h("select", { "data-testid": "diff-from" });
  const toSel = h("select", { "data-testid": "diff-to" });
  const diffRoot = h("div", {});
  const showDiff = async () => {
    if (!fromSel.value || !toSel.value) return;
    try {
      const data = await api(`/policies/${encodeURIComponent(name)}/diff`, {
        query: { from: fromSel.value, to: toSel.value },
      });
      replace(diffRoot, diffView(data.diff));
    } catch (error) {
      reportError("policy-diff", error, "Loading the diff");
    }
  };
  fromSel.addEventListener("change", showDiff);
  toSel.addEventListener("change", showDiff);

  root.append(
    h("div", { class: "breadcrumb" }, h("a", { href: href(["policies"]) }, "Policies"), " / ", h("span", {}, name)),
    h("div", { class: "page-head" }, title),
    card("Rollout", { body: summary, testid: "policy-rollout" }).el,
    h("div", { class: "section" }, card("Nodes", { body: nodes.el, flush: true }).el),
    h(
      "div",
      { class: "grid grid-2 section" },
      card("Revisions", { body: revisions.el, flush: true }).el,
      card("Diff", { body: h("div", {}, h("div", { class: "toolbar" }, "from ", fromSel, " to ", toSel), diffRoot) }).el,
    ),
  );

  let known = 0;
  scope.every(POLL_MS, "policy", "Loading the policy", async () => {
    const [status, revs] = await Promise.all([
      api(`/policies/${encodeURIComponent(name)}/status`),
      api(`/policies/${encodeURIComponent(name)}/revisions`),
    ]);
    if (scope.disposed) return;
    const rollout = status.rollout;
    replace(
      summary,
      h("div", {}, h("span", { class: "muted" }, "Current revision "), `${status.revision} (${shortId(status.hash)})`),
      h("div", {}, counts(status.counts)),
      rollout
        ? h(
            "div",
            { "data-testid": "rollout-state" },
            rollout.paused ? badge("failed") : badge("applying"),
            ` ${rollout.paused ? "halted" : "in progress"}: ${rollout.inflight} in flight, ${rollout.waiting} waiting, at most ${rollout.max_parallel} at a time`,
          )
        : h("div", { class: "muted", "data-testid": "rollout-state" }, "No staged rollout in progress"),
    );
    replace(
      nodes.tbody,
      status.nodes.length
        ? status.nodes.map((n) =>
            h(
              "tr",
              { "data-testid": "policy-node", "data-node-id": n.node_id, "data-state": n.state },
              h("td", {}, h("a", { href: href(["nodes", n.node_id]) }, n.node_id)),
              h("td", {}, String(n.revision)),
              h("td", {}, badge(n.state, "config-state")),
              h("td", { class: "wrap-any" }, n.error || "–"),
            ),
          )
        : emptyRow(4, "No node selected by this policy."),
    );
    replace(
      revisions.tbody,
      revs.revisions
        .slice()
        .reverse()
        .map((r) =>
          h(
            "tr",
            { "data-testid": "policy-revision" },
            h("td", {}, String(r.revision)),
            h("td", { class: "mono" }, shortId(r.hash)),
            h("td", {}, r.author || "–"),
            h("td", { class: "nowrap" }, dateTime(r.created_at)),
          ),
        ),
    );
    if (revs.revisions.length !== known) {
      known = revs.revisions.length;
      const options = () => revs.revisions.map((r) => h("option", { value: String(r.revision) }, `revision ${r.revision}`));
      replace(fromSel, options());
      replace(toSel, options());
      fromSel.value = String(Math.max(1, known - 1));
      toSel.value = String(known);
      await showDiff();
    }
  });
}
