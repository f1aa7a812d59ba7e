// Login and registration.
import { post } from "../api.js";
import { field, h } from "../dom.js";
import { session } from "../session.js";
import { check, clearErrors, formError, rules, showErrors } from "../validate.js";

function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}

export async function submitWith(form, button, work) {
  clearErrors(form);
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (err) {
    showErrors(form, err.errors, err.message);
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

export function loginView(root) {
  const button = h("button", { type: "submit", class: "primary", testid: "login-submit" }, "Log in");
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, testid: "login-form", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in"),
    formError(),
    field({ label: "Email", name: "email", type: "email", required: true, attrs: { autocomplete: "email", testid: "login-email" } }),
    field({ label: "Password", name: "password", type: "password", required: true, attrs: { autocomplete: "current-password", testid: "login-password" } }),
    button,
    h("p", {}, "No account yet? ", h("a", { href: "#/register", testid: "to-register" }, "Create one")),
    h("p", {}, h("a", { href: "#/forgot-password", testid: "to-forgot" }, "Forgot your password?")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = values(form);
    const errors = check(v, { email: [rules.required, rules.email], password: [rules.required] });
    if (errors.length) {
      clearErrors(form);
      showErrors(form, errors);
      return;
    }
    submitWith(form, button, async () => {
      const body = await post("/api/users/login", { email: v.email.trim(), password: v.password }, { auth: false });
      session.signIn(body.data.token, body.data.user);
      location.hash = "#/";
    });
  });
  root.append(form);
}

export function registerView(root) {
  const button = h("button", { type: "submit", class: "primary", testid: "register-submit" }, "Create account");
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, testid: "register-form", "aria-labelledby": "register-title" },
    h("h1", { id: "register-title" }, "Create an account"),
    formError(),
    h(
      "div",
      { class: "row" },
      field({ label: "First name", name: "firstName", required: true, attrs: { autocomplete: "given-name", maxlength: 100, testid: "register-first-name" } }),
      field({ label: "Last name", name: "lastName", required: true, attrs: { autocomplete: "family-name", maxlength: 100, testid: "register-last-name" } }),
    ),
    field({ label: "Email", name: "email", type: "email", required: true, attrs: { autocomplete: "email", testid: "register-email" } }),
    field({
      label: "Password",
      name: "password",
      type: "password",
      required: true,
      hint: "At least 8 characters.",
      attrs: { autocomplete: "new-password", minlength: 8, maxlength: 128, testid: "register-password" },
    }),
    button,
    h("p", {}, "Already registered? ", h("a", { href: "#/login", testid: "to-login" }, "Log in")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = values(form);
    const errors = check(v, {
      firstName: [rules.name],
      lastName: [rules.name],
      email: [rules.required, rules.email],
      password: [rules.password],
    });
    if (errors.length) {
      clearErrors(form);
      showErrors(form, errors);
      return;
    }
    submitWith(form, button, async () => {
      const body = await post(
        "/api/users/register",
        { email: v.email.trim(), password: v.password, firstName: v.firstName.trim(), lastName: v.lastName.trim() },
        { auth: false },
      );
      session.signIn(body.data.token, body.data.user);
      location.hash = "#/";
    });
  });
  root.append(form);
}
