// Formatting of money, dates and statuses.

export const STATUSES = [
  "pending",
  "reserved",
  "payment_pending",
  "requires_action",
  "confirmed",
  "shipped",
  "delivered",
  "cancelled",
  "failed",
  "refunded",
];

// Statuses after which nothing more happens on its own.
export const TERMINAL = new Set(["delivered", "cancelled", "failed", "refunded"]);
// Statuses a customer may still cancel from (the server has the last word: 409 otherwise).
export const CANCELLABLE = new Set(["pending", "reserved", "payment_pending", "requires_action", "confirmed"]);

export function money(cents, currency = "usd") {
  if (cents === null || cents === undefined || Number.isNaN(Number(cents))) return "—";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(
      Number(cents) / 100,
    );
  } catch {
    return `${(Number(cents) / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

// The API's timestamps are UTC; some come without an offset (naive ISO): read them as UTC.
export function parseDate(value) {
  if (!value) return null;
  if (value instanceof Date) return value;
  const text = String(value);
  const naive = /^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(text);
  const d = new Date(naive ? `${text}Z` : text);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function dateTime(value) {
  if (!value) return "—";
  const d = parseDate(value) || new Date(NaN);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function timeOnly(value) {
  if (!value) return "";
  const d = parseDate(value) || new Date(NaN);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function statusLabel(status) {
  return String(status || "unknown").replace(/_/g, " ");
}

export function shortId(id) {
  return id ? String(id).slice(-6) : "";
}
