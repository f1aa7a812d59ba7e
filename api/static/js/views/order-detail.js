// One order: summary, live status timeline, tracking, cancel with a reason, 3-D Secure.
import { del, get, post } from "../api.js";
import { debounce, pollWhileOffline, subscribe } from "../bus.js";
import { field, h, replace, spinner } from "../dom.js";
import { CANCELLABLE, TERMINAL, dateTime, money, statusLabel, timeOnly } from "../format.js";
import { isStale, runAuthentication, statusBadge } from "../orders.js";
import { session } from "../session.js";
import { toast } from "../toast.js";
import { clearErrors, formError, showErrors } from "../validate.js";
import { renderReturns } from "./returns.js";

const STEPS = ["pending", "reserved", "payment_pending", "confirmed", "shipped", "delivered"];

function progress(status) {
  if (["cancelled", "failed", "refunded"].includes(status)) return null;
  const at = STEPS.indexOf(status === "requires_action" ? "payment_pending" : status);
  return h(
    "ol",
    { class: "progress", testid: "progress", "aria-label": "Progress" },
    STEPS.map((s, i) =>
      h("li", { class: i < at ? "done" : i === at ? "current" : "", "aria-current": i === at ? "step" : null }, statusLabel(s)),
    ),
  );
}

// The customer's view names who acted in these words; admins see the task or beat job.
const ACTORS = { customer: "you", staff: "our team", system: null };

function timelineEntry(e) {
  // History entries {status, at, reason, actor} or events {type, occurredAt, data}.
  const when = e.at || e.occurredAt;
  const title = e.status ? statusLabel(e.status) : e.type || "event";
  const detail = e.reason || e.data?.reason || e.data?.error || "";
  const raw = e.actor || e.data?.actor;
  const actor = !session.isAdmin && raw in ACTORS ? ACTORS[raw] : raw;
  return h(
    "li",
    { testid: "timeline-entry", dataset: { status: e.status || e.data?.to || "" } },
    h("time", { datetime: when || "" }, timeOnly(when)),
    " ",
    h("strong", {}, title),
    actor ? h("span", { class: "muted" }, ` by ${actor}`) : null,
    detail ? h("span", { class: "muted" }, ` — ${detail}`) : null,
  );
}

export function orderDetailView(root, { id }) {
  let order = null;
  const head = h("div", { class: "page-head" }, h("h1", { testid: "order-title" }, "Order"), h("a", { href: "#/", class: "button" }, "← Orders"));
  const summary = h("section", { class: "card", testid: "order-summary" }, spinner());
  const timeline = h("ol", { class: "timeline", testid: "timeline" });
  const trackingBox = h("dl", { class: "kv", testid: "tracking" });
  const actions = h("section", { class: "card", testid: "order-actions", hidden: true });
  const returnsBox = h("section", { class: "card", testid: "order-returns", hidden: true });
  root.append(
    head,
    summary,
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card", "aria-labelledby": "tl-title" }, h("h2", { id: "tl-title" }, "Timeline ", h("span", { class: "muted small" }, "(live)")), timeline),
      h("section", { class: "card", "aria-labelledby": "tr-title" }, h("h2", { id: "tr-title" }, "Tracking"), trackingBox),
    ),
    actions,
    returnsBox,
  );

  function renderSummary() {
    replace(head.firstChild, `Order ${order.orderNumber}`);
    const addr = order.shippingAddress || {};
    replace(
      summary,
      h("div", { class: "summary-head" }, h("span", { testid: "detail-status" }, statusBadge(order.status)), order.needsAttention ? h("span", { class: "flag" }, `needs attention: ${order.attentionReason || ""}`) : null),
      order.statusMessage || order.statusReason
        ? h("p", { class: "muted", testid: "status-reason" }, order.statusMessage || order.statusReason)
        : null,
      session.isAdmin && order.statusReason && order.statusReason !== order.statusMessage
        ? h("p", { class: "muted small mono", testid: "status-reason-raw" }, order.statusReason)
        : null,
      progress(order.status),
      h(
        "table",
        { class: "items" },
        h("caption", { class: "sr-only" }, "Items"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Product"), ["Qty", "Unit", "Total"].map((t) => h("th", { scope: "col", class: "num" }, t)))),
        h(
          "tbody",
          {},
          (order.items || []).map((it) =>
            h("tr", {}, h("td", {}, it.name || it.sku), h("td", { class: "num" }, String(it.quantity)), h("td", { class: "num" }, money(it.unitPriceCents, order.currency)), h("td", { class: "num" }, money(it.lineTotalCents, order.currency))),
          ),
        ),
        h(
          "tfoot",
          {},
          h("tr", {}, h("th", { scope: "row", colspan: 3 }, "Subtotal"), h("td", { class: "num", testid: "subtotal" }, money(order.subtotalCents, order.currency))),
          h("tr", {}, h("th", { scope: "row", colspan: 3 }, "Tax"), h("td", { class: "num", testid: "tax" }, money(order.taxCents, order.currency))),
          h("tr", {}, h("th", { scope: "row", colspan: 3 }, "Shipping"), h("td", { class: "num", testid: "shipping" }, money(order.shippingCents, order.currency))),
          h("tr", {}, h("th", { scope: "row", colspan: 3 }, "Total"), h("td", { class: "num", testid: "total" }, h("strong", {}, money(order.totalCents, order.currency)))),
        ),
      ),
      h(
        "dl",
        { class: "kv" },
        h("dt", {}, "Placed"),
        h("dd", {}, dateTime(order.createdAt)),
        h("dt", {}, "Ship to"),
        h("dd", { testid: "ship-to" }, [addr.name, addr.line1, addr.line2, `${addr.postalCode || ""} ${addr.city || ""}`.trim(), addr.country].filter(Boolean).join(", ")),
        order.paidCents ? [h("dt", {}, "Paid"), h("dd", {}, money(order.paidCents, order.currency))] : null,
        order.refundedCents ? [h("dt", {}, "Refunded"), h("dd", {}, money(order.refundedCents, order.currency))] : null,
        order.paymentIntentId ? [h("dt", {}, "Payment"), h("dd", { class: "mono" }, order.paymentIntentId)] : null,
        (order.disputes || []).map((d) => [
          h("dt", {}, "Dispute"),
          h("dd", { testid: "dispute" }, `${d.status} · ${money(d.amountCents, d.currency || order.currency)} · ${d.reason || ""}${d.dueBy ? ` · respond by ${dateTime(d.dueBy)}` : ""}`),
        ]),
        // Admins only: the API leaves these out of a customer's order.
        order.correlationId ? [h("dt", {}, "Correlation id"), h("dd", { class: "mono" }, order.correlationId)] : null,
      ),
    );
    renderActions();
  }

  let actionsKey = null;
  function renderActions() {
    // Rebuilt only when what they depend on changes, so a reason being typed survives.
    const key = `${order.status}|${order.needsAttention}`;
    if (key === actionsKey) return;
    actionsKey = key;
    const parts = [];
    const mine = order.userId === session.user?.id;
    if (order.status === "requires_action" && mine) {
      const button = h("button", { type: "button", class: "primary", testid: "authenticate-payment" }, "Authenticate payment");
      button.addEventListener("click", () => runAuthentication(order.id, button));
      parts.push(h("p", {}, "Your bank asks you to confirm this payment (3-D Secure). "), button);
    }
    if (session.isAdmin && !TERMINAL.has(order.status)) {
      const button = h("button", { type: "button", testid: "detail-resume" }, "Resume processing");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const body = await post(`/api/orders/${order.id}/resume`);
          toast(body.message || "resumed", { kind: "success" });
          load();
        } catch (err) {
          toast(err.message, { kind: "error" });
        } finally {
          button.disabled = false;
        }
      });
      parts.push(button);
    }
    if (CANCELLABLE.has(order.status)) parts.push(cancelForm());
    actions.hidden = !parts.length;
    replace(actions, h("h2", {}, "Actions"), parts);
  }

  function cancelForm() {
    const submit = h("button", { type: "submit", class: "danger", testid: "cancel-submit" }, "Cancel order");
    const form = h(
      "form",
      { novalidate: true, testid: "cancel-form" },
      formError(),
      field({ label: "Reason for cancelling", name: "reason", required: true, attrs: { maxlength: 300, testid: "cancel-reason" } }),
      submit,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const reason = String(new FormData(form).get("reason") || "").trim();
      if (!reason) {
        showErrors(form, [{ field: "reason", message: "required" }]);
        return;
      }
      submit.disabled = true;
      try {
        const body = await del(`/api/orders/${order.id}`, { reason });
        order = body.data.order || order;
        toast(`Order ${order.orderNumber} cancelled.`, { kind: "success", testid: "toast-cancelled" });
        renderSummary();
        loadTimeline();
      } catch (err) {
        showErrors(form, err.errors, err.message);
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  async function loadTimeline() {
    try {
      const [tl, tr] = await Promise.all([get(`/api/orders/${id}/timeline`), get(`/api/orders/${id}/tracking`)]);
      // order.updated mirrors every status move; the move's own event says it already.
      const entries = (tl.data.timeline || tl.data.events || []).filter(
        (e) => !(e.type === "order.updated" && e.data && e.data.to),
      );
      replace(timeline, entries.length ? entries.map(timelineEntry) : h("li", { class: "muted" }, "Nothing yet."));
      const t = tr.data.tracking || tr.data;
      replace(
        trackingBox,
        h("dt", {}, "Status"),
        h("dd", { testid: "tracking-status" }, statusLabel(t.status)),
        h("dt", {}, "Carrier"),
        h("dd", { testid: "tracking-carrier" }, t.carrier || "—"),
        h("dt", {}, "Tracking number"),
        h("dd", { class: "mono", testid: "tracking-number" }, t.trackingNumber || "—"),
        h("dt", {}, "Estimated delivery"),
        h("dd", {}, dateTime(t.estimatedDelivery)),
      );
    } catch (err) {
      replace(timeline, h("li", { class: "form-error" }, err.message));
    }
  }

  async function load() {
    try {
      order = (await get(`/api/orders/${id}`)).data.order;
      renderSummary();
      renderReturns(returnsBox, order, load);
    } catch (err) {
      replace(summary, h("p", { class: "form-error", role: "alert", testid: "order-error" }, err.message));
      return;
    }
    loadTimeline();
  }

  const reload = debounce(load, 250);
  const unsubscribe = subscribe((event) => {
    if (event.type === "live.connected") return reload();
    if (event.aggregateId !== id || !order) return;
    if (!isStale(order, event) && event.data?.to) {
      order.status = event.data.to;
      order.version = event.aggregateVersion ?? order.version;
      renderSummary();
    }
    reload();
  });
  const stopPolling = pollWhileOffline(load);
  load();
  return () => {
    unsubscribe();
    stopPolling();
  };
}
