"""No personal data and no secret ever reaches a log: a full run on moto (every source through ingest -> convert ->
CRM writer, failures and operator calls included) with recognisable people and the real secrets, every line of log
output captured, and not one hit of any of them, nor of their usual transformations."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from typing import Any

import pytest

from crmsync.observability import logger
from tests.conftest import FIXTURES
from tests.integration.conftest import SECRETS, api_event
from tests.integration.test_pipeline import drain
from tests.security.webhooks import OPERATOR_KEY, SAMPLES, sign_headers, webhook_event

EMAIL = "Zeb.Quixote-Canary@Example.ORG"
PHONE = "+1 (502) 458-7391"
PHONE_E164 = "+15024587391"
PHONE_DIGITS = "5024587391"
FIRST, LAST = "Zebediah", "Quixotic-Canary"
STREET = "742 Evergreen Canary Terrace"
# Everything personal or secret that the run carries, as it was sent and as crmsync may have turned it.
NEEDLES = {
    "email": EMAIL,
    "email lower-cased": EMAIL.lower(),
    "email upper-cased": EMAIL.upper(),
    "email local part": "quixote-canary",
    "phone": PHONE,
    "phone E.164": PHONE_E164,
    "phone digits": PHONE_DIGITS,
    "phone national": "458-7391",
    "first name": FIRST,
    "last name": LAST,
    "street": STREET,
    **{f"secret {name}": value for name, value in SECRETS.items()},
}

_FIRST_KEYS = {"first_name", "given_name", "firstname"}
_LAST_KEYS = {"last_name", "surname", "lastname"}
_STREET_KEYS = {"address1", "address_1", "line1", "address_line_1"}
_NAME_PARENTS = {"billing_details", "shipping", "customer_details", "paypal"}


def with_canaries(value: Any, parent: str = "") -> Any:
    """The payload with every email, phone, name and street replaced by the canary person."""
    if isinstance(value, list):
        return [with_canaries(item, parent) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        name = key.lower()
        if isinstance(item, str) or item is None:
            if "email" in name:
                item = EMAIL
            elif name in ("phone", "phone_number"):
                item = PHONE
            elif name == "national_number":
                item = PHONE_DIGITS
            elif name in _FIRST_KEYS:
                item = FIRST
            elif name in _LAST_KEYS:
                item = LAST
            elif name in _STREET_KEYS:
                item = STREET
            elif name == "name" and parent in _NAME_PARENTS:
                item = f"{FIRST} {LAST}"
        out[key] = with_canaries(item, name)
    return out


def canary_body(raw: bytes, **changes: Any) -> bytes:
    document = with_canaries(json.loads(raw))
    document.update(changes)
    return json.dumps(document).encode()


# (source, topic, body): every source, a customer and an order/payment each where it has both, and two bodies that
# are signed but fail conversion with the person inside (their validation errors would echo input values).
DELIVERIES = [
    ("shopify", "orders/create", canary_body(SAMPLES["shopify"])),
    ("shopify", "customers/create", canary_body((FIXTURES / "shopify" / "customers-create.json").read_bytes())),
    ("woocommerce", "order.created", canary_body(SAMPLES["woocommerce"])),
    ("stripe", None, canary_body(SAMPLES["stripe"], id="evt_canary_payment")),
    ("stripe", None, canary_body((FIXTURES / "stripe" / "customer.created.json").read_bytes(), id="evt_canary_cus")),
    ("paypal", None, canary_body(SAMPLES["paypal"], id="WH-CANARY-CAPTURE")),
    (
        "paypal",
        None,
        canary_body((FIXTURES / "paypal" / "order-approved-payment-source.json").read_bytes(), id="WH-CANARY-ORDER"),
    ),
    ("shopify", "orders/updated", json.dumps({"id": 77, "email": EMAIL, "phone": PHONE, "total_price": {}}).encode()),
    (
        "stripe",
        None,
        json.dumps(
            {
                "id": "evt_canary_broken",
                "type": "payment_intent.succeeded",
                "created": 1,
                "data": {"object": {"id": "pi_canary", "amount": EMAIL, "receipt_email": EMAIL, "currency": PHONE}},
            }
        ).encode(),
    ),
]


@pytest.fixture
def captured_logs(caplog):
    """Everything the run logs: the Powertools logger's own JSON lines (at DEBUG, whatever LOG_LEVEL says), and every
    record of any logger as the standard formatter writes it, tracebacks included."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    std = logger._logger
    level = std.level
    std.addHandler(handler)
    std.setLevel(logging.DEBUG)
    caplog.set_level(logging.INFO)
    try:
        yield lambda: buffer.getvalue() + "\n" + caplog.text
    finally:
        std.removeHandler(handler)
        std.setLevel(level)


def hits(text: str) -> list[str]:
    lowered = text.lower()
    found = [name for name, needle in NEEDLES.items() if needle.lower() in lowered]
    # digits of the phone however they are grouped
    if PHONE_DIGITS in re.sub(r"[^0-9]", "", text):
        found.append("phone digits, separated")
    return found


def test_a_full_run_logs_no_personal_data_and_no_secret(
    aws, lambda_context, paypal_key, captured_logs, capfd, monkeypatch
):
    from api import app as api_app
    from ingest import app as ingest_app

    # Given the pipeline dead-letters a failing record at once (so the DLQ path logs too)
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "1")
    answers: list[str] = []
    signatures: list[str] = []
    # When every delivery is signed and posted, and also posted with a bad signature and to an unknown source
    for source, topic, body in DELIVERIES:
        headers = sign_headers(source, body, paypal_key, event_id=uuid.uuid4().hex)
        if topic:
            headers["X-Shopify-Topic" if source == "shopify" else "X-WC-Webhook-Topic"] = topic
        signatures.extend(v for k, v in headers.items() if "sig" in k.lower() or "hmac" in k.lower())
        for event in (
            webhook_event(source, body, headers),
            webhook_event(source, body + b" ", headers),
            webhook_event("nosuch", body, headers),
        ):
            answer = ingest_app.lambda_handler(event, lambda_context)
            assert answer["statusCode"] < 500, answer
            answers.append(answer["body"])
    # And the queues drain through convert and the CRM writer
    for _ in range(3):
        drain(aws, lambda_context)
    # And an operator looks the person up, with and without the key, and at the DLQ
    for key in (OPERATOR_KEY, "wrong-key", None):
        headers = {"x-api-key": key} if key else {}
        for path, query in (
            ("/customers", {"email": EMAIL}),
            (f"/customers/{EMAIL}", None),
            (f"/local-crm/contacts/{PHONE_E164}", None),
            ("/local-crm/contacts", {"email": EMAIL.lower()}),
            ("/sync/dlq", None),
        ):
            response = api_app.lambda_handler(api_event("GET", path, headers=headers, query=query), lambda_context)
            assert response["statusCode"] < 500, response
            if response["statusCode"] >= 400 or path == "/sync/dlq":
                answers.append(response["body"])
    # Then the person really went all the way to the CRM (the run carried the data the logs must not)
    event = api_event("GET", "/local-crm/contacts", headers={"x-api-key": OPERATOR_KEY}, query={"email": EMAIL.lower()})
    contacts = json.loads(api_app.lambda_handler(event, lambda_context)["body"])["results"]
    assert [c["properties"]["phone"] for c in contacts] == [PHONE_E164]
    # And no log line, printed line, error answer or DLQ listing holds any of it, nor a secret or a signature
    out, err = capfd.readouterr()
    logs = captured_logs() + out + err
    assert "webhook accepted" in logs  # the capture works
    assert hits(logs) == []
    assert [s for s in signatures if s in logs] == []
    assert hits("\n".join(answers)) == []


def test_personal_data_that_reaches_a_log_line_anyway_is_masked(captured_logs):
    # Given a log call carrying an email and a phone in its message, an extra key and an exception's text (a CRM's
    # error that quotes the record it refused, say)
    try:
        raise ValueError(f"contact {EMAIL} with phone {PHONE_E164} refused")
    except ValueError:
        logger.exception("crm write failed", key=f"email:{EMAIL.lower()}", other=f"phone:{PHONE_E164}")
    # Then the line the logger writes masks them all
    [line] = [line for line in captured_logs().splitlines() if line.startswith("{")]
    record = json.loads(line)
    assert record["key"] == "email:<email>"
    assert record["other"] == "phone:<phone>"
    assert "contact <email> with phone <phone> refused" in record["exception"]
    assert hits(line) == []
