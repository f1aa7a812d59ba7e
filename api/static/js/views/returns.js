// Returns: the customer's "return items" form and list on a delivered order, and the admin
// queue (approve, reject with a reason, receive: restock + refund).
import { get, post } from "../api.js";
import { debounce, subscribe } from "../bus.js";
import { field, h, replace, spinner } from "../dom.js";
import { dateTime, money } from "../format.js";
import { toast } from "../toast.js";
import { formError, showErrors } from "../validate.js";

const STATUS_TEXT = {
  requested: "requested — waiting for review",
  approved: "approved — send the items back",
  rejected: "rejected",
  received: "received — refund on its way",
  refunded: "refunded",
};

function linesText(lines) {
  return lines.map((l) => `${l.quantity} × ${l.sku}`).join(", ");
}

function returnItem(order, ret) {
  return h(
    "li",
    { testid: `return-${ret.id}`, "data-status": ret.status },
    h("strong", {}, linesText(ret.lines)),
    " ",
    h("span", { class: `chip ${ret.status === "rejected" ? "failed" : ret.status === "refunded" ? "shipped" : "pending"}`, testid: "return-status" }, STATUS_TEXT[ret.status] || ret.status),
    h("div", { class: "muted small" }, `“${ret.reason}” · asked ${dateTime(ret.requestedAt)}`, ret.decisionReason ? ` · ${ret.decisionReason}` : "", ret.refundCents != null ? ` · refund ${money(ret.refundCents, order.currency)}` : ""),
  );
}

function left(order) {
  const counts = Object.fromEntries(order.items.map((i) => [i.sku, i.quantity]));
  for (const ret of order.returns || []) {
    if (ret.status === "rejected") continue;
    for (const l of ret.lines) counts[l.sku] -= l.quantity;
  }
  return counts;
}

// Renders into `box` (a card) for `order`; `reload` refetches the order after a change.
export function renderReturns(box, order, reload) {
  const returns = order.returns || [];
  const remaining = left(order);
  const canAsk = order.status === "delivered" && Object.values(remaining).some((n) => n > 0);
  box.hidden = !(returns.length || canAsk);
  if (box.hidden) return;
  let form = null;
  if (canAsk) {
    const submit = h("button", { type: "submit", testid: "return-submit" }, "Ask to return");
    form = h(
      "form",
      { novalidate: true, testid: "return-form" },
      formError(),
      order.items
        .filter((i) => remaining[i.sku] > 0)
        .map((i) => field({ label: `${i.name || i.sku} (up to ${remaining[i.sku]})`, name: `qty:${i.sku}`, type: "number", value: "0", attrs: { min: 0, max: remaining[i.sku], testid: `return-qty-${i.sku}` } })),
      field({ label: "Why are you returning it?", name: "reason", required: true, attrs: { maxlength: 300, testid: "return-reason" } }),
      submit,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const lines = [...data.entries()]
        .filter(([k, v]) => k.startsWith("qty:") && Number(v) > 0)
        .map(([k, v]) => ({ sku: k.slice(4), quantity: Number(v) }));
      submit.disabled = true;
      try {
        await post(`/api/orders/${order.id}/returns`, { lines, reason: String(data.get("reason") || "").trim() });
        toast("Return requested: we will tell you what happens next.", { kind: "success", testid: "toast-return" });
        reload();
      } catch (err) {
        showErrors(form, err.errors, err.message);
      } finally {
        submit.disabled = false;
      }
    });
  }
  replace(box, h("h2", {}, "Returns"), returns.length ? h("ul", { class: "plain", testid: "returns" }, returns.map((r) => returnItem(order, r))) : null, form);
}

function adminActions(row, reload) {
  const base = `/api/orders/${row.orderId}/returns/${row.id}`;
  const act = async (path, body, done) => {
    try {
      await post(`${base}/${path}`, body);
      toast(done, { kind: "success" });
      reload();
    } catch (err) {
      toast(err.message, { kind: "error" });
    }
  };
  const buttons = [];
  if (row.status === "requested") {
    const approve = h("button", { type: "button", class: "small primary", testid: "return-approve" }, "Approve");
    approve.addEventListener("click", () => act("approve", {}, "Return approved"));
    const reject = h("button", { type: "button", class: "small danger", testid: "return-reject" }, "Reject");
    reject.addEventListener("click", () => {
      const reason = window.prompt("Why is this return rejected?");
      if (reason && reason.trim()) act("reject", { reason: reason.trim() }, "Return rejected");
    });
    buttons.push(approve, reject);
  }
  if (row.status === "approved") {
    const receive = h("button", { type: "button", class: "small primary", testid: "return-receive" }, "Received: restock + refund");
    receive.addEventListener("click", () => act("receive", undefined, "Restocked; refund queued"));
    buttons.push(receive);
  }
  return buttons;
}

export function returnsView(root) {
  const filter = h("select", { id: "returns-status", testid: "returns-filter" }, ["requested", "approved", "received", "refunded", "rejected", ""].map((s) => h("option", { value: s }, s || "all")));
  const box = h("div", { class: "table-wrap", testid: "returns-table" }, spinner());
  let latest = 0;
  async function load() {
    const mine = ++latest; // a slower, older answer must not replace a newer one
    try {
      const body = await get("/api/returns", { status: filter.value, limit: 100 });
      if (mine !== latest) return;
      const rows = body.data.returns || [];
      replace(
        box,
        rows.length
          ? h(
              "table",
              {},
              h("caption", {}, "Returns"),
              h("thead", {}, h("tr", {}, ["Order", "Lines", "Reason", "Status", "Refund", ""].map((t) => h("th", { scope: "col" }, t)))),
              h(
                "tbody",
                {},
                rows.map((r) =>
                  h(
                    "tr",
                    { testid: `return-row-${r.id}`, "data-status": r.status },
                    h("td", {}, h("a", { href: `#/orders/${r.orderId}` }, r.orderNumber)),
                    h("td", {}, linesText(r.lines)),
                    h("td", {}, r.reason),
                    h("td", { testid: "return-row-status" }, r.status),
                    h("td", { class: "num" }, r.refundCents != null ? money(r.refundCents) : "—"),
                    h("td", {}, adminActions(r, load)),
                  ),
                ),
              ),
            )
          : h("p", { class: "muted", testid: "returns-empty" }, "No returns here."),
      );
    } catch (err) {
      if (mine === latest) replace(box, h("p", { class: "form-error", role: "alert" }, err.message));
    }
  }
  filter.addEventListener("change", load);
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Returns")), h("section", { class: "card" }, h("label", { for: "returns-status" }, "Status ", filter), box));
  const reload = debounce(load, 250);
  const unsubscribe = subscribe((event) => {
    if (event.type?.startsWith("order.return.") || event.type === "live.connected") reload();
  });
  load();
  return unsubscribe;
}
