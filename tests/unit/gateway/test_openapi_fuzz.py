"""Fuzzing the HTTP contract: whatever a client sends, the gateway answers 2xx or 4xx, never 5xx.

schemathesis reads ``/openapi.json`` and, for every operation, generates requests: valid ones
from the schemas (within the declared ranges and lengths) and invalid ones (wrong types,
values just outside the ranges, missing fields). Each goes to the ASGI app in process, no
network, with fake stubs behind it that answer like the real services would.

The main check is ``not_a_server_error``: a 5xx here means the gateway let through something
it cannot handle, which is exactly what the tight schemas exist to prevent. Three more keep
the document honest: every status code, content type and response body the gateway sends is
one that ``/openapi.json`` declares. (``negative_data_rejection`` is left out on purpose: it
expects unknown query parameters such as ``?debug=1`` to be refused, and HTTP APIs
conventionally ignore them.)

The fakes never fail on purpose, so any 5xx is the gateway's own fault. Examples per
operation are capped to keep the run to seconds; raise ``MAX_EXAMPLES`` for a deeper search.
"""

from __future__ import annotations

import uuid

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bookstore.gateway.app import create_app
from bookstore.platform.settings import Settings

from .fakes import bearer, fake_clients

MAX_EXAMPLES = 30

SETTINGS = Settings(service="gateway", jwt_secret="fuzzing-secret-" + "f" * 49)
APP = create_app(SETTINGS, fake_clients(SETTINGS))
AUTHORIZED = bearer(str(uuid.uuid4()), SETTINGS, username="fuzzer")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
# deadline=None: tests never assert on time; a slow CI machine must not turn into a failure.
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_a_documented_answer_and_never_a_server_error(
    case: schemathesis.Case,
) -> None:
    # A valid token on every request, so the fuzzer reaches the order routes' validation and
    # fakes instead of stopping at 401. (Requests without a token are covered in test_auth.)
    case.call_and_validate(headers=AUTHORIZED, checks=CHECKS)
