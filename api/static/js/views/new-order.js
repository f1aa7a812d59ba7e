// New order: products from the catalog, quantities, shipping address, a card (saved or new,
// through Stripe Elements), and a submit that carries an Idempotency-Key.
import { ApiError, get, post } from "../api.js";
import { field, h, replace, spinner } from "../dom.js";
import { money } from "../format.js";
import { handoff, rememberForAutoAuth } from "../orders.js";
import { cardLabel, mountCard, saveCard, savedCards } from "../payments.js";
import { session } from "../session.js";
import { toast } from "../toast.js";
import { check, clearErrors, formError, rules, showErrors } from "../validate.js";

const POSTAL = /^[A-Za-z0-9 -]{2,20}$/;

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export function newOrderView(root) {
  let card = null;
  let destroyed = false;
  // The same body retried (a timeout, a 503) reuses its key, so it can never order twice.
  let lastAttempt = null;
  const products = new Map();

  const productsBox = h("div", { class: "products", testid: "products" }, spinner("Loading catalog…"));
  const subtotal = h("output", { testid: "estimate-subtotal", "aria-live": "polite" }, money(0));
  const paymentError = h("p", { class: "form-error", role: "alert", testid: "payment-error", hidden: true });
  const cardsBox = h("div", { class: "saved-cards", testid: "saved-cards" });
  const cardMount = h("div", { class: "card-element", testid: "card-element" });
  const newCardBox = h("div", { class: "new-card", testid: "new-card" }, h("p", { class: "hint" }, "Card details go straight to Stripe; we never see the number."), cardMount);
  const submit = h("button", { type: "submit", class: "primary", testid: "place-order" }, "Place order");
  const name = [session.user?.firstName, session.user?.lastName].filter(Boolean).join(" ");

  const form = h(
    "form",
    { class: "card", novalidate: true, testid: "new-order-form", "aria-labelledby": "new-order-title" },
    h("h1", { id: "new-order-title" }, "New order"),
    formError(),
    h(
      "fieldset",
      {},
      h("legend", {}, "Products"),
      h("p", { class: "hint" }, "Quantity 1–100 for each product you want; leave 0 for the others."),
      h("p", { class: "field-error", id: "items-err", testid: "error-items", hidden: true }),
      h("div", { class: "items-anchor", tabindex: "-1", "data-field": "items", "aria-describedby": "items-err" }),
      productsBox,
      h(
        "p",
        { class: "estimate" },
        "Subtotal ",
        h("strong", {}, subtotal),
        h("span", { class: "muted", testid: "estimate-note" }, " — estimate from catalog prices; tax and shipping are computed by the server and shown on the order."),
      ),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Shipping address"),
      field({ label: "Full name", name: "shippingAddress.name", value: name, required: true, attrs: { autocomplete: "name", maxlength: 120, testid: "ship-name" } }),
      field({ label: "Address line 1", name: "shippingAddress.line1", required: true, attrs: { autocomplete: "address-line1", maxlength: 200, testid: "ship-line1" } }),
      field({ label: "Address line 2", name: "shippingAddress.line2", attrs: { autocomplete: "address-line2", maxlength: 200, testid: "ship-line2" } }),
      h(
        "div",
        { class: "row" },
        field({ label: "City", name: "shippingAddress.city", required: true, attrs: { autocomplete: "address-level2", maxlength: 100, testid: "ship-city" } }),
        field({ label: "Postal code", name: "shippingAddress.postalCode", required: true, attrs: { autocomplete: "postal-code", maxlength: 20, testid: "ship-postal-code" } }),
        field({
          label: "Country",
          name: "shippingAddress.country",
          value: "US",
          required: true,
          hint: "Two letters, e.g. US",
          attrs: { autocomplete: "country", maxlength: 2, testid: "ship-country" },
        }),
      ),
      field({ label: "Notes", name: "notes", type: "textarea", attrs: { maxlength: 500, rows: 2, testid: "notes" } }),
    ),
    h(
      "fieldset",
      { testid: "payment" },
      h("legend", {}, "Payment"),
      cardsBox,
      newCardBox,
      paymentError,
    ),
    h("div", { class: "actions" }, submit, h("a", { href: "#/", class: "button" }, "Cancel")),
  );
  root.append(form);

  // -- catalog ---------------------------------------------------------------------------
  function updateEstimate() {
    let cents = 0;
    let currency = "usd";
    for (const input of form.querySelectorAll("input[data-sku]")) {
      const p = products.get(input.dataset.sku);
      const q = Number(input.value);
      if (p && Number.isInteger(q) && q > 0) {
        cents += p.priceCents * q;
        currency = p.currency || currency;
      }
    }
    subtotal.textContent = money(cents, currency);
  }

  (async () => {
    try {
      const body = await get("/api/products", { limit: 100 });
      const list = body.data.products || [];
      if (!list.length) {
        replace(productsBox, h("p", { class: "muted" }, "The catalog is empty."));
        return;
      }
      replace(
        productsBox,
        list.map((p) => {
          products.set(p.sku, p);
          const id = `qty-${p.sku}`;
          const input = h("input", {
            id,
            type: "number",
            min: 0,
            max: 100,
            step: 1,
            value: 0,
            inputmode: "numeric",
            testid: `qty-${p.sku}`,
            "aria-describedby": `${id}-err`,
            disabled: p.available <= 0,
          });
          input.dataset.sku = p.sku;
          input.addEventListener("input", updateEstimate);
          return h(
            "div",
            { class: "product", testid: `product-${p.sku}` },
            h(
              "label",
              { for: id },
              h("span", { class: "product-name" }, p.name),
              h("span", { class: "muted" }, ` ${p.sku} · ${money(p.priceCents, p.currency)} · `),
              h("span", { class: p.available > 0 ? "muted" : "warn" }, p.available > 0 ? `${p.available} in stock` : "out of stock"),
            ),
            input,
            h("p", { class: "field-error", id: `${id}-err`, hidden: true }),
          );
        }),
      );
    } catch (err) {
      replace(productsBox, h("p", { class: "form-error", role: "alert" }, `Catalog unavailable: ${err.message}`));
    }
  })();

  // -- payment methods ---------------------------------------------------------------------
  function renderCards(cards, selected) {
    const radios = [
      ...cards.map((c) =>
        h(
          "label",
          { class: "radio" },
          h("input", { type: "radio", name: "paymentChoice", value: c.id, checked: c.id === selected, testid: `saved-card-${c.id}` }),
          ` ${cardLabel(c)}`,
        ),
      ),
      h(
        "label",
        { class: "radio" },
        h("input", { type: "radio", name: "paymentChoice", value: "new", checked: !selected, testid: "use-new-card" }),
        " A new card",
      ),
    ];
    replace(cardsBox, cards.length ? h("p", { class: "hint" }, "Pay with:") : null, cards.length ? radios : null);
    if (!cards.length) cardsBox.append(h("input", { type: "hidden", name: "paymentChoice", value: "new" }));
    syncChoice();
  }

  function choice() {
    const checked = form.querySelector("input[name=paymentChoice]:checked") || form.querySelector("input[name=paymentChoice][type=hidden]");
    return checked ? checked.value : "new";
  }

  function syncChoice() {
    newCardBox.hidden = choice() !== "new";
  }
  cardsBox.addEventListener("change", syncChoice);

  (async () => {
    const [cards] = await Promise.all([
      savedCards().catch(() => []),
      mountCard(cardMount)
        .then((c) => {
          if (destroyed) c.destroy();
          else card = c;
        })
        .catch((err) => {
          paymentError.textContent = `Card payments unavailable: ${err.message}`;
          paymentError.hidden = false;
        }),
    ]);
    if (!destroyed) renderCards(cards, cards[0]?.id ?? null);
  })();

  // -- submit --------------------------------------------------------------------------------
  function collect() {
    const data = new FormData(form);
    const items = [];
    for (const input of form.querySelectorAll("input[data-sku]")) {
      input.removeAttribute("data-field");
      const q = input.value.trim();
      if (q !== "" && Number(q) !== 0) {
        input.dataset.field = `items.${items.length}.quantity`;
        items.push({ sku: input.dataset.sku, quantity: Number(q) });
      }
    }
    const value = (k) => String(data.get(k) || "").trim();
    const address = {
      name: value("shippingAddress.name"),
      line1: value("shippingAddress.line1"),
      city: value("shippingAddress.city"),
      postalCode: value("shippingAddress.postalCode"),
      country: value("shippingAddress.country").toUpperCase(),
    };
    if (value("shippingAddress.line2")) address.line2 = value("shippingAddress.line2");
    const notes = value("notes");
    return { items, address, notes };
  }

  function validate({ items, address, notes }) {
    const errors = [];
    if (!items.length) errors.push({ field: "items", message: "choose at least one product" });
    items.forEach((it, n) => {
      const message = rules.quantity(it.quantity);
      if (message) errors.push({ field: `items.${n}.quantity`, message });
      const p = products.get(it.sku);
      if (!message && p && it.quantity > p.available) {
        errors.push({ field: `items.${n}.quantity`, message: `only ${p.available} in stock` });
      }
    });
    const flat = Object.fromEntries(Object.entries(address).map(([k, v]) => [`shippingAddress.${k}`, v]));
    errors.push(
      ...check(flat, {
        "shippingAddress.name": [rules.required, rules.maxLength(120)],
        "shippingAddress.line1": [rules.required, rules.maxLength(200)],
        "shippingAddress.line2": [rules.maxLength(200)],
        "shippingAddress.city": [rules.required, rules.maxLength(100)],
        "shippingAddress.postalCode": [rules.required, (v) => (POSTAL.test(v) ? null : "2–20 letters, digits, spaces or dashes")],
        "shippingAddress.country": [rules.required, rules.country],
      }),
    );
    if (notes.length > 500) errors.push({ field: "notes", message: "at most 500 characters" });
    return errors;
  }

  async function paymentMethodId() {
    const picked = choice();
    if (picked !== "new") return picked;
    if (!card) throw new Error("the card form is not ready");
    const saved = await saveCard(card.element);
    // Keep it selected: a retry of this form must not save the card twice.
    const cards = await savedCards().catch(() => [saved]);
    renderCards(cards.some((c) => c.id === saved.id) ? cards : [...cards, saved], saved.id);
    card.destroy();
    card = null;
    mountCard(cardMount)
      .then((c) => (destroyed ? c.destroy() : (card = c)))
      .catch(() => {});
    return saved.id;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    paymentError.hidden = true;
    const values = collect();
    const errors = validate(values);
    if (errors.length) {
      showErrors(form, errors, "Please correct the highlighted fields.");
      return;
    }
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      let pm;
      try {
        pm = await paymentMethodId();
      } catch (err) {
        paymentError.textContent = err.message;
        paymentError.hidden = false;
        if (err instanceof ApiError && err.errors.length) showErrors(form, err.errors);
        paymentError.focus?.();
        return;
      }
      const body = { items: values.items, shippingAddress: values.address, paymentMethodId: pm };
      if (values.notes) body.notes = values.notes;
      const text = JSON.stringify(body);
      if (!lastAttempt || lastAttempt.text !== text) lastAttempt = { text, key: newKey() };
      const answer = await post("/api/orders", body, { headers: { "Idempotency-Key": lastAttempt.key } });
      lastAttempt = null;
      const order = answer.data.order;
      rememberForAutoAuth(order.id);
      handoff.created = order;
      toast(`Order ${order.orderNumber} placed — total ${money(order.totalCents, order.currency)}.`, { kind: "success", testid: "toast-order-placed", key: order.id });
      location.hash = "#/";
    } catch (err) {
      showErrors(form, err.errors, err.message);
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });

  return () => {
    destroyed = true;
    card?.destroy();
  };
}
