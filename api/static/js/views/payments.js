// Saved cards (add one through Stripe Elements) and the payment history.
import { get } from "../api.js";
import { h, replace, spinner } from "../dom.js";
import { dateTime, money, statusLabel } from "../format.js";
import { cardLabel, mountCard, saveCard, savedCards } from "../payments.js";
import { toast } from "../toast.js";

export function paymentsView(root) {
  let card = null;
  let destroyed = false;
  const cardsList = h("ul", { class: "plain", testid: "cards-list" }, h("li", {}, spinner()));
  const mount = h("div", { class: "card-element", testid: "card-element" });
  const error = h("p", { class: "form-error", role: "alert", testid: "payment-error", hidden: true });
  const save = h("button", { type: "submit", class: "primary", testid: "save-card" }, "Save card");
  const addForm = h("form", { novalidate: true, testid: "add-card-form" }, h("h3", {}, "Add a card"), mount, error, save);
  const history = h("div", { class: "table-wrap", testid: "payment-history" }, spinner());
  const pager = h("nav", { class: "pager", "aria-label": "History pages" });
  let page = 1;

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Payments")),
    h("div", { class: "grid2" },
      h("section", { class: "card", "aria-labelledby": "cards-title" }, h("h2", { id: "cards-title" }, "Saved cards"), cardsList, addForm),
      h("section", { class: "card", "aria-labelledby": "hist-title" }, h("h2", { id: "hist-title" }, "History"), history, pager),
    ),
  );

  async function loadCards() {
    try {
      const cards = await savedCards();
      replace(
        cardsList,
        cards.length ? cards.map((c) => h("li", { testid: `card-${c.id}` }, cardLabel(c))) : h("li", { class: "muted", testid: "no-cards" }, "No saved cards."),
      );
    } catch (err) {
      replace(cardsList, h("li", { class: "form-error" }, err.message));
    }
  }

  async function loadHistory() {
    try {
      const body = await get("/api/payments/history/me", { page, limit: 10 });
      const data = body.data || {};
      const items = data.payments || data.history || data.items || [];
      if (!items.length) {
        replace(history, h("p", { class: "muted", testid: "history-empty" }, "No payments yet."));
      } else {
        replace(
          history,
          h(
            "table",
            { class: "responsive" },
            h("caption", { class: "sr-only" }, "Payments and refunds"),
            h("thead", {}, h("tr", {}, ["When", "Order", "Amount", "Paid", "Refunded", "Status"].map((t) => h("th", { scope: "col" }, t)))),
            h(
              "tbody",
              {},
              items.map((p) =>
                h(
                  "tr",
                  { testid: "history-row", dataset: { orderId: p.orderId || "" } },
                  h("td", { "data-label": "When" }, dateTime(p.createdAt)),
                  h("td", { "data-label": "Order" }, p.orderId ? h("a", { href: `#/orders/${p.orderId}` }, p.orderNumber || p.orderId) : p.orderNumber || "—"),
                  h("td", { "data-label": "Amount", class: "num" }, money(p.amountCents, p.currency)),
                  h("td", { "data-label": "Paid", class: "num" }, money(p.paidCents ?? 0, p.currency)),
                  h("td", { "data-label": "Refunded", class: "num" }, money(p.refundedCents ?? 0, p.currency)),
                  h("td", { "data-label": "Status" }, statusLabel(p.status || "")),
                ),
              ),
            ),
          ),
        );
      }
      const pages = Math.max(1, Number(body.pagination?.pages) || 1);
      const prev = h("button", { type: "button", class: "small", disabled: page <= 1 }, "← Previous");
      const next = h("button", { type: "button", class: "small", disabled: page >= pages }, "Next →");
      prev.addEventListener("click", () => { page -= 1; loadHistory(); });
      next.addEventListener("click", () => { page += 1; loadHistory(); });
      replace(pager, pages > 1 ? [prev, h("span", {}, `Page ${page} of ${pages}`), next] : null);
    } catch (err) {
      replace(history, h("p", { class: "form-error", role: "alert" }, err.message));
    }
  }

  mountCard(mount)
    .then((c) => (destroyed ? c.destroy() : (card = c)))
    .catch((err) => {
      error.textContent = `Card payments unavailable: ${err.message}`;
      error.hidden = false;
    });

  addForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!card) return;
    save.disabled = true;
    try {
      const saved = await saveCard(card.element);
      toast(`Saved ${cardLabel(saved)}.`, { kind: "success", testid: "toast-card-saved" });
      card.destroy();
      card = await mountCard(mount);
      loadCards();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      save.disabled = false;
    }
  });

  loadCards();
  loadHistory();
  return () => {
    destroyed = true;
    card?.destroy();
  };
}
