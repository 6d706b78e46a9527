// Checked by `tsc --noEmit` (never run): the implementation matches the published
// declarations, and the declarations read as an application would use them.
import * as implementation from "../keyfob.js";
import type * as declared from "../types/keyfob.js";
import { Client, KeyfobError, decodeClaims, type ClientOptions } from "keyfob";

// The JSDoc-typed source provides everything types/keyfob.d.ts promises.
export const matches: typeof declared = implementation;

const options: ClientOptions = { baseUrl: "https://app.example/", retryAttempts: 2 };
const auth = new Client(options);
const stop: () => void = auth.on("refresh", ({ expiresAt, source }) => {
  const when: number = expiresAt;
  const who: "self" | "tab" = source;
  void when;
  void who;
});
auth.on("session-ended", ({ error, status }) => void `${error} ${status}`);
auth.on("error", ({ retryInMs }) => void (retryInMs === null ? "gave up" : retryInMs));
auth.on("logout", ({ source }) => void source);
stop();

export async function usage(): Promise<number> {
  if (!(await auth.restore())) await auth.login("alice", "correct horse battery staple");
  const res: Response = await auth.fetch("/api/things", { method: "GET" });
  const token: string = await auth.getAccessToken();
  const claims = decodeClaims(token);
  try {
    await auth.refresh();
  } catch (err) {
    if (err instanceof KeyfobError) return err.status;
  }
  await auth.logout();
  return res.status + (claims ? 1 : 0);
}

// @ts-expect-error: an unknown event name is a type error
auth.on("expired", () => undefined);
