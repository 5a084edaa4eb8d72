// The one way the dashboard talks to the Manager: adds the Bearer token, unwraps the
// {code, message, data} envelope, turns failures into ApiError, and sends the user back to
// the login page when the token is missing, invalid, expired or revoked (HTTP 401).

const BASE = "/api/v1";
const KEY = "opsfleet.session";
const FLASH_KEY = "opsfleet.flash";

export class ApiError extends Error {
  /** code: the envelope code (0 when the Manager could not be reached); status: HTTP status. */
  constructor(message, code, status) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.authLost = false;
  }

  /** "wrong username or password (code 1009)" */
  describe() {
    return this.code ? `${this.message} (code ${this.code})` : this.message;
  }
}

/** The signed-in user's token and profile, in sessionStorage or ("remember me") localStorage. */
export const session = {
  get() {
    for (const store of [sessionStorage, localStorage]) {
      const raw = store.getItem(KEY);
      if (!raw) continue;
      try {
        const value = JSON.parse(raw);
        if (value && value.token) return value;
      } catch {
        store.removeItem(KEY);
      }
    }
    return null;
  },
  set(login, remember) {
    this.clear();
    const value = { token: login.token, expires_at: login.expires_at, user: login.user };
    (remember ? localStorage : sessionStorage).setItem(KEY, JSON.stringify(value));
  },
  updateUser(user) {
    for (const store of [sessionStorage, localStorage]) {
      const raw = store.getItem(KEY);
      if (raw) store.setItem(KEY, JSON.stringify({ ...JSON.parse(raw), user }));
    }
  },
  clear() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
  canOperate() {
    const role = this.get()?.user?.role;
    return role === "operator" || role === "admin";
  },
};

/** A one-time message for the login page (e.g. why the user was signed out). */
export const flash = {
  set(text) {
    sessionStorage.setItem(FLASH_KEY, text);
  },
  take() {
    const text = sessionStorage.getItem(FLASH_KEY);
    sessionStorage.removeItem(FLASH_KEY);
    return text;
  },
};

function url(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  const qs = params.toString();
  return `${BASE}${path}${qs ? `?${qs}` : ""}`;
}

/**
 * api("/nodes", {query: {page: 1}}) -> the envelope's data.
 * Options: method, query (arrays repeat the key), body (sent as JSON), auth (default true).
 * Throws ApiError; on a 401 of an authenticated call the session is dropped, the login page
 * shown, and the error has authLost = true (views need not report it).
 */
export async function api(path, { method = "GET", query = null, body = undefined, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) {
    const current = session.get();
    if (current) headers.Authorization = `Bearer ${current.token}`;
  }
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (exc) {
    throw new ApiError(`cannot reach the Manager (${exc.message || exc})`, 0, 0);
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    envelope = null;
  }
  if (!envelope || typeof envelope.code !== "number") {
    throw new ApiError(`unexpected answer from the Manager: HTTP ${response.status}`, 0, response.status);
  }
  if (envelope.code !== 0 || !response.ok) {
    const error = new ApiError(envelope.message || `HTTP ${response.status}`, envelope.code, response.status);
    if (auth && response.status === 401) {
      error.authLost = true;
      signOut(`Signed out: ${error.describe()}`);
    }
    throw error;
  }
  return envelope.data;
}

/** Drop the session and show the login page, remembering where the user was. */
export function signOut(message) {
  const hadSession = session.get() !== null;
  session.clear();
  // Several requests fail together when a token is rejected: only the first one redirects.
  if (!hadSession && location.hash.startsWith("#/login")) return;
  if (message) flash.set(message);
  const here = location.hash.replace(/^#/, "");
  const next = here && !here.startsWith("/login") ? `?next=${encodeURIComponent(here)}` : "";
  location.hash = `#/login${next}`;
}
