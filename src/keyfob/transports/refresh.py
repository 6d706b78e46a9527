"""How the refresh token travels over HTTP (spec §5): one object per app, no framework.

The rules, in the order a request meets them:

- **where the cookie may travel**: over HTTPS and to localhost, ``Secure``; over plain
  HTTP to another host only with ``insecure_dev_cookies`` (:mod:`.cookies`);
- **cookie or body**: the token travels in the cookie or in the JSON body, never in
  both (a request that carries both is refused as ambiguous);
- **CSRF**: a request that authenticates with the cookie needs ``X-Keyfob-CSRF: 1``, an
  allowed (or its own) ``Origin`` if it sends one, and no ``Sec-Fetch-Site: cross-site``;
  a cookie login needs the same ``Origin`` (:mod:`.csrf`).

An edge reads what the rules need from its request (the scheme, the headers as a
mapping with lower-case names, as ASGI gives them, and the body's ``refresh_token``)
and turns the answer into its response. :class:`RefreshTransport` never sees a
framework object, so its tests call it with dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

from ..exceptions import InvalidRequest
from ..settings.model import CookieMode
from .cookies import (
    CookiePolicy,
    clear_refresh_cookie,
    read_refresh_cookie,
    refresh_cookie,
    refresh_cookie_max_age,
)
from .csrf import check_csrf, check_origin, normalize_origin, request_origin

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["RefreshTransport"]

#: What :meth:`RefreshTransport.presented_cookies` answers for a request without them.
_NO_COOKIES: Final[tuple[CookiePolicy | None, tuple[str, ...]]] = (None, ())


class RefreshTransport:
    """The refresh-token transport rules of one app: cookie policy, CSRF and ``Origin``
    checks, and the cookie-or-body rule.

    Every method takes plain values (``scheme`` such as ``"https"``; ``headers``, a
    mapping with lower-case names) and returns plain values or raises a keyfob
    exception: :class:`~keyfob.exceptions.InvalidRequest`,
    :class:`~keyfob.exceptions.CSRFRejected` or
    :class:`~keyfob.exceptions.InsecureCookieTransport`.
    """

    __slots__ = ("allowed_origins", "cookie_mode", "insecure_dev_cookies")

    def __init__(
        self,
        *,
        allowed_origins: Iterable[str],
        cookie_mode: CookieMode = "secure-path",
        insecure_dev_cookies: bool = False,
    ) -> None:
        #: Normalized origins, besides the request's own, that may use the cookie.
        self.allowed_origins = frozenset(o for o in map(normalize_origin, allowed_origins) if o)
        self.cookie_mode: CookieMode = cookie_mode
        self.insecure_dev_cookies = insecure_dev_cookies

    @classmethod
    def from_settings(cls, settings: Settings) -> RefreshTransport:
        """The transport of an app built with ``settings``: the allowed origins are
        ``settings.allowed_origins``, or the issuer's origin when there are none."""
        return cls(
            allowed_origins=settings.allowed_origins or (settings.issuer,),
            cookie_mode=settings.cookie_mode,
            insecure_dev_cookies=settings.insecure_dev_cookies,
        )

    def __repr__(self) -> str:
        return (
            f"RefreshTransport(cookie_mode={self.cookie_mode!r}, "
            f"allowed_origins={sorted(self.allowed_origins)!r})"
        )

    # the cookie

    def cookie_policy(self, scheme: str, headers: Mapping[str, str]) -> CookiePolicy | None:
        """The refresh cookie of a request to ``scheme://{Host}``; ``None`` where no
        refresh cookie may travel."""
        return self._policy(scheme, headers.get("host", ""))

    def login_cookie_policy(self, scheme: str, headers: Mapping[str, str]) -> CookiePolicy:
        """The cookie a login that asked for the cookie transport sets.

        Refused over plain HTTP to a non-local host without the development switch
        (``InsecureCookieTransport``), and from a foreign ``Origin`` (``CSRFRejected``:
        a cross-site page must not log the browser into another account).
        """
        host = headers.get("host", "")
        policy = CookiePolicy.required_for_request(
            self.cookie_mode,
            scheme=scheme,
            host=host,
            insecure_dev_cookies=self.insecure_dev_cookies,
        )
        origin = headers.get("origin")
        if origin is not None:
            check_origin(
                origin,
                allowed_origins=self.allowed_origins,
                own_origin=request_origin(scheme, host),
            )
        return policy

    def set_cookie(
        self, policy: CookiePolicy, refresh_token: str, *, absolute_expires_at: float, now: float
    ) -> str:
        """The ``Set-Cookie`` value that stores a refresh token for the rest of its
        session's absolute life."""
        max_age = refresh_cookie_max_age(absolute_expires_at, now)
        return refresh_cookie(policy, refresh_token, max_age=max_age)

    def clear_cookie(self, policy: CookiePolicy) -> str:
        """The ``Set-Cookie`` value that deletes the refresh cookie."""
        return clear_refresh_cookie(policy)

    # the token a request presents

    def presented_cookies(
        self, scheme: str, headers: Mapping[str, str], *, body_token: str | None
    ) -> tuple[CookiePolicy | None, tuple[str, ...]]:
        """The refresh cookies a request carries, in the order sent, and the policy they
        were read under; ``(None, ())`` when it carries none.

        ``body_token`` is the ``refresh_token`` of the request's body, if any. Raises
        ``InvalidRequest`` when the request carries cookies too (ambiguous: refused
        rather than guessed between), and ``CSRFRejected`` when cookies come without
        passing the CSRF checks. More than one value means another cookie of the same
        name (another path or domain) was planted beside ours: the caller refuses that
        or acts on every value, never picks one.
        """
        # One scan on the common path, a body token and no cookie at all.
        if "cookie" not in headers:
            return _NO_COOKIES
        host = headers.get("host", "")
        policy = self._policy(scheme, host)
        if policy is None:
            return _NO_COOKIES
        cookies = read_refresh_cookie(policy, headers["cookie"])
        if not cookies:
            return _NO_COOKIES
        if body_token is not None:
            raise InvalidRequest(
                "the request carries a refresh token in both the cookie and the body"
            )
        check_csrf(
            csrf_header=headers.get("x-keyfob-csrf"),
            origin=headers.get("origin"),
            sec_fetch_site=headers.get("sec-fetch-site"),
            allowed_origins=self.allowed_origins,
            own_origin=request_origin(scheme, host),
        )
        return policy, cookies

    def replaced_cookies(self, scheme: str, headers: Mapping[str, str]) -> tuple[str, ...]:
        """The refresh cookies a login request carries: the sessions the login replaces.

        No CSRF check: the values are only ever used to end their sessions, after a
        login that passed its own checks (a cross-site page cannot post JSON).
        """
        if "cookie" not in headers:
            return ()
        policy = self._policy(scheme, headers.get("host", ""))
        if policy is None:
            return ()
        return read_refresh_cookie(policy, headers["cookie"])

    def _policy(self, scheme: str, host: str) -> CookiePolicy | None:
        return CookiePolicy.for_request(
            self.cookie_mode,
            scheme=scheme,
            host=host,
            insecure_dev_cookies=self.insecure_dev_cookies,
        )
