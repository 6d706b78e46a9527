"""The frozen :class:`Settings`: every knob keyfob has, each described once (spec §8).

Each field carries :func:`~keyfob.settings.fields.about` as its metadata, which says its
default, how its ``KEYFOB_*`` variable is read, its help text and whether ``keyfob
serve`` has a flag for it. :data:`SETTINGS` holds those descriptions; ``from_env``, the
CLI and the generated documentation tables read them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.jwk import SigningAlg
from ..exceptions import ConfigurationError
from .fields import SettingDescription, about, describe
from .values import (
    Secret,
    parse_duration_setting,
    parse_listen_switch,
    parse_networks,
    parse_origins,
    parse_rate_limit,
    parse_scopes,
    parse_secret,
    parse_secrets,
    parse_switch,
    parse_whole_number,
)

__all__ = [
    "FAST_SETTINGS_OVERRIDES",
    "SETTINGS",
    "CookieMode",
    "LogFormat",
    "ReusePolicy",
    "Settings",
    "SigningAlg",
    "SqliteSync",
]

# The allowed values of the enumerated settings, written once: Settings checks them,
# and the CLI's choices and the docs read them from here (typing.get_args).
ReusePolicy = Literal["session", "user"]
CookieMode = Literal["secure-path", "host"]
SqliteSync = Literal["full", "normal"]
LogFormat = Literal["json", "text"]

#: Short for the parser of the ten duration fields below.
_DURATION = parse_duration_setting


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every knob keyfob has. Each is described where it is declared (see ``SETTINGS``)."""

    store_url: str = field(
        default="sqlite:///keyfob.db",
        metadata=about(
            "where sessions live: sqlite:///path.db, postgresql://… or memory://", flag=True
        ),
    )
    store_session_url: str | None = field(
        default=None,
        metadata=about(
            "PostgreSQL only: a direct postgresql:// URL for the revocation listener and the "
            "purge lock, which need a session of their own, when store_url goes through "
            "PgBouncer in transaction mode (or ?session_url= in the store URL, which wins)"
        ),
    )
    secret: Secret | None = field(
        default=None,
        metadata=about(
            "the deployment secret, at least 32 bytes, never stored in the database "
            "(environment only: never a flag, which other users could read in the process list)",
            parse=parse_secret,
            default_text="generated into a 0600 file beside the SQLite database; "
            "required for PostgreSQL",
        ),
    )
    secret_file: str | None = field(
        default=None,
        metadata=about(
            "a file holding the deployment secret (when KEYFOB_SECRET is unset)", flag=True
        ),
    )
    previous_secrets: tuple[Secret, ...] = field(
        default=(),
        metadata=about(
            "comma-separated earlier secrets, still accepted for tokens minted under them",
            parse=parse_secrets,
        ),
    )
    issuer: str = field(
        default="",
        metadata=about(
            "iss of access tokens and metadata", flag=True, default_text="http://localhost:PORT"
        ),
    )
    audience: str = field(
        default="", metadata=about("aud of access tokens", flag=True, default_text="the issuer")
    )
    access_ttl: float = field(
        default=900.0,
        metadata=about("access-token lifetime (900, 15m, 7d)", parse=_DURATION, flag=True),
    )
    idle_ttl: float = field(
        default=7 * 86400.0,
        metadata=about("session idle lifetime: a refresh moves it", parse=_DURATION, flag=True),
    )
    absolute_ttl: float = field(
        default=30 * 86400.0,
        metadata=about("session absolute lifetime: nothing moves it", parse=_DURATION, flag=True),
    )
    grace: float = field(
        default=10.0,
        metadata=about(
            "grace window for the previous refresh token (0 disables)", parse=_DURATION, flag=True
        ),
    )
    reuse_policy: ReusePolicy = field(
        default="session",
        metadata=about(
            "what reuse detection revokes: the session or all of the user's sessions", flag=True
        ),
    )
    signing_alg: SigningAlg = field(
        default="ES256",
        metadata=about(
            "access-token signature algorithm; Ed25519 and EdDSA are one algorithm under its "
            "RFC 9864 name and its deprecated one (PyJWT knows only EdDSA; docs/oidc.md)",
            flag=True,
        ),
    )
    id_token_alg: SigningAlg = field(
        default="RS256",
        metadata=about(
            "OpenID Connect id_token signature algorithm: RS256, which OIDC requires every "
            "provider to offer and clients expect by default; when it differs from the "
            "access tokens' it has a key of its own (both published, rotated together)",
            flag=True,
        ),
    )
    allowed_origins: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "comma-separated origins allowed for cookie-authenticated requests",
            parse=parse_origins,
            flag=True,
            default_text="the issuer's origin",
        ),
    )
    cors_origins: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "comma-separated browser origins allowed to call the OAuth endpoints, JWKS and "
            "metadata (CORS, no credentials); the cookie routes under /auth never allow CORS",
            parse=parse_origins,
            flag=True,
        ),
    )
    scopes: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "space- or comma-separated scopes clients may be registered for "
            "(scopes_supported in the metadata); none: any scope",
            parse=parse_scopes,
        ),
    )
    redis_url: str | None = field(
        default=None,
        metadata=about("optional Redis for shared rate limits and revocation fan-out", flag=True),
    )
    rate_limit_login: str = field(
        default="30/minute;300/hour",
        metadata=about(
            "login attempts per client address (limits notation: 10/minute;100/day)",
            parse=parse_rate_limit,
        ),
    )
    rate_limit_login_account: str = field(
        default="100/hour;1000/day",
        metadata=about(
            "failed logins per account from all addresses together; browsers that signed "
            "in to the account before are exempt (device cookie)",
            parse=parse_rate_limit,
        ),
    )
    login_throttle_after: int = field(
        default=5,
        metadata=about(
            "failed logins of one account from one address (or known device) before each "
            "further one makes that pair wait, 1 s doubling up to the maximum below",
            parse=parse_whole_number,
        ),
    )
    login_throttle_max: float = field(
        default=900.0,
        metadata=about("the longest wait imposed on one account and address pair", parse=_DURATION),
    )
    rate_limit_register: str = field(
        default="10/minute;100/day",
        metadata=about("account registrations per client address", parse=parse_rate_limit),
    )
    rate_limit_refresh: str = field(
        default="120/minute",
        metadata=about(
            "refreshes per session (generous: racing tabs and retries must pass)",
            parse=parse_rate_limit,
        ),
    )
    insecure_dev_cookies: bool = field(
        default=False,
        metadata=about(
            "allow refresh cookies over plain HTTP beyond localhost (development only)",
            parse=parse_switch,
            flag=True,
        ),
    )
    cookie_mode: CookieMode = field(
        default="secure-path",
        metadata=about(
            "secure-path: __Secure- cookie scoped to /auth; host: __Host- on /", flag=True
        ),
    )
    forwarded_allow_ips: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "comma-separated addresses or CIDRs of the proxies whose X-Forwarded-For and "
            "Forwarded headers give the client's address (docs/security.md)",
            parse=parse_networks,
            flag=True,
            default_text="none: the peer is the client",
        ),
    )
    access_log: bool = field(
        default=True,
        metadata=about("keyfob serve logs one line per request", parse=parse_switch, flag=True),
    )
    max_head_size: int = field(
        default=32 * 1024,
        metadata=about(
            "keyfob serve: the largest request head (request line and headers) in bytes; "
            "a larger one is answered 431",
            parse=parse_whole_number,
        ),
    )
    read_timeout: float = field(
        default=10.0,
        metadata=about(
            "keyfob serve: how long a client may take to send a whole request (head and "
            "body), or its first byte on a new connection; slower clients get 408 and are "
            "disconnected",
            parse=_DURATION,
        ),
    )
    max_concurrency: int = field(
        default=1000,
        metadata=about(
            "keyfob serve: the most open connections (or requests in progress) per worker; "
            "beyond it requests are answered 503 (0: no cap; keep it under the open-file limit)",
            parse=parse_whole_number,
        ),
    )
    password_profile: str = field(
        default="rfc9106-low-memory",
        metadata=about("argon2id cost preset (keyfob.core.passwords.PROFILES)"),
    )
    password_min_length: int = field(
        default=10, metadata=about("minimum password length", parse=parse_whole_number)
    )
    password_hash_threads: int = field(
        default=2,
        metadata=about(
            "threads per process that hash and check passwords, at the lowest OS priority",
            parse=parse_whole_number,
        ),
    )
    password_hash_queue: int = field(
        default=32,
        metadata=about(
            "password hashes waiting or running per process before logins and "
            "registrations get 429 with Retry-After",
            parse=parse_whole_number,
        ),
    )
    leeway: float = field(
        default=30.0,
        metadata=about("clock-skew allowance when verifying access tokens", parse=_DURATION),
    )
    key_publish_delay: float = field(
        default=300.0,
        metadata=about(
            "how long a new signing key is published before it signs (the JWKS cache lifetime)",
            parse=_DURATION,
        ),
    )
    revoked_retention: float = field(
        default=7 * 86400.0,
        metadata=about(
            "how long revoked sessions are kept (sessions list, forensics) before purge",
            parse=_DURATION,
        ),
    )
    verified_token_cache_size: int = field(
        default=10_000,
        metadata=about(
            "how many verified access tokens each process remembers (0 disables)",
            parse=parse_whole_number,
        ),
    )
    revocation_resync_interval: float = field(
        default=5.0,
        metadata=about(
            "how often each process re-reads recent revocations in case a notification was "
            "missed: the longest a revoked session stays usable anywhere",
            parse=_DURATION,
        ),
    )
    key_reload_interval: float = field(
        default=60.0,
        metadata=about(
            "how often each process reloads the signing keys (for its JWKS)", parse=_DURATION
        ),
    )
    purge_interval: float = field(
        default=3600.0,
        metadata=about(
            "how often expired and long-revoked sessions are purged (one instance at a time)",
            parse=_DURATION,
        ),
    )
    sqlite_synchronous: SqliteSync = field(
        default="full",
        metadata=about("SQLite synchronous: full survives power loss, normal only process crashes"),
    )
    # operations (docs/operations.md)
    metrics: str = field(
        default="off",
        metadata=about(
            "Prometheus metrics: off, on (/metrics on the server's port) or HOST:PORT "
            "(a separate listener)",
            parse=parse_listen_switch,
            flag=True,
        ),
    )
    metrics_dir: str | None = field(
        default=None,
        metadata=about(
            "directory where each worker process writes its metrics for a scrape to sum "
            "(keyfob serve creates and removes one; set it for uvicorn --workers)"
        ),
    )
    log_format: LogFormat = field(
        default="json",
        metadata=about("keyfob serve's log lines: json (one object per line) or text", flag=True),
    )

    def __post_init__(self) -> None:
        # Secrets given as plain text (Settings(secret="...")) are wrapped, so that they
        # never show in a repr or a traceback and the rest of keyfob sees one type.
        if isinstance(self.secret, str):
            object.__setattr__(self, "secret", Secret(self.secret))
        if any(isinstance(s, str) for s in self.previous_secrets):
            wrapped = tuple(Secret(s) if isinstance(s, str) else s for s in self.previous_secrets)
            object.__setattr__(self, "previous_secrets", wrapped)
        for name in ("access_ttl", "idle_ttl", "absolute_ttl", "grace", "leeway"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} cannot be negative")
        if self.access_ttl <= 0 or self.idle_ttl <= 0 or self.absolute_ttl <= 0:
            raise ConfigurationError("access_ttl, idle_ttl and absolute_ttl must be positive")
        if self.max_head_size < 1024:
            raise ConfigurationError("max_head_size must be at least 1024 bytes")
        if self.read_timeout <= 0:
            raise ConfigurationError("read_timeout must be positive")
        if self.max_concurrency < 0:
            raise ConfigurationError("max_concurrency cannot be negative")
        for name in ("revocation_resync_interval", "key_reload_interval", "purge_interval"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        if self.login_throttle_after < 1 or self.login_throttle_max < 1:
            raise ConfigurationError("login_throttle_after and login_throttle_max must be >= 1")
        if not 1 <= self.password_hash_threads <= self.password_hash_queue:
            raise ConfigurationError(
                "password_hash_threads must be at least 1 and at most password_hash_queue"
            )
        for described in SETTINGS:
            value = getattr(self, described.name)
            if described.parse is parse_rate_limit:
                # Also when set from Python, not only from the environment.
                described.parse(value, described.name)
            if described.choices and value not in described.choices:
                choices = ", ".join(described.choices)
                raise ConfigurationError(
                    f"{described.name} must be one of {choices}, not {value!r}"
                )

    @property
    def effective_audience(self) -> str:
        return self.audience or self.issuer

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read ``KEYFOB_<FIELD>`` variables; ``overrides`` (field names) win over them.

        An override given as text is read like its variable (``"15m"``); any other value
        is taken as it is.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for described in SETTINGS:
            raw = env.get(described.env)
            if raw is not None and raw != "":
                values[described.name] = described.parse(raw, described.name)
        for name, value in (overrides or {}).items():
            if name not in _BY_NAME:
                raise ConfigurationError(f"unknown setting: {name}")
            values[name] = _BY_NAME[name].parse(value, name) if isinstance(value, str) else value
        return cls(**values)


#: Every setting's description, in declaration order: the one list the edges read.
SETTINGS: tuple[SettingDescription, ...] = describe(Settings)
_BY_NAME = {described.name: described for described in SETTINGS}

#: Settings for tests: cheap password hashing, short lifetimes. Only for testing!
FAST_SETTINGS_OVERRIDES: Mapping[str, Any] = {
    "store_url": "memory://",
    "secret": Secret("test-secret-test-secret-test-secret-0123456789"),
    "password_profile": "cheapest",
    # https: a non-local plain-HTTP issuer would (rightly) refuse the Secure refresh cookie.
    "issuer": "https://testserver",
    # One key for both kinds of token: making an RSA key costs ~0.1 s at every start of a
    # fresh store. Tests of RS256 id tokens set id_token_alg themselves.
    "id_token_alg": "ES256",
}
