// Building DOM without innerHTML: every text from the API goes through textContent.

const PROPS = new Set(["value", "checked", "disabled", "selected", "hidden", "htmlFor"]);

/**
 * h("button", {class: "btn", onclick: fn, "data-testid": "x"}, "Text", child, [more])
 * Attributes: `class`, `text`, `on<event>` handlers, DOM properties (value, checked, disabled,
 * selected, hidden), everything else via setAttribute; null/undefined/false attributes are skipped.
 * Children: nodes, strings, numbers, arrays of them; null/undefined/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const STATUS_TONE = {
  online: "ok",
  running: "ok",
  offline: "bad",
  error: "bad",
  failed: "bad",
  starting: "warn",
  stopping: "warn",
  backoff: "warn",
  stopped: "idle",
  removed: "idle",
  applied: "ok",
  applying: "warn",
  pending: "warn",
  // rollouts and their nodes
  done: "ok",
  updating: "warn",
  paused: "warn",
  halted: "bad",
  rolled_back: "bad",
  // alerts
  firing: "bad",
  resolved: "ok",
};

/** The colour class of a node or agent status (the one mapping used everywhere). */
export function tone(status) {
  return STATUS_TONE[status] || "idle";
}

export function badge(status, testid) {
  return h(
    "span",
    { class: `badge ${tone(status)}`, "data-testid": testid, "data-status": status },
    status || "unknown",
  );
}

export function card(title, { actions = null, body = null, flush = false, testid = null, extraClass = "" } = {}) {
  const head = title === null ? null : h("div", { class: "card-head" }, h("h2", { text: title }), actions);
  const content = h("div", { class: flush ? "card-body flush" : "card-body" }, body);
  return {
    el: h("section", { class: `card ${extraClass}`, "data-testid": testid }, head, content),
    head,
    body: content,
  };
}

/** A labelled form field; `control` gets the id the label points at. */
export function field(label, control, id) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control);
}

export function select(options, value, attrs = {}) {
  return h(
    "select",
    attrs,
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
}

/** A segmented control: one button pressed; onchange(value). */
export function segmented(label, options, value, onchange, testid) {
  const group = h("div", { class: "seg", role: "group", "aria-label": label, "data-testid": testid });
  const render = (current) => {
    replace(
      group,
      options.map(([v, text]) =>
        h(
          "button",
          {
            type: "button",
            "aria-pressed": String(v === current),
            "data-value": v,
            onclick: () => {
              render(v);
              onchange(v);
            },
          },
          text,
        ),
      ),
    );
  };
  render(value);
  return group;
}

export function table(columns, { testid = null } = {}) {
  const tbody = h("tbody");
  const el = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "data-testid": testid },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map(([text, cls]) => h("th", { class: cls, scope: "col" }, text)),
        ),
      ),
      tbody,
    ),
  );
  return { el, tbody };
}

export function emptyRow(colspan, text) {
  return h("tr", {}, h("td", { class: "empty", colspan }, text));
}
