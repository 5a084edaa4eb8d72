// Number and time formatting shared by the views.

import { h } from "./dom.js";

export const WARN_PERCENT = 90;

export function percent(value, digits = 1) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : `${Number(value).toFixed(digits)} %`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  let v = Math.abs(Number(value));
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  const sign = value < 0 ? "-" : "";
  return `${sign}${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${UNITS[i]}`;
}

/** The shortest prefix (at least 8 characters) of `id` that no other id of `ids` shares. */
export function uniquePrefix(id, ids) {
  let size = Math.min(8, id.length);
  while (size < id.length && ids.some((other) => other !== id && other.startsWith(id.slice(0, size)))) size += 1;
  return id.slice(0, size);
}

/**
 * A display name for each node of `rows` ({node_id, hostname}): the hostname, with a short id
 * added where two of the rows share that hostname (and the id alone when there is none).
 */
export function nodeNames(rows) {
  const counts = new Map();
  for (const row of rows) counts.set(row.hostname || "", (counts.get(row.hostname || "") || 0) + 1);
  const ids = rows.map((row) => row.node_id);
  return (row) => {
    if (!row.hostname) return row.node_id;
    return counts.get(row.hostname) > 1 ? `${row.hostname} (${uniquePrefix(row.node_id, ids)})` : row.hostname;
  };
}

export function rate(value) {
  return value === null || value === undefined ? "–" : `${bytes(value)}/s`;
}

/** A record time (RFC3339 string) or a metric time (Unix seconds) as a Date. */
export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  return typeof value === "number" ? new Date(value * 1000) : new Date(value);
}

export function dateTime(value) {
  const d = toDate(value);
  if (!d || Number.isNaN(d.getTime())) return "–";
  return d.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function ago(value) {
  const d = toDate(value);
  if (!d || Number.isNaN(d.getTime())) return "–";
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A <time> showing "3 min ago" with the full time as tooltip. */
export function timeAgo(value) {
  const d = toDate(value);
  return h("time", { datetime: d ? d.toISOString() : null, title: dateTime(value) }, ago(value));
}

/** A usage bar; amber (the warning colour) above the alert threshold. */
export function meter(value) {
  const v = Math.max(0, Math.min(100, Number(value) || 0));
  // Set through the CSSOM: a style="" attribute is inline style, which the CSP refuses.
  const bar = h("span");
  bar.style.width = `${v.toFixed(1)}%`;
  return h("div", { class: v > WARN_PERCENT ? "meter warn" : "meter" }, bar);
}

/** A usage bar with its number. */
export function usage(value, testid) {
  if (value === null || value === undefined) return h("span", { class: "muted", "data-testid": testid }, "–");
  return h("div", { class: "usage", "data-testid": testid }, meter(value), h("span", { class: "num" }, percent(value)));
}

export function shortId(id) {
  return id && id.length > 13 ? `${id.slice(0, 8)}…` : id;
}
