"""Hostile input against the operator routes and /health, through the real API handler on moto.

Every route of template.yaml but /health and /webhooks/* answers 401 with a JSON reason to a request without the
operator key or with a wrong one, before it reads or changes anything; with the key, any query or body gets a 2xx or a
4xx with a JSON reason that never echoes personal data, never a 5xx."""

from __future__ import annotations

import json
import re
import string

from hypothesis import given
from hypothesis import strategies as st

from tests.integration.conftest import api_event
from tests.security.stats import record
from tests.security.strategies import fuzz, header_maps, hostile_bodies, json_values, path_segments, query_maps
from tests.security.template import api_routes
from tests.security.webhooks import OPERATOR_KEY

PUBLIC = {("GET", "/health")}
OPERATOR_ROUTES = sorted(
    (method, path) for method, path, _ in api_routes() if (method, path) not in PUBLIC and "/webhooks/" not in path
)
WRONG_KEYS = [
    "",
    " ",
    OPERATOR_KEY + " ",
    " " + OPERATOR_KEY,
    OPERATOR_KEY.upper(),
    OPERATOR_KEY[:-1],
    OPERATOR_KEY + "x",
    "Bearer " + OPERATOR_KEY,
    OPERATOR_KEY + "," + OPERATOR_KEY,
    OPERATOR_KEY + "\n",
    OPERATOR_KEY[::-1],
    "\u0000",
    "local-operator-kéy",
]
wrong_keys = st.one_of(st.sampled_from(WRONG_KEYS), st.text(max_size=64)).filter(lambda k: k != OPERATOR_KEY)
routes = st.sampled_from(OPERATOR_ROUTES)
# Personal data an answer must never give back.
pii = st.one_of(st.emails(), st.from_regex(r"\A\+?[0-9]{7,15}\Z"))


def concrete(path: str, segments: list[str]) -> tuple[str, dict[str, str]]:
    """The route's path with its {parameters} filled in, and the path parameters API Gateway would pass."""
    names = re.findall(r"\{(\w+)\}", path)
    params = dict(zip(names, segments, strict=False))
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    return path, params


def request(method: str, route: str, segments: list[str], headers, query, body) -> dict:
    path, params = concrete(route, segments)
    return api_event(
        method,
        path,
        body=body if method != "GET" else None,
        headers=headers,
        query=query or None,
        path_params=params or None,
        resource=route,
    )


def assert_reason(status: int, answer: dict, *sent: str) -> None:
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer.get("error"), str), answer
    assert answer["error"], answer
    for value in sent:
        if "@" in value or sum(c.isdigit() for c in value) >= 7:
            assert value not in answer["error"], answer


@fuzz(250)
@given(
    route=routes,
    segments=st.lists(path_segments, min_size=2, max_size=2),
    key=st.one_of(st.none(), wrong_keys),
    key_name=st.sampled_from(["x-api-key", "X-Api-Key", "X-API-KEY"]),
    headers=header_maps,
    query=query_maps,
    body=hostile_bodies,
)
def test_every_operator_route_refuses_a_missing_or_wrong_key_before_doing_anything(
    operator_api, writes, route, segments, key, key_name, headers, query, body
):
    # Given a request to an operator route without the key, or with a wrong one (any case of the header name)
    method, path = route
    headers = {k: v for k, v in headers.items() if k.lower() != "x-api-key"}
    if key is not None:
        headers[key_name] = key
    # When it arrives
    status, answer = operator_api(request(method, path, segments, headers, query, body))
    calls = writes.take()
    record(status, verified=False, stored=bool(calls))
    # Then 401 with a reason, and nothing was changed
    assert status == 401, (method, path, answer)
    assert answer["error"] in ("missing x-api-key header", "invalid x-api-key")
    assert calls == []


def test_the_key_in_the_query_string_or_another_header_is_not_the_key(operator_api, writes):
    for method, path in OPERATOR_ROUTES:
        for headers, query in (
            ({}, {"x-api-key": OPERATOR_KEY}),
            ({"Authorization": OPERATOR_KEY}, None),
            ({"Authorization": f"Bearer {OPERATOR_KEY}"}, None),
            ({"x-api-key ": OPERATOR_KEY}, None),
            ({"api-key": OPERATOR_KEY}, None),
        ):
            status, answer = operator_api(request(method, path, ["contacts", "1"], headers, query, b"{}"))
            assert (status, answer) == (401, {"error": "missing x-api-key header"}), (method, path)
            assert writes.take() == []


BODY_FIELDS = ("queue", "message_ids", "limit", "receipt_ids", "from", "to", "since", "until", "source")


def operator_bodies() -> st.SearchStrategy[bytes]:
    fields = st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(BODY_FIELDS, json_values)
        | {"continuation_token": st.text(max_size=80), "queue": st.sampled_from(["ingest-dlq", "crm-dlq", "x"])},
    )
    return st.one_of(fields.map(lambda d: json.dumps(d).encode()), hostile_bodies)


@fuzz(250)
@given(
    route=st.one_of(routes, st.just(("GET", "/health"))),
    segments=st.lists(st.one_of(path_segments, pii), min_size=2, max_size=2),
    query=st.one_of(query_maps, st.fixed_dictionaries({"email": pii})),
    body=operator_bodies(),
)
def test_with_the_key_any_input_is_answered_without_a_5xx_or_personal_data(
    operator_api, writes, route, segments, query, body
):
    # Given the operator key and any path parameters, query and body
    method, path = route
    status, answer = operator_api(request(method, path, segments, {"x-api-key": OPERATOR_KEY}, query, body))
    writes.take()  # a redrive or replay may legitimately move messages
    record(status, verified=True, stored=False)
    # Then a 2xx, or a 4xx with a JSON reason that gives back none of the personal data sent
    assert status < 500, (method, path, answer)
    assert isinstance(answer, dict), answer
    if status >= 400:
        assert_reason(status, answer, *segments, *query.values())


@fuzz(60)
@given(headers=header_maps, query=query_maps, segment=st.text(alphabet=string.printable, max_size=8))
def test_health_answers_ok_to_anyone(operator_api, writes, headers, query, segment):
    status, answer = operator_api(request("GET", "/health", [segment], headers, query, None))
    record(status, verified=False, stored=bool(writes.take()))
    assert (status, answer) == (200, {"status": "ok"})
