"""keyfob's refresh, layer by layer, against its floor (keyfob's Python API, no HTTP).

    .venv/bin/python bench/layers.py [--quick] [--json out.json] [--sizes 10000,1000000]

bench/harness.py runs this after the HTTP measurements and puts the numbers in
docs/benchmarks.md. Every keyfob figure comes with the floor it is measured against, in
the same process, right after it:

1. access tokens: ``AccessTokenSigner.sign`` / ``AccessTokenVerifier.verify`` vs the raw
   ``cryptography`` sign / verify of the same bytes;
2. refresh tokens: ``RefreshTokenCodec.parse`` (the MAC check) and ``mint`` vs one raw
   ``hmac.digest``;
3. one rotation: ``store.rotate`` per store (memory, SQLite) vs a bare conditional
   ``UPDATE`` with the same driver (``sqlite3``), and the whole ``SessionManager.refresh``;
4. the refresh at 10k / 1M / 10M stored sessions (SQLite; the filled databases are cached
   in bench/results/cache/, keyed by the schema);
5. memory of the revoked-sid set that protected routes check, at 1M revoked sessions
   (``tracemalloc``: what the set and its keys allocate), and a lookup in it;
6. PostgreSQL, when its server binaries are installed: a throwaway cluster on a Unix
   socket, ``refresh`` through ``PostgresStore`` vs a bare asyncpg ``UPDATE``, and the
   database work per refresh from ``pg_stat_statements`` (statements, WAL bytes, buffers);
7. the authorization-code flow (SQLite, memory): ``create_authorization_code`` (the last
   step of the authorization page) and ``exchange_authorization_code`` (the token
   request), each against ``SessionManager.refresh`` on the same store; wall and CPU time
   (``time.process_time``, every thread of the process: the store's too).

Times are microseconds per operation: the best of several repeats, as ``timeit``
advises (the medians are kept in the JSON too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

try:
    import keyfob  # noqa: F401
except ImportError:  # a plain checkout: measure the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from keyfob import SessionManager
from keyfob.core.access_tokens import AccessTokenSigner, AccessTokenVerifier
from keyfob.core.keys import KeySet, generate_key
from keyfob.core.refresh_tokens import (
    RefreshTokenCodec,
    derive_mac_key,
    encode_sid,
    new_secret,
    new_sid,
)
from keyfob.settings import Secret, Settings
from keyfob.store import open_store

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / "results" / "cache"
SECRET = "bench-deployment-secret-for-loopback-only-0123456789"
ISSUER = "https://auth.bench.invalid"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- timing -----------------------------------------------------------------------------


def _per_call_us(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number * 1e6


def _summary(per_call: list[float]) -> dict[str, float]:
    return {"us": statistics.median(per_call), "min_us": min(per_call)}


def time_sync(fn: Callable[[], object], number: int, repeat: int) -> dict[str, float]:
    return _summary([_per_call_us(fn, number) for _ in range(repeat)])


def time_sync_pair(
    ours: Callable[[], object], floor: Callable[[], object], number: int, repeat: int
) -> tuple[dict[str, float], dict[str, float]]:
    """``time_sync`` of both, their repeats interleaved (and the order alternating), so a
    burst of load from other processes falls on both sides of the ratio alike."""
    ours_times: list[float] = []
    floor_times: list[float] = []
    for i in range(repeat):
        order = ((ours, ours_times), (floor, floor_times))
        for fn, times in order if i % 2 == 0 else reversed(order):
            times.append(_per_call_us(fn, number))
    return _summary(ours_times), _summary(floor_times)


async def time_async(
    fn: Callable[[], Awaitable[object]], number: int, repeat: int
) -> dict[str, float]:
    per_call = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            await fn()
        per_call.append((time.perf_counter() - t0) / number * 1e6)
    return _summary(per_call)


def pair(name: str, ours: dict[str, float], floor: dict[str, float], floor_name: str) -> dict:
    # The best of the repeats, as timeit advises: on a shared machine the minimum is the
    # estimate least disturbed by other processes (the medians are kept too).
    return {
        "name": name,
        "keyfob_us": ours["min_us"],
        "floor": floor_name,
        "floor_us": floor["min_us"],
        "ratio": ours["min_us"] / floor["min_us"] if floor["min_us"] else None,
        "keyfob_median_us": ours["us"],
        "floor_median_us": floor["us"],
    }


# --- 1. access tokens -------------------------------------------------------------------


def access_tokens(quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for alg in ("ES256",) if quick else ("ES256", "EdDSA", "RS256"):
        out.extend(_access_token_pair(alg, quick))
    return out


def _access_token_pair(alg: str, quick: bool) -> list[dict[str, Any]]:
    now = time.time()
    key = generate_key(alg, now=now, activates_at=now, kek=b"k" * 32)
    signer = AccessTokenSigner(issuer=ISSUER, audience=ISSUER, ttl=900)
    verifier = AccessTokenVerifier(KeySet([key]), issuer=ISSUER, audience=ISSUER)
    claims = {"sub": "user-123", "sid": encode_sid(new_sid()), "client_id": "keyfob"}
    token = signer.sign(key, scope="", now=now, **claims)
    signing_input = token.rsplit(".", 1)[0].encode()
    priv, pub = key.private_key, key.public_key
    raw_sign: Callable[[], object]
    raw_verify: Callable[[], object]
    if alg == "ES256":
        assert isinstance(priv, ec.EllipticCurvePrivateKey)
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        ecdsa = ec.ECDSA(hashes.SHA256())
        der = priv.sign(signing_input, ecdsa)
        raw_sign = lambda: priv.sign(signing_input, ecdsa)  # noqa: E731
        raw_verify = lambda: pub.verify(der, signing_input, ecdsa)  # noqa: E731
    elif alg == "EdDSA":
        assert isinstance(priv, ed25519.Ed25519PrivateKey)
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        sig = priv.sign(signing_input)
        raw_sign = lambda: priv.sign(signing_input)  # noqa: E731
        raw_verify = lambda: pub.verify(sig, signing_input)  # noqa: E731
    else:
        assert isinstance(priv, rsa.RSAPrivateKey)
        assert isinstance(pub, rsa.RSAPublicKey)
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        sig = priv.sign(signing_input, pkcs1, sha256)
        raw_sign = lambda: priv.sign(signing_input, pkcs1, sha256)  # noqa: E731
        raw_verify = lambda: pub.verify(sig, signing_input, pkcs1, sha256)  # noqa: E731
    n = 300 if quick else 2000
    if alg == "RS256":
        n //= 10
    n //= 4  # each side runs 4x the repeats, interleaved with the other
    sign = time_sync_pair(lambda: signer.sign(key, scope="", now=now, **claims), raw_sign, n, 20)
    verify = time_sync_pair(lambda: verifier.verify(token, now=now), raw_verify, n, 20)
    return [
        pair(f"{alg} sign", *sign, "cryptography sign"),
        pair(f"{alg} verify", *verify, "cryptography verify"),
    ]


# --- 2. refresh tokens ------------------------------------------------------------------


def refresh_tokens(quick: bool) -> list[dict[str, Any]]:
    mac_key = derive_mac_key(SECRET.encode())
    codec = RefreshTokenCodec([mac_key])
    sid = encode_sid(new_sid())
    secret = new_secret()
    token = codec.mint(sid, secret, 7).value
    body = b"\x01" + os.urandom(16) + secret + (7).to_bytes(8, "big")
    mac = hmac.digest(mac_key, body, "sha256")
    n = 5000 if quick else 50000

    def raw_check() -> bool:
        return hmac.compare_digest(hmac.digest(mac_key, body, "sha256"), mac)

    return [
        pair("parse (MAC check)", *time_sync_pair(lambda: codec.parse(token), raw_check, n, 9),
             "hmac.digest + compare_digest"),
        pair("mint", *time_sync_pair(lambda: codec.mint(sid, secret, 8),
             lambda: hmac.digest(mac_key, body, "sha256"), n, 9), "hmac.digest"),
    ]  # fmt: skip


# --- 3. rotation per store --------------------------------------------------------------


def settings_for(url: str, synchronous: str) -> Settings:
    return Settings(
        store_url=url,
        secret=Secret(SECRET),
        issuer=ISSUER,
        password_profile="cheapest",
        sqlite_synchronous=synchronous,  # type: ignore[arg-type]
    )


async def start_manager(url: str, synchronous: str) -> SessionManager:
    settings = settings_for(url, synchronous)
    manager = SessionManager(settings, open_store(url, settings=settings))
    await manager.start()
    return manager


async def refresh_loop(manager: SessionManager, sessions: int, n: int, repeat: int) -> dict:
    tokens = [(await manager.issue(f"user{i}")).refresh_token for i in range(sessions)]
    position = 0

    async def one() -> None:
        nonlocal position
        i = position % sessions
        position += 1
        tokens[i] = (await manager.refresh(tokens[i])).refresh_token

    return await time_async(one, n, repeat)


async def rotate_loop(manager: SessionManager, sessions: int, n: int, repeat: int) -> dict:
    """``store.rotate`` alone, on sessions made by ``issue``."""
    state = []
    for i in range(sessions):
        pair_ = await manager.issue(f"user{i}")
        parsed = manager._codec.parse(pair_.refresh_token)
        state.append([parsed.sid, parsed.counter, parsed.secret_hash])
    store = manager.store
    position = 0
    now = time.time()

    async def one() -> None:
        nonlocal position
        row = state[position % sessions]
        position += 1
        session = await store.rotate(
            row[0], counter=row[1], secret_hash=row[2], now=now, idle_ttl=604800.0
        )
        assert session is not None
        row[1] += 1

    return await time_async(one, n, repeat)


_BARE_UPDATE = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = ?, last_used_at = ?, "
    "idle_expires_at = min(? + ?, absolute_expires_at) WHERE sid = ? AND counter = ? "
    "AND secret_hash = ? AND revoked_at IS NULL AND idle_expires_at > ? "
    "AND absolute_expires_at > ?"
)


def bare_sqlite_loop(path: Path, synchronous: str, n: int, repeat: int) -> dict:
    """The same conditional UPDATE with ``sqlite3`` on the calling thread: the floor."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    select = "SELECT sid, counter, secret_hash FROM sessions LIMIT 64"
    rows = [list(r) for r in conn.execute(select)]
    position = 0
    now = time.time()

    def one() -> None:
        nonlocal position
        row = rows[position % len(rows)]
        position += 1
        params = (now, now, now, 604800.0, row[0], row[1], row[2], now, now)
        cur = conn.execute(_BARE_UPDATE, params)
        assert cur.rowcount == 1
        row[1] += 1

    try:
        return time_sync(one, n, repeat)
    finally:
        conn.close()


async def rotations(quick: bool, synchronous: str, tmp: Path) -> list[dict[str, Any]]:
    out = []
    n, repeat = (300, 3) if quick else (2000, 5)
    for sync in dict.fromkeys([synchronous, "normal"]):
        path = tmp / f"rotate-{sync}.db"
        manager = await start_manager(f"sqlite:///{path}", sync)
        try:
            rotate = await rotate_loop(manager, 64, n, repeat)
            bare = bare_sqlite_loop(path, sync, n, repeat)
            out.append(pair(f"SQLite ({sync}): store.rotate", rotate, bare,
                            "bare sqlite3 UPDATE, same thread"))  # fmt: skip
            refresh = await refresh_loop(manager, 64, n, repeat)
            out.append(pair(f"SQLite ({sync}): SessionManager.refresh", refresh, bare,
                            "bare sqlite3 UPDATE, same thread"))  # fmt: skip
        finally:
            await manager.close()
    manager = await start_manager("memory://", "full")
    try:
        rotate = await rotate_loop(manager, 64, n * 5, repeat)
        refresh = await refresh_loop(manager, 64, n * 5, repeat)
    finally:
        await manager.close()
    out.append({"name": "memory: store.rotate", "keyfob_us": rotate["min_us"]})
    out.append({"name": "memory: SessionManager.refresh", "keyfob_us": refresh["min_us"]})
    return out


# --- 4. refresh at N stored sessions ----------------------------------------------------


def _schema_key() -> str:
    import keyfob.store as store_pkg

    digest = hashlib.sha256()
    for sql in sorted((Path(store_pkg.__file__).parent / "migrations" / "sqlite").glob("*.sql")):
        digest.update(sql.read_bytes())
    return digest.hexdigest()[:12]


def _fill_sessions(path: Path, count: int) -> None:
    """Add ``count`` synthetic live sessions with random 22-character sids, in SQL.

    The rows are generated inside SQLite and inserted in sid order, so the indexes are
    built by appending (10M rows in minutes instead of tens of minutes); the sessions the
    benchmark then creates and refreshes land at random places in those indexes.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("PRAGMA temp_store = FILE")
    info = conn.execute("PRAGMA table_info(sessions)").fetchall()
    known = {
        "sid": "sid",
        "user_id": "'synthetic-' || (n / 3)",
        "client_id": "'keyfob'",
        "scope": "''",
        "secret_hash": "randomblob(32)",
        "counter": "n % 50",
        "created_at": ":now - 86400",
        "last_used_at": ":now - 3600",
        "rotated_at": ":now - 3600",
        "idle_expires_at": ":now + 6 * 86400",
        "absolute_expires_at": ":now + 29 * 86400",
        "user_agent": "'Mozilla/5.0 (X11; Linux x86_64) bench'",
        "ip": "'127.0.0.1'",
        "revoked_at": "NULL",
        "revoked_reason": "NULL",
    }

    def generic(kind: str) -> str:
        if "INT" in kind or "REAL" in kind:
            return "0"
        return "x''" if "BLOB" in kind else "''"

    chosen = [
        (name, known.get(name) or generic(kind.upper()))
        for _, name, kind, notnull, default, _ in info
        if name in known or (notnull and default is None)
    ]
    sql = (
        f"INSERT INTO sessions ({', '.join(n for n, _ in chosen)}) "
        f"SELECT {', '.join(e for _, e in chosen)} FROM ("
        " SELECT sid, row_number() OVER (ORDER BY sid) AS n FROM ("
        "  WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :count)"
        "  SELECT substr(lower(hex(randomblob(11))), 1, 22) AS sid FROM c"
        " )"
        ") ORDER BY sid"
    )
    conn.execute("BEGIN")
    conn.execute(sql, {"now": time.time(), "count": count})
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def sizes_scan(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    out = []
    CACHE.mkdir(parents=True, exist_ok=True)
    key = _schema_key()
    n, repeat = (300, 3) if quick else (2000, 5)
    for size in sizes:
        path = CACHE / f"sessions-{size}-{key}.db"
        if not path.exists():
            t0 = time.monotonic()
            partial = path.with_suffix(".partial")
            _remove_db(partial)
            manager = await start_manager(f"sqlite:///{partial}", "normal")
            await manager.close()
            _fill_sessions(partial, size)
            partial.rename(path)
            log(f"  filled {size:,} sessions in {time.monotonic() - t0:.0f}s")
        manager = await start_manager(f"sqlite:///{path}", "normal")
        try:
            refresh = await refresh_loop(manager, 256, n, repeat)
        finally:
            await manager.close()
        out.append({
            "sessions": size,
            "refresh_us": refresh["min_us"],
            "median_us": refresh["us"],
            "db_mib": path.stat().st_size / 2**20,
        })  # fmt: skip
        log(f"  {size:>11,} sessions: refresh {refresh['us']:.0f} us")
    return out


# --- 5. PostgreSQL ----------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@contextlib.contextmanager
def pg_cluster(bindir: Path):
    """A throwaway PostgreSQL cluster on a Unix socket only (no TCP at all)."""
    tmp = Path(tempfile.mkdtemp(prefix="keyfob-bench-pg-"))
    data = tmp / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(tmp, "postgres")
        tmp.chmod(0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = "5499"
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = (
            f"-p {port} -k {tmp} -c listen_addresses='' "
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all "
            "-c shared_buffers=256MB"
        )
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"),
             "-o", options, "-w", "start"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        yield f"postgresql://postgres@/keyfob?host={tmp}&port={port}", str(tmp), port
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True, timeout=120,
        )  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


async def postgres(quick: bool) -> dict[str, Any] | None:
    bindir = _pg_bin()
    if bindir is None:
        log("  PostgreSQL server binaries not found: skipped")
        return None
    try:
        import asyncpg
    except ImportError:
        log("  asyncpg not installed: skipped")
        return None
    n, repeat = (300, 3) if quick else (2000, 5)
    with pg_cluster(bindir) as (url, host, port):
        where = {"host": host, "port": int(port), "user": "postgres"}
        admin = await asyncpg.connect(database="postgres", **where)
        await admin.execute("CREATE DATABASE keyfob")
        await admin.close()
        conn = await asyncpg.connect(database="keyfob", **where)
        await conn.execute("CREATE EXTENSION pg_stat_statements")
        manager = await start_manager(url, "full")
        try:
            # Warm up (prepared statements, pool), then count one clean batch.
            await refresh_loop(manager, 64, 200, 1)
            await conn.execute("SELECT pg_stat_statements_reset()")
            lsn0 = await conn.fetchval("SELECT pg_current_wal_lsn()")
            batch = 1000 if quick else 5000
            await refresh_loop(manager, 64, batch, 1)
            lsn1 = await conn.fetchval("SELECT pg_current_wal_lsn()")
            wal = await conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", lsn1, lsn0)
            rows = await conn.fetch(
                "SELECT query, calls, rows, total_exec_time, shared_blks_hit, shared_blks_read,"
                " shared_blks_dirtied, wal_records, wal_bytes FROM pg_stat_statements"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'keyfob')"
                " AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%wal_lsn%'"
                " ORDER BY calls DESC"
            )
            # `batch` refreshes + 64 sessions issued for them: count per refresh only the
            # statements that ran at least `batch` times (the per-refresh ones).
            per_refresh = [r for r in rows if r["calls"] >= batch]
            statements = [
                {
                    "query": " ".join(r["query"].split())[:160],
                    "calls_per_refresh": r["calls"] / batch,
                    "exec_us": r["total_exec_time"] * 1000 / r["calls"],
                    "blocks_hit": r["shared_blks_hit"] / r["calls"],
                    "blocks_read": r["shared_blks_read"] / r["calls"],
                    "blocks_dirtied": r["shared_blks_dirtied"] / r["calls"],
                    "wal_bytes": int(r["wal_bytes"]) / r["calls"],
                }
                for r in per_refresh
            ]
            refresh = await refresh_loop(manager, 64, n, repeat)
            rotate = await rotate_loop(manager, 64, n, repeat)
            rows = await conn.fetch("SELECT sid, counter, secret_hash FROM sessions LIMIT 64")
            state = [[r["sid"], r["counter"], r["secret_hash"]] for r in rows]
            update = await conn.prepare(
                "UPDATE sessions SET counter = counter + 1, rotated_at = $1, last_used_at = $1"
                " WHERE sid = $2 AND counter = $3 AND secret_hash = $4 AND revoked_at IS NULL"
            )
            position = 0
            now = await conn.fetchval("SELECT rotated_at FROM sessions LIMIT 1")

            async def bare() -> None:
                nonlocal position
                row = state[position % len(state)]
                position += 1
                await update.fetch(now, row[0], row[1], row[2])
                row[1] += 1

            floor = await time_async(bare, n, repeat)
        except Exception as exc:  # a store or schema this script does not know yet
            log(f"  PostgreSQL measurement failed: {exc!r}")
            return {"error": repr(exc)}
        finally:
            await manager.close()
            await conn.close()
    return {
        "refresh": pair("PostgreSQL: SessionManager.refresh", refresh, floor,
                        "bare asyncpg UPDATE (prepared)"),
        "rotate": pair("PostgreSQL: store.rotate", rotate, floor,
                       "bare asyncpg UPDATE (prepared)"),
        "statements_per_refresh": sum(s["calls_per_refresh"] for s in statements),
        "wal_bytes_per_refresh": float(wal) / batch,
        "statements": statements,
        "server": str(bindir.parent.name),
    }  # fmt: skip


async def cached_verify(quick: bool) -> dict[str, Any]:
    """``SessionManager.verify_access_token`` of tokens it verified before (the cache),
    cycling through 1,000 live tokens of distinct sessions; expiry and revocation are
    still checked on every call."""
    manager = await start_manager("memory://", "full")
    try:
        tokens = [(await manager.issue(f"user{i}")).access_token for i in range(1000)]
        for token in tokens:
            manager.verify_access_token(token)
        position = 0

        def one() -> None:
            nonlocal position
            manager.verify_access_token(tokens[position % 1000])
            position += 1

        hit = time_sync(one, 20_000 if quick else 100_000, 5)
    finally:
        await manager.close()
    return {"name": "ES256 verify, already verified (cache)", "keyfob_us": hit["min_us"],
            "keyfob_median_us": hit["us"], "floor": "target", "floor_us": 2.0,
            "ratio": hit["min_us"] / 2.0}  # fmt: skip


# --- 5. the revoked-sid set -------------------------------------------------------------


def revoked_set(count: int) -> dict[str, Any]:
    """Bytes per entry and lookup time of ``RevokedSids`` holding ``count`` revoked sids."""
    import gc
    import tracemalloc

    from keyfob.core.revocation import RevokedSids

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    revoked = RevokedSids()
    until = time.time() + 900
    for _ in range(count):
        revoked.add(encode_sid(new_sid()), until)
    allocated = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    probe = encode_sid(new_sid())
    now = time.time()
    lookup = time_sync(lambda: revoked.is_revoked(probe, now), 100_000, 5)
    return {
        "revoked": count,
        "mib": allocated / 2**20,
        "bytes_per_sid": allocated / count,
        "lookup_us": lookup["min_us"],
    }


# --- 7. the authorization-code flow -----------------------------------------------------

_REDIRECT = "https://app.bench.invalid/cb"
_VERIFIER = "bench-code-verifier-0123456789-0123456789-0123456789"


async def time_async_cpu(
    fn: Callable[[], Awaitable[object]], number: int, repeat: int
) -> dict[str, float]:
    """``time_async``, plus the best CPU time per call (the process's, all threads)."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(number):
            await fn()
        cpu.append((time.process_time() - c0) / number * 1e6)
        wall.append((time.perf_counter() - w0) / number * 1e6)
    return {**_summary(wall), "cpu_us": min(cpu)}


def cpu_pair(name: str, ours: dict[str, float], floor: dict[str, float]) -> dict[str, Any]:
    out = pair(name, ours, floor, "SessionManager.refresh")
    out["keyfob_cpu_us"] = ours["cpu_us"]
    out["floor_cpu_us"] = floor["cpu_us"]
    out["cpu_ratio"] = ours["cpu_us"] / floor["cpu_us"] if floor["cpu_us"] else None
    return out


async def code_flow_loops(
    manager: SessionManager, n: int, repeat: int
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Timings of making ``n * repeat`` codes, exchanging them, and as many refreshes."""
    from keyfob.core.authorization_codes import s256_challenge

    challenge = s256_challenge(_VERIFIER)
    client, _ = await manager.clients.register(
        name="bench",
        auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[_REDIRECT],
    )
    codes: list[str] = []

    async def create() -> None:
        code = await manager.create_authorization_code(
            user_id=f"user{len(codes)}",
            client_id=client.client_id,
            redirect_uri=_REDIRECT,
            scope="",
            code_challenge=challenge,
            nonce=None,
            auth_time=time.time(),
        )
        codes.append(code)

    created = await time_async_cpu(create, n, repeat)
    pending = iter(codes)

    async def exchange() -> None:
        await manager.exchange_authorization_code(
            next(pending), client=client, redirect_uri=_REDIRECT, code_verifier=_VERIFIER
        )

    exchanged = await time_async_cpu(exchange, n, repeat)
    tokens = [(await manager.issue(f"user{i}")).refresh_token for i in range(64)]
    position = 0

    async def refresh() -> None:
        nonlocal position
        i = position % len(tokens)
        position += 1
        tokens[i] = (await manager.refresh(tokens[i])).refresh_token

    return created, exchanged, await time_async_cpu(refresh, n, repeat)


async def authorization_codes(quick: bool, synchronous: str, tmp: Path) -> list[dict[str, Any]]:
    """Making a code, then exchanging it, vs a refresh. A code lives 60 s, so each batch
    is made and exchanged well within that (a few thousand, at a few ms at most each)."""
    n, repeat = (100, 3) if quick else (1000, 5)
    out: list[dict[str, Any]] = []
    stores = ((f"SQLite ({synchronous})", f"sqlite:///{tmp / 'codes.db'}"), ("memory", "memory://"))
    for label, url in stores:
        manager = await start_manager(url, synchronous)
        try:
            created, exchanged, refreshed = await code_flow_loops(manager, n, repeat)
        finally:
            await manager.close()
        for what, timing in (
            ("create_authorization_code", created),
            ("exchange_authorization_code", exchanged),
        ):
            row = cpu_pair(f"{label}: {what}", timing, refreshed)
            out.append(row)
            log(f"  {row['name']}: {row['keyfob_us']:.0f} us ({row['keyfob_cpu_us']:.0f} us cpu)"
                f" = {row['ratio']:.2f}x a refresh ({row['cpu_ratio']:.2f}x by cpu)")  # fmt: skip
    return out


# --- main -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"quick": args.quick}
    log("layers: access tokens")
    results["access_tokens"] = access_tokens(args.quick)
    results["access_tokens"].append(await cached_verify(args.quick))
    log("layers: refresh tokens")
    results["refresh_tokens"] = refresh_tokens(args.quick)
    with tempfile.TemporaryDirectory(prefix="keyfob-bench-") as tmp:
        log("layers: rotations")
        results["rotations"] = await rotations(args.quick, args.synchronous, Path(tmp))
        log("layers: authorization codes")
        results["authorization_codes"] = await authorization_codes(
            args.quick, args.synchronous, Path(tmp)
        )
    log("layers: revoked-sid set")
    results["revoked_set"] = revoked_set(100_000 if args.quick else 1_000_000)
    log("layers: refresh by number of stored sessions")
    results["sizes"] = await sizes_scan(args.sizes, args.quick)
    if not args.no_postgres:
        log("layers: PostgreSQL")
        results["postgres"] = await postgres(args.quick)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--synchronous", choices=["full", "normal"], default="full")
    p.add_argument("--sizes", help="stored-session counts (10000,1000000,10000000; quick 10000)")
    p.add_argument("--no-postgres", action="store_true")
    args = p.parse_args()
    default = "10000" if args.quick else "10000,1000000,10000000"
    args.sizes = [int(s) for s in (args.sizes or default).split(",")]
    results = asyncio.run(run(args))
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
