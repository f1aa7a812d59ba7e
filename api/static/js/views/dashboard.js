// Customer dashboard: stats cards and the order list (filter + pagination), live.
import { get } from "../api.js";
import { debounce, pollWhileOffline, subscribe } from "../bus.js";
import { h, replace, spinner } from "../dom.js";
import { STATUSES, money, parseDate, statusLabel } from "../format.js";
import { applyEventToRow, handoff, maybeAutoAuthenticate, orderRow, ordersTable, refreshRow } from "../orders.js";
import { session } from "../session.js";

export function statsCards(stats, { admin = false } = {}) {
  const counts = stats.byStatus || stats.countsByStatus || stats.statusCounts || stats.counts || {};
  const total = stats.totalOrders ?? stats.total ?? Object.values(counts).reduce((a, b) => a + Number(b || 0), 0);
  const currency = stats.currency || "usd";
  const card = (label, value, testid) =>
    h("div", { class: "stat", testid }, h("div", { class: "stat-value" }, value), h("div", { class: "stat-label" }, label));
  return h(
    "div",
    { class: "stats-wrap" },
    h(
      "div",
      { class: "stats" },
      card("Orders", String(total), "stat-total"),
      card(admin ? "Revenue" : "Spent", money(stats.totalRevenueCents ?? 0, currency), "stat-revenue"),
      card("Average order", money(stats.averageOrderCents ?? 0, currency), "stat-average"),
      card("Today", String(stats.ordersToday ?? stats.today ?? 0), "stat-today"),
    ),
    h(
      "ul",
      { class: "chips", testid: "stat-by-status", "aria-label": "Orders by status" },
      STATUSES.filter((s) => Number(counts[s] || 0) > 0).map((s) =>
        h("li", { class: `chip status-${s}`, testid: `stat-status-${s}` }, `${statusLabel(s)}: ${counts[s]}`),
      ),
    ),
  );
}

// Applies one live event to the stats the server sent, the same events the rows apply, so
// the figures never lag the rows; a reload after the events stop replaces them with the
// server's. Each status move is counted once (its events share aggregateVersion).
export function applyEventToStats(stats, event, applied) {
  if (!stats || (event.aggregateType && event.aggregateType !== "order")) return false;
  // The server counted everything that happened before asOf; only later events apply.
  const asOf = parseDate(stats.asOf);
  const at = parseDate(event.occurredAt);
  if (asOf && at && at <= asOf) return false;
  const data = event.data || {};
  const counts = (stats.byStatus ||= {});
  const once = (key) => (applied.has(key) ? false : (applied.add(key), true));
  let changed = false;
  if (event.type === "order.created" && once(`${event.aggregateId}:created`)) {
    stats.total = Number(stats.total || 0) + 1;
    counts.pending = Number(counts.pending || 0) + 1;
    const today = new Date().toISOString().slice(0, 10);
    if (String(event.occurredAt || "").slice(0, 10) === today) stats.ordersToday = Number(stats.ordersToday || 0) + 1;
    changed = true;
  } else if (data.from && data.to && data.from !== data.to && once(`${event.aggregateId}:${event.aggregateVersion}`)) {
    counts[data.from] = Math.max(0, Number(counts[data.from] || 0) - 1);
    counts[data.to] = Number(counts[data.to] || 0) + 1;
    changed = true;
  }
  if (event.type === "order.payment.processed" && Number.isFinite(Number(data.amountCents)) && once(`paid:${event.aggregateId}`)) {
    stats.paidCents = Number(stats.paidCents || 0) + Number(data.amountCents);
    stats.paidCount = Number(stats.paidCount || 0) + 1;
    changed = true;
  }
  if (event.type === "order.payment.refunded" && Number.isFinite(Number(data.amountCents)) && once(`refund:${event.eventId}`)) {
    stats.refundedCents = Number(stats.refundedCents || 0) + Number(data.amountCents);
    changed = true;
  }
  if (changed && Number.isFinite(Number(stats.paidCents))) {
    stats.totalRevenueCents = Number(stats.paidCents) - Number(stats.refundedCents || 0);
    stats.averageOrderCents = stats.paidCount ? Math.round(Number(stats.paidCents) / Number(stats.paidCount)) : 0;
  }
  return changed;
}

export function dashboardView(root) {
  const state = { page: 1, limit: 10, status: "" };
  const statsBox = h("section", { "aria-label": "Statistics", testid: "stats" }, spinner());
  const filter = h(
    "select",
    { id: "status-filter", testid: "status-filter" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((s) => h("option", { value: s }, statusLabel(s))),
  );
  const { table, tbody } = ordersTable({ testid: "orders-table", caption: "Your orders" });
  const empty = h("p", { class: "muted", testid: "orders-empty", hidden: true }, "No orders yet. ", h("a", { href: "#/orders/new" }, "Place your first order"), ".");
  const pager = h("nav", { class: "pager", "aria-label": "Pages", testid: "pager" });
  const listError = h("p", { class: "form-error", role: "alert", hidden: true, testid: "list-error" });
  const rows = new Map();

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, `Hello, ${session.user?.firstName || "there"}`), h("a", { class: "button primary", href: "#/orders/new", testid: "new-order" }, "New order")),
    statsBox,
    h(
      "section",
      { class: "card", "aria-labelledby": "orders-title" },
      h("div", { class: "section-head" }, h("h2", { id: "orders-title" }, "Your orders"), h("label", { class: "inline", for: "status-filter" }, "Status ", filter)),
      listError,
      h("div", { class: "table-wrap" }, table),
      empty,
      pager,
    ),
  );

  let stats = null;
  let applied = new Set();
  async function loadStats() {
    try {
      const body = await get("/api/orders/stats");
      stats = body.data.stats || body.data;
      applied = new Set();
      replace(statsBox, statsCards(stats));
    } catch (err) {
      replace(statsBox, h("p", { class: "form-error", role: "alert" }, `Statistics unavailable: ${err.message}`));
    }
  }

  function addRow(order, where = "append") {
    const row = orderRow(order);
    rows.set(order.id, row);
    if (where === "prepend") tbody.prepend(row);
    else tbody.append(row);
    maybeAutoAuthenticate(order.id, order.status);
    return row;
  }

  let loadSeq = 0;
  async function loadOrders() {
    const seq = ++loadSeq;
    listError.hidden = true;
    let body;
    try {
      body = await get("/api/orders/my-orders", { page: state.page, limit: state.limit, status: state.status, sort: "-createdAt" });
    } catch (err) {
      if (seq !== loadSeq) return;
      listError.textContent = err.message;
      listError.hidden = false;
      return;
    }
    if (seq !== loadSeq) return;
    const orders = body.data.orders || [];
    const keep = new Set(orders.map((o) => o.id));
    for (const [id, row] of rows) {
      if (!keep.has(id) && !(row.justCreated && state.page === 1 && !state.status)) {
        row.remove();
        rows.delete(id);
      }
    }
    for (const order of orders) {
      const row = rows.get(order.id);
      if (row) {
        refreshRow(row, order);
        tbody.append(row);
        maybeAutoAuthenticate(order.id, row.order.status);
      } else addRow(order);
    }
    empty.hidden = rows.size > 0;
    renderPager(body.pagination || { page: state.page, pages: 1, total: orders.length });
  }

  function renderPager(p) {
    const pages = Math.max(1, Number(p.pages) || 1);
    const prev = h("button", { type: "button", class: "small", testid: "page-prev", disabled: state.page <= 1 }, "← Previous");
    const next = h("button", { type: "button", class: "small", testid: "page-next", disabled: state.page >= pages }, "Next →");
    prev.addEventListener("click", () => {
      state.page -= 1;
      loadOrders();
    });
    next.addEventListener("click", () => {
      state.page += 1;
      loadOrders();
    });
    replace(pager, prev, h("span", { testid: "page-info" }, `Page ${state.page} of ${pages} · ${p.total ?? 0} orders`), next);
  }

  filter.addEventListener("change", () => {
    state.status = filter.value;
    state.page = 1;
    for (const row of rows.values()) row.remove();
    rows.clear();
    loadOrders();
  });

  // The order just placed shows at once, as the server answered it.
  if (handoff.created) {
    const row = addRow(handoff.created, "prepend");
    row.justCreated = true;
    empty.hidden = true;
    handoff.created = null;
  }

  const reloadOrders = debounce(loadOrders, 400);
  const reloadStats = debounce(loadStats, 600);
  const unsubscribe = subscribe((event) => {
    if (event.type === "live.connected") {
      reloadOrders();
      reloadStats();
      return;
    }
    if (event.aggregateType && event.aggregateType !== "order") return;
    const row = rows.get(event.aggregateId);
    if (row) {
      if (applyEventToRow(row, event)) {
        maybeAutoAuthenticate(row.order.id, row.order.status);
        if (state.status && row.order.status !== state.status) reloadOrders();
      }
    } else if (event.type === "order.created" || event.data?.to) {
      if (state.page === 1) reloadOrders();
    }
    if (applyEventToStats(stats, event, applied)) replace(statsBox, statsCards(stats));
    if (event.data?.to || event.type === "order.created") reloadStats();
  });

  const stopPolling = pollWhileOffline(() => {
    loadOrders();
    loadStats();
  });
  loadStats();
  loadOrders();
  return () => {
    unsubscribe();
    stopPolling();
  };
}
