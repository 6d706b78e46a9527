"""keyfob for Django REST framework: an authentication class and a scope permission.

settings.py (``KEYFOB`` as for :mod:`keyfob.integrations.django`)::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "keyfob.integrations.django_rest_framework.KeyfobAuthentication",
        ],
    }

views.py::

    from keyfob.integrations.django_rest_framework import HasScopes

    class Notes(APIView):
        permission_classes = [HasScopes]
        required_scopes = ["notes:read"]

        def get(self, request):
            return Response({"user": request.auth.user_id})   # request.auth: keyfob.Principal

DRF's conventions hold: a request without a bearer token is anonymous (other
authentication classes may still accept it); a refused token is DRF's 401 with
``WWW-Authenticate: Bearer realm="api", error="invalid_token", ...`` (RFC 6750); a
missing scope is DRF's 403; while the issuer's keys cannot be fetched, 503 with
``Retry-After``. ``request.user`` is a :class:`KeyfobUser` (``is_authenticated``), and
``request.auth`` the :class:`~keyfob.Principal`.
"""

from __future__ import annotations

from typing import Any, NoReturn

try:
    from rest_framework import exceptions
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.permissions import BasePermission
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "keyfob.integrations.django_rest_framework needs Django REST framework: "
        f"pip install 'keyfob[django]' ({exc})"
    ) from exc

from ..core.models import Principal
from ..exceptions import InvalidToken, IssuerUnavailable, MissingCredentials
from ..transports.bearer import bearer_token, www_authenticate
from .django import get_verifier

__all__ = ["HasScopes", "KeyfobAuthentication", "KeyfobUser"]

_REALM = "api"


class KeyfobUser:
    """``request.user`` for a verified access token: who, from which session, and scopes.
    Not a Django model: the user lives in keyfob, the token says who it is."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.pk = self.id = principal.user_id

    def __str__(self) -> str:
        return self.principal.user_id

    def __repr__(self) -> str:
        return f"KeyfobUser({self.principal.user_id!r}, sid={self.principal.sid!r})"

    def has_scopes(self, scopes: Any) -> bool:
        return self.principal.has_scopes(scopes)


class IssuerUnreachable(exceptions.APIException):  # type: ignore[misc]
    """503 while the issuer's keys cannot be fetched; ``wait`` becomes ``Retry-After``."""

    status_code = 503
    default_detail = "the issuer's signing keys could not be fetched yet"
    default_code = "temporarily_unavailable"

    def __init__(self, detail: str, wait: int) -> None:
        super().__init__(detail)
        self.wait = wait


class KeyfobAuthentication(BaseAuthentication):  # type: ignore[misc]
    """Bearer access tokens issued by keyfob, verified locally from its JWKS."""

    def authenticate(self, request: Any) -> tuple[KeyfobUser, Principal] | None:
        authorization = request.META.get("HTTP_AUTHORIZATION")
        try:
            token = bearer_token([authorization] if authorization is not None else [])
        except MissingCredentials:
            return None  # no bearer token: anonymous, or another scheme's business
        except InvalidToken as exc:
            self._refuse(request, exc)
        try:
            principal = get_verifier().verify_access_token(token)
        except InvalidToken as exc:
            self._refuse(request, exc)
        except IssuerUnavailable as exc:
            raise IssuerUnreachable(exc.description, exc.retry_after) from exc
        return KeyfobUser(principal), principal

    def authenticate_header(self, request: Any) -> str:
        # DRF calls this for every 401; the refused token's error goes in the challenge.
        refused: InvalidToken | None = getattr(request, "_keyfob_refused", None)
        if refused is None:
            return www_authenticate(realm=_REALM)
        return www_authenticate(realm=_REALM, error=refused.error, description=refused.description)

    def _refuse(self, request: Any, exc: InvalidToken) -> NoReturn:
        # DRF's authenticate_header gets the underlying Django request.
        request._request._keyfob_refused = exc
        raise exceptions.AuthenticationFailed(exc.description) from exc


class HasScopes(BasePermission):  # type: ignore[misc]
    """The token has every scope in the view's ``required_scopes`` (none: any token)."""

    message = "the access token lacks a scope this resource needs"

    def has_permission(self, request: Any, view: Any) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            return False
        return principal.has_scopes(getattr(view, "required_scopes", ()))
