"""keyfob for Django APIs that trust a keyfob auth server: middleware and a view decorator.

settings.py::

    KEYFOB = {
        "ISSUER": "https://auth.example.com",     # required
        "AUDIENCE": "https://api.example.com",    # optional: the issuer by default
        "JWKS_URI": None,                         # optional: {ISSUER}/.well-known/jwks.json
        "REVOCATION_FEED": {                      # optional: revocations within a second
            "CLIENT_ID": "notes-api", "CLIENT_SECRET": "...", "MODE": "fail-open",
        },
    }
    MIDDLEWARE = [..., "keyfob.integrations.django.KeyfobMiddleware"]

views.py::

    from keyfob.integrations.django import require_session

    @require_session(scopes=["notes:read"])
    def notes(request):
        return JsonResponse({"user": request.keyfob_principal.user_id})

The middleware gives every request ``request.keyfob_principal``: the verified
:class:`~keyfob.Principal` of its bearer token, or ``None`` (no token, or a refused one).
:func:`require_session` makes a view answer 401/403/503 itself, as keyfob's JSON
``{error, error_description}`` with the RFC 6750 challenge, with or without the middleware.
For Django REST framework, see :mod:`keyfob.integrations.django_rest_framework`.

One :class:`~keyfob.resource_server.RemoteVerifier` per process, built from ``KEYFOB`` on
first use (and again when a test overrides the setting).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

try:
    from django.conf import settings
    from django.core.signals import setting_changed
    from django.http import HttpRequest, HttpResponse, JsonResponse
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"keyfob.integrations.django needs Django: pip install 'keyfob[django]' ({exc})"
    ) from exc

from ..core.models import Principal
from ..exceptions import ConfigurationError, KeyfobError, PermissionDenied
from ..oauth.errors import render_error
from ..resource_server import FeedSettings, RemoteVerifier
from ..transports.bearer import bearer_token

__all__ = [
    "KeyfobMiddleware",
    "error_response",
    "get_verifier",
    "principal_of",
    "require_session",
]

View = TypeVar("View", bound=Callable[..., HttpResponse])

_lock = threading.Lock()
_verifier: RemoteVerifier | None = None


def get_verifier() -> RemoteVerifier:
    """The process's verifier, built from ``settings.KEYFOB`` on first use."""
    global _verifier
    with _lock:
        if _verifier is None:
            config: dict[str, Any] = getattr(settings, "KEYFOB", None) or {}
            issuer = config.get("ISSUER")
            if not issuer:
                raise ConfigurationError('settings.KEYFOB["ISSUER"] must name the auth server')
            feed = config.get("REVOCATION_FEED")
            _verifier = RemoteVerifier(
                issuer,
                audience=config.get("AUDIENCE"),
                jwks_uri=config.get("JWKS_URI"),
                # {"CLIENT_ID": ..., "CLIENT_SECRET": ..., "MODE": "fail-open"|"fail-closed"}
                revocation_feed=_feed_settings(feed) if feed else None,
            )
        return _verifier


def _feed_settings(feed: dict[str, Any]) -> FeedSettings:
    try:
        return FeedSettings(
            client_id=feed["CLIENT_ID"],
            client_secret=feed["CLIENT_SECRET"],
            url=feed.get("URL"),
            mode=feed.get("MODE", "fail-open"),
        )
    except (KeyError, ValueError) as exc:
        raise ConfigurationError(
            'settings.KEYFOB["REVOCATION_FEED"] needs CLIENT_ID and CLIENT_SECRET, and MODE '
            f"fail-open or fail-closed ({exc})"
        ) from None


def _forget_verifier(*, setting: str, **_: Any) -> None:
    global _verifier
    if setting == "KEYFOB":
        with _lock:
            if _verifier is not None:
                _verifier.close()
            _verifier = None


setting_changed.connect(_forget_verifier)


def principal_of(request: HttpRequest) -> Principal:
    """Verify the request's bearer token; raises keyfob's errors (401/503 as their class
    says). Remembered on the request, so a view and the middleware verify once."""
    cached = getattr(request, "_keyfob_principal", None)
    if isinstance(cached, Principal):
        return cached
    authorization = request.headers.get("Authorization")
    principal = get_verifier().verify_access_token(
        bearer_token([authorization] if authorization is not None else [])
    )
    request._keyfob_principal = principal
    return principal


def error_response(exc: KeyfobError) -> JsonResponse:
    """keyfob's JSON answer for ``exc``, with its status and headers."""
    rendered = render_error(exc)
    response = JsonResponse(rendered.body, status=rendered.status)
    for name, value in rendered.headers.items():
        response[name] = value
    return response


def require_session(scopes: Iterable[str] = ()) -> Callable[[View], View]:
    """A view decorator: the request needs a valid access token with these scopes; the
    principal is ``request.keyfob_principal`` inside the view."""
    needed = tuple(scopes)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                principal = principal_of(request)
                if not principal.has_scopes(needed):
                    raise PermissionDenied(
                        "the access token lacks a scope this resource needs",
                        required_scopes=needed,
                    )
            except KeyfobError as exc:
                return error_response(exc)
            request.keyfob_principal = principal
            return view(request, *args, **kwargs)

        return cast(View, wrapper)

    return decorate


class KeyfobMiddleware:
    """Adds ``request.keyfob_principal`` (``None`` without a valid token) to every
    request, and answers keyfob errors raised in views as keyfob's JSON."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        principal: Principal | None = None
        if "Authorization" in request.headers:
            # Verification is local and cached per token: no I/O but a rare JWKS fetch.
            try:
                principal = principal_of(request)
            except KeyfobError:
                principal = None  # routes that need a session answer the error themselves
        request.keyfob_principal = principal
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, KeyfobError):
            return error_response(exception)
        return None
