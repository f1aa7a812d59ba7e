// The signed-in user: the token lives in localStorage (so a reload keeps the session),
// the user object next to it; listeners hear about sign-in and sign-out.

const TOKEN_KEY = "oms.token";
const USER_KEY = "oms.user";
const listeners = new Set();

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  get user() {
    try {
      return JSON.parse(localStorage.getItem(USER_KEY) || "null");
    } catch {
      return null;
    }
  },
  get isAdmin() {
    return this.user?.role === "admin";
  },
  signIn(token, user) {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(user));
    notify();
  },
  setUser(user) {
    localStorage.setItem(USER_KEY, JSON.stringify(user));
    notify();
  },
  signOut() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
    notify();
  },
  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};

function notify() {
  for (const fn of listeners) fn(session.user);
}
