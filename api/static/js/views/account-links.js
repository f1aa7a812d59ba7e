// Links that arrive by email: ask for a password reset, set a new password with the emailed
// token (which logs you in and ends your other sessions), and confirm your email address.
import { post } from "../api.js";
import { field, h } from "../dom.js";
import { session } from "../session.js";
import { check, clearErrors, formError, rules, showErrors } from "../validate.js";
import { submitWith } from "./auth.js";

function tokenFromHash() {
  const query = location.hash.split("?")[1] || "";
  return new URLSearchParams(query).get("token") || "";
}

export function forgotPasswordView(root) {
  const button = h("button", { type: "submit", class: "primary", testid: "forgot-submit" }, "Email me a link");
  const done = h("p", { class: "notice", role: "status", testid: "forgot-done", hidden: true });
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, testid: "forgot-form", "aria-labelledby": "forgot-title" },
    h("h1", { id: "forgot-title" }, "Reset your password"),
    formError(),
    field({ label: "Email", name: "email", type: "email", required: true, attrs: { autocomplete: "email", testid: "forgot-email" } }),
    button,
    done,
    h("p", {}, h("a", { href: "#/login" }, "Back to log in")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const email = new FormData(form).get("email") || "";
    const errors = check({ email }, { email: [rules.required, rules.email] });
    if (errors.length) {
      clearErrors(form);
      showErrors(form, errors);
      return;
    }
    submitWith(form, button, async () => {
      const body = await post("/api/users/password-reset", { email: String(email).trim() }, { auth: false });
      done.textContent = body.message;
      done.hidden = false;
    });
  });
  root.append(form);
}

export function resetPasswordView(root) {
  const token = tokenFromHash();
  const button = h("button", { type: "submit", class: "primary", testid: "reset-submit" }, "Set password and log in");
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, testid: "reset-form", "aria-labelledby": "reset-title" },
    h("h1", { id: "reset-title" }, "Choose a new password"),
    formError(),
    field({
      label: "New password",
      name: "password",
      type: "password",
      required: true,
      hint: "At least 8 characters. Your other sessions end.",
      attrs: { autocomplete: "new-password", minlength: 8, maxlength: 128, testid: "reset-password" },
    }),
    button,
    h("p", {}, h("a", { href: "#/forgot-password" }, "Ask for a new link")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const password = String(new FormData(form).get("password") || "");
    const errors = check({ password }, { password: [rules.password] });
    if (errors.length) {
      clearErrors(form);
      showErrors(form, errors);
      return;
    }
    submitWith(form, button, async () => {
      const body = await post("/api/users/password-reset/confirm", { token, password }, { auth: false });
      session.signIn(body.data.token, body.data.user);
      location.hash = "#/";
    });
  });
  root.append(form);
}

export function verifyEmailView(root) {
  const status = h("p", { role: "status", testid: "verify-status" }, "Confirming your email…");
  root.append(h("section", { class: "card narrow" }, h("h1", {}, "Confirm your email"), status, h("p", {}, h("a", { href: "#/" }, "Continue"))));
  post("/api/users/verify-email", { token: tokenFromHash() }, { auth: false })
    .then((body) => {
      status.textContent = "Thank you: your email address is confirmed.";
      if (session.user && session.user.id === body.data.user.id) session.setUser(body.data.user);
    })
    .catch((err) => {
      status.textContent = err.message;
      status.className = "form-error";
    });
}
