'use strict';
// The classic Express refresh-token server, as the tutorials write it: express +
// jsonwebtoken + cookie-parser, the refresh token in an httpOnly cookie, the access
// token in the JSON body, refresh tokens tracked in a store and rotated on every use.
// One process, one event loop: the benchmark pins it to one core.
//
//   POST /login    {username, password} -> Set-Cookie jwt=<refresh>; {accessToken}
//   POST /refresh  cookie jwt           -> verify, rotate in the store, sign new ones
//   GET  /me       Authorization: Bearer <access> -> {username}
//
// Environment: PORT, VARIANT, STORE, SQLITE_PATH, SQLITE_SYNCHRONOUS, BENCH_USERS,
// ACCESS_TOKEN_SECRET, REFRESH_TOKEN_SECRET. VARIANT is one of
//   hs256-key       HS256 with secrets prepared once as KeyObjects (crypto.createSecretKey),
//                   ETag and X-Powered-By off: the fastest form of this design
//   hs256-tutorial  HS256 with the string secret read from process.env and passed to
//                   jsonwebtoken on every call, Express defaults: what the tutorials write
//   rs256           RS256 for both tokens (one 2048-bit key pair each, KeyObjects)
// STORE is `map` (an in-process Map, as the tutorials do) or `sqlite` (better-sqlite3,
// WAL, one conditional UPDATE per rotation).
const crypto = require('node:crypto');
const express = require('express');
const cookieParser = require('cookie-parser');
const jwt = require('jsonwebtoken');

const PORT = Number(process.env.PORT || 3000);
const VARIANT = process.env.VARIANT || 'hs256-key';
const STORE = process.env.STORE || 'map';
const BENCH_USERS = Number(process.env.BENCH_USERS || 1000);
const PASSWORD = 'bench-password-0123';
process.env.ACCESS_TOKEN_SECRET ||= 'access-secret-for-the-benchmark-only-0123456789';
process.env.REFRESH_TOKEN_SECRET ||= 'refresh-secret-for-the-benchmark-only-0123456789';

const ACCESS_OPTIONS = { expiresIn: '15m' };
const REFRESH_OPTIONS = { expiresIn: '7d' };
const REFRESH_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const COOKIE = {
  httpOnly: true, secure: true, sameSite: 'strict', path: '/refresh', maxAge: REFRESH_MAX_AGE_MS,
};

// --- tokens ------------------------------------------------------------------------
// Every refresh token gets a random jti: without one, two tokens signed for the same
// user in the same second are identical and "rotation" would hand back the old token.
function tokens(variant) {
  if (variant === 'hs256-tutorial') {
    return {
      signAccess: (payload) => jwt.sign(payload, process.env.ACCESS_TOKEN_SECRET, ACCESS_OPTIONS),
      verifyAccess: (token) => jwt.verify(token, process.env.ACCESS_TOKEN_SECRET),
      signRefresh: (payload) => jwt.sign(payload, process.env.REFRESH_TOKEN_SECRET,
        { ...REFRESH_OPTIONS, jwtid: crypto.randomUUID() }),
      verifyRefresh: (token) => jwt.verify(token, process.env.REFRESH_TOKEN_SECRET),
    };
  }
  let accessSign, accessVerify, refreshSign, refreshVerify, algorithm;
  if (variant === 'hs256-key') {
    algorithm = 'HS256';
    accessSign = accessVerify = crypto.createSecretKey(Buffer.from(process.env.ACCESS_TOKEN_SECRET));
    refreshSign = refreshVerify = crypto.createSecretKey(Buffer.from(process.env.REFRESH_TOKEN_SECRET));
  } else if (variant === 'rs256') {
    algorithm = 'RS256';
    ({ privateKey: accessSign, publicKey: accessVerify } =
      crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }));
    ({ privateKey: refreshSign, publicKey: refreshVerify } =
      crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }));
  } else {
    throw new Error(`unknown VARIANT ${variant}`);
  }
  const algorithms = [algorithm];
  return {
    signAccess: (payload) => jwt.sign(payload, accessSign, { ...ACCESS_OPTIONS, algorithm }),
    verifyAccess: (token) => jwt.verify(token, accessVerify, { algorithms }),
    signRefresh: (payload) => jwt.sign(payload, refreshSign,
      { ...REFRESH_OPTIONS, algorithm, jwtid: crypto.randomUUID() }),
    verifyRefresh: (token) => jwt.verify(token, refreshVerify, { algorithms }),
  };
}

// --- the refresh-token store ---------------------------------------------------------
// add(token, username); rotate(old, next) is true when `old` was live (and is now gone).
function mapStore() {
  const live = new Map();
  return {
    add: (token, username) => { live.set(token, username); },
    rotate: (old, next) => {
      const username = live.get(old);
      if (username === undefined) return false;
      live.delete(old);
      live.set(next, username);
      return true;
    },
  };
}

function sqliteStore(path, synchronous) {
  const Database = require('better-sqlite3');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec('CREATE TABLE IF NOT EXISTS refresh_tokens (token TEXT PRIMARY KEY, username TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO refresh_tokens (token, username) VALUES (?, ?)');
  const update = db.prepare('UPDATE refresh_tokens SET token = ? WHERE token = ?');
  return {
    add: (token, username) => { insert.run(token, username); },
    rotate: (old, next) => update.run(next, old).changes === 1,
  };
}

const keys = tokens(VARIANT);
const store = STORE === 'sqlite'
  ? sqliteStore(process.env.SQLITE_PATH || 'express-refresh.db', process.env.SQLITE_SYNCHRONOUS || 'FULL')
  : mapStore();

// Users: login cost is not what is measured, so passwords are compared in constant
// time against one known value instead of a password hash.
const users = new Set(Array.from({ length: BENCH_USERS }, (_, i) => `user${i}`));
const expected = Buffer.from(PASSWORD);
function passwordOk(password) {
  const given = Buffer.from(String(password ?? ''));
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

// --- the app -------------------------------------------------------------------------
const app = express();
if (VARIANT !== 'hs256-tutorial') {
  app.set('etag', false);
  app.disable('x-powered-by');
}
app.use(express.json());
app.use(cookieParser());

app.post('/login', (req, res) => {
  const { username, password } = req.body ?? {};
  if (!users.has(username) || !passwordOk(password)) return res.sendStatus(401);
  const refreshToken = keys.signRefresh({ username });
  store.add(refreshToken, username);
  res.cookie('jwt', refreshToken, COOKIE);
  res.json({ accessToken: keys.signAccess({ username }) });
});

app.post('/refresh', (req, res) => {
  const token = req.cookies.jwt;
  if (!token) return res.sendStatus(401);
  let claims;
  try {
    claims = keys.verifyRefresh(token);
  } catch {
    return res.sendStatus(403);
  }
  const username = claims.username;
  const refreshToken = keys.signRefresh({ username });
  // Rotation: the presented token must be live; it is replaced by its successor.
  if (!store.rotate(token, refreshToken)) return res.sendStatus(403);
  res.cookie('jwt', refreshToken, COOKIE);
  res.json({ accessToken: keys.signAccess({ username }) });
});

function authenticateToken(req, res, next) {
  const header = req.headers.authorization;
  const token = header && header.split(' ')[1];
  if (!token) return res.sendStatus(401);
  try {
    req.user = keys.verifyAccess(token);
  } catch {
    return res.sendStatus(403);
  }
  next();
}

app.get('/me', authenticateToken, (req, res) => {
  res.json({ username: req.user.username });
});

app.listen(PORT, '127.0.0.1', () => {
  console.log(`express peer ${VARIANT}/${STORE} on 127.0.0.1:${PORT}`);
});
