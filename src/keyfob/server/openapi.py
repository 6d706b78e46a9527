"""The OpenAPI 3.1 document of the server, written by hand as data (served at
``/openapi.json``).

It is the contract the schemathesis run in ``tests/server`` checks the app against:
every status a route can answer is listed, so an undocumented status (a 5xx above all)
fails the run.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..oauth.metadata import JWKS_PATH, METADATA_PATH, TOKEN_PATH
from ..settings import Settings
from ..transports.cookies import CookiePolicy
from ..transports.csrf import CSRF_HEADER
from .requests import MAX_BODY_BYTES

__all__ = ["openapi_document"]

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_TEXT = {"type": "string"}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
    return {**ok, **{code: {"$ref": f"#/components/responses/{code}"} for code in errors}}


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
            "schema": _TEXT,
        }
    return {"description": description, "headers": headers, "content": {_JSON: {"schema": schema}}}


def _no_content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Set-Cookie": {"description": "deletes the refresh cookie", "schema": _TEXT},
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

_COOKIE_AUTH: list[dict[str, list[str]]] = [{"refreshCookie": [], "csrfHeader": []}]
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
                        {"201": _ok("the account", _ref("User"))},
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
                        {"200": _ok("tokens", _ref("Tokens"), no_store=True, cookie=True)},
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
                    "requestBody": _json_body(_ref("RefreshRequest"), required=False),
                    "responses": _responses(
                        {"200": _ok("tokens", _ref("Tokens"), no_store=True, cookie=True)},
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
                    "requestBody": _json_body(_ref("RefreshRequest"), required=False),
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
                        {"200": _ok("how many sessions were revoked", _ref("Revoked"))},
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
                        {"200": _ok("sessions, newest first", _ref("SessionList"))},
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
                    "parameters": [
                        {"name": "sid", "in": "path", "required": True, "schema": _TEXT}
                    ],
                    "responses": _responses({"204": _no_content("revoked")}, "401", "404", "503"),
                }
            },
            "/auth/me": {
                "get": {
                    "summary": "The caller's identity, from the access token",
                    "operationId": "me",
                    "security": _BEARER_AUTH,
                    "responses": _responses({"200": _ok("the caller", _ref("Me"))}, "401", "503"),
                }
            },
            TOKEN_PATH: {
                "post": {
                    "summary": "OAuth 2.0 token endpoint (RFC 6749 §6, refresh_token grant)",
                    "operationId": "token",
                    "requestBody": {
                        "required": True,
                        "content": {_FORM: {"schema": _ref("TokenRequest")}},
                    },
                    "responses": _responses(
                        {"200": _ok("tokens", _ref("OAuthTokens"), no_store=True)},
                        "400",
                        "413",
                        "415",
                        "429",
                        "503",
                    ),
                }
            },
            JWKS_PATH: {
                "get": {
                    "summary": "The public signing keys (RFC 7517)",
                    "operationId": "jwks",
                    "responses": {"200": _ok("the key set", _ref("JWKS"))},
                }
            },
            METADATA_PATH: {
                "get": {
                    "summary": "Authorization-server metadata (RFC 8414)",
                    "operationId": "metadata",
                    "responses": {"200": _ok("the metadata", _ref("Metadata"))},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})},
                }
            },
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
                "csrfHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": CSRF_HEADER,
                    "description": "must be 1 on cookie-authenticated requests",
                },
            },
            "responses": {
                "400": _error("invalid_request, invalid_grant or unsupported_grant_type"),
                "401": _error("invalid_token (RFC 6750)", _WWW_AUTHENTICATE),
                "403": _error("CSRF checks failed (missing header or foreign Origin)"),
                "404": _error("not_found"),
                "409": _error("the username is taken"),
                "413": _error(f"the body is larger than {MAX_BODY_BYTES} bytes"),
                "415": _error("the body is not of the accepted media type"),
                "429": _error("too_many_requests", _RETRY_AFTER),
                "503": _error("temporarily_unavailable: the store is unreachable", _RETRY_AFTER),
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "error_description"],
                    "properties": {"error": _TEXT, "error_description": _TEXT},
                },
                "User": {
                    "type": "object",
                    "required": ["id", "username"],
                    "properties": {"id": _TEXT, "username": _TEXT},
                },
                "RefreshRequest": {
                    "type": "object",
                    "properties": {"refresh_token": _TEXT},
                },
                "Tokens": {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in"],
                    "properties": {
                        "access_token": _TEXT,
                        "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer", "minimum": 0},
                        "refresh_token": {
                            "type": "string",
                            "description": "only with transport body",
                        },
                    },
                },
                "TokenRequest": {
                    "type": "object",
                    "required": ["grant_type", "refresh_token"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["refresh_token"]},
                        "refresh_token": _TEXT,
                        "client_id": _TEXT,
                        "scope": _TEXT,
                    },
                },
                "OAuthTokens": {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in", "refresh_token"],
                    "properties": {
                        "access_token": _TEXT,
                        "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer", "minimum": 0},
                        "refresh_token": _TEXT,
                        "scope": _TEXT,
                    },
                },
                "Revoked": {
                    "type": "object",
                    "required": ["revoked"],
                    "properties": {"revoked": {"type": "integer", "minimum": 0}},
                },
                "SessionList": {
                    "type": "object",
                    "required": ["sessions"],
                    "properties": {"sessions": {"type": "array", "items": _ref("SessionInfo")}},
                },
                "SessionInfo": {
                    "type": "object",
                    "required": [
                        "sid",
                        "client_id",
                        "device",
                        "created_at",
                        "last_used_at",
                        "expires_at",
                        "current",
                    ],
                    "properties": {
                        "sid": _TEXT,
                        "client_id": _TEXT,
                        "device": {
                            "type": "object",
                            "required": ["user_agent", "ip"],
                            "properties": {"user_agent": _TEXT, "ip": _TEXT},
                        },
                        "created_at": {"type": "integer", "description": "unix seconds"},
                        "last_used_at": {"type": "integer", "description": "unix seconds"},
                        "expires_at": {
                            "type": "integer",
                            "description": "unix seconds: the idle or absolute deadline",
                        },
                        "current": {
                            "type": "boolean",
                            "description": "the session of the access token used",
                        },
                    },
                },
                "Me": {
                    "type": "object",
                    "required": ["sub", "sid", "client_id", "scope", "exp"],
                    "properties": {
                        "sub": _TEXT,
                        "sid": _TEXT,
                        "client_id": _TEXT,
                        "scope": _TEXT,
                        "exp": {"type": "integer"},
                    },
                },
                "JWKS": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {
                        "keys": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["kty", "kid"],
                                "properties": {"kty": _TEXT, "kid": _TEXT, "alg": _TEXT},
                            },
                        }
                    },
                },
                "Metadata": {
                    "type": "object",
                    "required": [
                        "issuer",
                        "token_endpoint",
                        "jwks_uri",
                        "response_types_supported",
                    ],
                    "properties": {
                        "issuer": _TEXT,
                        "token_endpoint": _TEXT,
                        "jwks_uri": _TEXT,
                        "grant_types_supported": {"type": "array", "items": _TEXT},
                        "response_types_supported": {"type": "array", "items": _TEXT},
                        "token_endpoint_auth_methods_supported": {
                            "type": "array",
                            "items": _TEXT,
                        },
                    },
                },
            },
        },
    }
