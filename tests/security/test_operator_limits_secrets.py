"""The operator key on every route that needs it (compared in constant time), per-source throttling in the API stage,
and secrets: none in template.yaml, webhook secrets and the operator key only from Secrets Manager, cached, with
several values at once for rotation."""

from __future__ import annotations

import ast
import hmac
import json
import re
from typing import Any

import pytest

from crmsync.webhooks import SOURCES as REGISTRY
from tests.conftest import REPO
from tests.integration.conftest import api_event
from tests.security.template import TEMPLATE, api_routes, functions, source, transformed
from tests.security.webhooks import OPERATOR_KEY, SAMPLES, WEBHOOK_SECRETS, sign_headers, webhook_event

OPERATOR_ROUTES = sorted(
    (method, path) for method, path, _ in api_routes() if path != "/health" and not path.startswith("/webhooks/")
)


def concrete(path: str) -> tuple[str, dict[str, str] | None]:
    names = re.findall(r"\{(\w+)\}", path)
    params = {name: "contacts" if name == "type" else "x1" for name in names}
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    return path, params or None


# ---- the operator key -----------------------------------------------------------------------------------------------


def test_only_health_and_the_webhooks_are_public():
    public = {(m, p) for m, p, _ in api_routes()} - set(OPERATOR_ROUTES)
    assert public == {("GET", "/health")} | {(m, p) for m, p, _ in api_routes() if p.startswith("/webhooks/")}
    assert len(OPERATOR_ROUTES) >= 7


@pytest.mark.parametrize(
    ("key", "status", "reason"),
    [(None, 401, "missing x-api-key header"), ("wrong-key", 401, "invalid x-api-key"), (OPERATOR_KEY, None, None)],
    ids=["no-key", "wrong-key", "operator-key"],
)
def test_every_operator_route_of_the_template_needs_the_key(operator_api, key, status, reason):
    for method, route in OPERATOR_ROUTES:
        path, params = concrete(route)
        headers = {"x-api-key": key} if key else {}
        answer_status, answer = operator_api(
            api_event(method, path, headers=headers, path_params=params, resource=route, body=b"{}")
        )
        if status is None:  # the key opens it (the route may still find the request wanting)
            assert answer_status not in (401, 403), (method, route, answer)
            assert answer_status < 500, (method, route, answer)
        else:
            assert (answer_status, answer) == (status, {"error": reason}), (method, route)


def test_the_key_is_compared_in_constant_time_with_every_configured_key(monkeypatch):
    from crmsync.api import auth

    # The module compares with hmac.compare_digest and never with ==, != or `in` on the presented key
    tree = ast.parse((REPO / "layers/core/crmsync/api/auth.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "hmac.compare_digest"]
    assert calls
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq | ast.In) for op in node.ops):
            assert "presented" not in ast.unparse(node), ast.unparse(node)
            assert "key" not in ast.unparse(node), ast.unparse(node)
    # And every configured key costs one comparison, wherever the match is (no early exit)
    seen: list[bytes] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        seen.append(b)
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # the module auth compares with
    keys = ["new", "current", "old"]
    for presented in keys:
        seen.clear()
        auth.check_operator_key(presented, keys)
        assert len(seen) == len(keys)


def test_the_operator_key_rotates_through_secrets_manager(aws, operator_api, monkeypatch):
    # Given the operator key secret holds a new key and the old one, newline-separated, and no cache
    monkeypatch.setenv("SECRET_MAX_AGE_SECONDS", "0")
    aws.client("secretsmanager").put_secret_value(
        SecretId=aws.env["API_KEY_SECRET_ID"], SecretString=f"new-operator-key\n{OPERATOR_KEY}\n"
    )
    # Then both keys open the API, and nothing else does
    for key, status in (("new-operator-key", 200), (OPERATOR_KEY, 200), ("new-operator-key\n", 401), ("", 401)):
        answer = operator_api(api_event("GET", "/customers", headers={"x-api-key": key}, query={"email": "a@b.c"}))
        assert answer[0] == status, (key, answer)


# ---- size limits and throttling -------------------------------------------------------------------------------------


def test_each_source_has_its_own_route_throttled_on_its_own_by_documented_parameters():
    template = source()
    parameters = template["Parameters"]
    settings = template["Resources"]["CrmsyncApi"]["Properties"]["MethodSettings"]
    by_path = {(s["ResourcePath"], s["HttpMethod"]): s for s in settings}
    routes = {(m, p) for m, p, f in api_routes() if f == "IngestFunction"}
    for name in REGISTRY:
        # Every source of the registry is a route of its own (API Gateway throttles per resource and method) ...
        assert ("POST", f"/webhooks/{name}") in routes
        setting = by_path[(f"/~1webhooks~1{name}", "POST")]
        # ... with the webhook limits
        assert setting["ThrottlingRateLimit"] == {"Ref": "WebhookThrottleRateLimit"}
        assert setting["ThrottlingBurstLimit"] == {"Ref": "WebhookThrottleBurstLimit"}
    # Every other route gets the operator limits; unknown source names still get their 404 from the code
    assert ("POST", "/webhooks/{source}") in routes
    default = by_path[("/*", "*")]
    assert default["ThrottlingRateLimit"] == {"Ref": "OperatorThrottleRateLimit"}
    assert default["ThrottlingBurstLimit"] == {"Ref": "OperatorThrottleBurstLimit"}
    # And every limit is a documented parameter with a floor
    for parameter in ("WebhookThrottleRateLimit", "WebhookThrottleBurstLimit"):
        assert parameters[parameter]["Type"] == "Number"
        assert parameters[parameter]["MinValue"] >= 1
        assert parameters[parameter]["Description"]
        assert parameter in (REPO / "README.md").read_text()
    for parameter in ("OperatorThrottleRateLimit", "OperatorThrottleBurstLimit"):
        assert parameters[parameter]["MinValue"] >= 1
        assert parameters[parameter]["Description"]
    # And SAM hands them to the deployed stage
    [stage] = [r for r in transformed()["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert len(stage["Properties"]["MethodSettings"]) == len(settings)


def test_a_source_route_of_its_own_is_served_like_the_parameterised_one(aws, ingest, paypal_key):
    # Given a delivery as API Gateway sends it on /webhooks/stripe: no path parameters
    for name in ("stripe", "shopify"):
        body = SAMPLES[name]
        event = webhook_event(name, body, sign_headers(name, body, paypal_key))
        event["pathParameters"], event["resource"] = None, f"/webhooks/{name}"
        assert ingest(event) == (200, {"status": "accepted", "receipt_id": ingest(event)[1]["receipt_id"]})


def test_the_body_limit_is_a_setting_enforced_before_anything_is_read(aws, ingest, monkeypatch):
    from crmsync.settings import Settings

    assert Settings().max_body_bytes == 1024 * 1024
    monkeypatch.setenv("MAX_BODY_BYTES", "10")
    status, answer = ingest(webhook_event("shopify", b'{"id": 12345}', {}))
    assert (status, answer) == (413, {"error": "body larger than 10 bytes"})


# ---- secrets --------------------------------------------------------------------------------------------------------

SECRETISH = re.compile(r"SECRET|TOKEN|PASSWORD|PASSPHRASE|CREDENTIAL|API_?KEY|PRIVATE", re.IGNORECASE)
# What secret values look like: the test secrets, Stripe / Shopify / HubSpot tokens, private keys.
SECRET_VALUES = re.compile(
    r"(?:whsec_|[sr]k_(?:live|test)_|shpss_|shpat_|pat-(?:na|eu)1-)[A-Za-z0-9_-]{8,}|-----BEGIN [A-Z ]*PRIVATE|"
    + "|".join(re.escape(v) for v in (*WEBHOOK_SECRETS.values(), OPERATOR_KEY))
)


PLACEHOLDERS = ("unset", "")


def environments() -> dict[str, dict[str, Any]]:
    template = source()
    found = {"Globals": template["Globals"]["Function"]["Environment"]["Variables"]}
    for name, properties in functions().items():
        found[name] = (properties.get("Environment") or {}).get("Variables") or {}
    return found


def test_the_template_holds_no_secret_value():
    text = TEMPLATE.read_text()
    assert [m.group(0) for m in SECRET_VALUES.finditer(text)] == []
    template = source()
    # No parameter carries a secret (secrets are Secrets Manager resources, filled in after deploy)
    assert [name for name in template["Parameters"] if SECRETISH.search(name)] == []
    # Secrets are generated, or hold a placeholder until the real value is put in after deploy: never written in
    secrets = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"}
    assert secrets
    for name, resource in secrets.items():
        properties = resource["Properties"]
        assert "GenerateSecretString" in properties or properties.get("SecretString") in PLACEHOLDERS, name


def test_environments_name_secrets_by_id_only():
    secret_resources = {
        n
        for n, r in source()["Resources"].items()
        if r["Type"] in ("AWS::SecretsManager::Secret", "AWS::SSM::Parameter")
    }
    for where, variables in environments().items():
        for name, value in variables.items():
            if not SECRETISH.search(name):
                assert not (isinstance(value, str) and SECRET_VALUES.search(value)), (where, name)
                continue
            # A secret's id or ARN, as a reference to the secret resource: never its value
            assert name.endswith(("_SECRET_ID", "_SECRET_ARN", "_PARAMETER_NAME")), (where, name)
            assert isinstance(value, dict), (where, name)
            assert value.get("Ref") in secret_resources, (where, name, value)


def test_settings_read_only_secret_ids_in_aws():
    from crmsync.settings import Settings

    template_names = {name for variables in environments().values() for name in variables}
    # Every secret-looking setting the template sets is an id; settings that hold a value (a token for tests and
    # local runs) are never set by the template
    for field in Settings.model_fields:
        env = field.upper()
        if SECRETISH.search(field) and not field.endswith("_id"):
            assert env not in template_names, field


def test_logging_and_tracing_never_capture_events_or_responses():
    variables = environments()["Globals"]
    assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    assert source()["Parameters"]["LogLevel"]["Default"] != "DEBUG"
    code = "\n".join(
        p.read_text() for p in [*REPO.glob("functions/*/app.py"), *REPO.glob("layers/core/crmsync/**/*.py")]
    )
    assert "log_event=True" not in code
    assert "capture_response=True" not in code
    assert "POWERTOOLS_TRACER_CAPTURE_RESPONSE" not in json.dumps(variables)


def test_webhook_secrets_come_from_secrets_manager_cached_and_rotatable(aws, ingest, paypal_key, monkeypatch):
    secrets = aws.client("secretsmanager")
    body = SAMPLES["shopify"]

    def deliver(secret: str) -> int:
        return ingest(webhook_event("shopify", body, sign_headers("shopify", body, paypal_key, secret=secret)))[0]

    # Given a delivery signed with the configured secret is accepted (the secret is now cached)
    assert deliver(WEBHOOK_SECRETS["shopify"]) == 200
    # When the secret is rotated in Secrets Manager: the new one first, then the old one, one a line
    secrets.put_secret_value(SecretId=aws.env["SHOPIFY_SECRET_ID"], SecretString="rotated-secret\nold-secret")
    # Then within the cache's age the cached value still decides (no call to Secrets Manager per request)
    assert deliver("rotated-secret") == 401
    # And once the cache has expired (SECRET_MAX_AGE_SECONDS, 300 s), every listed secret verifies and the dropped
    # one no longer does
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    monkeypatch.setenv("SECRET_MAX_AGE_SECONDS", "0")
    assert deliver("rotated-secret") == 200
    assert deliver("old-secret") == 200
    assert deliver(WEBHOOK_SECRETS["shopify"]) == 401
    # And comma-separated values rotate the same way; a blank value is no secret at all
    secrets.put_secret_value(SecretId=aws.env["SHOPIFY_SECRET_ID"], SecretString=" , ,\n")
    assert deliver("") == 503
    secrets.put_secret_value(SecretId=aws.env["SHOPIFY_SECRET_ID"], SecretString="a-secret, another-secret")
    assert deliver("another-secret") == 200
