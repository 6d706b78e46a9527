"""The refresh-token cookie (spec §5, §8): name, attributes, and reading it back.

The cookie is ``HttpOnly; Secure; SameSite=Strict``. Its name and path come from the
cookie mode:

========================  =========================  ===========
``cookie_mode``           name                       ``Path``
========================  =========================  ===========
``secure-path`` (default) ``__Secure-keyfob_refresh``  ``/auth``
``host``                  ``__Host-keyfob_refresh``    ``/``
========================  =========================  ===========

``secure-path`` sends the cookie only to the routes under ``/auth`` that need it;
``host`` locks it to this exact host (no ``Domain``, so a sibling subdomain cannot set
or shadow it) at the price of sending it with every request to the host.

Browsers treat ``http://localhost`` (and ``127.0.0.0/8``, ``[::1]``, ``*.localhost``) as
a secure context and store ``Secure`` and prefixed cookies there, so development on
localhost needs no switch. On any other plain-HTTP host a ``Secure`` cookie would be
dropped by the browser, so cookie transport is refused there
(:class:`InsecureCookieTransport`) unless ``insecure_dev_cookies`` is set, which drops
``Secure`` and the prefix.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass

from ..exceptions import InsecureCookieTransport
from ..settings.model import CookieMode

__all__ = [
    "REFRESH_COOKIE_BASENAME",
    "CookiePolicy",
    "clear_refresh_cookie",
    "is_local_host",
    "read_refresh_cookie",
    "refresh_cookie",
    "refresh_cookie_max_age",
]

#: The cookie's name without its prefix.
REFRESH_COOKIE_BASENAME = "keyfob_refresh"


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """Name, path and ``Secure`` flag of the refresh cookie for one request's origin."""

    name: str
    path: str
    secure: bool

    @classmethod
    def for_request(
        cls, mode: CookieMode, *, scheme: str, host: str, insecure_dev_cookies: bool = False
    ) -> CookiePolicy | None:
        """The policy for a request to ``scheme://host``, or ``None`` when no refresh
        cookie may travel there (plain HTTP to a non-local host without the switch)."""
        if scheme.lower() in {"https", "wss"} or is_local_host(host):
            return _policy(mode, True)
        if insecure_dev_cookies:
            return _policy(mode, False)
        return None

    @classmethod
    def required_for_request(
        cls, mode: CookieMode, *, scheme: str, host: str, insecure_dev_cookies: bool = False
    ) -> CookiePolicy:
        """:meth:`for_request` for a client that asked for the cookie: refused with
        :class:`InsecureCookieTransport` where none may travel, rather than setting a
        cookie the browser would drop."""
        policy = cls.for_request(
            mode, scheme=scheme, host=host, insecure_dev_cookies=insecure_dev_cookies
        )
        if policy is None:
            raise InsecureCookieTransport(
                "the refresh cookie needs HTTPS (or http://localhost); use "
                '"transport": "body", or set KEYFOB_INSECURE_DEV_COOKIES for development'
            )
        return policy


@functools.cache
def _policy(mode: CookieMode, secure: bool) -> CookiePolicy:
    # Four policies in all: built once, shared by every request.
    path = "/" if mode == "host" else "/auth"
    if secure:
        prefix = "__Host-" if mode == "host" else "__Secure-"
        return CookiePolicy(name=prefix + REFRESH_COOKIE_BASENAME, path=path, secure=True)
    # No prefix: browsers refuse __Secure-/__Host- cookies without Secure.
    return CookiePolicy(name=REFRESH_COOKIE_BASENAME, path=path, secure=False)


@functools.lru_cache(maxsize=256)
def is_local_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (a browser secure context).

    ``localhost``, ``*.localhost``, ``127.0.0.0/8`` and ``[::1]``, with or without a port.
    (Cached: a server sees few distinct ``Host`` values, and a flood of made-up ones
    only cycles the small cache.)
    """
    name = host.strip().lower()
    if name.startswith("["):
        end = name.find("]")
        name = name[1:end] if end > 0 else ""
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refresh_cookie_max_age(absolute_expires_at: float, now: float) -> int:
    """Seconds the cookie may live: the session's remaining absolute life, never more."""
    return max(0, math.floor(absolute_expires_at - now))


def refresh_cookie(policy: CookiePolicy, value: str, *, max_age: int) -> str:
    """The ``Set-Cookie`` value that stores a refresh token."""
    return _set_cookie(policy, value, max_age)


def clear_refresh_cookie(policy: CookiePolicy) -> str:
    """The ``Set-Cookie`` value that deletes the refresh cookie."""
    return _set_cookie(policy, "", 0)


def _set_cookie(policy: CookiePolicy, value: str, max_age: int) -> str:
    secure = "; Secure" if policy.secure else ""
    return (
        f"{policy.name}={value}; Max-Age={max_age}; Path={policy.path}; HttpOnly{secure}"
        "; SameSite=Strict"
    )


def read_refresh_cookie(policy: CookiePolicy, cookie_header: str | None) -> tuple[str, ...]:
    """Every value of the refresh cookie in a ``Cookie`` header, in the order sent.

    More than one value means another cookie with the same name but a different path
    or domain was planted beside ours; callers refuse that rather than guess.
    """
    if not cookie_header:
        return ()
    values = []
    for pair in cookie_header.split(";"):
        name, sep, value = pair.partition("=")
        if sep and name.strip() == policy.name:
            values.append(value.strip().strip('"'))
    return tuple(values)
