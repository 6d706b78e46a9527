// Tests of keyfob.js's logic with a mocked fetch: run with `node --test clients/js/test/`.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { test } = require("node:test");

const SOURCE = path.join(__dirname, "..", "keyfob.js");
const { Client, KeyfobError, decodeClaims } = require(SOURCE);

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
    refreshAnswer: null,
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
        if (server.refreshAnswer) return server.refreshAnswer();
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
  const options = { baseUrl: BASE, fetch: server.fetch, crossTab: false, ...extra };
  if (time) {
    Object.assign(options, {
      now: () => time.now, setTimeout: time.setTimeout, clearTimeout: time.clearTimeout,
    });
  }
  return new Client(options);
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

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

test("refresh and logout send the CSRF header and same-origin credentials", async () => {
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

test("a refused refresh ends the session: expired event, no token, the 401 is returned", async () => {
  const server = fakeServer();
  const auth = client(server);
  const expired = [];
  auth.on("expired", (detail) => expired.push(detail));
  await auth.login("alice", "pw");
  server.current += 1; // the held token no longer works
  server.refreshAnswer = () => json(400, {
    error: "invalid_grant",
    error_description: "this refresh token was already used; the session has been revoked",
  });
  const res = await auth.fetch("/api/thing");
  assert.equal(res.status, 401);
  assert.equal(auth.isAuthenticated, false);
  assert.equal(expired.length, 1);
  assert.equal(expired[0].error, "invalid_grant");
  await assert.rejects(auth.refresh(), (err) => err instanceof KeyfobError &&
    err.error === "invalid_grant" && err.status === 400);
  assert.equal(expired.length, 1, "expired is emitted once, when a session ends");
  auth.close();
});

test("a passing failure keeps the token and retries after Retry-After", async () => {
  const server = fakeServer({ expiresIn: 900 });
  const time = fakeTime();
  const auth = client(server, time);
  const errors = [];
  auth.on("error", (detail) => errors.push(detail));
  await auth.login("alice", "pw");
  server.refreshAnswer = () => json(503, { error: "temporarily_unavailable",
    error_description: "store down" }, { "Retry-After": "3" });
  await assert.rejects(auth.refresh());
  assert.equal(auth.isAuthenticated, true);
  assert.equal(errors[0].status, 503);
  assert.deepEqual(time.pending(), [3000]);
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
});

/** A LockManager like navigator.locks, shared by the "tabs" of one test. */
function fakeLocks() {
  const held = new Set();
  const queues = new Map();
  async function run(name, callback) {
    try {
      return await callback({ name });
    } finally {
      const next = (queues.get(name) || []).shift();
      if (next) next(); else held.delete(name);
    }
  }
  return {
    request(name, options, callback) {
      if (typeof options === "function") { callback = options; options = {}; }
      if (!held.has(name)) {
        held.add(name);
        return run(name, callback);
      }
      if (options.ifAvailable) return Promise.resolve(callback(null));
      return new Promise((resolve) => {
        if (!queues.has(name)) queues.set(name, []);
        queues.get(name).push(() => resolve(run(name, callback)));
      });
    },
  };
}

test("two tabs refreshing at once send one request; the other tab gets the token", async () => {
  const server = fakeServer();
  const locks = fakeLocks();
  const tabA = client(server, null, { crossTab: true, locks });
  const tabB = client(server, null, { crossTab: true, locks });
  const seenByB = [];
  const heard = new Promise((resolve) => tabB.on("refresh", resolve));
  tabB.on("refresh", (detail) => seenByB.push(detail));
  await tabA.login("alice", "pw");
  await heard; // the login reaches tab B over the channel
  assert.equal(tabB.isAuthenticated, true);
  let release;
  server.refreshGate = new Promise((resolve) => { release = resolve; });
  const both = [tabA.refresh(), tabB.refresh()];
  await settle();
  release();
  await Promise.all(both);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.equal(tabB.claims().jti, tabA.claims().jti);
  assert.equal(seenByB.at(-1).source, "tab");
  tabA.close();
  tabB.close();
});

test("a logout in one tab logs the other tabs out", async () => {
  const server = fakeServer();
  const tabA = client(server, null, { crossTab: true, locks: fakeLocks() });
  const tabB = client(server, null, { crossTab: true, locks: fakeLocks() });
  const loggedOut = new Promise((resolve) => tabB.on("logout", resolve));
  const heard = new Promise((resolve) => tabB.on("refresh", resolve));
  await tabA.login("alice", "pw");
  await heard;
  assert.equal(tabB.isAuthenticated, true);
  await tabA.logout();
  assert.deepEqual(await loggedOut, { source: "tab" });
  assert.equal(tabB.isAuthenticated, false);
  tabA.close();
  tabB.close();
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
    const auth = client(server);
    await auth.register("alice", "pw");
    await auth.login("alice", "pw");
    await auth.fetch("/api/thing");
    await auth.refresh();
    await auth.getAccessToken();
    await auth.logout();
    auth.close();
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
    assert.ok(!source.includes(word), `keyfob.js mentions ${word} outside its header comment`);
  }
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

test("with Web Locks but no BroadcastChannel, tabs wait for the lock instead", async () => {
  const server = fakeServer();
  const locks = fakeLocks();
  const options = { crossTab: true, locks, BroadcastChannel: null };
  const tabA = client(server, null, options);
  const tabB = client(server, null, options);
  await tabA.login("alice", "pw");
  await tabB.login("alice", "pw");
  await Promise.all([tabA.refresh(), tabB.refresh()]);
  assert.equal(server.count("/auth/refresh"), 2, "serialised, one after the other");
  tabA.close();
  tabB.close();
});
