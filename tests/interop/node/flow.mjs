// An OpenID Connect relying party built only on openid-client, run against a real
// `keyfob serve` by tests/interop/test_openid_client.py: no keyfob code here.
//
// Input: KEYFOB_ISSUER, CLIENT_ID, CLIENT_SECRET (client_secret_basic), REDIRECT_URI,
// POST_LOGOUT_REDIRECT_URI and SCOPE in the environment. The browser steps are the Python
// test's: for each, this script prints one JSON line, {"sign_in": URL} (a person signs in
// there) or {"visit": URL} (the browser just goes there), and reads the URL the browser
// ended on at the loopback listener from one line of stdin. Last it prints one JSON line
// {"report": ...} with what each step returned. Any failure of openid-client's checks
// exits non-zero with the error on stderr.

import * as readline from "node:readline";
import * as client from "openid-client";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const stdin = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Hand a browser step to the test; the URL where the browser ended. */
const browse = async (step, url) => {
  process.stdout.write(`${JSON.stringify({ [step]: url.href })}\n`);
  const { value, done } = await stdin.next();
  if (done) throw new Error(`stdin closed during the ${step} step`);
  return new URL(value.trim());
};

/** What a failing openid-client call said: its error code, the HTTP status, and the
 * server's OAuth error (from the JSON body, or from a WWW-Authenticate challenge). */
const failure = async (promise) => {
  try {
    await promise;
    return null;
  } catch (error) {
    const challenge = Array.isArray(error.cause) ? error.cause[0] : undefined;
    return {
      code: error.code ?? null,
      status: error.status ?? null,
      error: error.error ?? challenge?.parameters?.error ?? null,
      scheme: challenge?.scheme ?? null,
    };
  }
};

const issuer = new URL(env("KEYFOB_ISSUER"));
const redirectUri = env("REDIRECT_URI");

// Discovery of /.well-known/openid-configuration (OIDC mode), with two deliberate options:
// - allowInsecureRequests: openid-client refuses http:// URLs, and the test server listens
//   on plain HTTP on 127.0.0.1 only. Never use this option against a non-local server.
// - enableNonRepudiationChecks: the id_token's JWS signature is verified against jwks_uri
//   too (by default openid-client trusts a token-endpoint response for it, as OIDC Core
//   §3.1.3.7 allows over TLS), so keyfob's signing key and alg are checked as well.
const config = await client.discovery(
  issuer,
  env("CLIENT_ID"),
  { redirect_uris: [redirectUri], response_types: ["code"] },
  client.ClientSecretBasic(env("CLIENT_SECRET")),
  { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
);

/** A sign-in through the authorization endpoint: PKCE S256, nonce, state. */
const signIn = async () => {
  const codeVerifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: env("SCOPE"),
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    nonce,
    state,
  });
  const callback = await browse("sign_in", authorizationUrl);
  // Checks state, iss (RFC 9207, as the metadata announces it), PKCE at the token
  // endpoint, and the id_token: signature, iss, aud, azp, exp, iat, nonce (OIDC Core
  // §3.1.3.7).
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  return { authorizationUrl, callback, nonce, tokens };
};

const { authorizationUrl, callback, nonce, tokens } = await signIn();
const idClaims = tokens.claims();
// The UserInfo response's sub must equal the id_token's (OIDC Core §5.3.2).
const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub);

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const introspected = await client.tokenIntrospection(config, refreshed.access_token, {
  token_type_hint: "access_token",
});

// RFC 7009 revocation of the current refresh token ends the session.
await client.tokenRevocation(config, refreshed.refresh_token, {
  token_type_hint: "refresh_token",
});
const afterRevocation = {
  introspection: await client.tokenIntrospection(config, refreshed.access_token),
  refresh: await failure(client.refreshTokenGrant(config, refreshed.refresh_token)),
  userinfo: await failure(client.fetchUserInfo(config, refreshed.access_token, idClaims.sub)),
};

// RP-initiated logout of a second sign-in: the browser goes to the end-session endpoint
// with the id_token as the hint and comes back to the registered post-logout URI.
const second = await signIn();
const logoutState = client.randomState();
const landed = await browse(
  "visit",
  client.buildEndSessionUrl(config, {
    id_token_hint: second.tokens.id_token,
    post_logout_redirect_uri: env("POST_LOGOUT_REDIRECT_URI"),
    state: logoutState,
  }),
);
const logout = {
  state_returned: landed.searchParams.get("state") === logoutState,
  landed: landed.origin + landed.pathname,
  introspection: await client.tokenIntrospection(config, second.tokens.access_token),
  refresh: await failure(client.refreshTokenGrant(config, second.tokens.refresh_token)),
};

const server = config.serverMetadata();
process.stdout.write(
  `${JSON.stringify({ report: {
    authorization_url: authorizationUrl.href,
    nonce,
    callback: Object.fromEntries(callback.searchParams),
    metadata: {
      issuer: server.issuer,
      authorization_endpoint: server.authorization_endpoint,
      token_endpoint: server.token_endpoint,
      userinfo_endpoint: server.userinfo_endpoint,
      revocation_endpoint: server.revocation_endpoint,
      introspection_endpoint: server.introspection_endpoint,
      end_session_endpoint: server.end_session_endpoint ?? null,
    },
    tokens: {
      token_type: tokens.token_type,
      scope: tokens.scope ?? null,
      expires_in: tokens.expires_in ?? null, // as the server sent it
      has_refresh_token: typeof tokens.refresh_token === "string",
      id_token_header: JSON.parse(
        Buffer.from(tokens.id_token.split(".")[0], "base64url").toString(),
      ),
    },
    id_token: idClaims,
    userinfo,
    refreshed: {
      rotated: refreshed.refresh_token !== tokens.refresh_token,
      scope: refreshed.scope ?? null,
      id_token: refreshed.id_token ? refreshed.claims() : null,
    },
    introspected,
    after_revocation: afterRevocation,
    logout,
  } })}\n`,
);
stdin.return();
