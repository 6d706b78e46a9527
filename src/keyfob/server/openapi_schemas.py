"""The body shapes of the OpenAPI document (``components/schemas``): requests,
answers and errors of every route, as JSON Schema data."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["TEXT", "component_schemas", "ref"]

TEXT: Final = {"type": "string"}


def ref(name: str) -> dict[str, str]:
    """A reference to the schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def component_schemas() -> dict[str, Any]:
    """Every schema the paths refer to, by name (a new copy on each call)."""
    return {
        "Error": {
            "type": "object",
            "required": ["error", "error_description"],
            "properties": {"error": TEXT, "error_description": TEXT},
        },
        "User": {
            "type": "object",
            "required": ["id", "username"],
            "properties": {"id": TEXT, "username": TEXT},
        },
        "RefreshRequest": {
            "type": "object",
            "properties": {"refresh_token": TEXT},
        },
        "Tokens": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": TEXT,
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
                "refresh_token": TEXT,
                "client_id": TEXT,
                "scope": TEXT,
            },
        },
        "OAuthTokens": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "refresh_token"],
            "properties": {
                "access_token": TEXT,
                "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer", "minimum": 0},
                "refresh_token": TEXT,
                "scope": TEXT,
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
            "properties": {"sessions": {"type": "array", "items": ref("SessionInfo")}},
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
                "sid": TEXT,
                "client_id": TEXT,
                "device": {
                    "type": "object",
                    "required": ["user_agent", "ip"],
                    "properties": {"user_agent": TEXT, "ip": TEXT},
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
                "sub": TEXT,
                "sid": TEXT,
                "client_id": TEXT,
                "scope": TEXT,
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
                        "properties": {"kty": TEXT, "kid": TEXT, "alg": TEXT},
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
                "issuer": TEXT,
                "token_endpoint": TEXT,
                "jwks_uri": TEXT,
                "grant_types_supported": {"type": "array", "items": TEXT},
                "response_types_supported": {"type": "array", "items": TEXT},
                "token_endpoint_auth_methods_supported": {
                    "type": "array",
                    "items": TEXT,
                },
            },
        },
    }
