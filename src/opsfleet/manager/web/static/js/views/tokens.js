// Enrollment tokens (admin): create one (its secret is shown once), list them, revoke.

import { api } from "../api.js";
import { card, emptyRow, field, h, replace, select, table } from "../dom.js";
import { dateTime } from "../format.js";
import { notice, reportError } from "../notify.js";
import { POLL_MS } from "../scope.js";

const EXPIRY = [
  ["3600", "1 hour"],
  ["86400", "1 day"],
  ["604800", "7 days"],
  ["2592000", "30 days"],
];

/** "env=prod, zone=eu-1" -> {env: "prod", zone: "eu-1"}; throws on a malformed pair. */
export function parseLabels(text) {
  const labels = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf("=");
    if (at < 1 || at === part.length - 1) throw new Error(`label "${part}" is not key=value`);
    labels[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return labels;
}

const STATE_CLASS = { active: "ok", revoked: "bad", expired: "idle", "used-up": "idle" };

function tokenRow(token, onRevoke) {
  const labels = Object.entries(token.labels || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`));
  return h(
    "tr",
    { "data-testid": "token-row", "data-token-id": token.id, "data-state": token.state },
    h("td", { class: "mono" }, token.id),
    h("td", {}, h("span", { class: `badge ${STATE_CLASS[token.state] || "idle"}`, "data-testid": "token-state" }, token.state)),
    h("td", { class: "nowrap" }, `${token.uses} / ${token.max_uses}`),
    h("td", {}, labels.length ? labels : h("span", { class: "muted" }, "–")),
    h("td", { class: "nowrap" }, dateTime(token.expires_at)),
    h("td", {}, token.created_by || "–"),
    h(
      "td",
      {},
      token.state === "active"
        ? h(
            "button",
            { type: "button", class: "btn btn-sm btn-danger", "data-testid": "token-revoke", onclick: () => onRevoke(token) },
            "Revoke",
          )
        : null,
    ),
  );
}

export function renderTokens(root, scope) {
  const maxUses = h("input", { type: "number", min: "1", max: "1000000", value: "1", "data-testid": "token-max-uses" });
  const expires = select(EXPIRY, "86400", { "data-testid": "token-expires" });
  const labels = h("input", { type: "text", placeholder: "env=prod, zone=eu-1", "data-testid": "token-labels" });
  const secret = h("div", { "data-testid": "token-secret-box" });
  const { el: tableEl, tbody } = table(
    [["ID"], ["State"], ["Uses"], ["Labels"], ["Expires"], ["Created by"], [""]],
    { testid: "tokens" },
  );

  let poll = null;
  const revoke = async (token) => {
    try {
      await api(`/enrollment-tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" });
      notice(`Token ${token.id} revoked`);
      poll?.kick();
    } catch (error) {
      reportError("token-revoke", error, "Revoking the token");
    }
  };

  const create = async (event) => {
    event.preventDefault();
    try {
      const body = { max_uses: Number(maxUses.value), expires_in: Number(expires.value), labels: parseLabels(labels.value) };
      const token = await api("/enrollment-tokens", { method: "POST", body });
      replace(
        secret,
        h(
          "div",
          { class: "banner banner-ok" },
          h("div", {}, h("strong", {}, "Copy this token now: it is shown only once.")),
          h("code", { class: "mono wrap-any", "data-testid": "token-secret" }, token.token),
        ),
      );
      poll?.kick();
    } catch (error) {
      reportError("token-create", error, "Creating the token");
    }
  };

  const form = h(
    "form",
    { class: "toolbar", onsubmit: create, "data-testid": "token-form" },
    field("Max uses", maxUses, "token-max-uses"),
    field("Expires in", expires, "token-expires"),
    field("Labels", labels, "token-labels"),
    h("button", { type: "submit", class: "btn btn-primary", "data-testid": "token-create" }, "Create token"),
  );

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Enrollment tokens")),
    h(
      "p",
      { class: "muted" },
      "Nodes join with: opsfleet daemon enroll --manager HOST:9092 --token TOKEN --ca-fingerprint ",
      h("span", { class: "mono", "data-testid": "ca-fingerprint" }, "(see opsfleet ca fingerprint)"),
    ),
    card("New token", { body: [form, secret] }).el,
    card("Tokens", { body: tableEl, flush: true, extraClass: "section" }).el,
  );

  poll = scope.every(POLL_MS, "tokens", "Loading the tokens", async () => {
    const data = await api("/enrollment-tokens");
    if (scope.disposed) return;
    replace(tbody, data.list.length ? data.list.map((t) => tokenRow(t, revoke)) : emptyRow(7, "No tokens yet."));
  });
}
