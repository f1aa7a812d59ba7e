// Client-side checks mirroring the server's (the server stays the judge), and the
// rendering of field errors, ours or the server's `errors: [{field, message}]`.
import { h } from "./dom.js";

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export const rules = {
  required: (v) => (String(v ?? "").trim() ? null : "required"),
  email: (v) => (EMAIL.test(String(v ?? "").trim()) ? null : "enter a valid email address"),
  password: (v) => {
    const s = String(v ?? "");
    if (s.length < 8) return "at least 8 characters";
    if (s.length > 128) return "at most 128 characters";
    return null;
  },
  name: (v) => {
    const s = String(v ?? "").trim();
    if (!s) return "required";
    if (s.length > 100) return "at most 100 characters";
    return null;
  },
  quantity: (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 100) return "a whole number from 1 to 100";
    return null;
  },
  maxLength: (max) => (v) => (String(v ?? "").length > max ? `at most ${max} characters` : null),
  country: (v) => (/^[A-Za-z]{2}$/.test(String(v ?? "").trim()) ? null : "two-letter country code, e.g. US"),
};

// Runs {fieldName: [rule, ...]} against values; returns [{field, message}].
export function check(values, schema) {
  const errors = [];
  for (const [fieldName, fieldRules] of Object.entries(schema)) {
    for (const rule of fieldRules) {
      const message = rule(values[fieldName]);
      if (message) {
        errors.push({ field: fieldName, message });
        break;
      }
    }
  }
  return errors;
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const summary = form.querySelector("[data-testid=form-error]");
  if (summary) {
    summary.textContent = "";
    summary.hidden = true;
  }
}

// Shows each error next to its field (data-field matches the server's dotted name);
// errors with no matching field and the overall message go to the form's summary.
export function showErrors(form, errors, message) {
  const unmatched = [];
  let first = null;
  for (const err of errors || []) {
    const name = String(err.field || "");
    const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
    const slot = input && document.getElementById(input.getAttribute("aria-describedby"));
    if (input && slot) {
      input.setAttribute("aria-invalid", "true");
      slot.textContent = err.message;
      slot.hidden = false;
      first = first || input;
    } else {
      unmatched.push(name ? `${name}: ${err.message}` : err.message);
    }
  }
  const summary = form.querySelector("[data-testid=form-error]");
  const text = [message, ...unmatched].filter(Boolean).join(" — ");
  if (summary && text) {
    summary.textContent = text;
    summary.hidden = false;
  }
  (first || summary)?.focus?.();
}

export function formError() {
  return h("p", { class: "form-error", role: "alert", tabindex: "-1", testid: "form-error", hidden: true });
}
