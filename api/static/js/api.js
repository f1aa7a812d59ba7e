// fetch wrapper for the API envelope: {status, data, message, code, errors, pagination}.
import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, body) {
    const message =
      (body && typeof body.message === "string" && body.message) ||
      (status === 0 ? "cannot reach the server" : `request failed (HTTP ${status})`);
    super(message);
    this.status = status;
    this.code = body?.code || null;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
    this.correlationId = body?.correlationId || null;
    this.retryAfter = null;
  }
}

function buildQuery(query) {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

let unauthorizedHandler = () => {};
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

export async function api(path, { method = "GET", body, query, headers = {}, auth = true } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  const token = session.token;
  if (auth && token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path + buildQuery(query), init);
  } catch {
    throw new ApiError(0, null);
  }
  let payload = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) {
    payload = await response.json().catch(() => null);
  }
  if (!response.ok) {
    const error = new ApiError(response.status, payload);
    error.retryAfter = response.headers.get("Retry-After");
    if (response.status === 401 && auth && token) unauthorizedHandler(error);
    throw error;
  }
  return payload || { status: "success", data: {} };
}

export const get = (path, query) => api(path, { query });
export const post = (path, body, opts = {}) => api(path, { method: "POST", body, ...opts });
export const patch = (path, body) => api(path, { method: "PATCH", body });
export const del = (path, query) => api(path, { method: "DELETE", query });
