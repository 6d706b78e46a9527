// Node tests of keyfob.js's logic: `node --test clients/js/test/` (the browser tests
// in tests/browser/ drive the same file in Chromium against a real server).
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Client, DEFAULTS, KeyfobError, decodeClaims } from "../keyfob.js";

const SOURCE = fileURLToPath(new URL("../keyfob.js", import.meta.url));

const BASE = "http://localhost:8000/";

function b64url(text) {
  return Buffer.from(text).toString("base64url");
}

/** A JWT-shaped access token; the client never verifies it, it only reads claims to show. */
function accessToken(n) {
  const header = b64url(JSON.stringify({ alg: "ES256", typ: "at+jwt" }));
  const claims = b64url(JSON.stringify({ sub: "u1", sid: "s1", jti: "j" + n }));
  return `${header}.${claims}.sig${n}`;
}

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/**
 * A fake keyfob server behind a fetch function. `refreshGate`, when set, is a promise
 * each refresh waits for, so tests can hold refreshes in flight.
 */
function fakeServer({ expiresIn = 900 } = {}) {
  const server = {
    calls: [],
    current: 1,
    refreshGate: null,
    /** Answers for the next refreshes, in order (functions returning a Response). */
    refreshAnswers: [],
    expiresIn,
    count(pathname) {
      return this.calls.filter((c) => c.pathname === pathname).length;
    },
  };
  server.fetch = async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : {}));
    server.calls.push({ pathname: url.pathname, origin: url.origin, init, headers });
    const token = () => ({ access_token: accessToken(server.current), token_type: "Bearer",
      expires_in: server.expiresIn });
    switch (url.pathname) {
      case "/auth/login":
        return json(200, token());
      case "/auth/register":
        return json(201, { username: JSON.parse(init.body).username });
      case "/auth/refresh":
        if (server.refreshGate) await server.refreshGate;
        if (server.refreshAnswers.length) return server.refreshAnswers.shift()();
        server.current += 1;
        return json(200, token());
      case "/auth/logout":
        return new Response(null, { status: 204 });
      case "/api/thing": {
        const ok = headers.get("Authorization") === "Bearer " + accessToken(server.current);
        return ok ? json(200, { ok: true }) : json(401, { error: "invalid_token",
          error_description: "expired" }, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
      }
      default:
        return json(404, { error: "not_found", error_description: url.pathname });
    }
  };
  return server;
}

/** Timers that run only when the test says so, and a clock to go with them. */
function fakeTime(start = 1_700_000_000_000) {
  const time = {
    now: start,
    timers: new Map(),
    nextId: 1,
    setTimeout(fn, ms) {
      const id = time.nextId++;
      time.timers.set(id, { fn, at: time.now + ms, ms });
      return id;
    },
    clearTimeout(id) {
      time.timers.delete(id);
    },
    pending() {
      return [...time.timers.values()].map((t) => t.at - time.now).sort((a, b) => a - b);
    },
    /** Move the clock forward, firing the timers that come due, in order. */
    advance(ms) {
      const until = time.now + ms;
      for (;;) {
        const due = [...time.timers.entries()].filter(([, t]) => t.at <= until)
          .sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        time.timers.delete(due[0]);
        time.now = due[1].at;
        due[1].fn();
      }
      time.now = until;
    },
  };
  return time;
}

function client(server, time, extra = {}) {
  const options = { baseUrl: BASE, fetch: server.fetch, crossTab: false, random: () => 0,
    ...extra };
  if (time) {
    Object.assign(options, {
      now: () => time.now, setTimeout: time.setTimeout, clearTimeout: time.clearTimeout,
    });
  }
  return new Client(options);
}

/** Let every pending promise chain (fetch, json, locks, channel) run to its next timer. */
async function settle() {
  for (let i = 0; i < 10; i += 1) await new Promise((resolve) => setImmediate(resolve));
}


/** JSON error answers as keyfob sends them. */
const outage = (retryAfter = "1") => () => json(503, { error: "temporarily_unavailable",
  error_description: "the session store is unavailable" }, { "Retry-After": retryAfter });
const tooMany = (retryAfter = "2") => () => json(429, { error: "too_many_requests",
  error_description: "slow down" }, { "Retry-After": retryAfter });
const reused = () => json(400, { error: "invalid_grant",
  error_description: "this refresh token was already used; the session has been revoked" });

/** A LockManager like navigator.locks (request, ifAvailable, signal), shared by "tabs". */
function fakeLocks() {
  const held = new Set();
  const queues = new Map();
  const granted = [];
  function grant(name, callback) {
    held.add(name);
    granted.push(name);
    return Promise.resolve()
      .then(() => callback({ name, mode: "exclusive" }))
      .finally(() => {
        const next = (queues.get(name) || []).shift();
        if (next) next();
        else held.delete(name);
      });
  }
  return {
    granted,
    isHeld: (name) => held.has(name),
    request(name, options, callback) {
      if (typeof options === "function") { callback = options; options = {}; }
      const { signal } = options;
      const aborted = () => new DOMException("the lock request was aborted", "AbortError");
      if (signal && signal.aborted) return Promise.reject(aborted());
      if (!held.has(name)) return grant(name, callback);
      if (options.ifAvailable) return Promise.resolve().then(() => callback(null));
      return new Promise((resolve, reject) => {
        const queue = queues.get(name) || [];
        queues.set(name, queue);
        const start = () => {
          if (signal) signal.removeEventListener("abort", onAbort);
          resolve(grant(name, callback));
        };
        const onAbort = () => {
          queue.splice(queue.indexOf(start), 1);
          reject(aborted());
        };
        if (signal) signal.addEventListener("abort", onAbort);
        queue.push(start);
      });
    },
  };
}

/** A BroadcastChannel class whose instances talk only to each other (one per test). */
function fakeChannels() {
  const open = new Set();
  return class FakeChannel {
    constructor(name) {
      this.name = name;
      this.onmessage = null;
      open.add(this);
    }
    postMessage(data) {
      const copy = structuredClone(data);
      for (const other of open) {
        if (other === this || other.name !== this.name) continue;
        setImmediate(() => {
          if (open.has(other) && other.onmessage) other.onmessage({ data: copy });
        });
      }
    }
    close() {
      open.delete(this);
    }
  };
}

/** `count` tabs of one browser: one server (one cookie jar), shared locks and channel. */
function tabs(server, count, extra = {}) {
  const shared = { crossTab: true, locks: fakeLocks(), BroadcastChannel: fakeChannels(),
    syncWait: 0, ...extra };
  return Array.from({ length: count }, () => client(server, extra.time || null, shared));
}

/** Resolves with the next `name` event of `auth`. */
const next = (auth, name) => new Promise((resolve) => {
  const stop = auth.on(name, (detail) => { stop(); resolve(detail); });
});

// --- one tab -------------------------------------------------------------------------

test("ten concurrent requests that get a 401 cause exactly one refresh", async () => {
  const server = fakeServer();
  const auth = client(server);
  await auth.login("alice", "pw"); // holds token 1
  server.current = 2; // the server stops accepting token 1: every request gets a 401
  let release;
  server.refreshGate = new Promise((resolve) => { release = resolve; });
  const pending = Array.from({ length: 10 }, () => auth.fetch("/api/thing"));
  await settle();
  release();
  const answers = await Promise.all(pending);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.deepEqual(answers.map((r) => r.status), Array(10).fill(200));
  assert.equal(server.count("/api/thing"), 20, "each request is retried once");
  auth.close();
});

test("a request is retried once after a 401, not twice", async () => {
  const server = fakeServer();
  const auth = client(server);
  await auth.login("alice", "pw");
  server.current = 99; // the refreshed token is refused too (say, a clock far off)
  server.refreshAnswers.push(() => json(200, { access_token: accessToken(50),
    token_type: "Bearer", expires_in: 900 }));
  const res = await auth.fetch("/api/thing");
  assert.equal(res.status, 401);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.equal(server.count("/api/thing"), 2);
  assert.equal(auth.isAuthenticated, true, "a 401 on an API is not the end of the session");
  auth.close();
});

test("concurrent refresh() calls in one tab share one promise and one request", async () => {
  const server = fakeServer();
  const auth = client(server);
  await auth.login("alice", "pw");
  const calls = Array.from({ length: 5 }, () => auth.refresh());
  assert.ok(calls.every((p) => p === calls[0]));
  await Promise.all(calls);
  assert.equal(server.count("/auth/refresh"), 1);
  auth.close();
});

test("the token is refreshed by a timer shortly before it expires", async () => {
  const server = fakeServer({ expiresIn: 900 });
  const time = fakeTime();
  const auth = client(server, time);
  const refreshes = [];
  auth.on("refresh", (detail) => refreshes.push(detail));
  await auth.login("alice", "pw");
  assert.equal(auth.expiresAt, time.now + 900_000);
  assert.deepEqual(time.pending(), [840_000], "one minute before expiry");
  time.advance(839_999);
  assert.equal(server.count("/auth/refresh"), 0);
  time.advance(1);
  await settle();
  assert.equal(server.count("/auth/refresh"), 1);
  assert.equal(refreshes.length, 1);
  assert.equal(refreshes[0].source, "self");
  assert.equal(refreshes[0].expiresAt, time.now + 900_000);
  assert.deepEqual(time.pending(), [840_000], "and the next one is scheduled");
  auth.close();
});

test("the refresh time is jittered by up to half the margin", async () => {
  const server = fakeServer({ expiresIn: 900 });
  for (const [random, due] of [[0, 840_000], [0.5, 825_000], [0.999, 810_030]]) {
    const time = fakeTime();
    const auth = client(server, time, { random: () => random });
    await auth.login("alice", "pw");
    assert.deepEqual(time.pending(), [due], `random() = ${random}`);
    auth.close();
  }
  assert.equal(DEFAULTS.refreshBefore, 60_000);
});

test("a short-lived token is refreshed at three quarters of its life", async () => {
  const server = fakeServer({ expiresIn: 8 });
  const time = fakeTime();
  const auth = client(server, time);
  await auth.login("alice", "pw");
  assert.deepEqual(time.pending(), [6000]);
  auth.close();
});

test("a request made after a late timer refreshes first instead of sending a dead token", async () => {
  const server = fakeServer({ expiresIn: 60 });
  const time = fakeTime();
  const auth = client(server, time);
  await auth.login("alice", "pw");
  time.timers.clear(); // the laptop slept: the timer never fired
  time.now += 60_000;
  const res = await auth.fetch("/api/thing");
  assert.equal(res.status, 200);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.equal(server.count("/api/thing"), 1, "no 401 round trip was needed");
  auth.close();
});

test("refresh and logout send the CSRF header and same-origin credentials, no body", async () => {
  const server = fakeServer();
  const auth = client(server);
  await auth.login("alice", "pw");
  await auth.refresh();
  await auth.logout();
  for (const pathname of ["/auth/refresh", "/auth/logout"]) {
    const call = server.calls.find((c) => c.pathname === pathname);
    assert.equal(call.headers.get("X-Keyfob-CSRF"), "1", pathname);
    assert.equal(call.init.credentials, "same-origin", pathname);
    assert.equal(call.init.method, "POST", pathname);
    assert.equal(call.init.body, undefined, `${pathname}: the refresh token is the cookie`);
  }
  assert.equal(auth.isAuthenticated, false);
  auth.close();
});

test("the access token goes only to allowed origins", async () => {
  const server = fakeServer();
  const auth = client(server);
  await auth.login("alice", "pw");
  await auth.fetch("https://elsewhere.example/api/thing");
  await auth.fetch("/api/thing");
  const [foreign, own] = server.calls.filter((c) => c.pathname === "/api/thing");
  assert.equal(foreign.origin, "https://elsewhere.example");
  assert.equal(foreign.headers.get("Authorization"), null);
  assert.equal(own.headers.get("Authorization"), "Bearer " + accessToken(server.current));
  auth.close();
});

test("invalid_grant ends the session once: session-ended, no token, no retry loop", async () => {
  const server = fakeServer();
  const time = fakeTime();
  const auth = client(server, time);
  const ended = [];
  const errors = [];
  auth.on("session-ended", (detail) => ended.push(detail));
  auth.on("error", (detail) => errors.push(detail));
  await auth.login("alice", "pw");
  server.current += 1; // the held token no longer works
  server.refreshAnswers.push(reused, reused);
  const res = await auth.fetch("/api/thing");
  assert.equal(res.status, 401);
  assert.equal(auth.isAuthenticated, false);
  assert.deepEqual(ended, [{ error: "invalid_grant", status: 400, source: "self",
    description: "this refresh token was already used; the session has been revoked" }]);
  assert.deepEqual(time.pending(), [], "nothing is scheduled: no loop");
  await assert.rejects(auth.refresh(), (err) => err instanceof KeyfobError &&
    err.error === "invalid_grant" && err.status === 400);
  assert.equal(ended.length, 1, "session-ended is emitted once, when the session ends");
  assert.equal(server.count("/auth/refresh"), 2, "one request per call, never repeated");
  assert.deepEqual(errors, []);
  auth.close();
});

test("a 503 is retried after Retry-After with the same cookie, and the session goes on", async () => {
  const server = fakeServer({ expiresIn: 900 });
  const time = fakeTime();
  const auth = client(server, time);
  const errors = [];
  const ended = [];
  auth.on("error", (detail) => errors.push(detail));
  auth.on("session-ended", (detail) => ended.push(detail));
  auth.on("logout", (detail) => ended.push(detail));
  await auth.login("alice", "pw");
  server.refreshAnswers.push(outage("1"), outage("2"));
  const refreshing = auth.refresh();
  const alsoWaiting = auth.refresh();
  await settle();
  assert.equal(server.count("/auth/refresh"), 1);
  assert.deepEqual(errors.map((e) => [e.status, e.retryInMs]), [[503, 1000]]);
  assert.equal(auth.isAuthenticated, true, "an outage never signs out");
  time.advance(999);
  await settle();
  assert.equal(server.count("/auth/refresh"), 1, "not before Retry-After");
  time.advance(1);
  await settle();
  assert.equal(server.count("/auth/refresh"), 2);
  assert.deepEqual(errors.map((e) => e.retryInMs), [1000, 2000]);
  time.advance(2000);
  await settle();
  const [first, second] = await Promise.all([refreshing, alsoWaiting]);
  assert.equal(first, second, "every caller shares the one retry loop");
  assert.equal(first.source, "self");
  assert.equal(server.count("/auth/refresh"), 3);
  assert.deepEqual(ended, []);
  assert.equal(auth.claims().jti, "j2", "the retry got the successor");
  auth.close();
});

test("a 429 honours Retry-After too", async () => {
  const server = fakeServer();
  const time = fakeTime();
  const auth = client(server, time);
  await auth.login("alice", "pw");
  server.refreshAnswers.push(tooMany("2"));
  const refreshing = auth.refresh();
  await settle();
  time.advance(1999);
  await settle();
  assert.equal(server.count("/auth/refresh"), 1);
  time.advance(1);
  await settle();
  await refreshing;
  assert.equal(server.count("/auth/refresh"), 2);
  assert.equal(auth.isAuthenticated, true);
  auth.close();
});

test("retries are bounded: the wait is capped and the last failure is reported", async () => {
  const server = fakeServer();
  const time = fakeTime();
  const auth = client(server, time, { retryAttempts: 2, maxRetryDelay: 3000 });
  const errors = [];
  auth.on("error", (detail) => errors.push(detail));
  await auth.login("alice", "pw");
  server.refreshAnswers.push(outage("3600"), outage("3600"), outage("3600"));
  const refreshing = auth.refresh();
  refreshing.catch(() => undefined);
  for (let i = 0; i < 4; i += 1) {
    await settle();
    time.advance(3000);
  }
  await assert.rejects(refreshing, (err) => err.error === "temporarily_unavailable" &&
    err.status === 503);
  assert.equal(server.count("/auth/refresh"), 3, "the first try and two retries");
  assert.deepEqual(errors.map((e) => e.retryInMs), [3000, 3000, null]);
  assert.equal(auth.isAuthenticated, true, "the access token is kept until it expires");
  // The next call starts a new, equally bounded, attempt.
  await auth.refresh();
  assert.equal(server.count("/auth/refresh"), 4);
  auth.close();
});

test("a lost response (network error) is retried with the same cookie", async () => {
  const server = fakeServer();
  const time = fakeTime();
  const auth = client(server, time);
  await auth.login("alice", "pw");
  server.refreshAnswers.push(() => { throw new TypeError("Failed to fetch"); });
  const refreshing = auth.refresh();
  await settle();
  time.advance(DEFAULTS.defaultRetryDelay);
  await settle();
  await refreshing;
  assert.equal(server.count("/auth/refresh"), 2);
  auth.close();
});

test("Retry-After as an HTTP date is honoured", async () => {
  const server = fakeServer();
  const time = fakeTime(Date.parse("2026-12-05T10:00:00Z"));
  const auth = client(server, time);
  await auth.login("alice", "pw");
  server.refreshAnswers.push(outage("Sat, 05 Dec 2026 10:00:04 GMT"));
  const refreshing = auth.refresh();
  await settle();
  assert.ok(time.pending().includes(4000), String(time.pending()));
  time.advance(4000);
  await settle();
  await refreshing;
  auth.close();
});

test("a refresh answer that arrives after a logout does not log the tab back in", async () => {
  const server = fakeServer();
  const auth = client(server);
  await auth.login("alice", "pw");
  let release;
  server.refreshGate = new Promise((resolve) => { release = resolve; });
  const refreshing = auth.refresh();
  await settle();
  await auth.logout();
  release();
  await assert.rejects(refreshing, (err) => err.error === "stale");
  assert.equal(auth.isAuthenticated, false);
  auth.close();
});

test("a logout during a 503 retry wait stops the retries", async () => {
  const server = fakeServer();
  const time = fakeTime();
  const auth = client(server, time);
  await auth.login("alice", "pw");
  server.refreshAnswers.push(outage("1"));
  const refused = assert.rejects(auth.refresh(), (err) => err.error === "stale");
  await settle();
  await auth.logout();
  time.advance(1000);
  await settle();
  await refused;
  assert.equal(server.count("/auth/refresh"), 1);
  auth.close();
});

test("login errors carry the server's error code and description", async () => {
  const auth = new Client({
    baseUrl: BASE,
    crossTab: false,
    fetch: async () => json(400, { error: "invalid_grant", error_description: "wrong username or password" }),
  });
  await assert.rejects(auth.login("alice", "nope"), (err) =>
    err instanceof KeyfobError && err.error === "invalid_grant" &&
    err.message === "wrong username or password");
  auth.close();
});

test("claims are decoded for display", async () => {
  assert.deepEqual(decodeClaims(accessToken(7)), { sub: "u1", sid: "s1", jti: "j7" });
  assert.equal(decodeClaims("not a token"), null);
  assert.equal(decodeClaims("a.bnVsbA.c"), null, "a payload of null is not claims");
});

test("a throwing event handler does not break the client or the other handlers", async () => {
  const server = fakeServer();
  const time = fakeTime();
  const auth = client(server, time);
  const seen = [];
  auth.on("login", () => { throw new Error("app bug"); });
  const stop = auth.on("login", () => seen.push("second"));
  await auth.login("alice", "pw");
  assert.deepEqual(seen, ["second"]);
  assert.throws(() => time.advance(0), /app bug/, "the error is rethrown on its own");
  stop();
  await auth.login("alice", "pw");
  assert.deepEqual(seen, ["second"], "an unsubscribed handler is not called");
  auth.close();
});

// --- tabs ----------------------------------------------------------------------------

test("five tabs refreshing the same token at once send one request and share its result", async () => {
  const server = fakeServer();
  const all = tabs(server, 5);
  const [first, ...others] = all;
  const heard = others.map((tab) => next(tab, "login"));
  await first.login("alice", "pw");
  await Promise.all(heard); // the login reaches every tab over the channel
  let release;
  server.refreshGate = new Promise((resolve) => { release = resolve; });
  const results = all.map((tab) => tab.refresh());
  await settle();
  release();
  const details = await Promise.all(results);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.deepEqual(details.map((d) => d.source).sort(), ["self", "tab", "tab", "tab", "tab"]);
  assert.equal(new Set(all.map((tab) => tab.claims().jti)).size, 1);
  assert.equal(new Set(details.map((d) => d.expiresAt)).size, 1);
  all.forEach((tab) => tab.close());
});

test("a tab whose timer fires just after the sibling's refresh takes the news, not the lock", async () => {
  const server = fakeServer();
  const time = fakeTime(); // login and refresh in the same millisecond: equal expiry
  const [a, b] = tabs(server, 2, { time });
  const heard = next(b, "login");
  await a.login("alice", "pw");
  await heard;
  await a.refresh(); // done, and the lock for the old token is still held a moment
  // b has not processed a's news yet (no settle): it asks to refresh the old token.
  const late = b.refresh();
  const detail = await late;
  assert.equal(detail.source, "tab");
  assert.equal(server.count("/auth/refresh"), 1);
  assert.equal(b.claims().jti, "j2");
  a.close();
  b.close();
});

test("a tab that slept past every sibling refresh recovers with its own refresh", async () => {
  const server = fakeServer();
  const [awake, asleep] = tabs(server, 2, { lockHold: 0 });
  const heard = next(asleep, "login");
  await awake.login("alice", "pw");
  await heard;
  asleep._channel.onmessage = null; // frozen: it hears nothing
  await awake.refresh();
  await awake.refresh();
  await settle();
  assert.equal(asleep.claims().jti, "j1", "still the token from before it slept");
  server.current += 0; // the server accepts only the newest token
  const res = await asleep.fetch("/api/thing");
  assert.equal(res.status, 200, "one refresh with the shared cookie, then the call");
  assert.equal(server.count("/auth/refresh"), 3);
  assert.equal(asleep.isAuthenticated, true);
  awake.close();
  asleep.close();
});

test("a 503 retry loop runs in one tab; its siblings wait and share the successor", async () => {
  const server = fakeServer();
  const time = fakeTime();
  const all = tabs(server, 3, { time });
  const heard = all.slice(1).map((tab) => next(tab, "login"));
  await all[0].login("alice", "pw");
  await Promise.all(heard);
  server.refreshAnswers.push(outage("1"), outage("1"));
  const ended = [];
  all.forEach((tab) => tab.on("session-ended", (d) => ended.push(d)));
  const results = all.map((tab) => tab.refresh());
  for (let i = 0; i < 3; i += 1) {
    await settle();
    time.advance(1000);
  }
  await settle();
  const details = await Promise.all(results);
  assert.equal(server.count("/auth/refresh"), 3, "one loop: two 503s and the success");
  assert.deepEqual(details.map((d) => d.source).sort(), ["self", "tab", "tab"]);
  assert.deepEqual(ended, []);
  assert.ok(all.every((tab) => tab.isAuthenticated));
  all.forEach((tab) => tab.close());
});

test("the session ended in one tab ends it in every tab, once", async () => {
  const server = fakeServer();
  const [a, b] = tabs(server, 2);
  const heard = next(b, "login");
  await a.login("alice", "pw");
  await heard;
  server.refreshAnswers.push(reused);
  const endedInB = next(b, "session-ended");
  await assert.rejects(a.refresh());
  const detail = await endedInB;
  assert.equal(detail.source, "tab");
  assert.equal(detail.error, "invalid_grant");
  assert.equal(b.isAuthenticated, false);
  assert.equal(server.count("/auth/refresh"), 1);
  a.close();
  b.close();
});

test("a logout in one tab logs the other tabs out", async () => {
  const server = fakeServer();
  const [a, b, c] = tabs(server, 3);
  const heard = [next(b, "login"), next(c, "login")];
  await a.login("alice", "pw");
  await Promise.all(heard);
  const loggedOut = [next(b, "logout"), next(c, "logout")];
  await a.logout();
  assert.deepEqual(await Promise.all(loggedOut), [{ source: "tab" }, { source: "tab" }]);
  assert.ok(![a, b, c].some((tab) => tab.isAuthenticated));
  assert.equal(server.count("/auth/logout"), 1);
  [a, b, c].forEach((tab) => tab.close());
});

test("a new tab takes the token from a sibling instead of refreshing", async () => {
  const server = fakeServer();
  const shared = { locks: fakeLocks(), BroadcastChannel: fakeChannels() };
  const [a] = tabs(server, 1, shared);
  await a.login("alice", "pw");
  const [b] = tabs(server, 1, { ...shared, syncWait: 1000 });
  assert.equal(await b.restore(), true);
  assert.equal(server.count("/auth/refresh"), 0);
  assert.equal(b.claims().jti, a.claims().jti);
  // Alone, a tab restores from the cookie once the short wait is over.
  const [c] = tabs(fakeServer(), 1, { syncWait: 5 });
  assert.equal(await c.restore(), true);
  [a, b, c].forEach((tab) => tab.close());
});

test("without Web Locks, an announced refresh is awaited by the sibling tabs", async () => {
  const server = fakeServer();
  const all = tabs(server, 3, { locks: null });
  const heard = all.slice(1).map((tab) => next(tab, "login"));
  await all[0].login("alice", "pw");
  await Promise.all(heard);
  let release;
  server.refreshGate = new Promise((resolve) => { release = resolve; });
  const first = all[0].refresh();
  await settle(); // the announcement reaches the siblings
  const rest = all.slice(1).map((tab) => tab.refresh());
  release();
  const details = await Promise.all([first, ...rest]);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.deepEqual(details.map((d) => d.source), ["self", "tab", "tab"]);
  all.forEach((tab) => tab.close());
});

test("no storage API is touched: the access token lives in memory only", async () => {
  const touched = [];
  const trap = (name) => new Proxy({}, {
    get(_, prop) { touched.push(`${name}.${String(prop)}`); return undefined; },
    set(_, prop) { touched.push(`${name}.${String(prop)}=`); return true; },
  });
  const names = ["localStorage", "sessionStorage", "indexedDB", "caches"];
  const saved = {};
  for (const name of names) {
    saved[name] = Object.getOwnPropertyDescriptor(globalThis, name);
    Object.defineProperty(globalThis, name, {
      configurable: true, get() { touched.push(name); return trap(name); },
    });
  }
  const documentCookie = { get cookie() { touched.push("document.cookie"); return ""; },
    set cookie(_) { touched.push("document.cookie="); } };
  globalThis.document = documentCookie;
  try {
    const server = fakeServer();
    const [auth, sibling] = tabs(server, 2);
    await auth.register("alice", "pw");
    await auth.login("alice", "pw");
    await auth.fetch("/api/thing");
    await auth.refresh();
    await auth.getAccessToken();
    await auth.logout();
    auth.close();
    sibling.close();
  } finally {
    for (const name of names) {
      if (saved[name]) Object.defineProperty(globalThis, name, saved[name]);
      else delete globalThis[name];
    }
    delete globalThis.document;
  }
  assert.deepEqual(touched, []);
  const source = fs.readFileSync(SOURCE, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  for (const word of ["localStorage", "sessionStorage", "indexedDB", "document.cookie"]) {
    assert.ok(!source.includes(word), `keyfob.js mentions ${word} outside its comments`);
  }
});
