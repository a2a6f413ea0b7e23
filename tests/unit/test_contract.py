"""The HTTP contract stays in step: the OpenAPI document is valid and names exactly the routes template.yaml
deploys, and every file in events/ is invoked by some test."""

from __future__ import annotations

import re

import yaml
from openapi_spec_validator import validate

from tests.conftest import EVENTS, REPO
from tests.integration.conftest import template_resources


def deployed_routes() -> set[tuple[str, str]]:
    routes = set()
    for resource in template_resources().values():
        for event in (resource.get("Properties") or {}).get("Events", {}).values():
            if event["Type"] == "Api":
                routes.add((event["Properties"]["Method"].lower(), event["Properties"]["Path"]))
    return routes


def test_openapi_document_is_valid_and_matches_the_template():
    # Given the OpenAPI document and the template
    spec = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    # Then the document is valid OpenAPI
    validate(spec)
    # And it documents exactly the routes the template deploys
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert documented == deployed_routes()


def test_every_event_file_is_used_by_a_test():
    # Given every sample event, Then some test loads it by name (no Docker here: tests prove the events work)
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    used = set(re.findall(r'"([a-z0-9-]+\.json)"', sources))
    assert {p.name for p in EVENTS.glob("*.json")} <= used
