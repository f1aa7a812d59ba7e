// Operator views: global stats, orders needing attention (resume), all orders with filters,
// dead letters (retry), low stock (restock), event stats chart, links to Flower and /metrics.
import { get, patch, post } from "../api.js";
import { debounce, pollWhileOffline, subscribe } from "../bus.js";
import { barChart, columnChart } from "../chart.js";
import { h, replace, spinner } from "../dom.js";
import { STATUSES, dateTime, statusLabel } from "../format.js";
import { applyEventToRow, orderRow, ordersTable } from "../orders.js";
import { toast } from "../toast.js";
import { applyEventToStats, statsCards } from "./dashboard.js";

const FLOWER_PORT = 5555;

function section(id, title, ...children) {
  return h("section", { class: "card", "aria-labelledby": id, testid: `${id}-section` }, h("h2", { id }, title), ...children);
}

function errorLine(err) {
  return h("p", { class: "form-error", role: "alert" }, err.message);
}

// Accepts {type: n} or [{type|_id|key, count|n}] and returns [{label, value}].
function pairs(source, labelKeys = ["type", "_id", "key", "name", "hour"]) {
  if (!source) return [];
  if (Array.isArray(source)) {
    return source.map((r) => ({
      label: String(labelKeys.map((k) => r[k]).find((v) => v !== undefined) ?? "?"),
      value: Number(r.count ?? r.n ?? r.value ?? 0),
    }));
  }
  return Object.entries(source).map(([label, value]) => ({ label, value: Number(typeof value === "object" ? value.count ?? 0 : value) }));
}

// {"2026-11-25T10:00:00Z": n, ...} → 24 hourly points ending with the current hour.
function last24Hours(counts) {
  const byHour = new Map();
  for (const [key, n] of Object.entries(counts)) {
    const d = new Date(key);
    if (!Number.isNaN(d.getTime())) byHour.set(Math.floor(d.getTime() / 3600000), Number(n) || 0);
  }
  const now = Math.floor(Date.now() / 3600000);
  const points = [];
  for (let hr = now - 23; hr <= now; hr += 1) {
    const d = new Date(hr * 3600000);
    points.push({ label: `${String(d.getHours()).padStart(2, "0")}h`, value: byHour.get(hr) || 0 });
  }
  return points;
}

export function adminView(root) {
  const statsBox = h("div", { testid: "admin-stats" }, spinner());
  const attention = ordersTable({ testid: "attention-table", showCustomer: true, caption: "Orders needing attention" });
  const attentionEmpty = h("p", { class: "muted", testid: "attention-empty", hidden: true }, "Nothing needs attention.");
  const all = ordersTable({ testid: "admin-orders-table", showCustomer: true, caption: "All orders" });
  const allPager = h("nav", { class: "pager", "aria-label": "Order pages" });
  const deadBox = h("div", { class: "table-wrap", testid: "dead-letters" }, spinner());
  const lowBox = h("div", { testid: "low-stock" }, spinner());
  const chartBox = h("div", { testid: "event-stats" }, spinner());
  const filters = { status: "", needsAttention: false, q: "", page: 1 };
  const attentionRows = new Map();
  const allRows = new Map();

  const statusSelect = h("select", { id: "admin-status", testid: "admin-status-filter" }, h("option", { value: "" }, "All"), STATUSES.map((s) => h("option", { value: s }, statusLabel(s))));
  const attentionBox = h("input", { id: "admin-attention", type: "checkbox", testid: "admin-attention-filter" });
  const search = h("input", { id: "admin-q", type: "search", placeholder: "email or ORD-…", testid: "admin-search" });
  const filterForm = h(
    "form",
    { class: "filters", role: "search", testid: "admin-filters" },
    h("label", { for: "admin-status" }, "Status ", statusSelect),
    h("label", { for: "admin-attention", class: "inline" }, attentionBox, " needs attention"),
    h("label", { for: "admin-q" }, "Search ", search),
    h("button", { type: "submit", class: "small" }, "Apply"),
  );

  const host = location.hostname;
  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Operations"),
      h(
        "nav",
        { class: "links", "aria-label": "Operations tools" },
        h("a", { href: `${location.protocol}//${host}:${FLOWER_PORT}/`, target: "_blank", rel: "noopener", testid: "link-flower" }, "Flower ↗"),
        h("a", { href: "/metrics", target: "_blank", rel: "noopener", testid: "link-metrics" }, "Metrics ↗"),
        h("a", { href: "/api-docs", target: "_blank", rel: "noopener", testid: "link-api-docs" }, "API docs ↗"),
      ),
    ),
    statsBox,
    section("attention", "Needs attention", h("div", { class: "table-wrap" }, attention.table), attentionEmpty),
    section("all-orders", "All orders", filterForm, h("div", { class: "table-wrap" }, all.table), allPager),
    h("div", { class: "grid2" }, section("dead", "Dead letters", deadBox), section("stock", "Low stock", lowBox)),
    section("events", "Events", chartBox),
  );

  function resumeButton(order) {
    if (!order.needsAttention) return null;
    const button = h("button", { type: "button", class: "small primary", testid: "resume-order" }, "Resume");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const body = await post(`/api/orders/${order.id}/resume`);
        const steps = body.data?.enqueued || [];
        toast(`${order.orderNumber}: ${body.message || "resumed"}${steps.length ? ` (${steps.join(", ")})` : ""}`, { kind: "success", testid: "toast-resumed" });
        reloadAttention();
        reloadAll();
      } catch (err) {
        toast(`${order.orderNumber}: ${err.message}`, { kind: "error" });
        button.disabled = false;
      }
    });
    return button;
  }

  // The order's trace in the tracing UI (Jaeger, Tempo…), when TRACING_UI_URL is set.
  function traceLink(order) {
    if (!order.traceUrl) return null;
    return h("a", { href: order.traceUrl, target: "_blank", rel: "noopener", class: "small", testid: "trace-link", title: `trace ${order.traceId}` }, "Trace ↗");
  }

  let stats = null;
  let applied = new Set();
  async function loadStats() {
    try {
      const body = await get("/api/orders/stats");
      stats = body.data.stats || body.data;
      applied = new Set();
      replace(statsBox, statsCards(stats, { admin: true }));
    } catch (err) {
      replace(statsBox, errorLine(err));
    }
  }

  function fill(tbody, rowsMap, orders) {
    for (const row of rowsMap.values()) row.remove();
    rowsMap.clear();
    for (const order of orders) {
      const row = orderRow(order, { actions: (o) => [resumeButton(o), traceLink(o)], showCustomer: true });
      rowsMap.set(order.id, row);
      tbody.append(row);
    }
  }

  async function loadAttention() {
    try {
      const body = await get("/api/orders", { needsAttention: true, limit: 50 });
      const orders = body.data.orders || [];
      fill(attention.tbody, attentionRows, orders);
      attentionEmpty.hidden = orders.length > 0;
    } catch (err) {
      replace(attention.tbody, h("tr", {}, h("td", { colspan: 7 }, errorLine(err))));
    }
  }

  async function loadAll() {
    try {
      const body = await get("/api/orders", {
        status: filters.status,
        needsAttention: filters.needsAttention ? true : undefined,
        q: filters.q,
        page: filters.page,
        limit: 20,
      });
      fill(all.tbody, allRows, body.data.orders || []);
      const pages = Math.max(1, Number(body.pagination?.pages) || 1);
      const prev = h("button", { type: "button", class: "small", disabled: filters.page <= 1 }, "← Previous");
      const next = h("button", { type: "button", class: "small", disabled: filters.page >= pages }, "Next →");
      prev.addEventListener("click", () => { filters.page -= 1; loadAll(); });
      next.addEventListener("click", () => { filters.page += 1; loadAll(); });
      replace(allPager, prev, h("span", {}, `Page ${filters.page} of ${pages} · ${body.pagination?.total ?? 0} orders`), next);
    } catch (err) {
      replace(all.tbody, h("tr", {}, h("td", { colspan: 7 }, errorLine(err))));
    }
  }

  filterForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    filters.status = statusSelect.value;
    filters.needsAttention = attentionBox.checked;
    filters.q = search.value.trim();
    filters.page = 1;
    loadAll();
  });

  async function loadDeadLetters() {
    try {
      const body = await get("/api/events/dead-letters", { resolved: false, limit: 20 });
      const items = body.data.deadLetters || [];
      if (!items.length) {
        replace(deadBox, h("p", { class: "muted", testid: "dead-letters-empty" }, "No dead letters."));
        return;
      }
      replace(
        deadBox,
        h(
          "table",
          { class: "responsive" },
          h("caption", { class: "sr-only" }, "Dead letters"),
          h("thead", {}, h("tr", {}, ["When", "Handler", "Attempts", "Error", ""].map((t) => h("th", { scope: "col" }, t)))),
          h(
            "tbody",
            {},
            items.map((d) => {
              const retry = h("button", { type: "button", class: "small", testid: "retry-dead-letter", disabled: d.resolved === true }, "Retry");
              retry.addEventListener("click", async () => {
                retry.disabled = true;
                try {
                  const r = await post(`/api/events/dead-letters/${d.id}/retry`);
                  toast(r.message || "retried", { kind: "success", testid: "toast-retried" });
                  loadDeadLetters();
                } catch (err) {
                  toast(err.message, { kind: "error" });
                  retry.disabled = false;
                }
              });
              return h(
                "tr",
                { testid: `dead-letter-${d.id}` },
                h("td", { "data-label": "When" }, dateTime(d.updatedAt || d.createdAt), d.retriedAt ? h("div", { class: "muted small" }, `retried ${dateTime(d.retriedAt)}`) : null),
                h("td", { "data-label": "Handler" }, d.handler || d.task || "—"),
                h("td", { "data-label": "Attempts", class: "num" }, String(d.attempts ?? d.failures ?? "—")),
                h("td", { "data-label": "Error", class: "ellipsis", title: d.error || "" }, d.error || "—"),
                h("td", { "data-label": "" }, retry),
              );
            }),
          ),
        ),
      );
    } catch (err) {
      replace(deadBox, errorLine(err));
    }
  }

  async function loadLowStock() {
    try {
      const body = await get("/api/products", { lowStock: true, limit: 100 });
      const items = body.data.products || [];
      if (!items.length) {
        replace(lowBox, h("p", { class: "muted", testid: "low-stock-empty" }, "Every product is above its threshold."));
        return;
      }
      replace(
        lowBox,
        h(
          "ul",
          { class: "plain" },
          items.map((p) => {
            const qty = h("input", { type: "number", min: 1, max: 1000000, value: 20, id: `restock-${p.sku}`, testid: `restock-qty-${p.sku}`, class: "qty" });
            const go = h("button", { type: "submit", class: "small", testid: `restock-${p.sku}` }, "Restock");
            const form = h(
              "form",
              { class: "restock", novalidate: true },
              h("span", {}, h("strong", {}, p.name), ` ${p.sku} — `, h("span", { class: "warn", testid: `available-${p.sku}` }, `${p.available} left`)),
              h("label", { for: `restock-${p.sku}`, class: "sr-only" }, `Units to add to ${p.sku}`),
              qty,
              go,
            );
            form.addEventListener("submit", async (ev) => {
              ev.preventDefault();
              const n = Number(qty.value);
              if (!Number.isInteger(n) || n < 1) {
                toast("Restock needs a whole number ≥ 1", { kind: "error" });
                return;
              }
              go.disabled = true;
              try {
                const r = await patch(`/api/products/${encodeURIComponent(p.sku)}`, { restock: n });
                toast(`${p.sku}: ${r.data.product?.available ?? "?"} available`, { kind: "success", testid: "toast-restocked" });
                loadLowStock();
              } catch (err) {
                toast(err.message, { kind: "error" });
              } finally {
                go.disabled = false;
              }
            });
            return h("li", { testid: `low-stock-${p.sku}` }, form);
          }),
        ),
      );
    } catch (err) {
      replace(lowBox, errorLine(err));
    }
  }

  async function loadEventStats() {
    try {
      const body = await get("/api/events/stats");
      const s = body.data.stats || body.data;
      const byType = pairs(s.countsByType || s.byType).sort((a, b) => b.value - a.value).slice(0, 12);
      const byHour = last24Hours(s.countsByHour || s.byHour || {});
      const sum = (v) => (v && typeof v === "object" ? Object.values(v).reduce((a, b) => a + (Number(b) || 0), 0) : Number(v) || 0);
      const dead = s.deadLetters || {};
      const outbox = s.outbox || {};
      const kv = [
        ["Events", s.total ?? 0, "fig-total"],
        ["Handler failures", sum(s.handlerFailures), "fig-failures"],
        ["Dead letters (open)", typeof dead === "object" ? dead.unresolved ?? 0 : dead, "fig-dead"],
        ["Outbox pending", outbox.pending ?? 0, "fig-outbox"],
        ["Oldest pending", `${Math.round(outbox.oldestAgeSeconds ?? 0)} s`, "fig-outbox-age"],
      ];
      replace(
        chartBox,
        h("dl", { class: "kv inline-kv", testid: "event-figures" }, kv.map(([k, v, t]) => [h("dt", {}, k), h("dd", { testid: t }, String(v))])),
        h("div", { class: "grid2" },
          h("figure", {}, h("figcaption", {}, "Events per hour, last 24 h"), columnChart(byHour, { title: "Events per hour, last 24 hours", testid: "chart-events-hour" })),
          byType.length
            ? h("figure", {}, h("figcaption", {}, "Events by type"), barChart(byType, { title: "Events by type", testid: "chart-events-type" }))
            : h("p", { class: "muted" }, "No events yet."),
        ),
      );
    } catch (err) {
      replace(chartBox, errorLine(err));
    }
  }

  const reloadAttention = debounce(loadAttention, 300);
  const reloadAll = debounce(loadAll, 300);
  const reloadStats = debounce(loadStats, 800);
  const reloadCharts = debounce(() => {
    loadEventStats();
    loadDeadLetters();
  }, 2000);
  const reloadStock = debounce(loadLowStock, 800);
  const unsubscribe = subscribe((event) => {
    if (event.type === "live.connected") {
      reloadAttention();
      reloadAll();
      return;
    }
    if (event.type?.startsWith("inventory.")) reloadStock();
    reloadCharts();
    if (event.aggregateType && event.aggregateType !== "order") return;
    for (const rows of [attentionRows, allRows]) {
      const row = rows.get(event.aggregateId);
      if (row) applyEventToRow(row, event);
    }
    if (event.type === "order.needs_attention" || event.type === "order.resumed") reloadAttention();
    if (event.type === "order.created" && filters.page === 1) reloadAll();
    if (applyEventToStats(stats, event, applied)) replace(statsBox, statsCards(stats, { admin: true }));
    if (event.data?.to || event.type === "order.created") reloadStats();
  });

  const stopPolling = pollWhileOffline(() => {
    loadAttention();
    loadAll();
    loadStats();
  }, 8000);
  loadStats();
  loadAttention();
  loadAll();
  loadDeadLetters();
  loadLowStock();
  loadEventStats();
  return () => {
    unsubscribe();
    stopPolling();
  };
}
