// Tiny DOM helpers. Text always goes in as text nodes (never innerHTML), so data from the
// server or the user cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "value" || key === "checked" || key === "selected") el[key] = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

let idCounter = 0;
export function uid(prefix = "id") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

// A labelled form field with a slot for its error message (client or server).
export function field({ label, name, type = "text", value = "", required = false, hint, attrs = {} }) {
  const id = uid(`f-${name.replace(/\W/g, "-")}`);
  const errId = `${id}-err`;
  const input =
    type === "select"
      ? h("select", { id, name, ...attrs })
      : type === "textarea"
        ? h("textarea", { id, name, ...attrs }, value)
        : h("input", { id, name, type, value, ...attrs });
  if (required) input.required = true;
  input.dataset.field = name;
  input.setAttribute("aria-describedby", errId);
  const error = h("p", { class: "field-error", id: errId, testid: `error-${name}`, hidden: true });
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    input,
    hint ? h("p", { class: "hint" }, hint) : null,
    error,
  );
}

export function spinner(text = "Loading…") {
  return h("p", { class: "muted", role: "status", testid: "loading" }, text);
}
