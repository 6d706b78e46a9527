"""The OpenAPI 3.1 document of the server, written by hand as data (served at
``/openapi.json``).

It is the contract the schemathesis run in ``tests/server`` checks the app against:
every status a route can answer is listed, so an undocumented status (a 5xx above all)
fails the run. The paths and their answers are here; the body shapes they refer to are
in :mod:`.openapi_schemas`.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..oauth.metadata import (
    AUTHORIZE_PATH,
    END_SESSION_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    METADATA_PATH,
    OPENID_CONFIGURATION_PATH,
    REVOCATION_FEED_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)
from ..settings import Settings
from ..transports.cookies import CookiePolicy
from ..transports.csrf import CSRF_HEADER
from .openapi_schemas import TEXT, component_schemas, ref
from .requests import MAX_BODY_BYTES

__all__ = ["openapi_document"]

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_ERROR = ref("Error")


def _json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": schema}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": _ERROR}},
        "headers": {
            "Cache-Control": {"schema": {"const": "no-store"}, "required": True},
            **(headers or {}),
        },
    }
    return out


def _responses(ok: dict[str, dict[str, Any]], *errors: str) -> dict[str, Any]:
    """``ok`` plus the shared error answers named; ``401-client`` is the 401 of client
    authentication (a Basic challenge), the plain ``401`` a bearer token's."""
    return {
        **ok,
        **{code.split("-")[0]: {"$ref": f"#/components/responses/{code}"} for code in errors},
    }


def _ok(
    description: str, schema: dict[str, Any], *, no_store: bool = False, cookie: bool = False
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if no_store:
        headers["Cache-Control"] = {"schema": {"const": "no-store"}, "required": True}
        headers["Pragma"] = {"schema": {"const": "no-cache"}, "required": True}
    if cookie:
        headers["Set-Cookie"] = {
            "description": "the rotated refresh token (cookie transport)",
            "schema": TEXT,
        }
    return {"description": description, "headers": headers, "content": {_JSON: {"schema": schema}}}


def _no_content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Set-Cookie": {"description": "deletes the refresh cookie", "schema": TEXT},
        },
    }


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        "required": True,
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'RFC 6750 challenge, e.g. Bearer realm="keyfob", error="invalid_token"',
        "schema": {"type": "string", "pattern": "^Bearer "},
        "required": True,
    }
}

_BASIC_CHALLENGE = {
    "WWW-Authenticate": {
        "description": 'Basic realm="keyfob": client authentication failed (RFC 6749 §5.2)',
        "schema": {"type": "string", "pattern": "^Basic "},
        "required": True,
    }
}

_COOKIE_AUTH: list[dict[str, list[str]]] = [{"refreshCookie": [], "csrfHeader": []}]
#: A confidential client authenticates (Basic here; or in the form), a public one
#: only names itself: so "none" too, except at introspection.
_CLIENT_AUTH: list[dict[str, list[str]]] = [{"clientBasic": []}, {}]


def _form_body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {_FORM: {"schema": ref(schema_name)}}}


_BEARER_AUTH: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an app built with ``settings``."""
    secure = CookiePolicy.for_request(settings.cookie_mode, scheme="https", host="")
    assert secure is not None  # https always allows the cookie
    cookie_name = secure.name
    credential_properties: dict[str, Any] = {
        "username": {"type": "string", "minLength": 1, "maxLength": 1024},
        "password": {"type": "string", "maxLength": 1024},
    }
    credentials = {
        "type": "object",
        "required": ["username", "password"],
        "properties": credential_properties,
    }
    login = {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            **credential_properties,
            "transport": {
                "type": "string",
                "enum": ["cookie", "body"],
                "default": "cookie",
                "description": "where the refresh token travels",
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "keyfob",
            "version": __version__,
            "description": (
                "Rotating refresh-token sessions: first-party API under /auth, OAuth 2.0 "
                "token endpoint, JWKS and RFC 8414 metadata. Every error is JSON "
                "{error, error_description}."
            ),
        },
        "paths": {
            "/auth/register": {
                "post": {
                    "summary": "Create an account",
                    "operationId": "register",
                    "requestBody": _json_body(credentials),
                    "responses": _responses(
                        {"201": _ok("the account", ref("User"))},
                        "400",
                        "409",
                        "413",
                        "415",
                        "429",
                        "503",
                    ),
                }
            },
            "/auth/login": {
                "post": {
                    "summary": "Log in: start a session",
                    "description": (
                        "The refresh token is set as the refresh cookie (transport cookie, "
                        "the default) or returned as refresh_token (transport body). "
                        "A wrong username or password is 400 invalid_grant (RFC 6749 §5.2)."
                    ),
                    "operationId": "login",
                    "requestBody": _json_body(login),
                    "responses": _responses(
                        {"200": _ok("tokens", ref("Tokens"), no_store=True, cookie=True)},
                        "400",
                        "403",
                        "413",
                        "415",
                        "429",
                        "503",
                    ),
                }
            },
            "/auth/refresh": {
                "post": {
                    "summary": "Rotate the refresh token",
                    "description": (
                        "From the refresh cookie (with the X-Keyfob-CSRF: 1 header) or from "
                        "{refresh_token}; both at once is refused as ambiguous."
                    ),
                    "operationId": "refresh",
                    "security": [*_COOKIE_AUTH, {}],
                    "requestBody": _json_body(ref("RefreshRequest"), required=False),
                    "responses": _responses(
                        {"200": _ok("tokens", ref("Tokens"), no_store=True, cookie=True)},
                        "400",
                        "403",
                        "413",
                        "415",
                        "429",
                        "503",
                    ),
                }
            },
            "/auth/logout": {
                "post": {
                    "summary": "Revoke the current session and delete the refresh cookie",
                    "description": (
                        "By refresh token (cookie or body) or by access token. Idempotent."
                    ),
                    "operationId": "logout",
                    "security": [*_COOKIE_AUTH, *_BEARER_AUTH, {}],
                    "requestBody": _json_body(ref("RefreshRequest"), required=False),
                    "responses": _responses(
                        {"204": _no_content("logged out")},
                        "400",
                        "401",
                        "403",
                        "413",
                        "415",
                        "503",
                    ),
                }
            },
            "/auth/logout-all": {
                "post": {
                    "summary": "Revoke every session of the caller",
                    "operationId": "logoutAll",
                    "security": _BEARER_AUTH,
                    "responses": _responses(
                        {"200": _ok("how many sessions were revoked", ref("Revoked"))},
                        "401",
                        "503",
                    ),
                }
            },
            "/auth/sessions": {
                "get": {
                    "summary": "The caller's live sessions (devices)",
                    "operationId": "listSessions",
                    "security": _BEARER_AUTH,
                    "responses": _responses(
                        {"200": _ok("sessions, newest first", ref("SessionList"))},
                        "401",
                        "503",
                    ),
                }
            },
            "/auth/sessions/{sid}": {
                "delete": {
                    "summary": "Revoke one of the caller's sessions",
                    "operationId": "revokeSession",
                    "security": _BEARER_AUTH,
                    "parameters": [{"name": "sid", "in": "path", "required": True, "schema": TEXT}],
                    "responses": _responses({"204": _no_content("revoked")}, "401", "404", "503"),
                }
            },
            "/auth/me": {
                "get": {
                    "summary": "The caller's identity, from the access token",
                    "operationId": "me",
                    "security": _BEARER_AUTH,
                    "responses": _responses({"200": _ok("the caller", ref("Me"))}, "401", "503"),
                }
            },
            TOKEN_PATH: {
                "post": {
                    "summary": (
                        "OAuth 2.0 token endpoint (RFC 6749: authorization_code with PKCE, "
                        "refresh_token)"
                    ),
                    "description": (
                        "An authorization code is single-use: a second presentation is "
                        "invalid_grant and revokes the session issued from it. The refresh "
                        "token is bound to the client it was issued to. A "
                        "confidential client authenticates (client_secret_basic, "
                        "client_secret_post or private_key_jwt); a public one sends "
                        "client_id; a request naming no client is keyfob's own first-party "
                        "client."
                    ),
                    "operationId": "token",
                    "security": _CLIENT_AUTH,
                    "requestBody": _form_body("TokenRequest"),
                    "responses": _responses(
                        {"200": _ok("tokens", ref("OAuthTokens"), no_store=True)},
                        "400",
                        "401-client",
                        "413",
                        "415",
                        "429",
                        "503",
                    ),
                }
            },
            REVOCATION_PATH: {
                "post": {
                    "summary": "Revoke a refresh or access token and its session (RFC 7009)",
                    "description": (
                        "200 whether or not the token was known, live or the client's."
                    ),
                    "operationId": "revoke",
                    "security": _CLIENT_AUTH,
                    "requestBody": _form_body("TokenActionRequest"),
                    "responses": _responses(
                        {"200": {"description": "revoked, or nothing to revoke"}},
                        "400",
                        "401-client",
                        "413",
                        "415",
                        "503",
                    ),
                }
            },
            INTROSPECTION_PATH: {
                "post": {
                    "summary": "Introspect a token (RFC 7662), confidential clients only",
                    "description": (
                        '{"active": false} for every token that is not active, whatever the reason.'
                    ),
                    "operationId": "introspect",
                    "security": [{"clientBasic": []}],
                    "requestBody": _form_body("TokenActionRequest"),
                    "responses": _responses(
                        {"200": _ok("the token's state", ref("Introspection"), no_store=True)},
                        "400",
                        "401-client",
                        "413",
                        "415",
                        "503",
                    ),
                }
            },
            REVOCATION_FEED_PATH: {
                "get": {
                    "summary": "Long-poll the sessions revoked since a cursor (resource servers)",
                    "description": (
                        "Confidential clients only (HTTP Basic). Without since: every "
                        "revocation still relevant, at once. With since: at once when a "
                        "revocation is newer than the cursor, else after up to wait seconds "
                        "(at most 25). Pass the answer's cursor as the next since."
                    ),
                    "operationId": "revocationFeed",
                    "security": [{"clientBasic": []}],
                    "parameters": [
                        {"name": "since", "in": "query", "required": False, "schema": TEXT},
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "number", "minimum": 0},
                        },
                    ],
                    "responses": _responses(
                        {"200": _ok("revoked sessions", ref("RevocationFeed"), no_store=True)},
                        "400",
                        "401-client",
                        "503",
                    ),
                }
            },
            JWKS_PATH: {
                "get": {
                    "summary": "The public signing keys (RFC 7517)",
                    "operationId": "jwks",
                    "responses": {"200": _ok("the key set", ref("JWKS"))},
                }
            },
            METADATA_PATH: {
                "get": {
                    "summary": "Authorization-server metadata (RFC 8414)",
                    "operationId": "metadata",
                    "responses": {"200": _ok("the metadata", ref("Metadata"))},
                }
            },
            **_oidc_paths(),
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})},
                }
            },
            AUTHORIZE_PATH: _authorize_path(),
            **_operations_paths(settings),
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "refreshCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie_name,
                    "description": (
                        "HttpOnly; Secure; SameSite=Strict refresh-token cookie, Path "
                        f"{secure.path}"
                    ),
                },
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "client_secret_basic: client id and secret (RFC 6749 §2.3.1)",
                },
                "csrfHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": CSRF_HEADER,
                    "description": "must be 1 on cookie-authenticated requests",
                },
            },
            "responses": {
                "400": _error(
                    "invalid_request, invalid_grant, invalid_scope, unauthorized_client or "
                    "unsupported_grant_type"
                ),
                "401": _error("invalid_token (RFC 6750)", _WWW_AUTHENTICATE),
                "401-client": _error("invalid_client (RFC 6749 §5.2)", _BASIC_CHALLENGE),
                "403": _error("CSRF checks failed (missing header or foreign Origin)"),
                "403-scope": _error(
                    "insufficient_scope: the access token lacks a scope (RFC 6750 §3.1)",
                    _WWW_AUTHENTICATE,
                ),
                "404": _error("not_found"),
                "409": _error("the username is taken"),
                "413": _error(f"the body is larger than {MAX_BODY_BYTES} bytes"),
                "415": _error("the body is not of the accepted media type"),
                "429": _error("too_many_requests", _RETRY_AFTER),
                "503": _error("temporarily_unavailable: the store is unreachable", _RETRY_AFTER),
            },
            "schemas": component_schemas(),
        },
    }


def _page(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An HTML page of the authorization endpoint, under the pages' CSP."""
    return {
        "description": description,
        "headers": {
            "Content-Security-Policy": {"schema": TEXT, "required": True},
            "Cache-Control": {"schema": {"const": "no-store"}, "required": True},
            **(headers or {}),
        },
        "content": {"text/html": {"schema": TEXT}},
    }


def _authorize_path() -> dict[str, Any]:
    """``/oauth/authorize``: HTML pages and redirects, not JSON (RFC 6749 §4.1)."""
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "query", "required": required, "schema": schema}
        for name, required, schema in (
            ("response_type", True, {"type": "string", "enum": ["code"]}),
            ("client_id", True, {"type": "string", "minLength": 1, "maxLength": 128}),
            ("redirect_uri", True, {"type": "string", "minLength": 1, "maxLength": 2048}),
            ("scope", False, {"type": "string", "maxLength": 2048}),
            ("state", False, {"type": "string", "maxLength": 2048}),
            ("code_challenge", False, {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"}),
            ("code_challenge_method", False, {"type": "string", "enum": ["S256"]}),
            ("nonce", False, {"type": "string", "maxLength": 512}),
        )
    ]
    redirect = {
        "description": (
            "back to the client's redirect URI with code, state and iss (RFC 9207), or "
            "with error, error_description, state and iss"
        ),
        "headers": {"Location": {"schema": TEXT, "required": True}},
    }
    refused = _page(
        "error page: the client or its redirect URI is unknown or malformed (never a redirect)"
    )
    unavailable = _page("the store is unreachable", _RETRY_AFTER)
    form = {
        "type": "object",
        "properties": {
            "csrf_token": TEXT,
            "step": {"type": "string", "enum": ["login", "consent"]},
            "username": {"type": "string", "maxLength": 1024},
            "password": {"type": "string", "maxLength": 1024},
            "decision": {"type": "string", "enum": ["allow", "deny"]},
            "ticket": TEXT,
        },
    }
    return {
        "get": {
            "summary": "Authorization endpoint (RFC 6749 §4.1.1): the login page",
            "description": (
                "Checks the authorization request and shows the login page. PKCE S256 is "
                "required unless the client is confidential and registered without it."
            ),
            "operationId": "authorize",
            "parameters": parameters,
            "responses": {
                "200": _page("the login page"),
                "303": redirect,
                "400": refused,
                "503": unavailable,
            },
        },
        "post": {
            "summary": "The login and consent forms of the authorization endpoint",
            "description": (
                "Posted by keyfob's own pages to the same URL, with the CSRF token bound "
                "to the browser's cookie."
            ),
            "operationId": "authorizeForm",
            "parameters": parameters,
            "requestBody": {"required": False, "content": {_FORM: {"schema": form}}},
            "responses": {
                "200": _page("the login page again (wrong password) or the consent page"),
                "303": redirect,
                "400": refused,
                "403": _page("a cross-site form, or one without this browser's CSRF token"),
                "413": _page(f"the body is larger than {MAX_BODY_BYTES} bytes"),
                "415": _page("the body is not a URL-encoded form"),
                "429": _page("too many sign-in attempts", _RETRY_AFTER),
                "503": unavailable,
            },
        },
    }


def _oidc_paths() -> dict[str, Any]:
    """OpenID Connect: discovery, userinfo and RP-initiated logout."""
    userinfo = {
        "summary": "Claims about the user of an access token with the openid scope "
        "(OIDC Core §5.3)",
        "security": _BEARER_AUTH,
        "responses": _responses(
            {
                "200": _ok(
                    "sub, and the profile claims with profile", ref("Userinfo"), no_store=True
                )
            },
            "401",
            "403-scope",
            "503",
        ),
    }
    end_session_answers = {
        "200": _page("signed out"),
        "303": {
            "description": "signed out: back to the registered post_logout_redirect_uri, "
            "with state",
            "headers": {"Location": {"schema": TEXT, "required": True}},
        },
        "400": _page("a bad id_token_hint, client_id or unregistered redirect URI"),
        "503": {"$ref": "#/components/responses/503"},
    }
    end_session_description = (
        "OpenID Connect RP-Initiated Logout 1.0: ends the session of the id_token_hint "
        "(an ID token this server issued, expired or not). Answers are pages for the "
        "browser; a redirect only ever goes to a URI registered for the client."
    )
    query = [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in component_schemas()["EndSessionRequest"]["properties"].items()
    ]
    return {
        OPENID_CONFIGURATION_PATH: {
            "get": {
                "summary": "OpenID Provider configuration (OIDC Discovery 1.0 §4), the same "
                "document as the RFC 8414 metadata",
                "operationId": "openidConfiguration",
                "responses": {"200": _ok("the metadata", ref("Metadata"))},
            }
        },
        USERINFO_PATH: {
            "get": {**userinfo, "operationId": "userinfo"},
            "post": {**userinfo, "operationId": "userinfoPost"},
        },
        END_SESSION_PATH: {
            "get": {
                "summary": "End a session (RP-initiated logout)",
                "description": end_session_description,
                "operationId": "endSession",
                "parameters": query,
                "responses": end_session_answers,
            },
            "post": {
                "summary": "End a session (RP-initiated logout), form-encoded",
                "description": end_session_description,
                "operationId": "endSessionPost",
                "requestBody": {
                    "required": False,
                    "content": {_FORM: {"schema": ref("EndSessionRequest")}},
                },
                "responses": {
                    **end_session_answers,
                    "413": _page("the body is too large"),
                    "415": _page("the body is not a form"),
                },
            },
        },
    }


def _operations_paths(settings: Settings) -> dict[str, Any]:
    """Health checks and, with ``KEYFOB_METRICS=on``, metrics (docs/operations.md)."""
    check = {"type": "string", "enum": ["ok", "degraded", "unavailable"]}
    health = {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": check},
        },
    }
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers (no I/O)",
                "operationId": "healthz",
                "responses": {"200": _ok("alive", health, no_store=True)},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: store, signing keys, migrations (and Redis if set)",
                "operationId": "readyz",
                "responses": {
                    "200": _ok("ready (Redis may be degraded)", health, no_store=True),
                    "503": {
                        "description": "not ready",
                        "headers": {**_RETRY_AFTER},
                        "content": {_JSON: {"schema": health}},
                    },
                },
            }
        },
    }
    if settings.metrics == "on":
        paths["/metrics"] = {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain": {"schema": TEXT}},
                    }
                },
            }
        }
    return paths
