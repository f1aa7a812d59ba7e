// Stripe in the browser. Stripe.js comes from the URL the server names in
// GET /api/payments/config (the emulator's fake Stripe.js in dev and tests, js.stripe.com in
// production), so only APIs both offer are used: elements() + a card element, createToken,
// confirmCardPayment. Card numbers never reach our server: the browser turns them into a
// token, our server attaches the token to the user's Stripe customer and answers the card's
// id, and that id is what orders carry as paymentMethodId.
import { get, post } from "./api.js";
import { h } from "./dom.js";

let stripePromise = null;
let configCache = null;

export async function paymentsConfig() {
  if (!configCache) configCache = (await get("/api/payments/config")).data;
  return configCache;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const existing = document.querySelector(`script[data-stripe-js]`);
    if (existing && window.Stripe) return resolve();
    const script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.dataset.stripeJs = "";
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => {
      script.remove();
      reject(new Error("could not load Stripe.js"));
    });
    document.head.append(script);
  });
}

export function getStripe() {
  if (!stripePromise) {
    stripePromise = (async () => {
      const config = await paymentsConfig();
      if (!config?.stripeJsUrl || !config?.publishableKey) throw new Error("payments are not configured");
      await loadScript(config.stripeJsUrl);
      if (typeof window.Stripe !== "function") throw new Error("Stripe.js did not load");
      return window.Stripe(config.publishableKey);
    })().catch((err) => {
      stripePromise = null;
      throw err;
    });
  }
  return stripePromise;
}

// Groups a card number as Stripe's card Element shows it: 4-6-5 for American Express
// (34, 37), 4-6-4 for Diners (36), else groups of four; at most 19 digits.
export function groupCardNumber(value) {
  const digits = String(value || "").replace(/\D/g, "").slice(0, 19);
  const groups = /^3[47]/.test(digits) ? [4, 6, 5] : /^3(6|0[0-5])/.test(digits) ? [4, 6, 4] : [4, 4, 4, 4, 3];
  const parts = [];
  let at = 0;
  for (const size of groups) {
    if (at >= digits.length) break;
    parts.push(digits.slice(at, at + size));
    at += size;
  }
  return { digits, text: parts.join(" ") };
}

// The emulator's element reads the raw input whenever any of its fields changes (spaces
// would count as characters, and it jumps to the month after 16 of them): its number input
// answers the digits to every reader, while the customer sees them grouped.
function formatLikeStripe(input) {
  const native = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value");
  const emulators = input.oninput;
  input.setAttribute("inputmode", "numeric");
  input.setAttribute("maxlength", "23");
  input.setAttribute("size", "20");
  Object.defineProperty(input, "value", {
    configurable: true,
    get() {
      return native.get.call(this).replace(/\D/g, "").slice(0, 19);
    },
    set(value) {
      native.set.call(this, groupCardNumber(value).text);
    },
  });
  input.oninput = (event) => {
    const shown = native.get.call(input);
    const caret = input.selectionStart ?? shown.length;
    const before = shown.slice(0, caret).replace(/\D/g, "").length;
    const { text } = groupCardNumber(shown);
    if (text !== shown) {
      native.set.call(input, text);
      // Keep the caret after the same digit it followed.
      let pos = 0;
      for (let seen = 0; pos < text.length && seen < before; pos += 1) if (/\d/.test(text[pos])) seen += 1;
      input.setSelectionRange(pos, pos);
    }
    if (emulators) emulators.call(input, event);
  };
}

// Stripe's test cards, shown beside the card form in development and test only (the
// server's config says testMode; never in production). Same list as the README.
export const TEST_CARDS = [
  ["4242 4242 4242 4242", "paid at once"],
  ["4000 0025 0000 3155", "asks for 3-D Secure"],
  ["4000 0000 0000 0341", "saves, then declines at payment"],
  ["4000 0000 0000 0002", "declined when saved"],
];

function testCardsHint() {
  return h(
    "details",
    { class: "test-cards hint", testid: "test-cards" },
    h("summary", {}, "Test cards"),
    h("p", {}, "Development only: any future expiry (e.g. 12 / 34), any CVC and postal code."),
    h(
      "table",
      {},
      h("tbody", {}, TEST_CARDS.map(([number, what]) => h("tr", {}, h("td", { class: "mono" }, number), h("td", {}, what)))),
    ),
  );
}

// Mounts a card element into `container`; returns {element, destroy}.
export async function mountCard(container) {
  const stripe = await getStripe();
  const elements = stripe.elements();
  const card = elements.create("card", { hidePostalCode: false });
  card.mount(container);
  const config = await paymentsConfig();
  const hint = config?.testMode && !container.parentElement?.querySelector("[data-testid=test-cards]") ? testCardsHint() : null;
  if (hint) container.after(hint);
  // The fake element renders bare inputs; give them accessible names (real Stripe's
  // iframe labels itself).
  for (const input of container.querySelectorAll("input")) {
    const name = input.getAttribute("placeholder") || "card";
    if (!input.hasAttribute("aria-label")) input.setAttribute("aria-label", `Card ${name.replace("_", " ")}`);
    input.dataset.testid = `card-${name.replace("_", "-")}`;
    input.autocomplete = "off";
    if (name === "number") formatLikeStripe(input);
  }
  return {
    element: card,
    destroy() {
      try {
        card.destroy();
      } catch {
        /* already gone */
      }
      hint?.remove();
    },
  };
}

function stripeMessage(error, fallback) {
  if (!error) return fallback;
  if (typeof error === "string") return error;
  return error.message || error.code || fallback;
}

// Card element → token (browser) → card saved on the user's customer (server).
// Returns the saved payment method; throws an Error whose message is fit for the user.
export async function saveCard(cardElement) {
  const stripe = await getStripe();
  const { token, error } = await stripe.createToken(cardElement);
  if (error || !token) throw new Error(stripeMessage(error, "the card could not be read"));
  const body = await post("/api/payments/save-payment-method", { paymentMethodId: token.id });
  const data = body.data || {};
  const method = data.paymentMethod || data.card || data;
  const id = method.id || data.paymentMethodId;
  if (!id) throw new Error("the server did not return the saved card");
  return { ...method, id };
}

export async function savedCards() {
  const body = await get("/api/payments/payment-methods/me");
  const data = body.data || {};
  return data.paymentMethods || data.cards || [];
}

// The order's intent; the server answers 409 INTENT_NOT_READY (Retry-After) while the
// worker is still creating it.
async function intentFor(orderId) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return (await post("/api/payments/create-intent", { orderId })).data || {};
    } catch (err) {
      if (err.code !== "INTENT_NOT_READY" || attempt >= 9) throw err;
      const wait = Math.min(5, Number(err.retryAfter) || 1) * 1000;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

// 3-D Secure for an order whose payment is in requires_action.
const inFlight = new Map();
export function authenticateOrder(orderId) {
  if (inFlight.has(orderId)) return inFlight.get(orderId);
  const run = (async () => {
    const intent = await intentFor(orderId);
    const clientSecret = intent.clientSecret;
    if (!clientSecret) throw new Error("no payment to authenticate for this order");
    const stripe = await getStripe();
    const result = await stripe.confirmCardPayment(clientSecret);
    if (result.error) throw new Error(stripeMessage(result.error, "authentication failed"));
    const status = result.paymentIntent?.status;
    if (status && status !== "succeeded" && status !== "processing" && status !== "requires_capture") {
      throw new Error(
        status === "requires_payment_method"
          ? "authentication failed: the card was not charged"
          : `payment is ${status.replace(/_/g, " ")}`,
      );
    }
    return result.paymentIntent;
  })().finally(() => inFlight.delete(orderId));
  inFlight.set(orderId, run);
  return run;
}

export function cardLabel(method) {
  const card = method.card || method;
  const brand = card.brand || "card";
  const last4 = card.last4 ? `•••• ${card.last4}` : method.id;
  const exp = card.expMonth || card.exp_month;
  const year = card.expYear || card.exp_year;
  return `${brand} ${last4}${exp ? ` (exp ${String(exp).padStart(2, "0")}/${String(year).slice(-2)})` : ""}`;
}
