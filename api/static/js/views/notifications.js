// The user's notifications, newest first; mark as read.
import { get, post } from "../api.js";
import { debounce, subscribe } from "../bus.js";
import { h, replace, spinner } from "../dom.js";
import { dateTime } from "../format.js";
import { refreshUnread } from "../unread.js";

function orderOf(n) {
  const id = n.data?.orderId || (n.type?.startsWith("order.") ? n.data?.aggregateId : null);
  return id && /^[A-Za-z0-9]+$/.test(id) ? id : null;
}

export function notificationsView(root) {
  const list = h("ul", { class: "plain notifications", testid: "notifications" }, h("li", {}, spinner()));
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Notifications")), h("section", { class: "card" }, list));

  async function load() {
    try {
      const body = await get("/api/notifications", { limit: 50 });
      const items = body.data.notifications || [];
      replace(
        list,
        items.length
          ? items.map((n) => {
              const read = Boolean(n.read);
              const mark = read ? null : h("button", { type: "button", class: "small", testid: "mark-read" }, "Mark read");
              mark?.addEventListener("click", async () => {
                mark.disabled = true;
                try {
                  await post(`/api/notifications/${n.id}/read`);
                  load();
                  refreshUnread();
                } catch {
                  mark.disabled = false;
                }
              });
              return h(
                "li",
                { class: read ? "read" : "unread", testid: `notification-${n.id}` },
                h("div", {}, h("strong", {}, n.title || n.type || "Update"), " ", h("span", {}, n.message || n.body || "")),
                h("div", { class: "muted small" }, dateTime(n.createdAt), orderOf(n) ? [" · ", h("a", { href: `#/orders/${orderOf(n)}` }, "view order")] : null),
                mark,
              );
            })
          : h("li", { class: "muted", testid: "notifications-empty" }, "Nothing here yet."),
      );
    } catch (err) {
      replace(list, h("li", { class: "form-error", role: "alert" }, err.message));
    }
  }
  const reload = debounce(load, 800);
  const unsubscribe = subscribe(() => reload());
  load();
  return unsubscribe;
}
