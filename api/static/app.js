// Entry point: a hash router, the session header, and the live connection that feeds
// every view (through bus.js) and the toasts.
import { get, onUnauthorized, post } from "./js/api.js";
import { liveState, publish, statusOf } from "./js/bus.js";
import { clear, h } from "./js/dom.js";
import { statusLabel } from "./js/format.js";
import { LiveSocket } from "./js/live.js";
import { session } from "./js/session.js";
import { toast } from "./js/toast.js";
import { refreshUnread } from "./js/unread.js";
import { forgotPasswordView, resetPasswordView, verifyEmailView } from "./js/views/account-links.js";
import { adminView } from "./js/views/admin.js";
import { loginView, registerView } from "./js/views/auth.js";
import { dashboardView } from "./js/views/dashboard.js";
import { integrationsView } from "./js/views/integrations.js";
import { newOrderView } from "./js/views/new-order.js";
import { notificationsView } from "./js/views/notifications.js";
import { orderDetailView } from "./js/views/order-detail.js";
import { paymentsView } from "./js/views/payments.js";
import { returnsView } from "./js/views/returns.js";

const routes = [
  { path: /^\/login$/, view: loginView, public: true, title: "Log in" },
  { path: /^\/register$/, view: registerView, public: true, title: "Register" },
  { path: /^\/forgot-password$/, view: forgotPasswordView, public: true, title: "Forgot password" },
  // Links from emails: they work signed in or not.
  { path: /^\/reset-password$/, view: resetPasswordView, public: true, anyone: true, title: "Reset password" },
  { path: /^\/verify-email$/, view: verifyEmailView, public: true, anyone: true, title: "Verify email" },
  { path: /^\/$/, view: dashboardView, title: "Dashboard", nav: "nav-dashboard" },
  { path: /^\/orders\/new$/, view: newOrderView, title: "New order", nav: "nav-new-order" },
  { path: /^\/orders\/(?<id>[A-Za-z0-9]+)$/, view: orderDetailView, title: "Order" },
  { path: /^\/payments$/, view: paymentsView, title: "Payments", nav: "nav-payments" },
  { path: /^\/notifications$/, view: notificationsView, title: "Notifications", nav: "nav-notifications" },
  { path: /^\/admin$/, view: adminView, title: "Admin", admin: true, nav: "nav-admin" },
  { path: /^\/returns$/, view: returnsView, title: "Returns", admin: true, nav: "nav-returns" },
  { path: /^\/integrations$/, view: integrationsView, title: "Integrations", admin: true, nav: "nav-integrations" },
];

const main = document.getElementById("main");
let cleanup = null;
let live = null;

function currentPath() {
  const raw = location.hash.replace(/^#/, "") || "/";
  return raw.split("?")[0];
}

function render() {
  const path = currentPath();
  const route = routes.find((r) => r.path.test(path));
  if (!route) {
    location.replace("#/");
    return;
  }
  if (!route.public && !session.token) {
    location.replace("#/login");
    return;
  }
  if (route.public && !route.anyone && session.token) {
    location.replace("#/");
    return;
  }
  if (route.admin && !session.isAdmin) {
    location.replace("#/");
    return;
  }
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  clear(main);
  main.dataset.route = route.title.toLowerCase().replace(/\s+/g, "-");
  document.title = `${route.title} · Orders`;
  for (const a of document.querySelectorAll(".nav a")) a.removeAttribute("aria-current");
  if (route.nav) document.querySelector(`[data-testid=${route.nav}]`)?.setAttribute("aria-current", "page");
  try {
    cleanup = route.view(main, path.match(route.path).groups || {});
  } catch (err) {
    console.error(err);
    main.append(h("p", { class: "form-error", role: "alert" }, `This view failed: ${err.message}`));
  }
  // Move focus to the new content for keyboard and screen-reader users (not on first load).
  if (render.done) main.focus({ preventScroll: true });
  render.done = true;
  window.scrollTo(0, 0);
}

// -- session header and live connection -----------------------------------------------------
function onLiveEvent(event) {
  publish(event);
  const to = statusOf(event);
  // One toast per status move: order.updated carries every move.
  if (event.type === "order.updated" && to) {
    const number = event.data?.orderNumber || event.aggregateId;
    const reason = event.data?.reason && ["failed", "cancelled", "requires_action"].includes(to) ? ` — ${event.data.reason}` : "";
    toast(`${number}: ${statusLabel(to)}${reason}`, {
      kind: to === "failed" ? "error" : to === "shipped" || to === "delivered" || to === "confirmed" ? "success" : "info",
      testid: "toast-live",
      key: event.aggregateId,
    });
  } else if (event.type === "order.needs_attention" && session.isAdmin) {
    toast(`${event.data?.orderNumber || event.aggregateId} needs attention: ${event.data?.reason || ""}`, { kind: "error", testid: "toast-live" });
  } else if (event.type === "inventory.low_stock" && session.isAdmin) {
    toast(`Low stock: ${event.data?.sku}`, { kind: "info", testid: "toast-live" });
  }
  if (event.type?.startsWith("order.") || event.type?.startsWith("inventory.")) refreshUnreadSoon();
}

let unreadTimer = null;
function refreshUnreadSoon() {
  clearTimeout(unreadTimer);
  unreadTimer = setTimeout(refreshUnread, 1500);
}

function setLiveState(state) {
  const el = document.querySelector("[data-testid=ws-status]");
  if (!el) return;
  liveState.current = state;
  el.dataset.state = state;
  el.textContent = state === "live" ? "live" : state === "reconnecting" || state === "connecting" ? "reconnecting…" : "offline";
  if (state === "live") publish({ type: "live.connected" });
}

function syncSession() {
  const user = session.user;
  const signedIn = Boolean(session.token && user);
  document.querySelector(".nav").hidden = !signedIn;
  document.querySelector(".session").hidden = !signedIn;
  for (const testid of ["nav-admin", "nav-returns", "nav-integrations"]) {
    document.querySelector(`[data-testid=${testid}]`).hidden = !(signedIn && user.role === "admin");
  }
  document.querySelector("[data-testid=current-user]").textContent = signedIn ? `${user.email}${user.role === "admin" ? " (admin)" : ""}` : "";
  if (live && (!signedIn || live.token !== session.token)) {
    live.close();
    live = null;
  }
  if (signedIn && !live) {
    live = new LiveSocket({ token: session.token, userId: user.id, onEvent: onLiveEvent, onState: setLiveState });
    live.connect();
    refreshUnread();
  }
}

document.querySelector("[data-testid=logout]").addEventListener("click", async () => {
  try {
    await post("/api/users/logout");
  } catch {
    /* signing out locally is what matters */
  }
  session.signOut();
  location.hash = "#/login";
});

onUnauthorized(() => {
  if (!session.token) return;
  session.signOut();
  toast("Your session has ended — please log in again.", { kind: "error", testid: "toast-session" });
  location.hash = "#/login";
});

session.onChange(syncSession);
window.addEventListener("hashchange", render);

// Refresh the stored user (role changes, deactivation) before the first view.
async function boot() {
  if (session.token) {
    try {
      const body = await get("/api/users/profile");
      session.setUser(body.data.user);
    } catch {
      /* 401 is handled by onUnauthorized; other failures keep the stored user */
    }
  }
  syncSession();
  render();
}

boot();
