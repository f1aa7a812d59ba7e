// The unread-notifications badge in the nav.
import { get } from "./api.js";

export async function refreshUnread() {
  const badge = document.querySelector("[data-testid=unread-count]");
  if (!badge) return;
  try {
    const body = await get("/api/notifications", { unread: true, limit: 1 });
    const unread = Number(body.pagination?.total ?? (body.data.notifications || []).length) || 0;
    badge.textContent = String(unread);
    badge.hidden = !unread;
    badge.setAttribute("aria-label", `${unread} unread`);
  } catch {
    badge.hidden = true;
  }
}
