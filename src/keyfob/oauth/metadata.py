"""Authorization-server metadata (RFC 8414) as data.

Only what exists is listed: the authorization endpoint (response type ``code``, answered
in the query, with PKCE ``S256`` only and the RFC 9207 ``iss`` parameter), the token
endpoint with the authorization-code and refresh-token grants, RFC 7009 revocation and
RFC 7662 introspection, the client authentication methods the registry supports (with
the algorithms ``private_key_jwt`` assertions may be signed with), and the keys at
``jwks_uri``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.clients import AUTH_METHODS
from ..core.id_tokens import CLAIMS_SUPPORTED, with_oidc_scopes
from ..core.jwk import ALGORITHMS

__all__ = [
    "AUTHORIZE_PATH",
    "END_SESSION_PATH",
    "INTROSPECTION_PATH",
    "JWKS_PATH",
    "METADATA_PATH",
    "OPENID_CONFIGURATION_PATH",
    "REVOCATION_FEED_PATH",
    "REVOCATION_PATH",
    "TOKEN_PATH",
    "USERINFO_PATH",
    "authorization_server_metadata",
    "openid_provider_metadata",
]

METADATA_PATH = "/.well-known/oauth-authorization-server"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
AUTHORIZE_PATH = "/oauth/authorize"
USERINFO_PATH = "/oauth/userinfo"
END_SESSION_PATH = "/oauth/logout"
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth/token"
REVOCATION_PATH = "/oauth/revoke"
INTROSPECTION_PATH = "/oauth/introspect"
#: keyfob's revocation feed for resource servers (not an RFC endpoint).
REVOCATION_FEED_PATH = "/oauth/revocations"


def authorization_server_metadata(issuer: str, *, scopes: Sequence[str] = ()) -> dict[str, object]:
    """The RFC 8414 document for ``issuer`` (a URL without a trailing slash); ``scopes``
    are the scopes the deployment offers (``scopes_supported``, left out when none)."""
    base = issuer.rstrip("/")
    methods = list(AUTH_METHODS)
    # Introspection needs an authenticated client (RFC 7662 §2.1): "none" is not enough.
    authenticated = [m for m in AUTH_METHODS if m != "none"]
    signing = list(ALGORITHMS)
    document: dict[str, object] = {
        "issuer": base,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        # RFC 9700 §2.1.1: no fragment or form_post answers, and never the implicit grant.
        "response_modes_supported": ["query"],
        # RFC 7636: plain is refused, S256 required of public clients.
        "code_challenge_methods_supported": ["S256"],
        # RFC 9207: every authorization response names its issuer (mix-up defence).
        "authorization_response_iss_parameter_supported": True,
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": signing,
        "revocation_endpoint": base + REVOCATION_PATH,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": signing,
        "introspection_endpoint": base + INTROSPECTION_PATH,
        "introspection_endpoint_auth_methods_supported": authenticated,
        "introspection_endpoint_auth_signing_alg_values_supported": signing,
        # A keyfob extension (RFC 8414 §2 allows more members): the long-poll of revoked
        # sessions for resource servers, client_secret_basic only (a GET has no form).
        "keyfob_revocation_feed_endpoint": base + REVOCATION_FEED_PATH,
    }
    if scopes:
        document["scopes_supported"] = list(scopes)
    return document


def openid_provider_metadata(
    issuer: str, *, scopes: Sequence[str] = (), id_token_signing_algs: Sequence[str] = ("RS256",)
) -> dict[str, object]:
    """The OpenID Provider metadata (OIDC Discovery 1.0 §3): the RFC 8414 document with
    the OpenID Connect members added. keyfob serves this one document at both
    well-known paths, so the two always agree (RFC 8414 §2 registers these members too).
    ``scopes_supported`` always names ``openid`` and ``profile``."""
    base = issuer.rstrip("/")
    document = authorization_server_metadata(issuer, scopes=with_oidc_scopes(scopes))
    document.update(_openid_members(base, id_token_signing_algs))
    return document


def _openid_members(base: str, id_token_signing_algs: Sequence[str]) -> dict[str, object]:
    return {
        "userinfo_endpoint": base + USERINFO_PATH,
        "end_session_endpoint": base + END_SESSION_PATH,
        # Every client sees a user's own id as sub: no pairwise identifiers.
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(id_token_signing_algs),
        "claims_supported": list(CLAIMS_SUPPORTED),
        # Discovery §3 defaults request_uri_parameter_supported to true: say what is not.
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
