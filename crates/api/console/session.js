// Who is signed in: tokens and user, kept in localStorage so a reload or a
// second tab stays signed in. Every tab sees the others' changes through
// the `storage` event (a refresh, a sign-out).

const KEY = "tidings.session";

export class Session extends EventTarget {
  constructor() {
    super();
    this.value = read();
    this.refreshing = null;
    globalThis.addEventListener("storage", (event) => {
      if (event.key !== KEY) return;
      const before = this.value;
      this.value = read();
      if (before && !this.value) this.dispatchEvent(new Event("signed_out"));
    });
  }

  get user() {
    return this.value?.user ?? null;
  }

  get access() {
    return this.value?.access ?? null;
  }

  /** Logs in with a password; throws a RestError-like error on failure. */
  async login(username, password) {
    const tokens = await post("api/token/", { username, password });
    const response = await fetch("../api/users/me/", {
      headers: { authorization: `Bearer ${tokens.access}` },
    });
    const user = await response.json();
    if (!response.ok) throw failure(response.status, user);
    this.#store({ ...tokens, user });
  }

  /**
   * A new access token from the refresh token, or null when the refresh
   * token no longer works (then the session ends). Concurrent callers
   * share one request.
   */
  refresh() {
    if (!this.value) return Promise.resolve(null);
    this.refreshing ??= (async () => {
      try {
        const { access } = await post("api/token/refresh/", { refresh: this.value.refresh });
        this.#store({ ...read(), access });
        return access;
      } catch (error) {
        if (error.status === 401 || error.status === 403) {
          this.end();
          return null;
        }
        throw error;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** Revokes the refresh token (and the access tokens minted from it), then forgets them. */
  async logout() {
    const refresh = this.value?.refresh;
    if (refresh) await post("api/token/revoke/", { refresh }).catch(() => {});
    this.end();
  }

  /** Forgets the tokens here and in every tab. */
  end() {
    const had = this.value !== null;
    this.value = null;
    localStorage.removeItem(KEY);
    if (had) this.dispatchEvent(new Event("signed_out"));
  }

  #store(value) {
    this.value = value;
    localStorage.setItem(KEY, JSON.stringify(value));
  }
}

function read() {
  try {
    return JSON.parse(localStorage.getItem(KEY));
  } catch {
    return null;
  }
}

/** POSTs to the API relative to the console (`/console/` -> `/api/`). */
async function post(path, body) {
  const response = await fetch(`../${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw failure(response.status, data);
  return data;
}

export function failure(status, body) {
  const error = new Error(body?.error?.message ?? `request failed (${status})`);
  error.status = status;
  error.code = body?.error?.code;
  return error;
}
