// The user's notifications, newest first: a title, a body, and one "Mark all read".
import { get, post } from "../api.js";
import { debounce, subscribe } from "../bus.js";
import { h, replace, spinner } from "../dom.js";
import { dateTime } from "../format.js";
import { refreshUnread } from "../unread.js";

function orderOf(n) {
  const id = n.data?.orderId || (n.type?.startsWith("order.") ? n.data?.aggregateId : null);
  return id && /^[A-Za-z0-9]+$/.test(id) ? id : null;
}

function entry(n) {
  const read = Boolean(n.read);
  const order = orderOf(n);
  return h(
    "li",
    { class: read ? "read" : "unread", testid: `notification-${n.id}`, dataset: { read: String(read) } },
    h("p", { class: "notification-title" }, h("strong", { testid: "notification-title" }, n.title || "Update")),
    n.body ? h("p", { class: "notification-body", testid: "notification-body" }, n.body) : null,
    h("p", { class: "muted small" }, h("time", { datetime: n.createdAt || "" }, dateTime(n.createdAt)), order ? [" · ", h("a", { href: `#/orders/${order}` }, "View order")] : null),
  );
}

export function notificationsView(root) {
  const list = h("ul", { class: "plain notifications", testid: "notifications" }, h("li", {}, spinner()));
  const markAll = h("button", { type: "button", class: "small", testid: "mark-all-read", hidden: true }, "Mark all read");
  markAll.addEventListener("click", async () => {
    markAll.disabled = true;
    try {
      await post("/api/notifications/read-all");
      await load();
      refreshUnread();
    } finally {
      markAll.disabled = false;
    }
  });
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Notifications"), markAll), h("section", { class: "card" }, list));

  async function load() {
    try {
      const body = await get("/api/notifications", { limit: 50 });
      const items = body.data.notifications || [];
      markAll.hidden = !items.some((n) => !n.read);
      replace(list, items.length ? items.map(entry) : h("li", { class: "muted", testid: "notifications-empty" }, "Nothing here yet."));
    } catch (err) {
      replace(list, h("li", { class: "form-error", role: "alert" }, err.message));
    }
  }
  const reload = debounce(load, 800);
  const unsubscribe = subscribe(() => reload());
  load();
  return unsubscribe;
}
