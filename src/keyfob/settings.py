"""keyfob's one frozen settings object (spec §8).

Build it in code (``Settings(access_ttl=300)``), from the environment
(``Settings.from_env()`` reads ``KEYFOB_*``), or both (``Settings.from_env(overrides)``).
Durations accept seconds or a unit suffix: ``900``, ``15m``, ``7d``. Secrets print
masked.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from .exceptions import ConfigurationError

__all__ = [
    "FAST_SETTINGS_OVERRIDES",
    "Secret",
    "Settings",
    "load_deployment_secret",
    "parse_duration",
]

logger = logging.getLogger("keyfob")

ReusePolicy = Literal["session", "user"]
SigningAlg = Literal["ES256", "EdDSA", "RS256"]
CookieMode = Literal["secure-path", "host"]
SqliteSync = Literal["full", "normal"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(value: str | float | int) -> float:
    """``"900"`` → 900.0, ``"15m"`` → 900.0, ``"7d"`` → 604800.0."""
    if isinstance(value, bool):
        raise ConfigurationError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigurationError(f"a duration cannot be negative: {value!r}")
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ConfigurationError(
            f"not a duration: {value!r} (use seconds or a suffix s, m, h, d, w: 900, 15m, 7d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


class Secret:
    """A string that never shows itself in repr or str (like Starlette's ``Secret``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every knob keyfob has. Each field is documented where it is declared."""

    #: Where sessions live: ``sqlite:///path.db``, ``postgresql://…`` or ``memory://``.
    store_url: str = "sqlite:///keyfob.db"
    #: The deployment secret (spec §2). Never stored in the database.
    secret: Secret | None = None
    #: A file holding the deployment secret (used when ``secret`` is not given).
    secret_file: str | None = None
    #: Earlier deployment secrets, still accepted for tokens minted under them.
    previous_secrets: tuple[Secret, ...] = ()
    #: ``iss`` of access tokens and metadata; the server's own base URL when empty.
    issuer: str = ""
    #: ``aud`` of access tokens; the issuer when empty.
    audience: str = ""
    #: Access-token lifetime in seconds.
    access_ttl: float = 900.0
    #: Session idle lifetime in seconds: a refresh moves it.
    idle_ttl: float = 7 * 86400.0
    #: Session absolute lifetime in seconds: nothing moves it.
    absolute_ttl: float = 30 * 86400.0
    #: Grace window for the immediately previous refresh token; 0 disables it.
    grace: float = 10.0
    #: What reuse detection revokes: the ``session`` or all of the ``user``'s sessions.
    reuse_policy: ReusePolicy = "session"
    #: Access-token signature algorithm.
    signing_alg: SigningAlg = "ES256"
    #: Origins allowed for cookie-authenticated requests; the issuer's origin when empty.
    allowed_origins: tuple[str, ...] = ()
    #: Optional Redis for shared rate limits and revocation fan-out.
    redis_url: str | None = None
    #: Allow refresh cookies over plain HTTP on hosts other than localhost. Loud.
    insecure_dev_cookies: bool = False
    #: ``secure-path``: ``__Secure-`` cookie scoped to ``/auth``; ``host``: ``__Host-`` on ``/``.
    cookie_mode: CookieMode = "secure-path"
    #: argon2id cost preset (see ``keyfob.core.passwords.PROFILES``).
    password_profile: str = "rfc9106-low-memory"
    #: Minimum password length.
    password_min_length: int = 10
    #: Clock-skew allowance when verifying access tokens, in seconds.
    leeway: float = 30.0
    #: How long a new signing key is published before it signs (JWKS cache lifetime).
    key_publish_delay: float = 300.0
    #: Revoked sessions are kept this long (for the sessions list and forensics) before purge.
    revoked_retention: float = 7 * 86400.0
    #: How many verified access tokens each process remembers (0 disables the cache).
    verified_token_cache_size: int = 10_000
    #: How often each server process re-reads recent revocations from the store, in case
    #: a notification was missed: the longest a revoked session stays usable anywhere.
    revocation_resync_interval: float = 5.0
    #: How often each server process reloads the signing keys (for its JWKS).
    key_reload_interval: float = 60.0
    #: How often expired and long-revoked sessions are purged (one instance at a time).
    purge_interval: float = 3600.0
    #: SQLite ``synchronous``: ``full`` survives power loss, ``normal`` only process crashes.
    sqlite_synchronous: SqliteSync = "full"

    def __post_init__(self) -> None:
        for name in ("access_ttl", "idle_ttl", "absolute_ttl", "grace", "leeway"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} cannot be negative")
        if self.access_ttl <= 0 or self.idle_ttl <= 0 or self.absolute_ttl <= 0:
            raise ConfigurationError("access_ttl, idle_ttl and absolute_ttl must be positive")
        for name in ("revocation_resync_interval", "key_reload_interval", "purge_interval"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        for name, allowed in (
            ("reuse_policy", ReusePolicy),
            ("signing_alg", SigningAlg),
            ("cookie_mode", CookieMode),
            ("sqlite_synchronous", SqliteSync),
        ):
            if getattr(self, name) not in get_args(allowed):
                choices = ", ".join(get_args(allowed))
                raise ConfigurationError(
                    f"{name} must be one of {choices}, not {getattr(self, name)!r}"
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
        """Read ``KEYFOB_<FIELD>`` variables; ``overrides`` (field names) win over them."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("KEYFOB_" + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, raw)
        for name, value in (overrides or {}).items():
            if name not in {f.name for f in fields(cls)}:
                raise ConfigurationError(f"unknown setting: {name}")
            values[name] = _convert(name, value) if isinstance(value, str) else value
        return cls(**values)


_DURATIONS = {
    "access_ttl",
    "idle_ttl",
    "absolute_ttl",
    "grace",
    "leeway",
    "key_publish_delay",
    "revoked_retention",
    "revocation_resync_interval",
    "key_reload_interval",
    "purge_interval",
}


def _convert(name: str, raw: str) -> Any:
    if name in _DURATIONS:
        return parse_duration(raw)
    if name == "secret":
        return Secret(raw)
    if name == "previous_secrets":
        return tuple(Secret(s.strip()) for s in raw.split(",") if s.strip())
    if name == "allowed_origins":
        return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    if name == "insecure_dev_cookies":
        if raw.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(f"KEYFOB_INSECURE_DEV_COOKIES must be true or false, not {raw!r}")
    if name in {"password_min_length", "verified_token_cache_size"}:
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    return raw


#: Settings for tests: cheap password hashing, short lifetimes. Only for testing!
FAST_SETTINGS_OVERRIDES: Mapping[str, Any] = {
    "store_url": "memory://",
    "secret": Secret("test-secret-test-secret-test-secret-0123456789"),
    "password_profile": "cheapest",
    # https: a non-local plain-HTTP issuer would (rightly) refuse the Secure refresh cookie.
    "issuer": "https://testserver",
}

_MIN_SECRET_BYTES = 32


def load_deployment_secret(settings: Settings) -> list[bytes]:
    """The deployment secrets, newest first (spec §8).

    From ``secret``, else ``secret_file``. For a SQLite store with neither, a secret is
    generated once into a ``0600`` file beside the database, with a warning. PostgreSQL
    requires an explicit secret: instances must share it, so generating one would be wrong.
    """
    current: bytes
    if settings.secret is not None:
        current = settings.secret.reveal().encode()
    elif settings.secret_file:
        current = _read_secret_file(Path(settings.secret_file))
    elif settings.store_url.startswith("sqlite:///"):
        current = _generated_secret_beside(Path(settings.store_url.removeprefix("sqlite:///")))
    elif settings.store_url.startswith("memory://"):
        current = secrets.token_urlsafe(48).encode()
    else:
        raise ConfigurationError(
            "KEYFOB_SECRET or KEYFOB_SECRET_FILE is required for this store: every instance "
            "must share the same deployment secret"
        )
    if len(current) < _MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the deployment secret must be at least {_MIN_SECRET_BYTES} bytes"
        )
    previous = [s.reveal().encode() for s in settings.previous_secrets]
    return [current, *previous]


def _read_secret_file(path: Path) -> bytes:
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if not data:
        raise ConfigurationError(f"the secret file {path} is empty")
    return data


def _generated_secret_beside(db_path: Path) -> bytes:
    path = db_path.with_name(db_path.name + ".secret")
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning(
                "the deployment secret file %s is readable by others (mode %o)", path, mode
            )
        return _read_secret_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Write a private temporary file, then link it into place: link() fails if the name
    # exists, so two processes starting at once agree on one secret, and a reader
    # never sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_secret_file(path)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the secret file {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    logger.warning(
        "generated a deployment secret into %s (mode 0600); set KEYFOB_SECRET or "
        "KEYFOB_SECRET_FILE in production and keep it out of backups of the database",
        path,
    )
    return value.encode()
