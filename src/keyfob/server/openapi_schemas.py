"""The body shapes of the OpenAPI document (``components/schemas``): requests,
answers and errors of every route, as JSON Schema data."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["TEXT", "component_schemas", "ref"]

TEXT: Final = {"type": "string"}


#: The form parameters of client authentication (RFC 6749 §2.3.1, RFC 7523 §2.2).
_CLIENT_AUTH: Final = {
    "client_id": TEXT,
    "client_secret": {"type": "string", "description": "client_secret_post"},
    "client_assertion_type": {
        "type": "string",
        "description": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    },
    "client_assertion": {"type": "string", "description": "private_key_jwt (RFC 7523)"},
}


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
        "TokenRequest": {"oneOf": [ref("RefreshTokenGrant"), ref("AuthorizationCodeGrant")]},
        "RefreshTokenGrant": {
            "type": "object",
            "description": "RFC 6749 §6",
            "required": ["grant_type", "refresh_token"],
            "properties": {
                "grant_type": {"const": "refresh_token"},
                "refresh_token": TEXT,
                "scope": TEXT,
                **_CLIENT_AUTH,
            },
        },
        "AuthorizationCodeGrant": {
            "type": "object",
            "description": (
                "RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5): redirect_uri as in the "
                "authorization request; code_verifier when it sent a code_challenge"
            ),
            "required": ["grant_type", "code"],
            "properties": {
                "grant_type": {"const": "authorization_code"},
                "code": TEXT,
                "redirect_uri": TEXT,
                "code_verifier": TEXT,
                **_CLIENT_AUTH,
            },
        },
        "TokenActionRequest": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": TEXT,
                "token_type_hint": {
                    "type": "string",
                    "description": "access_token or refresh_token: only a hint, never needed",
                },
                **_CLIENT_AUTH,
            },
        },
        "RevocationFeed": {
            "type": "object",
            "required": ["revocations", "cursor", "access_ttl"],
            "description": "Sessions revoked since the cursor (duplicates possible)",
            "properties": {
                "revocations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["sid", "revoked_at"],
                        "properties": {"sid": TEXT, "revoked_at": {"type": "number"}},
                    },
                },
                "cursor": TEXT,
                "access_ttl": {"type": "number"},
            },
        },
        "Introspection": {
            "type": "object",
            "required": ["active"],
            "description": "RFC 7662 §2.2; only active when true, and then the token's claims",
            "properties": {
                "active": {"type": "boolean"},
                "token_type": {"type": "string", "enum": ["Bearer", "refresh_token"]},
                "client_id": TEXT,
                "sub": TEXT,
                "scope": TEXT,
                "exp": {"type": "integer"},
                "iat": {"type": "integer"},
                "iss": TEXT,
                "aud": TEXT,
                "jti": TEXT,
                "sid": TEXT,
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
                "id_token": {
                    "type": "string",
                    "description": "OpenID Connect sessions (openid scope) only",
                },
            },
        },
        "Userinfo": {
            "type": "object",
            "required": ["sub"],
            "properties": {
                "sub": TEXT,
                "preferred_username": {"type": "string", "description": "profile scope"},
                "updated_at": {"type": "integer", "description": "profile scope"},
            },
        },
        "EndSessionRequest": {
            "type": "object",
            "properties": {
                "id_token_hint": {"type": "string", "maxLength": 8192},
                "post_logout_redirect_uri": {"type": "string", "maxLength": 2048},
                "state": {"type": "string", "maxLength": 1024},
                "client_id": {"type": "string", "maxLength": 128},
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
                "authorization_endpoint": TEXT,
                "token_endpoint": TEXT,
                "jwks_uri": TEXT,
                "grant_types_supported": {"type": "array", "items": TEXT},
                "response_types_supported": {"type": "array", "items": TEXT},
                "response_modes_supported": {"type": "array", "items": TEXT},
                "code_challenge_methods_supported": {"type": "array", "items": TEXT},
                "authorization_response_iss_parameter_supported": {"type": "boolean"},
                "token_endpoint_auth_methods_supported": {
                    "type": "array",
                    "items": TEXT,
                },
                "revocation_endpoint": TEXT,
                "introspection_endpoint": TEXT,
                "keyfob_revocation_feed_endpoint": TEXT,
                "scopes_supported": {"type": "array", "items": TEXT},
                "userinfo_endpoint": TEXT,
                "end_session_endpoint": TEXT,
                "subject_types_supported": {"type": "array", "items": TEXT},
                "id_token_signing_alg_values_supported": {"type": "array", "items": TEXT},
                "claims_supported": {"type": "array", "items": TEXT},
            },
        },
    }
