// Entry point: the shell (top bar, navigation, banner) and the hash router.

import { api, session, signOut } from "./api.js";
import { clearAllErrors, installBanner, reportError } from "./notify.js";
import { parseHash } from "./router.js";
import { Scope } from "./scope.js";
import { renderAlerts } from "./views/alerts.js";
import { renderEvents } from "./views/events.js";
import { renderFleetAgents } from "./views/fleet_agents.js";
import { renderLogin } from "./views/login.js";
import { renderNodeDetail } from "./views/node_detail.js";
import { renderNodes } from "./views/nodes.js";
import { renderOverview } from "./views/overview.js";
import { renderPolicies, renderPolicy } from "./views/policies.js";
import { renderRolloutDetail, renderRollouts } from "./views/rollouts.js";
import { renderTokens } from "./views/tokens.js";

const app = document.getElementById("app");
let scope = null;

function route() {
  const { parts, query } = parseHash();
  const [first = "overview", second] = parts;
  if (first === "login") return { name: "login", render: renderLogin, args: [query] };
  if (!session.get()) return null;
  if (first === "nodes" && second) return { name: "nodes", render: renderNodeDetail, args: [second, query] };
  if (first === "nodes") return { name: "nodes", render: renderNodes, args: [query] };
  if (first === "agents") return { name: "agents", render: renderFleetAgents, args: [query] };
  if (first === "events") return { name: "events", render: renderEvents, args: [query] };
  if (first === "policies" && second) return { name: "policies", render: renderPolicy, args: [second] };
  if (first === "policies") return { name: "policies", render: renderPolicies, args: [] };
  if (first === "rollouts" && second) return { name: "rollouts", render: renderRolloutDetail, args: [second] };
  if (first === "rollouts") return { name: "rollouts", render: renderRollouts, args: [] };
  if (first === "alerts") return { name: "alerts", render: renderAlerts, args: [query] };
  if (first === "tokens") return { name: "tokens", render: renderTokens, args: [] };
  return { name: "overview", render: renderOverview, args: [query] };
}

function updateShell(active) {
  const signedIn = Boolean(session.get()) && active !== "login";
  document.getElementById("topbar").hidden = !signedIn;
  const user = session.get()?.user;
  document.getElementById("nav-user").textContent = user ? `${user.username} · ${user.role}` : "";
  document.getElementById("nav-tokens").hidden = user?.role !== "admin";
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === active);
    link.toggleAttribute("aria-current", link.dataset.nav === active);
  }
  setNavOpen(false);
}

function setNavOpen(open) {
  document.getElementById("nav").classList.toggle("open", open);
  document.getElementById("nav-toggle").setAttribute("aria-expanded", String(open));
}

function render() {
  if (scope) scope.dispose();
  scope = new Scope();
  const target = route();
  if (!target) {
    signOut(null);
    return;
  }
  clearAllErrors();
  document.title = "opsfleet";
  updateShell(target.name);
  app.replaceChildren();
  target.render(app, scope, ...target.args);
}

// The Manager revokes the token (POST /auth/logout), then it is forgotten here. A failed
// revocation is not shown: the token is forgotten all the same and expires on its own.
async function logout() {
  try {
    await api("/auth/logout", { method: "POST" });
  } catch {
    // signed out either way
  }
  session.clear();
  location.hash = "#/login";
}

function start() {
  installBanner();
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("nav-toggle").addEventListener("click", () => {
    setNavOpen(!document.getElementById("nav").classList.contains("open"));
  });
  window.addEventListener("hashchange", render);
  render();
  // Refresh the stored profile (role changes take effect on the next request).
  if (session.get()) {
    api("/auth/profile")
      .then((user) => {
        session.updateUser(user);
        updateShell(route()?.name);
      })
      .catch((error) => reportError("profile", error, "Loading your profile"));
  }
}

start();
