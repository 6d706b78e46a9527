// Runs the SPA code of docs/howto/oauth-spa.md (SPA_MODULE: its code blocks, as one ES
// module) in Node against a real `keyfob serve`, driven by tests/test_docs_spa.py. No
// keyfob code here, and none in the module: oauth4webapi only.
//
// The browser objects the code uses (location, sessionStorage, history) are stand-ins;
// fetch is the real one, wrapped to record what goes to the token and revocation
// endpoints. The sign-in page is the Python test's: this prints one JSON line
// {"authorization_url": ...} and reads the URL keyfob redirected to from one line of
// stdin. Then, as MODE says:
//   signout   three API calls (each refreshes: the access token lives less than the
//             30 s margin), two concurrent ones, signOut(), one more call;
//   revoked   the session is revoked behind the app's back, then one API call, then one
//             more.
// It prints one JSON line: what each call gave, and the token-endpoint traffic.

import * as readline from "node:readline";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const readLine = () =>
  new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: process.stdin });
    lines.once("line", (line) => {
      resolve(line.trim()); // before close(), whose "close" event would reject
      lines.close();
    });
    lines.once("close", () => reject(new Error("stdin closed before the callback URL")));
  });

// The browser, as far as the SPA code touches it.
const storage = new Map();
globalThis.sessionStorage = {
  getItem: (key) => (storage.has(key) ? storage.get(key) : null),
  setItem: (key, value) => storage.set(key, String(value)),
  removeItem: (key) => storage.delete(key),
};
let assigned = null;
globalThis.location = {
  href: "https://app.example.org/",
  assign(url) {
    assigned = String(url);
  },
};
globalThis.history = {
  replaceState(_state, _title, url) {
    location.href = new URL(url, location.href).href;
  },
};

// What the SPA sends to keyfob's token and revocation endpoints, and what comes back.
const traffic = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const url = String(input instanceof Request ? input.url : input);
  const response = await realFetch(input, init);
  if (url.endsWith("/oauth/token") || url.endsWith("/oauth/revoke")) {
    const form = Object.fromEntries(new URLSearchParams(String(init.body ?? "")));
    const text = await response.clone().text();
    traffic.push({
      endpoint: new URL(url).pathname,
      form,
      status: response.status,
      body: text ? JSON.parse(text) : null,
    });
  }
  return response;
};

const outcome = async (promise) => {
  try {
    const response = await promise;
    return { status: response.status };
  } catch (error) {
    return { thrown: error.constructor.name, error: error.error ?? null, message: error.message };
  }
};

const spa = await import(env("SPA_MODULE"));
const me = env("API_URL");

await spa.signIn();
console.log(JSON.stringify({ authorization_url: assigned }));
location.href = await readLine();
await spa.completeSignIn();
const report = { address_bar: location.href, session_storage: [...storage.keys()], calls: [] };

if (env("MODE") === "signout") {
  report.calls.push(await outcome(spa.api(me)));
  report.calls.push(await outcome(spa.api(me)));
  report.calls.push(...(await Promise.all([outcome(spa.api(me)), outcome(spa.api(me))])));
  await spa.signOut();
  report.calls.push(await outcome(spa.api(me)));
} else {
  const last = traffic.at(-1).body.refresh_token;
  const revoked = await realFetch(new URL("/oauth/revoke", me), {
    method: "POST",
    body: new URLSearchParams({ token: last, client_id: env("CLIENT_ID") }),
  });
  report.revoked_elsewhere = revoked.status;
  report.calls.push(await outcome(spa.api(me)));
  report.calls.push(await outcome(spa.api(me)));
}
report.traffic = traffic;
console.log(JSON.stringify(report));
