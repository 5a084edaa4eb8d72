// The error banner (every failure the user should know about) and a short success notice.
// Errors are keyed by their source ("overview", "agents", "operate", ...): a later success of
// the same source clears its message, so a recovered poll does not leave a stale banner.

const errors = new Map();
let noticeTimer = null;

function banner() {
  return {
    root: document.getElementById("error-banner"),
    text: document.getElementById("error-banner-text"),
  };
}

function render() {
  const { root, text } = banner();
  text.replaceChildren();
  for (const message of errors.values()) {
    const p = document.createElement("p");
    p.textContent = message;
    text.appendChild(p);
  }
  root.hidden = errors.size === 0;
}

function describe(error) {
  if (error && typeof error.describe === "function") return error.describe();
  return String((error && error.message) || error);
}

/** Show `error` (an ApiError or any Error) under `key`, prefixed with what was being done. */
export function reportError(key, error, doing = "") {
  if (error && error.authLost) return;
  errors.set(key, doing ? `${doing}: ${describe(error)}` : describe(error));
  render();
}

export function clearError(key) {
  if (errors.delete(key)) render();
}

export function clearAllErrors() {
  errors.clear();
  render();
}

/** A green notice that goes away by itself. */
export function notice(text, ms = 4000) {
  const el = document.getElementById("notice");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    el.hidden = true;
  }, ms);
}

export function installBanner() {
  document.getElementById("error-banner-close").addEventListener("click", clearAllErrors);
}
