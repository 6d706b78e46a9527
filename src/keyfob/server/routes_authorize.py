"""The OAuth 2.0 authorization endpoint (RFC 6749 §4.1): ``GET/POST /oauth/authorize``.

``GET`` checks the request (:mod:`keyfob.core.authorization_requests`) and shows the
login page. Its forms post back to the same URL, query and all, so every POST checks
the request again and keyfob keeps nothing between the steps:

1. ``step=login``: the password, through the same rate limits, throttling and
   known-device cookies as ``/auth/login`` (:mod:`.ratelimit`, :mod:`.known_devices`), so
   the page is no way around them; a wrong username and a wrong password read the same.
   A first-party client then gets its code at once; any other client's user sees
2. the consent page, whose ``step=consent`` POST carries the login ticket
   (:mod:`keyfob.core.authorization_forms`: bound to this browser and this request,
   10 minutes). ``Allow`` makes the code; ``Deny`` sends ``access_denied``.

The answer is a ``303`` to the redirect URI with ``code``, ``state`` (when sent) and
``iss`` (RFC 9207). Refusals about the client or its redirect URI are an HTML page,
never a redirect (RFC 6749 §4.1.2.1); the others go back to the client.

**CSRF.** Every form carries an HMAC of the browser id cookie (signed double submit,
:mod:`keyfob.core.authorization_forms`). The cookie is ``__Host-`` (no sibling domain
can plant one), ``HttpOnly`` and ``SameSite=Lax``: sent with the top-level navigation
that brings the user here (so two open authorization tabs share it), never with a
cross-site POST. A POST whose ``Origin`` names another origin, or whose
``Sec-Fetch-Site`` is ``cross-site``, is refused as well. (``Origin: null`` is let
through to the token check: the pages' ``Referrer-Policy: no-referrer`` makes browsers
send it on their own forms.)

**Transport.** Like the refresh cookie, the page needs HTTPS, or plain HTTP to this
machine (a browser secure context), or ``KEYFOB_INSECURE_DEV_COOKIES``: elsewhere the
password would cross the network in the clear and the cookies would be dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.authorization_forms import FormKeys, LoginTicket, is_browser_id, new_browser_id
from ..core.authorization_requests import (
    AuthorizationRequest,
    Refusal,
    parse_parameters,
    redirect_source,
    redirect_with,
    requested_client_id,
    validate_request,
)
from ..core.clients import Client
from ..exceptions import (
    AuthenticationFailed,
    KeyfobError,
    RateLimited,
    StoreUnavailable,
)
from ..oauth.errors import NO_STORE_HEADERS
from ..oauth.metadata import AUTHORIZE_PATH
from ..settings import load_deployment_secret
from ..transports.cookies import CookiePolicy, read_refresh_cookie
from ..transports.csrf import normalize_origin, request_origin
from .context import ServerContext, client_address, request_scheme
from .known_devices import KnownDevices
from .pages import render_page
from .ratelimit import account_key
from .request_log import note_error
from .requests import read_form

__all__ = ["SCOPE_DESCRIPTIONS", "AuthorizeRoutes"]

#: What the consent page says a scope lets the client do; other scopes are listed by name.
SCOPE_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "openid": "confirm who you are",
    "profile": "see your username",
    "email": "see your email address",
    "offline_access": "stay signed in while you are away",
}

_BROWSER_COOKIE: Final = "keyfob_authorize"
_MAX_CREDENTIAL: Final = 1024

_ERROR_TITLES: Final[Mapping[int, str]] = {
    400: "This sign-in request cannot be used",
    403: "This form was not accepted",
    413: "This form was not accepted",
    415: "This form was not accepted",
    429: "Too many attempts",
    503: "Sign-in is unavailable right now",
}


@dataclass(frozen=True, slots=True)
class _Checked:
    """An authorization request that may go ahead, and the browser it came from."""

    client: Client
    request: AuthorizationRequest
    #: The refresh cookie's policy for this origin (prefix, Secure, path).
    cookies: CookiePolicy
    browser_id: str | None
    #: CSP sources of the redirect URI, for the pages' ``form-action``.
    form_action: tuple[str, ...]


class AuthorizeRoutes:
    """The authorization endpoint of one app."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.manager = ctx.manager
        self.limiter = ctx.limiter
        self.transport = ctx.transport
        secrets_newest_first = load_deployment_secret(ctx.settings)
        self.devices = KnownDevices(secrets_newest_first)
        self.forms = FormKeys(secrets_newest_first)
        self.issuer = ctx.settings.issuer.rstrip("/")
        self.offered_scopes = frozenset(ctx.settings.scopes)

    def routes(self) -> list[Route]:
        return [Route(AUTHORIZE_PATH, self.authorize, methods=["GET", "POST"])]

    async def authorize(self, request: Request) -> Response:
        try:
            checked = await self._check(request)
            if isinstance(checked, Response):
                return checked
            if request.method == "POST":
                return await self._post(request, checked)
            return self._login_page(checked)
        except KeyfobError as exc:
            if exc.status_code >= 500 and not isinstance(exc, StoreUnavailable):
                raise  # keyfob's own fault: the app's handler logs it and answers 500
            note_error(exc)
            retry = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
            return _error_page(exc.status_code, exc.description, retry)

    # checking the request

    async def _check(self, request: Request) -> _Checked | Response:
        params = parse_parameters(request.scope.get("query_string", b""))
        if isinstance(params, Refusal):
            return _error_page(400, params.description)
        client_id = requested_client_id(params)
        if isinstance(client_id, Refusal):
            return _error_page(400, client_id.description)
        client = await self.manager.clients.get(client_id)
        if client is None:
            return _error_page(400, "the application is not registered with keyfob (client_id)")
        checked = validate_request(params, client, offered_scopes=self.offered_scopes)
        if isinstance(checked, Refusal):
            if checked.redirect_uri is None:
                return _error_page(400, checked.description)
            return self._redirect(
                checked.redirect_uri,
                {
                    "error": checked.error,
                    "error_description": checked.description,
                    "state": checked.state,
                },
            )
        cookies = self.transport.cookie_policy(request_scheme(request), request.headers)
        if cookies is None:
            return _error_page(400, "sign-in needs HTTPS: this page was reached over plain HTTP")
        source = redirect_source(checked.redirect_uri)
        return _Checked(
            client=client,
            request=checked,
            cookies=cookies,
            browser_id=self._browser_id(cookies, request.headers.get("cookie")),
            form_action=() if source is None else (source,),
        )

    # the POST steps

    async def _post(self, request: Request, checked: _Checked) -> Response:
        refusal = self._cross_site(request)
        if refusal is not None:
            return _error_page(403, refusal)
        if checked.browser_id is None:
            return _error_page(
                403, "your browser did not send keyfob's cookie: allow cookies and start again"
            )
        form = await read_form(request)
        if not self.forms.csrf_valid(checked.browser_id, form.get("csrf_token", "")):
            return _error_page(403, "the form is not this browser's: start again")
        step = form.get("step")
        if step == "login":
            return await self._login(request, checked, checked.browser_id, form)
        if step == "consent":
            return await self._consent(checked, checked.browser_id, form)
        return _error_page(400, "the form is incomplete: start again")

    async def _login(
        self, request: Request, checked: _Checked, browser_id: str, form: Mapping[str, str]
    ) -> Response:
        username = form.get("username", "")
        password = form.get("password", "")
        if not username or not password:
            return self._login_page(checked, error="Enter your username and password.")
        if len(username) > _MAX_CREDENTIAL or len(password) > _MAX_CREDENTIAL:
            return self._login_page(
                checked, error="The username or password is too long.", status=400
            )
        address = client_address(request)
        account = account_key(username)
        devices = self._device_policy(checked.cookies)
        known = self.devices.identify(devices, request.headers.get("cookie"), account)
        try:
            await self.limiter.check_login(address, username, device=known)
        except RateLimited as exc:
            note_error(exc)
            return self._login_page(
                checked,
                username=username,
                error=(
                    f"Too many sign-in attempts. Wait {_duration(exc.retry_after)}, then try again."
                ),
                status=429,
                headers={"Retry-After": str(exc.retry_after)},
            )
        try:
            user = await self.manager.authenticate(username, password, ip=address)
        except AuthenticationFailed:
            throttle = await self.limiter.login_failed(address, username, device=known)
            if throttle is not None:
                await self.manager.accounts.record_throttled(
                    username, ip=address, detail=throttle.detail
                )
            # One message for an unknown user and a wrong password: no enumeration.
            return self._login_page(checked, username=username, error="Wrong username or password.")
        await self.limiter.login_succeeded(address, username, device=known)
        ticket = LoginTicket(user_id=user.id, auth_time=self.manager.clock.now())
        device_cookie = self.devices.set_cookie(devices, account)
        if checked.client.first_party:
            response = await self._issue_code(checked, ticket)
        else:
            response = render_page(
                "consent.html",
                {
                    "title": "Allow access?",
                    "client_name": checked.client.name,
                    "scopes": [
                        {"name": s, "description": SCOPE_DESCRIPTIONS.get(s, "use the scope")}
                        for s in checked.request.scopes
                    ],
                    "username": user.username,
                    "csrf_token": self.forms.csrf_token(browser_id),
                    "ticket": self.forms.mint_ticket(
                        ticket,
                        browser_id=browser_id,
                        request=checked.request,
                        now=self.manager.clock.now(),
                    ),
                },
                form_action=checked.form_action,
            )
        response.headers.append("set-cookie", device_cookie)
        return response

    async def _consent(
        self, checked: _Checked, browser_id: str, form: Mapping[str, str]
    ) -> Response:
        decision = form.get("decision")
        if decision == "deny":
            return self._redirect(
                checked.request.redirect_uri,
                {
                    "error": "access_denied",
                    "error_description": "the user denied access",
                    "state": checked.request.state,
                },
            )
        if decision != "allow":
            return _error_page(400, "the form is incomplete: start again")
        ticket = self.forms.open_ticket(
            form.get("ticket", ""),
            browser_id=browser_id,
            request=checked.request,
            now=self.manager.clock.now(),
        )
        if ticket is None:
            return self._login_page(checked, error="Your sign-in has expired. Sign in again.")
        return await self._issue_code(checked, ticket)

    async def _issue_code(self, checked: _Checked, ticket: LoginTicket) -> Response:
        request = checked.request
        code = await self.manager.create_authorization_code(
            user_id=ticket.user_id,
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            code_challenge=request.code_challenge,
            nonce=request.nonce,
            auth_time=ticket.auth_time,
        )
        return self._redirect(request.redirect_uri, {"code": code, "state": request.state})

    # pages, redirects and cookies

    def _login_page(
        self,
        checked: _Checked,
        *,
        username: str = "",
        error: str = "",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        browser_id = checked.browser_id if checked.browser_id is not None else new_browser_id()
        response = render_page(
            "login.html",
            {
                "title": "Sign in",
                "client_name": checked.client.name,
                "csrf_token": self.forms.csrf_token(browser_id),
                "username": username,
                "error": error,
            },
            status=status,
            headers=headers,
            form_action=checked.form_action,
        )
        if checked.browser_id is None:  # a new browser: give it its id
            response.headers.append("set-cookie", _browser_cookie(checked.cookies, browser_id))
        return response

    def _redirect(self, redirect_uri: str, params: Mapping[str, str | None]) -> Response:
        location = redirect_with(redirect_uri, {**params, "iss": self.issuer})
        return Response(None, 303, {**NO_STORE_HEADERS, "Location": location})

    def _browser_id(self, cookies: CookiePolicy, header: str | None) -> str | None:
        for value in read_refresh_cookie(_browser_policy(cookies), header):
            if is_browser_id(value):
                return value
        return None

    @staticmethod
    def _device_policy(cookies: CookiePolicy) -> CookiePolicy:
        """The known-device cookie of this page: the refresh cookie's name and flags
        (``KnownDevices`` renames it), on a path this endpoint receives."""
        path = "/" if cookies.path == "/" else AUTHORIZE_PATH
        return CookiePolicy(name=cookies.name, path=path, secure=cookies.secure)

    def _cross_site(self, request: Request) -> str | None:
        """Why a POST is refused as cross-site, or ``None``."""
        if request.headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
            return "the form was sent from another site"
        origin = request.headers.get("origin")
        if origin is None or origin.strip() == "null":
            return None
        own = request_origin(request_scheme(request), request.headers.get("host", ""))
        normalized = normalize_origin(origin)
        if not normalized or (
            normalized != own and normalized not in self.transport.allowed_origins
        ):
            return "the form was sent from another site"
        return None


def _browser_policy(cookies: CookiePolicy) -> CookiePolicy:
    """``__Host-keyfob_authorize`` at ``/`` (no sibling domain can plant a ``__Host-``
    cookie); without the prefix and ``Secure`` only under ``KEYFOB_INSECURE_DEV_COOKIES``."""
    if cookies.secure:
        return CookiePolicy(name="__Host-" + _BROWSER_COOKIE, path="/", secure=True)
    return CookiePolicy(name=_BROWSER_COOKIE, path="/", secure=False)


def _browser_cookie(cookies: CookiePolicy, browser_id: str) -> str:
    policy = _browser_policy(cookies)
    secure = "; Secure" if policy.secure else ""
    # A session cookie: Lax, so it comes along with the client's top-level redirect here.
    return f"{policy.name}={browser_id}; Path={policy.path}; HttpOnly{secure}; SameSite=Lax"


def _error_page(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    title = _ERROR_TITLES.get(status, "This sign-in request cannot be used")
    if "_" not in message.split(" ", 1)[0]:  # a parameter name keeps its spelling
        message = message[:1].upper() + message[1:]
    if not message.endswith("."):
        message += "."
    return render_page(
        "error.html", {"title": title, "message": message}, status=status, headers=headers
    )


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{-(-seconds // 60)} minutes"
