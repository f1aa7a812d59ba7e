// The live connection: /ws on the same host, auth first, then resume from the last event
// id seen (kept in sessionStorage per user, so a reload resumes too), ping-aware, and
// reconnecting with exponential backoff and jitter. "live" once the server says "ready".

const MAX_BACKOFF_MS = 15000;
const SILENCE_MS = 65000; // the server pings every 25 s
const SEEN_LIMIT = 500;

export class LiveSocket {
  constructor({ token, userId, onEvent, onState }) {
    this.token = token;
    this.storageKey = `oms.lastEventId.${userId}`;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.attempt = 0;
    this.ws = null;
    this.closed = false;
    this.timer = null;
    this.watchdog = null;
    this.seen = new Set();
  }

  get lastEventId() {
    return sessionStorage.getItem(this.storageKey);
  }

  set lastEventId(value) {
    sessionStorage.setItem(this.storageKey, value);
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.onState(this.attempt ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/ws`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "auth", token: this.token }));
      const after = this.lastEventId;
      if (after) ws.send(JSON.stringify({ type: "resume", after }));
      this.kick();
    });
    ws.addEventListener("message", (msg) => {
      this.attempt = 0;
      this.kick();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (frame.type === "ping" || frame.type === "pong") return; // the line is alive (kick)
      if (frame.type === "ready") this.onState("live");
      else if (frame.type === "event" && frame.event) this.deliver(frame.event);
      else if (frame.type === "error") {
        // The event we would resume after is gone (e.g. a reset store): start afresh;
        // the views reload on "live" anyway, so nothing is missed.
        if (frame.code === "UNKNOWN_EVENT") sessionStorage.removeItem(this.storageKey);
        console.warn("live:", frame.code, frame.message);
      }
    });
    ws.addEventListener("close", (ev) => {
      clearTimeout(this.watchdog);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      // 4401/4403/1008: the server refused our token; reconnecting will not help.
      if (ev.code === 4401 || ev.code === 4403 || ev.code === 1008) {
        this.onState("offline", "unauthorized");
        return;
      }
      this.scheduleReconnect();
    });
    ws.addEventListener("error", () => {
      /* a close event follows */
    });
  }

  deliver(event) {
    const id = event.eventId;
    if (id) {
      if (this.seen.has(id)) return;
      this.seen.add(id);
      if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value);
      this.lastEventId = id;
    }
    try {
      this.onEvent(event);
    } catch (err) {
      console.error("live event handler failed", err);
    }
  }

  kick() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.ws?.close(4000, "silent"), SILENCE_MS);
  }

  scheduleReconnect() {
    this.onState("reconnecting");
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
    this.onState("offline");
  }
}
