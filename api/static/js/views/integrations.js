// Admin: what the shop connects to us. Outgoing webhook subscriptions (create, disable,
// re-enable, delete), each one's delivery log with redelivery, and the emails the local
// SMTP sink caught (development).
import { del, get, patch, post } from "../api.js";
import { field, h, replace, spinner } from "../dom.js";
import { dateTime } from "../format.js";
import { toast } from "../toast.js";
import { formError, showErrors } from "../validate.js";

function section(id, title, ...children) {
  return h("section", { class: "card", "aria-labelledby": id, testid: `${id}-section` }, h("h2", { id }, title), ...children);
}

function lastAttempt(d) {
  const a = d.attemptLog?.[d.attemptLog.length - 1];
  if (!a) return "—";
  return a.statusCode ? `HTTP ${a.statusCode}` : a.error || "—";
}

function deliveryTable(sub, deliveries, reload) {
  if (!deliveries.length) return h("p", { class: "muted", testid: "deliveries-empty" }, "No deliveries yet.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { testid: `deliveries-${sub.id}` },
      h("caption", {}, `Deliveries to ${sub.url}`),
      h("thead", {}, h("tr", {}, ["Created", "Event", "Status", "Attempts", "Last answer", ""].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        deliveries.map((d) => {
          const redo = h("button", { type: "button", class: "small", testid: "redeliver" }, "Redeliver");
          redo.disabled = !sub.active;
          redo.addEventListener("click", async () => {
            redo.disabled = true;
            try {
              await post(`/api/webhook-subscriptions/${sub.id}/deliveries/${d.id}/redeliver`);
              toast("Redelivery queued", { kind: "success" });
              setTimeout(reload, 800);
            } catch (err) {
              toast(err.message, { kind: "error" });
              redo.disabled = false;
            }
          });
          return h(
            "tr",
            { testid: `delivery-${d.id}`, "data-status": d.status },
            h("td", {}, dateTime(d.createdAt)),
            h("td", {}, d.eventType),
            h("td", {}, h("span", { class: `chip ${d.status}` }, d.status)),
            h("td", {}, String(d.attempts)),
            h("td", {}, lastAttempt(d)),
            h("td", {}, redo),
          );
        }),
      ),
    ),
  );
}

function subscriptionCard(sub, reloadAll) {
  const logBox = h("div", { testid: `log-${sub.id}` });
  const toggle = h("button", { type: "button", class: "small", testid: "toggle-active" }, sub.active ? "Disable" : "Re-enable");
  const remove = h("button", { type: "button", class: "small danger", testid: "delete-subscription" }, "Delete");
  const showLog = h("button", { type: "button", class: "small", testid: "show-log" }, "Delivery log");

  async function loadLog() {
    replace(logBox, spinner());
    try {
      const body = await get(`/api/webhook-subscriptions/${sub.id}/deliveries`, { limit: 50 });
      replace(logBox, deliveryTable(sub, body.data.deliveries || [], loadLog));
    } catch (err) {
      replace(logBox, h("p", { class: "form-error", role: "alert" }, err.message));
    }
  }
  showLog.addEventListener("click", loadLog);
  toggle.addEventListener("click", async () => {
    toggle.disabled = true;
    try {
      await patch(`/api/webhook-subscriptions/${sub.id}`, { active: !sub.active });
      reloadAll();
    } catch (err) {
      toast(err.message, { kind: "error" });
      toggle.disabled = false;
    }
  });
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete the subscription to ${sub.url} and its delivery log?`)) return;
    try {
      await del(`/api/webhook-subscriptions/${sub.id}`);
      reloadAll();
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
  });
  const state = sub.active ? "active" : `disabled${sub.disabledReason ? ` (${sub.disabledReason})` : ""}`;
  return h(
    "li",
    { class: "subscription", testid: `subscription-${sub.id}`, "data-active": String(sub.active) },
    h("div", {}, h("strong", {}, sub.url), " ", h("span", { class: `chip ${sub.active ? "confirmed" : "failed"}`, testid: "subscription-state" }, state)),
    h("div", { class: "muted small" }, `${sub.eventTypes.join(", ")} · ${sub.failureStreak} failures in a row · created ${dateTime(sub.createdAt)}`),
    h("div", { class: "actions" }, showLog, toggle, remove),
    logBox,
  );
}

function mailList(messages) {
  if (!messages.length) return h("p", { class: "muted", testid: "mail-empty" }, "No emails caught yet.");
  return h(
    "ul",
    { class: "plain mail", testid: "mail-list" },
    messages.map((m) =>
      h(
        "li",
        { testid: "mail-item" },
        h("details", {}, h("summary", {}, h("strong", {}, m.subject), " → ", m.to, h("span", { class: "muted small" }, ` · ${m.date}`)), h("pre", { class: "mail-text" }, m.text)),
      ),
    ),
  );
}

export function integrationsView(root) {
  const list = h("ul", { class: "plain", testid: "subscriptions" }, h("li", {}, spinner()));
  const secretBox = h("div", { class: "notice", role: "status", testid: "new-secret", hidden: true });
  const mailBox = h("div", { testid: "mail-box" }, spinner());
  const button = h("button", { type: "submit", class: "primary", testid: "subscribe-submit" }, "Subscribe");
  const form = h(
    "form",
    { novalidate: true, testid: "subscribe-form" },
    formError(),
    field({ label: "Target URL", name: "url", type: "url", required: true, attrs: { placeholder: "https://erp.example.com/hooks", testid: "subscribe-url" } }),
    field({ label: "Event types", name: "eventTypes", required: true, value: "order.*", hint: "Comma-separated; order.* matches every order event, * everything.", attrs: { testid: "subscribe-types" } }),
    button,
  );

  async function loadSubscriptions() {
    try {
      const body = await get("/api/webhook-subscriptions", { limit: 100 });
      const subs = body.data.subscriptions || [];
      replace(list, subs.length ? subs.map((s) => subscriptionCard(s, loadSubscriptions)) : h("li", { class: "muted", testid: "subscriptions-empty" }, "No subscriptions yet."));
    } catch (err) {
      replace(list, h("li", { class: "form-error", role: "alert" }, err.message));
    }
  }

  async function loadMail() {
    try {
      const body = await get("/api/dev/mail", { limit: 30 });
      replace(mailBox, mailList(body.data.messages || []));
    } catch (err) {
      replace(mailBox, h("p", { class: "muted" }, err.status === 404 ? "No local mail sink here (production sends through SMTP)." : err.message));
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = Object.fromEntries(new FormData(form).entries());
    button.disabled = true;
    try {
      const eventTypes = String(v.eventTypes || "").split(",").map((t) => t.trim()).filter(Boolean);
      const body = await post("/api/webhook-subscriptions", { url: String(v.url || "").trim(), eventTypes });
      replace(secretBox, "Signing secret (shown only now): ", h("code", { testid: "secret-value" }, body.data.secret));
      secretBox.hidden = false;
      form.reset();
      form.elements.eventTypes.value = "order.*";
      loadSubscriptions();
    } catch (err) {
      showErrors(form, err.errors, err.message);
    } finally {
      button.disabled = false;
    }
  });

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Integrations")),
    section("webhooks", "Outgoing webhooks", h("p", { class: "muted" }, "Signed POSTs of our events to the shop's systems; see docs/WEBHOOKS.md."), form, secretBox, list),
    section("emails", "Emails", h("p", { class: "muted" }, "What the local SMTP sink caught."), h("button", { type: "button", class: "small", testid: "mail-refresh" }, "Refresh"), mailBox),
  );
  root.querySelector("[data-testid=mail-refresh]").addEventListener("click", loadMail);
  loadSubscriptions();
  loadMail();
}
