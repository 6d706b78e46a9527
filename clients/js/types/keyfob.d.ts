/**
 * keyfob.js: the browser client for a keyfob auth server.
 *
 * The access token stays in memory; the refresh token is an HttpOnly cookie that no
 * script sees. Refreshes are single-flight within a tab and across tabs (Web Locks,
 * BroadcastChannel), ahead of expiry with jitter, once after a 401, and retried after
 * `Retry-After` on 503/429 without ever ending the session.
 */

/** The defaults of {@link ClientOptions}, in milliseconds (counts for `retryAttempts`). */
export declare const DEFAULTS: Readonly<{
  refreshBefore: number;
  retryAttempts: number;
  maxRetryDelay: number;
  defaultRetryDelay: number;
  requestTimeout: number;
  syncWait: number;
  lockHold: number;
  tabWait: number;
}>;

export interface ClientOptions {
  /** Where the keyfob routes are; the page's origin by default. Must be the page's own
   * origin: the refresh cookie is same-origin. */
  baseUrl?: string;
  /** Origins that may receive the access token from `fetch()`; the baseUrl's origin by
   * default. Requests to other origins are sent without Authorization. */
  tokenOrigins?: Iterable<string>;
  /** Refresh this many ms before expiry (default 60000; a quarter of the life for short
   * tokens), minus a random jitter of up to half that margin. */
  refreshBefore?: number;
  /** Retries of a refresh answered 503, 429, 408, 500, 502, 504 or lost on the network
   * (default 3), with the same cookie. After the last one, refresh() rejects and the
   * session goes on: the next request tries again. */
  retryAttempts?: number;
  /** The longest wait before a retry, whatever `Retry-After` says (default 5000): a retry
   * must reach the server within its grace window (10 s by default). */
  maxRetryDelay?: number;
  /** Abort a keyfob request that has not answered after this long (default 20000). */
  requestTimeout?: number;
  /** How long restore() waits for a sibling tab's token before refreshing (default 150;
   * 0 asks no sibling). */
  syncWait?: number;
  /** How long the tab that refreshed keeps the refresh lock afterwards, so that a sibling
   * whose timer fires meanwhile takes the news rather than refreshing again (default 5000). */
  lockHold?: number;
  /** Without Web Locks: how long a tab waits for a sibling that announced a refresh of
   * the same token (default 30000). */
  tabWait?: number;
  /** Share refreshes and sign-outs with the other tabs of this origin (default true). */
  crossTab?: boolean;
  /** Test seams; the browser's own by default. `null` turns the feature off. */
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  random?: () => number;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
  locks?: LockManager | null;
  BroadcastChannel?: { new (name: string): BroadcastChannel } | null;
}

/** A new access token, from this tab's refresh ("self") or a sibling's ("tab"). */
export interface TokenDetail {
  expiresAt: number;
  expiresIn: number;
  source: "self" | "tab";
}

export interface LogoutDetail {
  source: "self" | "tab";
}

/** The session is over: revoked, expired, reused, or the cookie is gone. */
export interface SessionEndedDetail {
  error: string;
  description: string;
  status: number;
  source: "self" | "tab";
}

/** A refresh failed for a passing reason (outage, rate limit, network). */
export interface ErrorDetail {
  error: string;
  description: string;
  status: number;
  /** When the retry comes, or null when this was the last attempt. */
  retryInMs: number | null;
}

export interface ClientEvents {
  login: TokenDetail;
  refresh: TokenDetail;
  logout: LogoutDetail;
  "session-ended": SessionEndedDetail;
  error: ErrorDetail;
}

/** An error answer from the auth server; status 0 for a network failure or local reason. */
export declare class KeyfobError extends Error {
  constructor(error: string, description?: string, status?: number);
  /** The server's `error` code (`invalid_grant`, `temporarily_unavailable`, ...). */
  readonly error: string;
  /** The server's `error_description`. */
  readonly description: string;
  /** The HTTP status, or 0. */
  readonly status: number;
}

/** A JWT's claims, decoded without verification, for display only; null if not a JWT. */
export declare function decodeClaims(token: string): Record<string, unknown> | null;

export declare class Client {
  constructor(options?: ClientOptions);
  readonly baseUrl: string;
  readonly tokenOrigins: Set<string>;
  /** True while an access token is held. */
  readonly isAuthenticated: boolean;
  /** When the access token expires (ms since the epoch), or 0. */
  readonly expiresAt: number;
  /** The access token's claims, decoded without verification, for display. */
  claims(): Record<string, unknown> | null;
  /** A valid access token, refreshed first if needed (for WebSockets and the like). */
  getAccessToken(): Promise<string>;

  /** Listen to an event; returns the function that stops listening. */
  on<K extends keyof ClientEvents>(name: K, handler: (detail: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(name: K, handler: (detail: ClientEvents[K]) => void): void;

  register(username: string, password: string): Promise<unknown>;
  login(username: string, password: string): Promise<TokenDetail>;
  /** After a page load: a sibling tab's token, else a refresh. True when signed in. */
  restore(): Promise<boolean>;
  /** Revoke this session; every tab signs out, whatever the server answers. */
  logout(): Promise<void>;
  /** Revoke every session of the user; every tab signs out. */
  logoutAll(): Promise<void>;
  sessions(): Promise<any>;
  revokeSession(sid: string): Promise<void>;
  /** fetch() with the access token: refreshed ahead of expiry, retried once after a 401. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** A new access token now; concurrent calls (and tabs) share one request. */
  refresh(): Promise<TokenDetail>;
  /** Stop timers, release locks, leave the channel. */
  close(): void;
}
