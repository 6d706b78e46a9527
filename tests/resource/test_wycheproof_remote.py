"""Wycheproof's JWS and JWK vectors through a resource server's RemoteVerifier.

Each test group's key set is served as the issuer's JWKS; every case the vectors mark
``invalid`` must be refused (none of these JWS is an ``at+jwt`` access token for this
issuer, so nothing may ever be accepted: a refusal at key loading is a 503, anything else
an ``InvalidToken``). ``tests/core/test_wycheproof.py`` checks the valid cases verify in
the layer below.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from keyfob.exceptions import InvalidToken, IssuerUnavailable
from keyfob.resource_server import RemoteVerifier
from tests.core.test_wycheproof import VECTORS


def _cases() -> list[Any]:
    params = []
    for name in ("json_web_signature_test.json", "json_web_key_test.json"):
        for group in json.loads((VECTORS / name).read_text())["testGroups"]:
            jwk = group.get("public", group["private"])
            jwks = jwk if "keys" in jwk else {"keys": [jwk]}
            for case in group["tests"]:
                params.append(pytest.param(jwks, case, id=f"{name[:-10]}-tc{case['tcId']}"))
    return params


@pytest.mark.parametrize(("jwks", "case"), _cases())
def test_no_vector_is_accepted_as_an_access_token(
    jwks: dict[str, Any], case: dict[str, Any]
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=jwks))
    verifier = RemoteVerifier("https://issuer.test", http_client=httpx.Client(transport=transport))
    with verifier, pytest.raises((InvalidToken, IssuerUnavailable)):
        verifier.verify_access_token(case["jws"])
