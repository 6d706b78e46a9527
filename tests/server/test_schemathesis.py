"""Property-based fuzzing of the whole HTTP surface against the app's own OpenAPI document.

schemathesis generates valid and invalid requests for every operation of
``/openapi.json`` and checks each answer: never a 5xx, only documented statuses, JSON
matching the documented schemas, documented headers present. Protected operations get
a real access token half of the time so the fuzz reaches past authentication.
"""

from __future__ import annotations

import asyncio
import base64
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from keyfob.core.clients import new_client
from keyfob.server import create_app
from keyfob.server.openapi import openapi_document
from keyfob.testing import FAST_SETTINGS, MemoryStore

from .conftest import PASSWORD, unlimited


@schemathesis.check
def negative_data_refused(ctx: Any, response: Any, case: Case) -> bool | None:
    """Schemathesis's negative-data check, also counting 413 (an oversized body) and 415
    as a refusal: keyfob refuses those before it reads the body's content."""
    if response.status_code in (413, 415):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_refused,
    unsupported_method,
]


# A confidential client, so the fuzz of revocation, introspection and both grants gets
# past client authentication half of the time.
STORE = MemoryStore()
asyncio.run(
    STORE.create_client(
        new_client(
            client_id="fuzz-client",
            name="fuzz",
            auth_method="client_secret_basic",
            created_at=0,
            secret="fuzz-secret",
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=["https://fuzz.example/cb"],
        )
    )
)
CLIENT_BASIC = "Basic " + base64.b64encode(b"fuzz-client:fuzz-secret").decode()
# Limits off: a 429 is documented, but it would stop the fuzz at the front door.
APP = create_app(FAST_SETTINGS, STORE, rate_limits=unlimited())
# The document the app serves (checked below); loading it from data keeps collection from
# starting the app. schemathesis runs the app's lifespan itself on the first call.
schema = schemathesis.openapi.from_dict(openapi_document(FAST_SETTINGS))
schema.app = APP


@pytest.fixture(scope="module")
def access_token() -> Iterator[str]:
    """A real access token for the fuzzed app, and a check that it serves this document."""
    with asgi.get_client(APP) as client:
        assert client.get("/openapi.json").json() == openapi_document(FAST_SETTINGS)
        client.post("/auth/register", json={"username": "fuzz", "password": PASSWORD})
        r = client.post(
            "/auth/login", json={"username": "fuzz", "password": PASSWORD, "transport": "body"}
        )
        assert r.status_code == 200, r.text
        yield str(r.json()["access_token"])


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_input_breaks_the_server(case: Case, access_token: str) -> None:
    """Whatever is sent, the answer is documented, well-formed and never a 5xx."""
    headers = None
    security = case.operation.definition.raw.get("security")
    if security and zlib.crc32(repr(case.body).encode()) % 2 == 0:
        if any("clientBasic" in alternative for alternative in security):
            headers = {"Authorization": CLIENT_BASIC}
        else:
            headers = {"Authorization": f"Bearer {access_token}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
