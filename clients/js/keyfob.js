/*! keyfob.js: the browser client for a keyfob auth server (spec §5). MIT licence. */
/*
 * One ES module, no dependencies, no build step. The same file is published to npm
 * (`import { Client } from "keyfob"`) and served by `keyfob serve` at /static/keyfob.js
 * (`import { Client } from "/static/keyfob.js"`). Its types are in types/keyfob.d.ts.
 *
 *   const auth = new Client();                    // same origin as the page
 *   auth.on("session-ended", () => showLogin());
 *   await auth.restore() || await auth.login("alice", "correct horse battery staple");
 *   const res = await auth.fetch("/api/things");  // Bearer added, refreshed as needed
 *   await auth.logout();                          // every tab signs out
 *
 * Where things live (security):
 * - The access token lives in this object's memory only: never in Web Storage,
 *   IndexedDB or a script-visible cookie, so a page reload forgets it and `restore()`
 *   gets a new one (from a sibling tab, or from the refresh cookie).
 * - The refresh token lives in an HttpOnly cookie that no script can read. It travels
 *   only to /auth/refresh and /auth/logout, with `X-Keyfob-CSRF: 1`: a cross-site page
 *   cannot add that header without a CORS preflight the server refuses.
 *
 * When it refreshes: ahead of expiry (a timer at `refreshBefore`, with jitter so that
 * many clients do not arrive together), before a request if the timer was late (a
 * sleeping laptop), and once after a 401.
 *
 * Single flight: concurrent refreshes in one tab share one promise. Across tabs, a
 * refresh of a given access token takes the Web Lock named after that token; the tab
 * that gets it refreshes, posts the new token on a BroadcastChannel, and keeps the lock a
 * few seconds more, so a sibling that still holds the old token waits for the news
 * instead of sending the same cookie again. Without Web Locks, a tab announces its
 * refresh on the channel and the others wait for its result; two tabs that start within
 * the channel's latency both send, which the server's grace window (spec §3) makes
 * harmless.
 *
 * Outages (spec §4): a refresh answered 503 or 429 is retried with the same cookie after
 * `Retry-After` (each wait capped at `maxRetryDelay`, at most `retryAttempts` retries), by
 * the one tab that holds the lock, and the waiting tabs share its result. An outage never
 * ends the session: the access token is kept until it expires. 400, 401 and 403 (revoked,
 * expired, reused, no cookie) end the session once, with a "session-ended" event.
 */

const CSRF_HEADER = "X-Keyfob-CSRF";
const MAX_TIMER_MS = 2147483647; // setTimeout's ceiling (about 24.8 days)
/** A token with less life than this is treated as gone: a request would race its expiry. */
const EXPIRY_SLACK_MS = 1000;
/** Answers worth retrying with the same cookie: the refresh did not happen, or will match. */
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);
/** Answers that end the session: the cookie is missing, revoked, expired or reused. */
const SESSION_OVER = new Set([400, 401, 403]);

/** Defaults of the `Client` options; documented in types/keyfob.d.ts. */
export const DEFAULTS = Object.freeze({
  refreshBefore: 60_000,
  retryAttempts: 3,
  maxRetryDelay: 5_000,
  defaultRetryDelay: 1_000,
  requestTimeout: 20_000,
  syncWait: 150,
  lockHold: 5_000,
  tabWait: 30_000,
});

/** An error answer from the auth server; status 0 for a network failure or a local reason. */
export class KeyfobError extends Error {
  /**
   * @param {string} error
   * @param {string} [description]
   * @param {number} [status]
   */
  constructor(error, description = "", status = 0) {
    super(description || error);
    this.name = "KeyfobError";
    this.error = error;
    this.description = description;
    this.status = status;
  }
}

/**
 * The claims of a JWT, decoded WITHOUT verification, for display (a countdown, the sid).
 * The server verifies tokens; a page never trusts what this returns.
 * @param {string} token
 * @returns {Record<string, unknown> | null}
 */
export function decodeClaims(token) {
  const part = String(token).split(".")[1] || "";
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  try {
    const bytes = Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) =>
      c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch (_) {
    return null;
  }
}

/** @param {unknown} input @returns {input is Request} */
function isRequest(input) {
  return typeof Request !== "undefined" && input instanceof Request;
}

/** @param {Response} response @returns {Promise<KeyfobError>} */
async function readError(response) {
  /** @type {any} */
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

/**
 * Milliseconds to wait as `Retry-After` asks (delta-seconds or an HTTP date), or null.
 * @param {Response} response
 * @param {number} now
 * @returns {number | null}
 */
function retryAfterMs(response, now) {
  const value = response.headers.get("Retry-After");
  if (value === null || value.trim() === "") return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * @typedef {{type: "token", accessToken: string, expiresAt: number, lifetimeMs: number}
 *   | {type: "logout"}
 *   | {type: "ended", error: string, description: string, status: number}
 *   | {type: "failed", key: string, error: string, description: string, status: number}
 *   | {type: "refreshing", key: string}
 *   | {type: "sync"}} TabMessage
 * @typedef {(message: TabMessage) => void} NewsListener
 * @typedef {{expiresAt: number, expiresIn: number, source: "self" | "tab"}} RefreshDetail
 * @typedef {{detail: RefreshDetail} | {error: KeyfobError}} Outcome
 */

/**
 * @param {Outcome} outcome
 * @param {(detail: RefreshDetail) => void} resolve
 * @param {(error: KeyfobError) => void} reject
 */
function settle(outcome, resolve, reject) {
  if ("detail" in outcome) resolve(outcome.detail);
  else reject(outcome.error);
}

export class Client {
  /** @param {import("./types/keyfob.js").ClientOptions} [options] */
  constructor(options = {}) {
    const g = globalThis;
    const pageUrl = g.location ? g.location.href : undefined;
    const base = new URL(options.baseUrl || "/", pageUrl).href;
    /** Where the keyfob routes are (`/auth/...` resolve against it); ends with a slash. */
    this.baseUrl = base.endsWith("/") ? base : base + "/";
    // Relative request URLs resolve against the page, as they would with plain fetch().
    /** @private */ this._pageUrl = pageUrl || this.baseUrl;
    /** Origins that may receive the access token from `fetch()`. */
    this.tokenOrigins = new Set(options.tokenOrigins || [new URL(this.baseUrl).origin]);
    this.refreshBefore = options.refreshBefore ?? DEFAULTS.refreshBefore;
    this.retryAttempts = options.retryAttempts ?? DEFAULTS.retryAttempts;
    this.maxRetryDelay = options.maxRetryDelay ?? DEFAULTS.maxRetryDelay;
    this.requestTimeout = options.requestTimeout ?? DEFAULTS.requestTimeout;
    this.syncWait = options.syncWait ?? DEFAULTS.syncWait;
    this.lockHold = options.lockHold ?? DEFAULTS.lockHold;
    this.tabWait = options.tabWait ?? DEFAULTS.tabWait;
    /** @private */ this._fetch = options.fetch || g.fetch.bind(g);
    /** @private */ this._now = options.now || (() => Date.now());
    /** @private */ this._random = options.random || Math.random;
    /** @private */ this._setTimeout = options.setTimeout || g.setTimeout.bind(g);
    /** @private */ this._clearTimeout = options.clearTimeout || g.clearTimeout.bind(g);
    const crossTab = options.crossTab !== false;
    const navigatorLocks = g.navigator && g.navigator.locks ? g.navigator.locks : null;
    /** @private @type {LockManager | null} */
    this._locks = crossTab ? (options.locks !== undefined ? options.locks : navigatorLocks) : null;
    const Channel = crossTab
      ? (options.BroadcastChannel !== undefined ? options.BroadcastChannel : g.BroadcastChannel)
      : null;
    /** @private */ this._lockPrefix = "keyfob-refresh " + this.baseUrl + " ";
    /** @private @type {BroadcastChannel | null} */
    this._channel = Channel ? new Channel("keyfob " + this.baseUrl) : null;
    if (this._channel) {
      this._channel.onmessage = (event) => this._onMessage(event.data);
    }
    /** @private @type {string | null} */ this._token = null;
    /** @private */ this._expiresAt = 0;
    /** @private */ this._lifetimeMs = 0;
    /** Bumps on login, logout and session end: a refresh answer from before is stale. */
    /** @private */ this._epoch = 0;
    /** @private @type {Promise<RefreshDetail> | null} */ this._inflight = null;
    /** @private @type {unknown} */ this._timer = null;
    /** @private @type {Map<string, Set<(detail: any) => void>>} */ this._handlers = new Map();
    /** @private @type {Set<NewsListener>} */ this._listeners = new Set();
    /** Tokens a sibling announced it is refreshing (channel fallback): key → when. */
    /** @private @type {Map<string, number>} */ this._claims = new Map();
    /** @private @type {Set<() => void>} */ this._holds = new Set();
  }

  // --- state -----------------------------------------------------------------------

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
    if (!this._usable()) await this.refresh();
    return /** @type {string} */ (this._token);
  }

  // --- events ----------------------------------------------------------------------

  /**
   * @param {string} name
   * @param {(detail: any) => void} handler
   * @returns {() => void}
   */
  on(name, handler) {
    let handlers = this._handlers.get(name);
    if (!handlers) this._handlers.set(name, handlers = new Set());
    handlers.add(handler);
    return () => this.off(name, handler);
  }

  /** @param {string} name @param {(detail: any) => void} handler */
  off(name, handler) {
    const handlers = this._handlers.get(name);
    if (handlers) handlers.delete(handler);
  }

  /** @private @param {string} name @param {object} detail */
  _emit(name, detail) {
    for (const handler of Array.from(this._handlers.get(name) || [])) {
      try {
        handler(detail);
      } catch (err) {
        // A broken listener must not break the client; the error still surfaces, as an
        // uncaught error of its own.
        this._setTimeout(() => { throw err; }, 0);
      }
    }
  }

  // --- account ---------------------------------------------------------------------

  /** @param {string} username @param {string} password */
  async register(username, password) {
    const res = await this._post("auth/register", { username, password });
    if (!res.ok) throw await readError(res);
    return res.json();
  }

  /** @param {string} username @param {string} password */
  async login(username, password) {
    this._epoch += 1;
    const started = this._now();
    const res = await this._post("auth/login", { username, password });
    if (!res.ok) throw await readError(res);
    const body = await res.json();
    this._setToken(body.access_token, body.expires_in, started);
    this._broadcast(this._tokenMessage());
    const detail = { expiresAt: this._expiresAt, expiresIn: Number(body.expires_in),
      source: /** @type {const} */ ("self") };
    this._emit("login", detail);
    return detail;
  }

  /**
   * After a page load: take the access token from a sibling tab, else get one with the
   * refresh cookie. True when signed in.
   */
  async restore() {
    if (this._usable()) return true;
    if (this._channel && this.syncWait > 0) {
      const heard = this._awaitNews((m) => m.type === "token", this.syncWait);
      this._broadcast({ type: "sync" });
      await heard;
      if (this._usable()) return true;
    }
    try {
      await this.refresh();
      return true;
    } catch (_) {
      return false;
    }
  }

  /** Revoke this session and sign out every tab, whatever the server answers. */
  async logout() {
    /** @type {Response | null} */
    let res = null;
    try {
      res = await this._fetch(this._url("auth/logout"), {
        method: "POST",
        credentials: "same-origin",
        headers: { [CSRF_HEADER]: "1", Accept: "application/json" },
      });
    } finally {
      this._signedOut("self");
    }
    if (!res.ok) throw await readError(res);
  }

  /** Revoke every session of the user (all devices) and sign out every tab. */
  async logoutAll() {
    const res = await this.fetch(this._url("auth/logout-all"), { method: "POST" });
    this._signedOut("self");
    if (!res.ok) throw await readError(res);
  }

  async sessions() {
    const res = await this.fetch(this._url("auth/sessions"));
    if (!res.ok) throw await readError(res);
    return res.json();
  }

  /** @param {string} sid */
  async revokeSession(sid) {
    const res = await this.fetch(this._url("auth/sessions/" + encodeURIComponent(sid)), {
      method: "DELETE",
    });
    if (!res.ok) throw await readError(res);
  }

  // --- requests --------------------------------------------------------------------

  /**
   * `fetch()` with the access token. Refreshes first when the token is missing or about
   * to expire, and once after a 401; other answers are returned as they are. A body
   * that can be read only once (a stream) is not sent twice: give a string, Blob,
   * FormData or the like when the request may need a retry.
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  async fetch(input, init = {}) {
    const target = new URL(isRequest(input) ? input.url : String(input), this._pageUrl);
    const request = isRequest(input) ? input : target.href;
    if (!this.tokenOrigins.has(target.origin)) {
      // Never hand the token to an origin nobody allowed.
      return this._fetch(request, init);
    }
    if (!this._usable()) await this._refreshQuietly();
    const used = this._token;
    const first = isRequest(request) ? request.clone() : request;
    const res = await this._fetch(first, this._withBearer(request, init, used));
    if (res.status !== 401 || used === null) return res;
    if (this._token === used) {
      // Revoked early, or a clock off: one refresh, then one retry.
      await this._refreshQuietly();
    }
    if (this._token === null || this._token === used) return res;
    return this._fetch(request, this._withBearer(request, init, this._token));
  }

  /**
   * Get a new access token from the refresh cookie. Concurrent calls share one request,
   * in this tab and across tabs. Rejects with a KeyfobError ("session-ended" has been
   * emitted when the session is over).
   * @returns {Promise<RefreshDetail>}
   */
  refresh() {
    if (!this._inflight) {
      this._inflight = this._refreshAcrossTabs().finally(() => {
        this._inflight = null;
      });
    }
    return this._inflight;
  }

  /** Stop timers, release locks and leave the channel (tests, app teardown). */
  close() {
    this._cancelTimer();
    for (const release of Array.from(this._holds)) release();
    if (this._channel) {
      this._channel.close();
      this._channel = null;
    }
  }

  // --- single flight across tabs -----------------------------------------------------

  /** @private @returns {Promise<RefreshDetail>} */
  _refreshAcrossTabs() {
    // Tabs share tokens, so "which token is being replaced" names the refresh.
    const key = this._token ? String(this._expiresAt) : null;
    if (this._locks) return this._refreshWithLock(key);
    if (this._channel && key !== null) return this._refreshWithAnnouncement(key);
    return this._refreshOverHttp(null);
  }

  /**
   * Web Locks: the lock is named after the token being replaced. Waiting tabs settle on
   * the holder's news (new token, session ended, gave up) and drop their lock request.
   * @private
   * @param {string | null} key
   * @returns {Promise<RefreshDetail>}
   */
  _refreshWithLock(key) {
    const locks = /** @type {LockManager} */ (this._locks);
    const held = this._token;
    return new Promise((resolve, reject) => {
      const abort = new AbortController();
      let settled = false;
      /** @param {() => void} settle */
      const once = (settle) => {
        if (settled) return false;
        settled = true;
        stopListening();
        settle();
        return true;
      };
      const stopListening = this._listen((message) => {
        const outcome = this._outcome(message, key, held);
        if (outcome && once(() => settle(outcome, resolve, reject))) abort.abort();
      });
      locks.request(this._lockPrefix + (key ?? "restore"), { signal: abort.signal }, async () => {
        if (settled) return;
        once(() => undefined);
        if (this._token !== held && this._usable()) {
          // A sibling's token arrived while this tab queued for the lock.
          resolve(this._detail("tab"));
          return;
        }
        try {
          resolve(await this._refreshOverHttp(key));
        } catch (err) {
          reject(err);
          return; // released at once: a sibling may try again
        }
        // Keep the lock a little longer: a sibling still holding the old token, whose
        // timer fires now, then waits for the news posted above instead of refreshing
        // the same cookie a second time.
        if (key !== null) await this._hold(this.lockHold);
      }).catch((err) => {
        if (!settled) once(() => reject(err)); // not the expected AbortError
      });
    });
  }

  /**
   * BroadcastChannel only: announce, then refresh; a sibling that heard a fresh
   * announcement for the same token waits for that tab's result instead.
   * @private
   * @param {string} key
   * @returns {Promise<RefreshDetail>}
   */
  async _refreshWithAnnouncement(key) {
    const claimed = this._claims.get(key);
    if (claimed !== undefined && this._now() - claimed < this.tabWait) {
      const held = this._token;
      /** @type {Outcome | null} */
      let outcome = null;
      await this._awaitNews((message) => {
        outcome = this._outcome(message, key, held);
        return outcome !== null;
      }, this.tabWait - (this._now() - claimed));
      const heard = /** @type {Outcome | null} */ (outcome);
      if (heard) return new Promise((resolve, reject) => settle(heard, resolve, reject));
      // No news in time (that tab was closed or frozen): refresh here.
    }
    this._broadcast({ type: "refreshing", key });
    return this._refreshOverHttp(key);
  }

  /**
   * What a sibling's message means for a refresh of `key` that waits on it, or null.
   * @private
   * @param {TabMessage} message
   * @param {string | null} key
   * @param {string | null} held  the token this tab had when its refresh began
   * @returns {Outcome | null}
   */
  _outcome(message, key, held) {
    if (message.type === "token" && this._token !== held && this._token !== null) {
      return { detail: this._detail("tab") };
    }
    if (message.type === "ended") {
      return { error: new KeyfobError(message.error, message.description, message.status) };
    }
    if (message.type === "logout") {
      return { error: new KeyfobError("logged_out", "signed out in another tab", 0) };
    }
    if (message.type === "failed" && message.key === key) {
      return { error: new KeyfobError(message.error, message.description, message.status) };
    }
    return null;
  }

  /**
   * POST /auth/refresh, retried with the same cookie on an outage, at most
   * `retryAttempts` times, each wait `Retry-After` capped at `maxRetryDelay`. The refresh
   * token is a cookie, so a retry is exactly the request the server asked for: within
   * its grace window it answers with the successor it may already have made (spec §4).
   * @private
   * @param {string | null} key
   * @returns {Promise<RefreshDetail>}
   */
  async _refreshOverHttp(key) {
    const epoch = this._epoch;
    for (let attempt = 0; ; attempt += 1) {
      const started = this._now();
      /** @type {KeyfobError} */
      let failure;
      /** @type {number | null} */
      let asked = null;
      try {
        const res = await this._post("auth/refresh", undefined);
        if (epoch !== this._epoch) throw this._stale();
        if (res.ok) {
          const body = await res.json();
          if (epoch !== this._epoch) throw this._stale();
          this._setToken(body.access_token, body.expires_in, started);
          this._broadcast(this._tokenMessage());
          const detail = this._detail("self");
          this._emit("refresh", detail);
          return detail;
        }
        failure = await readError(res);
        if (SESSION_OVER.has(res.status)) {
          this._endSession(failure, "self");
          throw failure;
        }
        if (!RETRYABLE.has(res.status)) {
          this._gaveUp(key, failure);
          throw failure;
        }
        asked = retryAfterMs(res, this._now());
      } catch (err) {
        if (err instanceof KeyfobError) throw err;
        // fetch() rejected: offline, DNS, reset, or our timeout. The request may or may
        // not have reached the server; a retry of the same cookie is safe either way.
        failure = new KeyfobError("network_error", String(err && /** @type {any} */ (err).message || err), 0);
      }
      const wait = Math.min(this.maxRetryDelay, asked ?? DEFAULTS.defaultRetryDelay);
      if (attempt >= this.retryAttempts) {
        this._gaveUp(key, failure);
        throw failure;
      }
      this._emit("error", { error: failure.error, description: failure.description,
        status: failure.status, retryInMs: wait });
      await this._sleep(wait);
      if (epoch !== this._epoch) throw this._stale();
    }
  }

  /** @private @param {string | null} key @param {KeyfobError} failure */
  _gaveUp(key, failure) {
    // The session is not over: the access token is kept until it expires, and the next
    // request (or refresh()) tries again.
    if (key !== null) {
      this._broadcast({ type: "failed", key, error: failure.error,
        description: failure.description, status: failure.status });
    }
    this._emit("error", { error: failure.error, description: failure.description,
      status: failure.status, retryInMs: null });
  }

  /** @private */
  _stale() {
    return new KeyfobError("stale", "a login or logout happened during the refresh", 0);
  }

  /** @private */
  async _refreshQuietly() {
    try {
      await this.refresh();
    } catch (_) {
      // The caller gets the server's own answer (a 401) instead; events told the app.
    }
  }

  // --- tokens and timers -----------------------------------------------------------

  /** @private */
  _usable() {
    return this._token !== null && this._expiresAt - this._now() > EXPIRY_SLACK_MS;
  }

  /** @private @param {"self" | "tab"} source @returns {RefreshDetail} */
  _detail(source) {
    return { expiresAt: this._expiresAt, expiresIn: this._lifetimeMs / 1000, source };
  }

  /** @private @param {string} token @param {number} expiresIn @param {number} startedAt */
  _setToken(token, expiresIn, startedAt) {
    this._token = String(token);
    // Counted from when the request left: the token cannot be younger than that.
    this._lifetimeMs = Number(expiresIn) * 1000;
    this._expiresAt = startedAt + this._lifetimeMs;
    this._schedule();
  }

  /** @private @param {TabMessage & {type: "token"}} message */
  _takeToken(message) {
    this._token = message.accessToken;
    this._expiresAt = Number(message.expiresAt);
    this._lifetimeMs = Number(message.lifetimeMs) || Math.max(0, this._expiresAt - this._now());
    this._schedule();
  }

  /**
   * Refresh at `refreshBefore` ahead of expiry (a quarter of the life for short tokens),
   * minus a random jitter of up to half that margin, so a fleet of clients given tokens
   * at the same moment does not come back at the same moment.
   * @private
   */
  _schedule() {
    const margin = Math.min(this.refreshBefore, this._lifetimeMs / 4);
    const jitter = this._random() * margin / 2;
    const delay = this._expiresAt - margin - jitter - this._now();
    this._cancelTimer();
    this._timer = this._setTimeout(() => {
      this._timer = null;
      this._refreshQuietly();
    }, Math.min(MAX_TIMER_MS, Math.max(0, Math.round(delay))));
    unref(this._timer);
  }

  /** @private */
  _cancelTimer() {
    if (this._timer !== null) {
      this._clearTimeout(/** @type {any} */ (this._timer));
      this._timer = null;
    }
  }

  /** @private */
  _clear() {
    this._epoch += 1;
    this._cancelTimer();
    this._token = null;
    this._expiresAt = 0;
    this._lifetimeMs = 0;
  }

  /** @private @param {"self" | "tab"} source */
  _signedOut(source) {
    this._clear();
    if (source === "self") this._broadcast({ type: "logout" });
    this._emit("logout", { source });
  }

  /** @private @param {KeyfobError} failure @param {"self" | "tab"} source */
  _endSession(failure, source) {
    const had = this._token !== null;
    this._clear();
    if (source === "self") {
      this._broadcast({ type: "ended", error: failure.error, description: failure.description,
        status: failure.status });
    }
    // Once per session: a page load with no cookie was never signed in here.
    if (had) {
      this._emit("session-ended", { error: failure.error, description: failure.description,
        status: failure.status, source });
    }
  }

  /** @private @param {number} ms */
  _sleep(ms) {
    return new Promise((resolve) => { this._setTimeout(() => resolve(undefined), ms); });
  }

  /** @private @param {number} ms @returns {Promise<void>} */
  _hold(ms) {
    return new Promise((resolve) => {
      const release = () => {
        this._clearTimeout(/** @type {any} */ (timer));
        this._holds.delete(release);
        resolve();
      };
      const timer = this._setTimeout(release, ms);
      this._holds.add(release);
    });
  }

  // --- the channel between tabs ----------------------------------------------------

  /** @private @returns {TabMessage} */
  _tokenMessage() {
    return { type: "token", accessToken: /** @type {string} */ (this._token),
      expiresAt: this._expiresAt, lifetimeMs: this._lifetimeMs };
  }

  /** @private @param {TabMessage} message */
  _broadcast(message) {
    if (!this._channel) return;
    try {
      this._channel.postMessage(message);
    } catch (_) {
      // A closed channel only means no other tab hears of it.
    }
  }

  /** @private @param {NewsListener} listener */
  _listen(listener) {
    this._listeners.add(listener);
    return () => { this._listeners.delete(listener); };
  }

  /**
   * Resolves true when a message passes `wanted`, false after `ms`.
   * @private
   * @param {(message: TabMessage) => boolean} wanted
   * @param {number} ms
   * @returns {Promise<boolean>}
   */
  _awaitNews(wanted, ms) {
    return new Promise((resolve) => {
      /** @param {boolean} heard */
      const done = (heard) => {
        this._clearTimeout(/** @type {any} */ (timer));
        stop();
        resolve(heard);
      };
      const stop = this._listen((message) => { if (wanted(message)) done(true); });
      const timer = this._setTimeout(() => done(false), Math.max(0, ms));
    });
  }

  /** @private @param {unknown} data */
  _onMessage(data) {
    if (!data || typeof data !== "object") return;
    const message = /** @type {TabMessage} */ (data);
    switch (message.type) {
      case "token": {
        if (typeof message.accessToken !== "string") return;
        // Messages from racing tabs may cross: never step back to an older token. (Equal
        // expiry is a different token minted in the same millisecond: take it.)
        if (message.accessToken === this._token) break;
        if (this._token !== null && Number(message.expiresAt) < this._expiresAt) break;
        const had = this._token !== null;
        this._takeToken(message);
        const detail = this._detail("tab");
        this._emit(had ? "refresh" : "login", detail);
        break;
      }
      case "sync":
        // A new tab asks for the token: spare it a refresh of its own.
        if (this._usable()) this._broadcast(this._tokenMessage());
        break;
      case "refreshing":
        this._claims.set(String(message.key), this._now());
        break;
      case "logout":
        if (this._token !== null) this._signedOut("tab");
        break;
      case "ended":
        this._endSession(new KeyfobError(String(message.error), String(message.description),
          Number(message.status)), "tab");
        break;
      case "failed":
        this._claims.delete(String(message.key));
        break;
      default:
        return;
    }
    for (const listener of Array.from(this._listeners)) listener(message);
  }

  // --- HTTP --------------------------------------------------------------------------

  /** @private @param {string} path */
  _url(path) {
    return new URL(path, this.baseUrl).href;
  }

  /**
   * A POST to a keyfob route, with the CSRF header and a bounded wait.
   * @private
   * @param {string} path
   * @param {object | undefined} body
   * @returns {Promise<Response>}
   */
  async _post(path, body) {
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json", [CSRF_HEADER]: "1" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const abort = new AbortController();
    const timer = this._setTimeout(() => abort.abort(), this.requestTimeout);
    unref(timer);
    try {
      return await this._fetch(this._url(path), {
        method: "POST",
        credentials: "same-origin",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort.signal,
      });
    } finally {
      this._clearTimeout(/** @type {any} */ (timer));
    }
  }

  /**
   * @private
   * @param {RequestInfo} input
   * @param {RequestInit} init
   * @param {string | null} token
   * @returns {RequestInit}
   */
  _withBearer(input, init, token) {
    const headers = new Headers(init.headers || (isRequest(input) ? input.headers : undefined));
    if (token) headers.set("Authorization", "Bearer " + token);
    return { ...init, headers };
  }
}

/**
 * Lets a Node process exit while only the background refresh timer is pending; a wait
 * that someone awaits (a retry, a lock) keeps it alive. Browsers have no unref.
 * @param {unknown} timer
 */
function unref(timer) {
  const t = /** @type {{unref?: () => void} | null} */ (timer);
  if (t && typeof t === "object" && typeof t.unref === "function") t.unref();
}
