"""keyfob for Flask APIs that trust a keyfob auth server: an extension and a decorator.

    from flask import Flask
    from keyfob.integrations.flask import Keyfob, current_principal, require_session

    app = Flask(__name__)
    app.config["KEYFOB_ISSUER"] = "https://auth.example.com"  # also KEYFOB_AUDIENCE, _JWKS_URI
    Keyfob(app)                                               # or keyfob.init_app(app)

    @app.get("/notes")
    @require_session(scopes=["notes:read"])
    def notes():
        return {"user": current_principal.user_id}

Tokens are verified locally by a :class:`~keyfob.resource_server.RemoteVerifier` (one per
app, built by :meth:`Keyfob.init_app` from the config, or passed in). A refused request
gets keyfob's answer as JSON ``{error, error_description}``: 401 with an RFC 6750
``WWW-Authenticate: Bearer`` challenge (bare when no token was sent), 403
``insufficient_scope`` naming the scopes, 503 with ``Retry-After`` while the issuer's keys
cannot be fetched. The principal of the request is ``flask.g.keyfob_principal``, also
reachable as :data:`current_principal`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

try:
    from flask import Flask, Response, current_app, g, jsonify, request
    from werkzeug.local import LocalProxy
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"keyfob.integrations.flask needs Flask: pip install 'keyfob[flask]' ({exc})"
    ) from exc

from ..core.models import Principal
from ..exceptions import ConfigurationError, KeyfobError, PermissionDenied
from ..oauth.errors import render_error
from ..resource_server import FeedSettings, RemoteVerifier
from ..transports.bearer import bearer_token

__all__ = ["Keyfob", "current_principal", "require_session"]

View = TypeVar("View", bound=Callable[..., Any])

_EXTENSION = "keyfob"


class Keyfob:
    """The Flask extension: holds the app's verifier and answers keyfob's errors."""

    def __init__(self, app: Flask | None = None, *, verifier: RemoteVerifier | None = None):
        self._verifier = verifier
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        verifier = self._verifier
        if verifier is None:
            issuer = app.config.get("KEYFOB_ISSUER")
            if not issuer:
                raise ConfigurationError("set app.config['KEYFOB_ISSUER'] to the auth server")
            feed_client = app.config.get("KEYFOB_FEED_CLIENT_ID")
            verifier = RemoteVerifier(
                issuer,
                audience=app.config.get("KEYFOB_AUDIENCE"),
                jwks_uri=app.config.get("KEYFOB_JWKS_URI"),
                # Revocations within a second: a confidential client registered at keyfob.
                revocation_feed=FeedSettings(
                    client_id=feed_client,
                    client_secret=app.config.get("KEYFOB_FEED_CLIENT_SECRET", ""),
                    mode=app.config.get("KEYFOB_FEED_MODE", "fail-open"),
                )
                if feed_client
                else None,
            )
        app.extensions[_EXTENSION] = verifier
        app.register_error_handler(KeyfobError, _error_response)

    @staticmethod
    def verifier_of(app: Flask) -> RemoteVerifier:
        try:
            return cast(RemoteVerifier, app.extensions[_EXTENSION])
        except KeyError:
            raise ConfigurationError("Keyfob(app) was not set up for this Flask app") from None


def require_session(scopes: Iterable[str] = ()) -> Callable[[View], View]:
    """A view decorator: the request needs a valid access token with these scopes."""
    needed = tuple(scopes)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verifier = Keyfob.verifier_of(current_app)
            token = bearer_token(request.headers.getlist("Authorization"))
            principal = verifier.verify_access_token(token)
            if not principal.has_scopes(needed):
                raise PermissionDenied(
                    "the access token lacks a scope this resource needs",
                    required_scopes=needed,
                )
            g.keyfob_principal = principal
            return view(*args, **kwargs)

        return cast(View, wrapper)

    return decorate


def _current_principal() -> Principal:
    principal = g.get("keyfob_principal")
    if principal is None:
        raise RuntimeError("current_principal is set only inside a @require_session view")
    return cast(Principal, principal)


#: The principal of the request being handled, inside a ``@require_session`` view.
current_principal: Principal = cast(Principal, LocalProxy(_current_principal))


def _error_response(exc: KeyfobError) -> Response:
    rendered = render_error(exc)
    response = jsonify(rendered.body)
    response.status_code = rendered.status
    response.headers.update(rendered.headers)
    return response
