// Hash routes (#/nodes/<id>?range=6h): no server-side routes needed. A view's own state
// (filters, selected range) is written with setQuery(), which does not re-render the view.

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, qs = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(qs) };
}

export function href(parts, query = null) {
  const path = parts.map(encodeURIComponent).join("/");
  const qs = query ? new URLSearchParams(query).toString() : "";
  return `#/${path}${qs ? `?${qs}` : ""}`;
}

/** Rewrite the current URL's query without a hashchange (no re-render, no history entry). */
export function setQuery(query) {
  const { parts } = parseHash();
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    params.set(key, String(value));
  }
  history.replaceState(null, "", href(parts, params));
}
