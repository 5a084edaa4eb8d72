// The node page's central configuration card: state, hash, error, policies, effective document.

import { api } from "../api.js";
import { badge, card, h, replace } from "../dom.js";
import { shortId } from "../format.js";
import { href } from "../router.js";
import { POLL_MS } from "../scope.js";

export function renderNodeConfig(root, scope, nodeId) {
  const body = h("div", { class: "facts", "data-testid": "node-config" });
  const doc = h("pre", { class: "logs", "data-testid": "node-config-yaml" });
  root.append(card("Central configuration", { body: h("div", {}, body, doc), testid: "node-config-card" }).el);
  scope.every(POLL_MS, "node-config", "Loading the node's configuration", async () => {
    const data = await api(`/nodes/${encodeURIComponent(nodeId)}/config`);
    if (scope.disposed) return;
    replace(
      body,
      h("div", {}, h("span", { class: "muted" }, "State "), badge(data.state, "node-config-state")),
      h("div", { class: "mono" }, h("span", { class: "muted" }, "Hash "), shortId(data.config_hash)),
      data.error ? h("div", { class: "op-text bad", "data-testid": "node-config-error" }, data.error) : null,
      h(
        "div",
        {},
        h("span", { class: "muted" }, "Policies "),
        data.policies.length
          ? data.policies.map((p) =>
              h("a", { class: "chip", href: href(["policies", p.name]) }, `${p.name} r${p.revision}`),
            )
          : "none",
      ),
    );
    doc.textContent = data.config_yaml || "(no central configuration for this node)";
  });
}
