// Toasts in an aria-live region (declared in index.html). A toast with a `key` replaces the
// previous one with the same key (one toast per order, showing its latest news), so a
// fast chain does not bury the page under five toasts.
import { h } from "./dom.js";

export const MAX_TOASTS = 3;

// Room at the bottom of the page as tall as the toasts, so they never sit over the last
// content: whatever they cover can be scrolled up into view.
let watched = null;
function keepRoom(region) {
  if (watched === region || typeof ResizeObserver !== "function") return;
  watched = region;
  new ResizeObserver(() => {
    const height = region.children.length ? region.getBoundingClientRect().height + 16 : 0;
    document.body.style.setProperty("--toast-room", `${Math.ceil(height)}px`);
  }).observe(region);
}

export function toast(message, { kind = "info", timeout = 6000, testid = "toast", key = null } = {}) {
  const region = document.querySelector("[data-testid=toasts]");
  if (!region) return;
  keepRoom(region);
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const item = h(
    "div",
    { class: `toast toast-${kind}`, testid, role: kind === "error" ? "alert" : null },
    h("span", {}, message),
    close,
  );
  if (key) {
    item.dataset.key = key;
    for (const old of region.querySelectorAll(".toast")) if (old.dataset.key === key) old.remove();
  }
  close.addEventListener("click", () => item.remove());
  region.append(item);
  while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
  if (timeout) setTimeout(() => item.remove(), timeout);
}
