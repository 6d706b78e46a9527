// The keyfob demo page: every call goes through keyfob.js except the replay demo, which
// plays an attacker holding stolen refresh tokens of a second session. A module with no
// inline script, style or eval, so the page works under a strict Content-Security-Policy.
import { Client, decodeClaims } from "./keyfob.js";

{
  const base = new URL("./", document.baseURI).href;
  const auth = new Client({ baseUrl: base });
  const $ = (id) => document.getElementById(id);

  let username = "";
  let lifetimeMs = 0;
  let refreshCount = 0;
  let demoSid = null; // the replay demo's "demo device" session

  // --- small helpers ---------------------------------------------------------------

  function text(el, value) {
    el.textContent = value; // never innerHTML: every value here may come from a client
  }

  function clock(date) {
    return date.toLocaleTimeString([], { hour12: false });
  }

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleString([], { hour12: false });
  }

  function mask(token) {
    // Enough to tell tokens apart on screen, not enough to use one. (The start of a
    // token encodes its session, so only the end differs between rotations.)
    return "kfrt_…" + token.slice(-6);
  }

  function logEvent(name, detail) {
    const li = document.createElement("li");
    li.dataset.event = name;
    text(li, `${clock(new Date())}  ${name}${detail ? "  " + detail : ""}`);
    $("events").prepend(li);
  }

  function status(message, kind) {
    const el = $("auth-status");
    text(el, message);
    el.dataset.kind = kind || "";
  }

  function describe(err) {
    return err && err.description ? `${err.error}: ${err.description}` : String(err && err.message || err);
  }

  // --- signed in / out -------------------------------------------------------------

  function showSignedIn() {
    for (const id of ["token", "sessions", "replay"]) $(id).hidden = false;
    const claims = auth.claims() || {};
    status(username ? `Signed in as ${username}.` : `Signed in (user ${claims.sub}).`, "ok");
    showClaims();
    showVisibleStorage();
    loadSessions();
  }

  function showSignedOut(message, kind) {
    for (const id of ["token", "sessions", "replay"]) $(id).hidden = true;
    status(message, kind);
    text($("me-output"), "");
  }

  function showClaims() {
    const claims = auth.claims() || {};
    text($("sid"), claims.sid || "–");
    text($("jti"), claims.jti || "–");
  }

  function showVisibleStorage() {
    // The demo looks, to show there is nothing to see; keyfob.js itself never does.
    text($("visible-cookie"), JSON.stringify(document.cookie));
    text($("visible-storage"), String(window.localStorage.length));
  }

  function tick() {
    const left = auth.expiresAt - Date.now();
    if (!auth.isAuthenticated || lifetimeMs <= 0) {
      text($("countdown"), "–");
      $("lifetime").value = 0;
    } else {
      text($("countdown"), `${Math.max(0, left / 1000).toFixed(1)} s`);
      $("lifetime").value = Math.max(0, Math.min(1, left / lifetimeMs));
    }
  }

  auth.on("login", ({ expiresIn, source }) => {
    lifetimeMs = expiresIn * 1000;
    logEvent("login", source === "tab" ? "signed in from another tab" : `access token valid ${expiresIn} s`);
    if (source === "tab") showSignedIn();
  });

  auth.on("refresh", ({ expiresIn, source }) => {
    lifetimeMs = expiresIn * 1000;
    refreshCount += 1;
    text($("refresh-count"), String(refreshCount));
    text($("last-refresh"), `${clock(new Date())}${source === "tab" ? " (by another tab)" : ""}`);
    showClaims();
    logEvent("refresh", source === "tab" ? "token from another tab" : "silent refresh");
  });

  auth.on("logout", ({ source }) => {
    logEvent("logout", source === "tab" ? "in another tab" : "");
    showSignedOut("Signed out.", "");
  });

  auth.on("session-ended", ({ error, description }) => {
    logEvent("session-ended", `${error}: ${description}`);
    showSignedOut(`Your session ended: ${description}`, "error");
  });

  auth.on("error", ({ error, description, retryInMs }) => {
    const next = retryInMs === null ? "gave up for now" : `retrying in ${retryInMs / 1000} s`;
    logEvent("error", `${error}: ${description} (${next})`);
  });

  // --- account -------------------------------------------------------------------------

  function credentials() {
    return { username: $("username").value.trim(), password: $("password").value };
  }

  $("register").addEventListener("click", async () => {
    const { username: name, password } = credentials();
    if (!name || !password) {
      status("Type a username and a password first.", "error");
      return;
    }
    try {
      await auth.register(name, password);
      status(`Registered ${name}. Now log in.`, "ok");
      logEvent("register", name);
    } catch (err) {
      status(`Could not register: ${describe(err)}`, "error");
    }
  });

  $("auth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const { username: name, password } = credentials();
    try {
      await auth.login(name, password);
      username = name;
      refreshCount = 0;
      text($("refresh-count"), "0");
      text($("last-refresh"), "–");
      showSignedIn();
    } catch (err) {
      status(`Could not log in: ${describe(err)}`, "error");
    }
  });

  $("logout").addEventListener("click", async () => {
    try {
      await auth.logout();
    } catch (err) {
      status(`Logged out here, but the server said: ${describe(err)}`, "error");
    }
  });

  $("call-me").addEventListener("click", async () => {
    const res = await auth.fetch(new URL("auth/me", base).href);
    const body = await res.json();
    text($("me-output"), `${res.status}\n${JSON.stringify(body, null, 2)}`);
  });

  // --- sessions ------------------------------------------------------------------------

  async function loadSessions() {
    let sessions;
    try {
      const answer = await auth.sessions();
      sessions = answer.sessions;
    } catch (err) {
      return;
    }
    const body = $("sessions-body");
    body.replaceChildren();
    for (const s of sessions) {
      const row = document.createElement("tr");
      row.dataset.sid = s.sid;
      const device = document.createElement("td");
      const ua = document.createElement("span");
      ua.className = "ua";
      text(ua, s.device.user_agent || "unknown device");
      device.append(ua);
      if (s.current) device.append(" ", badge("this tab", "current"));
      if (s.sid === demoSid) device.append(" ", badge("demo device", "demo"));
      row.append(device, cell(s.device.ip || "–"), cell(when(s.created_at)), cell(when(s.last_used_at)));
      const action = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small danger";
      text(button, "Revoke");
      button.addEventListener("click", () => revoke(s.sid, s.current));
      action.append(button);
      row.append(action);
      body.append(row);
    }
  }

  function cell(value) {
    const td = document.createElement("td");
    text(td, value);
    return td;
  }

  function badge(label, kind) {
    const span = document.createElement("span");
    span.className = `badge ${kind}`;
    text(span, label);
    return span;
  }

  async function revoke(sid, current) {
    try {
      await auth.revokeSession(sid);
      logEvent("revoke", sid);
    } catch (err) {
      logEvent("error", describe(err));
    }
    if (current) {
      await auth.logout().catch(() => undefined);
      showSignedOut("You revoked this tab's own session.", "");
    } else {
      loadSessions();
    }
  }

  $("reload-sessions").addEventListener("click", loadSessions);

  $("logout-all").addEventListener("click", async () => {
    try {
      await auth.logoutAll();
    } catch (err) {
      status(`Could not log out everywhere: ${describe(err)}`, "error");
    }
  });

  // --- the replay demo ---------------------------------------------------------------

  // Raw requests as the demo device (or its thief) makes them: the refresh token in the
  // JSON body, and credentials "omit" so the browser does not also send this tab's own
  // refresh cookie (a request with both is refused as ambiguous).
  async function asDevice(path, body) {
    const res = await fetch(new URL(path, base).href, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    return { status: res.status, data };
  }

  function step(message, kind) {
    const li = document.createElement("li");
    li.dataset.kind = kind || "";
    text(li, message);
    $("replay-log").append(li);
  }

  $("replay-run").addEventListener("click", async () => {
    const button = $("replay-run");
    button.disabled = true;
    $("replay-log").replaceChildren();
    text($("replay-result"), "");
    $("replay-result").dataset.kind = "";
    try {
      await runReplay();
    } catch (err) {
      step(`The demo stopped: ${describe(err)}`, "error");
    } finally {
      button.disabled = false;
    }
  });

  async function runReplay() {
    const { username: name, password } = credentials();
    if (!name || !password) {
      step("Type your username and password in step 1 first: the demo device logs in with them.", "error");
      return;
    }
    const login = await asDevice("auth/login", { username: name, password, transport: "body" });
    if (login.status !== 200) {
      step(`The demo device could not log in: ${login.data.error_description || login.status}`, "error");
      return;
    }
    // What the attacker copied: the demo device's first refresh token.
    const stolen = login.data.refresh_token;
    demoSid = decodeClaims(login.data.access_token).sid;
    step(`The demo device logged in: session ${demoSid}, refresh token ${mask(stolen)}. An attacker copies this token.`);
    await loadSessions();

    const first = await asDevice("auth/refresh", { refresh_token: stolen });
    if (first.status !== 200) throw new Error(`refresh failed: ${first.status}`);
    step(`The device refreshes: it gets ${mask(first.data.refresh_token)}, and ${mask(stolen)} is retired.`);
    const second = await asDevice("auth/refresh", { refresh_token: first.data.refresh_token });
    if (second.status !== 200) throw new Error(`refresh failed: ${second.status}`);
    const current = second.data.refresh_token;
    step(`It refreshes again: ${mask(current)}. (The immediately previous token is honoured for a few seconds of grace, for racing tabs; the stolen one is now two rotations old.)`);

    const replay = await asDevice("auth/refresh", { refresh_token: stolen });
    const detected = replay.status === 400 && replay.data.error === "invalid_grant";
    step(`The attacker replays ${mask(stolen)}: ${replay.status} ${replay.data.error}: ${replay.data.error_description}`,
      detected ? "alarm" : "error");
    const owner = await asDevice("auth/refresh", { refresh_token: current });
    step(`The device's own current token ${mask(current)} now fails too: ${owner.status} ${owner.data.error}. The whole session is revoked, so the thief's copy is worthless as well.`,
      owner.status === 400 ? "alarm" : "error");

    await loadSessions();
    const stillListed = Boolean(document.querySelector(`#sessions-body tr[data-sid="${CSS.escape(demoSid)}"]`));
    const result = $("replay-result");
    if (detected && !stillListed) {
      text(result, "Reuse detected: keyfob revoked the demo device's session, which has left your sessions list.");
      result.dataset.kind = "alarm";
    } else {
      text(result, "Unexpected: the replayed token was not refused as reuse.");
      result.dataset.kind = "error";
    }
    logEvent("reuse demo", detected ? "invalid_grant: session revoked" : "not detected");
  }

  // --- start -----------------------------------------------------------------------------

  setInterval(tick, 100);
  setInterval(() => { if (auth.isAuthenticated) showVisibleStorage(); }, 1000);
  auth.restore().then((ok) => {
    if (ok) {
      lifetimeMs = Math.max(0, auth.expiresAt - Date.now());
      showSignedIn();
      logEvent("restore", "signed in again from the refresh cookie");
    }
  });
}
