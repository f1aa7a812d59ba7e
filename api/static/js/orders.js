// Order rows shared by the customer list and the admin tables, kept current by live events.
import { h, replace } from "./dom.js";
import { dateTime, money, parseDate, statusLabel } from "./format.js";
import { authenticateOrder } from "./payments.js";
import { session } from "./session.js";
import { toast } from "./toast.js";

// Orders placed in this tab with a card: when they reach requires_action we open the
// 3-D Secure challenge right away (once); the button stays for any other case.
const AUTO_KEY = "oms.autoAuthenticate";

function autoSet() {
  try {
    return new Set(JSON.parse(sessionStorage.getItem(AUTO_KEY) || "[]"));
  } catch {
    return new Set();
  }
}

export function rememberForAutoAuth(orderId) {
  const set = autoSet();
  set.add(orderId);
  sessionStorage.setItem(AUTO_KEY, JSON.stringify([...set].slice(-20)));
}

export function maybeAutoAuthenticate(orderId, status) {
  if (status !== "requires_action") return;
  const set = autoSet();
  if (!set.has(orderId)) return;
  set.delete(orderId);
  sessionStorage.setItem(AUTO_KEY, JSON.stringify([...set]));
  runAuthentication(orderId);
}

export async function runAuthentication(orderId, button) {
  if (button) button.disabled = true;
  try {
    await authenticateOrder(orderId);
    toast("Card authenticated — waiting for the payment to be confirmed.", { kind: "success", testid: "toast-3ds" });
  } catch (err) {
    toast(`3-D Secure: ${err.message}`, { kind: "error", testid: "toast-3ds-error" });
  } finally {
    if (button) button.disabled = false;
  }
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, testid: "order-status", dataset: { status } }, statusLabel(status));
}

function itemsSummary(order) {
  const count = Number.isFinite(Number(order.itemCount))
    ? Number(order.itemCount)
    : (order.items || []).reduce((n, it) => n + (Number(it.quantity) || 0), 0);
  return `${count} item${count === 1 ? "" : "s"}`;
}

// A table row for an order. `actions(order)` returns extra cells' content (admin buttons).
export function orderRow(order, { actions, showCustomer = false } = {}) {
  const row = h("tr", { testid: `order-row-${order.id}`, dataset: { orderId: order.id } });
  row.order = { ...order };
  row.extraActions = actions;
  row.showCustomer = showCustomer;
  renderRow(row);
  return row;
}

// Admin tables: who placed it, by name and email (never a raw user id).
function customerCell(order) {
  const email = order.customer?.email || order.userEmail || "";
  const name = order.customer?.name || "";
  return h(
    "td",
    { "data-label": "Customer", class: "customer", title: email, testid: "order-customer" },
    name ? h("span", { class: "customer-name" }, name) : null,
    email ? h("span", { class: "customer-email muted small ellipsis" }, email) : h("span", { class: "muted" }, "—"),
  );
}

function renderRow(row) {
  const order = row.order;
  const actionCell = h("td", { class: "actions", "data-label": "Actions" });
  const mine = order.userId ? order.userId === session.user?.id : !session.isAdmin;
  if (order.status === "requires_action" && mine) {
    const button = h(
      "button",
      { type: "button", class: "small", testid: "authenticate-payment" },
      "Authenticate payment",
    );
    button.addEventListener("click", () => runAuthentication(order.id, button));
    actionCell.append(button);
  }
  if (row.extraActions) actionCell.append(...[row.extraActions(order)].flat().filter(Boolean));
  replace(
    row,
    h("td", { "data-label": "Order" }, h("a", { href: `#/orders/${order.id}`, testid: "order-link" }, order.orderNumber || order.id)),
    row.showCustomer ? customerCell(order) : null,
    h("td", { "data-label": "Placed" }, dateTime(order.createdAt)),
    h("td", { "data-label": "Items" }, itemsSummary(order)),
    h("td", { "data-label": "Total", class: "num" }, money(order.totalCents, order.currency)),
    h(
      "td",
      { "data-label": "Status" },
      statusBadge(order.status),
      order.needsAttention ? h("span", { class: "flag", testid: "needs-attention", title: order.attentionReason || "" }, "needs attention") : null,
      order.disputeStatus ? h("span", { class: "flag", testid: "disputed", title: `dispute: ${order.disputeStatus}` }, `dispute: ${order.disputeStatus}`) : null,
    ),
    actionCell,
  );
  row.dataset.status = order.status;
}

// True when `event` is older than what `order` already shows: by aggregateVersion when the
// order carries its version, else by time (list rows carry updatedAt but no version; the
// event of the move that set updatedAt is never earlier than it).
export function isStale(order, event) {
  const version = Number(event.aggregateVersion);
  const known = Number(order.version);
  if (Number.isFinite(version) && Number.isFinite(known)) return version <= known;
  const at = parseDate(event.occurredAt);
  const updated = parseDate(order.updatedAt);
  return Boolean(at && updated && at < updated);
}

// Applies a live event to a row; true if it changed. Older events (by aggregateVersion)
// than what the row shows are ignored, so a late or replayed event never moves it back.
export function applyEventToRow(row, event) {
  const to = event?.data?.to;
  if (isStale(row.order, event)) return false;
  const version = Number(event.aggregateVersion);
  let changed = false;
  if (typeof to === "string" && to !== row.order.status) {
    row.order.status = to;
    changed = true;
  }
  if (event.type === "order.needs_attention") {
    row.order.needsAttention = true;
    row.order.attentionReason = event.data?.reason || row.order.attentionReason;
    changed = true;
  } else if (event.type === "order.resumed") {
    row.order.needsAttention = false;
    changed = true;
  }
  if (Number.isFinite(version) && Number.isFinite(Number(row.order.version))) row.order.version = version;
  if (event.occurredAt) row.order.updatedAt = event.occurredAt;
  if (changed) renderRow(row);
  return changed;
}

// Replaces a row's order with a fresher copy from the server (unless the row is newer).
// A list fetched before a live event arrived must not undo it: compared by version, or
// by time when either side has none.
export function refreshRow(row, order) {
  const known = Number(row.order.version);
  const incoming = Number(order.version);
  if (Number.isFinite(known) && Number.isFinite(incoming)) {
    if (incoming < known) return;
  } else {
    const shown = parseDate(row.order.updatedAt);
    const fetched = parseDate(order.updatedAt);
    if (shown && fetched && fetched < shown) return;
  }
  row.order = { ...order };
  renderRow(row);
}

export function ordersTable({ testid, showCustomer = false, caption }) {
  const headers = ["Order", showCustomer ? "Customer" : null, "Placed", "Items", "Total", "Status", "Actions"].filter(Boolean);
  const tbody = h("tbody", {});
  const table = h(
    "table",
    { class: "orders responsive", testid },
    caption ? h("caption", { class: "sr-only" }, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
    tbody,
  );
  return { table, tbody };
}

// The order just placed, handed from the new-order form to the list so its row shows
// at once with the status the server answered (pending).
export const handoff = { created: null };
