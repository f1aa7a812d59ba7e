// In-page fan-out of live events to whichever views are showing.
const subscribers = new Set();

// The live connection's state ("live", "reconnecting", "offline"), set by app.js.
export const liveState = { current: "offline" };

// Runs fn every `ms` while the live connection is down, so views stay current without it.
export function pollWhileOffline(fn, ms = 5000) {
  const timer = setInterval(() => {
    if (liveState.current !== "live" && !document.hidden) fn();
  }, ms);
  return () => clearInterval(timer);
}

export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

export function publish(event) {
  for (const fn of [...subscribers]) {
    try {
      fn(event);
    } catch (err) {
      console.error("subscriber failed", err);
    }
  }
}

// The new status an event announces, if it announces one.
export function statusOf(event) {
  const to = event?.data?.to;
  return typeof to === "string" ? to : null;
}

// Calls fn at most once per `ms`, trailing.
export function debounce(fn, ms = 300) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
