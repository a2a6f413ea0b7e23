"""schemathesis over docs/openapi.yaml, in-process: every documented operation, with data generated from its schema
(valid and invalid), through the real Lambda handlers on moto (tests/security/http.py). Answers are never a 5xx, use
only documented status codes and content types, and fit their documented schemas."""

from __future__ import annotations

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import REPO
from tests.security.http import LambdaApi
from tests.security.stats import record
from tests.security.strategies import fuzz
from tests.security.webhooks import OPERATOR_KEY

schema = schemathesis.openapi.from_path(REPO / "docs" / "openapi.yaml")
schema.app = LambdaApi()
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@fuzz(30)
def test_every_documented_operation_keeps_its_contract(aws, case):
    # Given a request generated from the operation's documented parameters and body, with the operator key where
    # the operation needs one (the unauthenticated side is fuzzed in test_hostile_operator.py)
    needs_key = bool(case.operation.definition.raw.get("security", [{}]))
    headers = {"x-api-key": OPERATOR_KEY} if needs_key else None
    # When it is sent, Then the answer keeps the documented contract
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    record(response.status_code, verified=False, stored=False)
