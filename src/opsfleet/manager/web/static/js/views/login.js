// Sign in: POST /auth/login, keep the token, go where the user wanted to go.

import { api, flash, session } from "../api.js";
import { h } from "../dom.js";
import { clearError, reportError } from "../notify.js";

export function renderLogin(root, scope, query) {
  const message = flash.take();
  const username = h("input", {
    type: "text",
    id: "login-username",
    name: "username",
    autocomplete: "username",
    required: true,
    "data-testid": "login-username",
  });
  const password = h("input", {
    type: "password",
    id: "login-password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    "data-testid": "login-password",
  });
  const remember = h("input", { type: "checkbox", name: "remember", id: "login-remember" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "login-submit" }, "Sign in");

  const onSubmit = async (event) => {
    event.preventDefault();
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const login = await api("/auth/login", {
        method: "POST",
        body: { username: username.value.trim(), password: password.value },
        auth: false,
      });
      clearError("login");
      session.set(login, remember.checked);
      const next = query.get("next");
      location.hash = next && next.startsWith("/") && !next.startsWith("/login") ? `#${next}` : "#/overview";
    } catch (error) {
      if (scope.disposed) return;
      reportError("login", error, "Sign-in failed");
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  };

  root.appendChild(
    h(
      "div",
      { class: "login-wrap" },
      h(
        "section",
        { class: "card login", "aria-labelledby": "login-title" },
        h("h1", { id: "login-title" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "opsfleet"),
        h("p", { class: "muted" }, "Sign in to the fleet dashboard."),
        message ? h("div", { class: "flash", role: "status", "data-testid": "login-flash" }, message) : null,
        h(
          "form",
          { onsubmit: onSubmit, "data-testid": "login-form" },
          h("div", { class: "field" }, h("label", { for: "login-username" }, "Username"), username),
          h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
          h("label", { class: "check", for: "login-remember" }, remember, "Keep me signed in on this browser"),
          submit,
        ),
      ),
    ),
  );
  username.focus();
}
