/*! keyfob.js: the browser client for a keyfob auth server (spec §5). MIT licence.
 *
 * No build step, no dependencies. Load it as a classic script (it defines the global
 * `Keyfob`), import it from a module (`import "/static/keyfob.js"` then use
 * `globalThis.Keyfob`), or `require()` it in Node.
 *
 *   const auth = new Keyfob.Client();            // same origin as the page
 *   await auth.login("alice", "correct horse battery staple");
 *   const res = await auth.fetch("/api/things"); // Bearer added, refreshed as needed
 *   auth.on("refresh", ({ expiresAt }) => ...);
 *   await auth.logout();
 *
 * Where things live:
 * - The access token lives in this object's memory only: never localStorage,
 *   sessionStorage, IndexedDB or document.cookie, so a page reload forgets it and
 *   `restore()` gets a new one.
 * - The refresh token lives in an HttpOnly cookie that no script can read. It is sent
 *   only to /auth/refresh and /auth/logout, with the `X-Keyfob-CSRF: 1` header that a
 *   cross-site page cannot add without a CORS preflight the server refuses.
 *
 * When it refreshes: shortly before the access token expires (a timer), before a request
 * if the timer was late (a sleeping laptop), and once after a 401. Concurrent refreshes
 * are one request: in a tab they share one promise; across tabs the tab that gets the
 * Web Lock (`navigator.locks`) refreshes, and the others, finding the lock taken, wait
 * for the new access token it posts on a BroadcastChannel. Without Web Locks the tabs
 * still share tokens over the channel, and the server's grace window (spec §3) makes a
 * race between two tabs harmless.
 *
 * Events (`client.on(name, handler)` returns an unsubscribe function):
 *   login   {expiresAt, expiresIn}          after login()
 *   refresh {expiresAt, expiresIn, source}  a new access token; source "self" or "tab"
 *   logout  {source}                        after logout() here or in another tab
 *   expired {error, description, status}    the session is over (revoked, expired, reused)
 *   error   {error, description, status}    a refresh failed for a passing reason; retried
 */
(function (root, factory) {
  "use strict";
  const api = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  }
  if (root) {
    root.Keyfob = api;
  }
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

  const CSRF_HEADER = "X-Keyfob-CSRF";
  const MAX_TIMER_MS = 2147483647; // setTimeout's ceiling (about 24.8 days)
  const DEFAULT_RETRY_MS = 5000;
  const BUSY = Symbol("busy");

  /** An error answer from the auth server (or a network failure: status 0). */
  class KeyfobError extends Error {
    constructor(error, description, status) {
      super(description || error);
      this.name = "KeyfobError";
      this.error = error;
      this.description = description || "";
      this.status = status;
    }
  }

  function isRequest(input) {
    return typeof Request !== "undefined" && input instanceof Request;
  }

  function trailingSlash(url) {
    return url.endsWith("/") ? url : url + "/";
  }

  function decodeClaims(token) {
    // For display only (the countdown, the sid): the server verifies, never the page.
    const part = String(token).split(".")[1] || "";
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "===".slice((b64.length + 3) % 4);
    try {
      const text = typeof atob === "function"
        ? decodeURIComponent(Array.from(atob(padded), (c) =>
          "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""))
        : Buffer.from(padded, "base64").toString("utf8");
      return JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  async function readError(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    const error = body && typeof body.error === "string" ? body.error : "http_" + response.status;
    const description = body && typeof body.error_description === "string"
      ? body.error_description : response.statusText || "";
    return new KeyfobError(error, description, response.status);
  }

  function retryAfterMs(response) {
    const value = response && response.headers && response.headers.get("Retry-After");
    const seconds = Number(value);
    return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_RETRY_MS;
  }

  class Client {
    /**
     * @param {object} [options]
     * @param {string} [options.baseUrl]  where the keyfob routes are; the page's origin by
     *   default. Must be the page's own origin: the refresh cookie is same-origin.
     * @param {string[]} [options.tokenOrigins]  origins that may receive the access token
     *   from `fetch()`; the baseUrl's origin by default. Other URLs get no Authorization.
     * @param {number} [options.refreshBefore]  refresh at most this many ms before expiry
     *   (default 60000; short tokens refresh at three quarters of their life).
     * @param {boolean} [options.crossTab]  share refreshes between tabs (default true).
     * Test seams: fetch, now, setTimeout, clearTimeout, locks, BroadcastChannel.
     */
    constructor(options = {}) {
      const g = globalThis;
      const pageUrl = g.location && g.location.href;
      this.baseUrl = trailingSlash(new URL(options.baseUrl || "/", pageUrl).href);
      // Relative request URLs resolve against the page, as they would with plain fetch().
      this._pageUrl = pageUrl || this.baseUrl;
      this.tokenOrigins = new Set(options.tokenOrigins || [new URL(this.baseUrl).origin]);
      this.refreshBefore = options.refreshBefore ?? 60000;
      this.tabWaitMs = options.tabWaitMs ?? 10000;
      this._fetch = options.fetch || g.fetch.bind(g);
      this._now = options.now || (() => Date.now());
      this._setTimeout = options.setTimeout || g.setTimeout.bind(g);
      this._clearTimeout = options.clearTimeout || g.clearTimeout.bind(g);
      const crossTab = options.crossTab !== false;
      this._locks = crossTab
        ? (options.locks || (g.navigator && g.navigator.locks) || null)
        : null;
      const Channel = crossTab
        ? ("BroadcastChannel" in options ? options.BroadcastChannel : g.BroadcastChannel)
        : null;
      this._lockName = "keyfob-refresh " + this.baseUrl;
      this._channel = Channel ? new Channel("keyfob " + this.baseUrl) : null;
      if (this._channel) {
        this._channel.onmessage = (event) => this._onMessage(event.data);
      }
      this._token = null;
      this._expiresAt = 0;
      this._lifetimeMs = 0;
      this._generation = 0; // bumps on every new token, ours or another tab's
      this._epoch = 0; // bumps on login and logout: older refresh answers are stale
      this._inflight = null;
      this._timer = null;
      this._handlers = new Map();
      this._waiters = new Set(); // refreshes waiting for another tab's result
    }

    // --- state ---------------------------------------------------------------------

    /** True while an access token is held. */
    get isAuthenticated() {
      return this._token !== null;
    }

    /** When the access token expires (ms since the epoch), or 0. */
    get expiresAt() {
      return this._token ? this._expiresAt : 0;
    }

    /** The access token's claims, decoded without verification, for display. */
    claims() {
      return this._token ? decodeClaims(this._token) : null;
    }

    /** A valid access token (refreshing first if needed), for WebSockets and the like. */
    async getAccessToken() {
      if (!this._token || this._expiresAt - this._now() < 1000) {
        await this.refresh();
      }
      return this._token;
    }

    // --- events --------------------------------------------------------------------

    on(name, handler) {
      if (!this._handlers.has(name)) this._handlers.set(name, new Set());
      this._handlers.get(name).add(handler);
      return () => this._handlers.get(name).delete(handler);
    }

    _emit(name, detail) {
      for (const handler of this._handlers.get(name) || []) {
        try {
          handler(detail);
        } catch (err) {
          // A broken listener must not break the client.
          setTimeout(() => { throw err; }, 0);
        }
      }
    }

    // --- account -------------------------------------------------------------------

    async register(username, password) {
      const res = await this._post("auth/register", { username, password });
      if (!res.ok) throw await readError(res);
      return res.json();
    }

    async login(username, password) {
      this._epoch += 1;
      const started = this._now();
      const res = await this._post("auth/login", { username, password });
      if (!res.ok) throw await readError(res);
      const body = await res.json();
      this._setToken(body.access_token, body.expires_in, started);
      this._broadcast();
      this._emit("login", { expiresAt: this._expiresAt, expiresIn: body.expires_in });
      return { expiresAt: this._expiresAt, expiresIn: body.expires_in };
    }

    /** Get an access token from the refresh cookie after a page load. True if logged in. */
    async restore() {
      try {
        await this.refresh();
        return true;
      } catch (_) {
        return false;
      }
    }

    async logout() {
      let res = null;
      try {
        res = await this._fetch(this._url("auth/logout"), {
          method: "POST",
          credentials: "same-origin",
          headers: { [CSRF_HEADER]: "1", Accept: "application/json" },
        });
      } finally {
        this._clear();
        this._broadcast({ type: "logout" });
        this._emit("logout", { source: "self" });
      }
      if (!res.ok) throw await readError(res);
    }

    async logoutAll() {
      const res = await this.fetch(this._url("auth/logout-all"), { method: "POST" });
      this._clear();
      this._broadcast({ type: "logout" });
      this._emit("logout", { source: "self" });
      if (!res.ok) throw await readError(res);
    }

    async sessions() {
      const res = await this.fetch(this._url("auth/sessions"));
      if (!res.ok) throw await readError(res);
      return res.json();
    }

    async revokeSession(sid) {
      const res = await this.fetch(this._url("auth/sessions/" + encodeURIComponent(sid)), {
        method: "DELETE",
      });
      if (!res.ok) throw await readError(res);
    }

    // --- requests ------------------------------------------------------------------

    /**
     * `fetch()` with the access token. Refreshes first when the token is missing or
     * about to expire, and once after a 401; other answers are returned as they are.
     * A body that can be read only once (a stream) is not sent twice: give a string,
     * Blob, FormData or the like when the request may need a retry.
     */
    async fetch(input, init = {}) {
      const target = new URL(isRequest(input) ? input.url : String(input), this._pageUrl);
      if (!isRequest(input)) input = target.href;
      if (!this.tokenOrigins.has(target.origin)) {
        // Never hand the token to an origin nobody allowed.
        return this._fetch(input, init);
      }
      if (!this._token || this._expiresAt - this._now() < 1000) {
        await this._refreshQuietly();
      }
      const used = this._token;
      const first = isRequest(input) ? input.clone() : input;
      const res = await this._fetch(first, this._withBearer(input, init, used));
      if (res.status !== 401 || used === null) return res;
      if (this._token === used) {
        // Revoked early, or a clock off: one refresh, then one retry.
        await this._refreshQuietly();
      }
      if (this._token === null || this._token === used) return res;
      return this._fetch(input, this._withBearer(input, init, this._token));
    }

    /**
     * Get a new access token from the refresh cookie. Concurrent calls share one request
     * (and one across tabs). Rejects with a KeyfobError; "expired" has been emitted when
     * the session is over.
     */
    refresh() {
      if (this._inflight) return this._inflight;
      const generation = this._generation;
      this._inflight = this._coordinatedRefresh(generation).finally(() => {
        this._inflight = null;
      });
      return this._inflight;
    }

    /** Stop timers and leave the channel (tests, single-page-app teardown). */
    close() {
      this._cancelTimer();
      if (this._channel) {
        this._channel.close();
        this._channel = null;
      }
    }

    // --- internals -----------------------------------------------------------------

    async _coordinatedRefresh(generation) {
      if (!this._locks) return this._refreshOnce(generation);
      if (!this._channel) {
        // No way to hear another tab's result: wait for the lock, then look.
        return this._locks.request(this._lockName, () => this._refreshOnce(generation));
      }
      const mine = await this._locks.request(
        this._lockName, { ifAvailable: true },
        (lock) => (lock ? this._refreshOnce(generation) : BUSY),
      );
      if (mine !== BUSY) return mine;
      // Another tab holds the lock: it is refreshing the same cookie right now. Its new
      // access token arrives on the channel, so this tab sends nothing.
      const news = await this._awaitTabNews();
      if (news === "token" && this._token) {
        return { expiresAt: this._expiresAt, source: "tab" };
      }
      if (news === "logout" || news === "expired") {
        throw new KeyfobError("invalid_grant", "the session ended in another tab", 0);
      }
      // No news in time (that tab failed or was closed): take our turn, after it.
      return this._locks.request(this._lockName, () => this._refreshOnce(generation));
    }

    _awaitTabNews() {
      return new Promise((resolve) => {
        const done = (news) => {
          this._clearTimeout(timer);
          this._waiters.delete(done);
          resolve(news);
        };
        const timer = this._setTimeout(() => done("timeout"), this.tabWaitMs);
        if (timer && typeof timer.unref === "function") timer.unref();
        this._waiters.add(done);
      });
    }

    _notifyWaiters(news) {
      for (const done of Array.from(this._waiters)) done(news);
    }

    async _refreshOnce(generation) {
      // Another tab may have refreshed while we waited for the lock: use its token.
      if (this._generation !== generation && this._token && !this._dueSoon()) {
        return { expiresAt: this._expiresAt, shared: true };
      }
      const started = this._now();
      const epoch = this._epoch;
      let res;
      try {
        res = await this._fetch(this._url("auth/refresh"), {
          method: "POST",
          credentials: "same-origin",
          headers: { [CSRF_HEADER]: "1", Accept: "application/json" },
        });
      } catch (err) {
        const failure = new KeyfobError("network_error", String(err && err.message), 0);
        this._transient(failure, DEFAULT_RETRY_MS);
        throw failure;
      }
      if (!res.ok) {
        const failure = await readError(res);
        if (res.status === 400 || res.status === 401 || res.status === 403) {
          // The session is over (logged out, revoked, expired, reuse): retrying won't help.
          const had = this._token !== null;
          this._clear();
          if (had) {
            this._broadcast({ type: "expired" });
            this._emit("expired", {
              error: failure.error, description: failure.description, status: res.status,
            });
          }
        } else {
          this._transient(failure, retryAfterMs(res));
        }
        throw failure;
      }
      const body = await res.json();
      if (epoch !== this._epoch) {
        // A logout or a new login happened meanwhile: this answer belongs to the past.
        throw new KeyfobError("stale", "a login or logout happened during the refresh", 0);
      }
      this._setToken(body.access_token, body.expires_in, started);
      this._broadcast();
      const detail = { expiresAt: this._expiresAt, expiresIn: body.expires_in, source: "self" };
      this._emit("refresh", detail);
      return detail;
    }

    async _refreshQuietly() {
      try {
        await this.refresh();
      } catch (_) {
        // The caller gets the server's own answer (a 401) instead.
      }
    }

    _transient(failure, delayMs) {
      this._broadcast({ type: "failed" });
      this._emit("error", {
        error: failure.error, description: failure.description, status: failure.status,
      });
      if (this._token) this._schedule(delayMs);
    }

    _setToken(token, expiresIn, startedAt) {
      this._token = token;
      // Counted from when the request left: the token cannot be younger than that.
      this._lifetimeMs = Number(expiresIn) * 1000;
      this._expiresAt = startedAt + this._lifetimeMs;
      this._generation += 1;
      this._schedule(this._refreshDelay(this._lifetimeMs));
    }

    _refreshDelay(lifetimeMs) {
      const margin = Math.min(this.refreshBefore, lifetimeMs / 4);
      return Math.max(0, this._expiresAt - margin - this._now());
    }

    _dueSoon() {
      const lifetimeMs = Math.max(0, this._expiresAt - this._now());
      return lifetimeMs < Math.min(this.refreshBefore, 1000);
    }

    _schedule(delayMs) {
      this._cancelTimer();
      this._timer = this._setTimeout(() => {
        this._timer = null;
        this._refreshQuietly();
      }, Math.min(MAX_TIMER_MS, Math.max(0, delayMs)));
      if (this._timer && typeof this._timer.unref === "function") this._timer.unref();
    }

    _cancelTimer() {
      if (this._timer !== null) {
        this._clearTimeout(this._timer);
        this._timer = null;
      }
    }

    _clear() {
      this._epoch += 1;
      this._cancelTimer();
      this._token = null;
      this._expiresAt = 0;
      this._generation += 1;
    }

    _broadcast(message) {
      if (!this._channel) return;
      const data = message || {
        type: "token",
        accessToken: this._token,
        expiresAt: this._expiresAt,
        lifetimeMs: this._lifetimeMs,
      };
      try {
        this._channel.postMessage(data);
      } catch (_) {
        // A closed channel only means no other tab hears of it.
      }
    }

    _onMessage(data) {
      if (!data || typeof data !== "object") return;
      if (data.type === "token" && typeof data.accessToken === "string") {
        this._token = data.accessToken;
        this._expiresAt = Number(data.expiresAt);
        this._lifetimeMs = Number(data.lifetimeMs) || Math.max(0, this._expiresAt - this._now());
        this._generation += 1;
        // The same schedule as the tab that refreshed, so the tabs' timers fire together
        // and the one that finds the lock taken waits for the other's token.
        this._schedule(this._refreshDelay(this._lifetimeMs));
        this._emit("refresh", {
          expiresAt: this._expiresAt, expiresIn: this._lifetimeMs / 1000, source: "tab",
        });
        this._notifyWaiters("token");
      } else if (data.type === "failed") {
        this._notifyWaiters("failed");
      } else if (data.type === "logout" || data.type === "expired") {
        const had = this._token !== null;
        this._clear();
        this._notifyWaiters(data.type);
        if (had) {
          this._emit(data.type === "logout" ? "logout" : "expired",
            data.type === "logout"
              ? { source: "tab" }
              : { error: "invalid_grant", description: "the session ended in another tab", status: 0 });
        }
      }
    }

    _url(path) {
      return new URL(path, this.baseUrl).href;
    }

    _post(path, body) {
      return this._fetch(this._url(path), {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          [CSRF_HEADER]: "1",
        },
        body: JSON.stringify(body),
      });
    }

    _withBearer(input, init, token) {
      const headers = new Headers(
        init.headers || (isRequest(input) ? input.headers : undefined),
      );
      if (token) headers.set("Authorization", "Bearer " + token);
      return { ...init, headers };
    }
  }

  return { Client, KeyfobError, decodeClaims };
});
