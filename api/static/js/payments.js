// Stripe in the browser. Stripe.js comes from the URL the server names in
// GET /api/payments/config (the emulator's fake Stripe.js in dev and tests, js.stripe.com in
// production), so only APIs both offer are used: elements() + a card element, createToken,
// confirmCardPayment. Card numbers never reach our server: the browser turns them into a
// token, our server attaches the token to the user's Stripe customer and answers the card's
// id, and that id is what orders carry as paymentMethodId.
import { get, post } from "./api.js";

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

// Mounts a card element into `container`; returns {element, destroy}.
export async function mountCard(container) {
  const stripe = await getStripe();
  const elements = stripe.elements();
  const card = elements.create("card", { hidePostalCode: false });
  card.mount(container);
  // The fake element renders bare inputs; give them accessible names (real Stripe's
  // iframe labels itself).
  for (const input of container.querySelectorAll("input")) {
    const name = input.getAttribute("placeholder") || "card";
    if (!input.hasAttribute("aria-label")) input.setAttribute("aria-label", `Card ${name.replace("_", " ")}`);
    input.dataset.testid = `card-${name.replace("_", "-")}`;
    input.autocomplete = "off";
  }
  return {
    element: card,
    destroy() {
      try {
        card.destroy();
      } catch {
        /* already gone */
      }
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
