"""Every source through the whole pipeline on moto: signed webhook -> state -> CRM, as DESIGN.md section 4 maps it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import pytest

from api import app as api_app
from convert import app as convert_app
from ingest import app as ingest_app
from tests.conftest import FIXTURES
from tests.integration.conftest import api_event
from tests.integration.test_pipeline import drain, local_crm

WOO_SECRET = "local-woocommerce-secret"
STORE = "https://shop.example.com/"


def woo_headers(topic: str, body: bytes) -> dict[str, str]:
    from crmsync.sources.woocommerce import sign

    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": STORE,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": topic.split(".")[0],
        "X-WC-Webhook-Event": topic.split(".")[1],
        "X-WC-Webhook-Signature": sign(body, WOO_SECRET),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": "d41d8cd98f00b204e9800998ecf8427e",
    }


@pytest.fixture
def post(aws, lambda_context) -> Callable[..., tuple[int, dict]]:
    """POST a body to /webhooks/<source> with the given headers; returns (status, JSON answer)."""

    def run(source: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        event = api_event(
            "POST", f"/webhooks/{source}", body=body, headers=headers, path_params={"source": source},
            resource="/webhooks/{source}",
        )  # fmt: skip
        answer = ingest_app.lambda_handler(event, lambda_context)
        return answer["statusCode"], json.loads(answer["body"])

    return run


def fixture(source: str, name: str) -> bytes:
    return (FIXTURES / source / name).read_bytes()


def test_woocommerce_ping_gets_exactly_200_and_nothing_is_stored(aws, post):
    # Given WooCommerce's unsigned form-encoded creation ping
    status, body = post("woocommerce", b"webhook_id=12", {"Content-Type": "application/x-www-form-urlencoded"})
    # Then exactly 200, and nothing is archived or queued
    assert status == 200
    assert body["status"] == "ignored"
    assert aws.client("s3").list_objects_v2(Bucket=aws.env["ARCHIVE_BUCKET"]).get("KeyCount", 0) == 0


def test_woocommerce_order_with_a_refund_becomes_contact_deal_and_note(aws, post, lambda_context):
    # Given a signed order.updated carrying a partial refund of 15.00 on a 60.00 order
    order = fixture("woocommerce", "order-partial-refund.json")
    status, answer = post("woocommerce", order, woo_headers("order.updated", order))
    assert (status, answer["status"]) == (200, "accepted")
    # When the pipeline drains
    results = drain(aws, lambda_context)
    assert results["convert"] == {"batchItemFailures": []}
    # Then the buyer is a contact, the order a deal with its refunded amount, and the refund a note on both
    [contact] = local_crm(lambda_context, "contacts")
    assert contact["properties"]["email"] == "sam.rivera@example.com"
    [deal] = local_crm(lambda_context, "deals")
    props = deal["properties"]
    assert (props["crmsync_external_id"], props["amount"], props["deal_currency_code"]) == (
        "woocommerce:order:7310", "60.00", "USD",
    )  # fmt: skip
    assert props["crmsync_refunded_amount"] == "15.00"
    [note] = local_crm(lambda_context, "notes")
    assert note["properties"]["crmsync_external_id"] == "crmsync:woocommerce:refund:7420"
    assert "15.00 USD" in note["properties"]["hs_note_body"]
    assert note["associations"] == {"contacts": [contact["id"]], "deals": [deal["id"]]}


def test_woocommerce_redelivery_of_the_same_state_is_a_duplicate(aws, post):
    # Given an accepted order.created
    order = fixture("woocommerce", "order.created.json")
    assert post("woocommerce", order, woo_headers("order.created", order))[1]["status"] == "accepted"
    # When WooCommerce delivers it again (new delivery id, same modified time)
    headers = {**woo_headers("order.created", order), "X-WC-Webhook-Delivery-ID": "another"}
    # Then it is a duplicate
    assert post("woocommerce", order, headers)[1]["status"] == "duplicate"


def test_woocommerce_order_deleted_is_recorded_in_the_sync_table_as_reconciliation_reads_it(aws, post, lambda_context):
    from crmsync.store.sync_jobs import SyncStore

    # Given an order synced from its order.updated webhook
    order = fixture("woocommerce", "order-partial-refund.json")
    post("woocommerce", order, woo_headers("order.updated", order))
    drain(aws, lambda_context)
    # When the store sends its order.deleted webhook, and convert takes the message twice (SQS redelivers it)
    body = json.dumps({"id": 7310}).encode()
    status, answer = post("woocommerce", body, woo_headers("order.deleted", body))
    assert (status, answer["status"]) == (200, "accepted")
    event = aws.sqs_event(aws.receive_all(aws.env["INGEST_QUEUE_URL"]), "ingest")
    for _ in range(2):
        assert convert_app.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    # Then the deletion is recorded once, under the order's state pk (GONE#woocommerce), by the webhook's receipt
    assert SyncStore(aws.env["SYNC_TABLE"]).deletions("woocommerce") == {"ORDER#woocommerce:order:7310"}
    key = {"pk": {"S": "GONE#woocommerce"}, "sk": {"S": "ORDER#woocommerce:order:7310"}}
    item = aws.client("dynamodb").get_item(TableName=aws.env["SYNC_TABLE"], Key=key)["Item"]
    assert json.loads(item["doc"]["S"])["receipt_id"] == answer["receipt_id"]


@pytest.mark.parametrize("source", ["woocommerce"])
def test_wrong_signature_is_401_for_every_source(aws, post, source):
    order = fixture("woocommerce", "order.created.json")
    headers = {**woo_headers("order.created", order), "X-WC-Webhook-Signature": "AAAA"}
    assert post(source, order, headers) == (401, {"error": "signature mismatch"})


def test_customer_endpoint_lists_orders_and_refunds_across_the_pipeline(aws, post, lambda_context):
    order = fixture("woocommerce", "order-partial-refund.json")
    post("woocommerce", order, woo_headers("order.updated", order))
    drain(aws, lambda_context)
    event = api_event(
        "GET", "/customers", headers={"x-api-key": "local-operator-key"}, query={"email": "sam.rivera@example.com"}
    )
    [customer] = json.loads(api_app.lambda_handler(event, lambda_context)["body"])["customers"]
    assert [o["source_id"] for o in customer["orders"]] == ["7310"]
    assert [r["source_id"] for r in customer["refunds"]] == ["7420"]


def test_woocommerce_sample_event_file_is_accepted(aws, load_event, lambda_context):
    # Given the documented sam-local event, signed with the local default secret
    answer = ingest_app.lambda_handler(load_event("ingest-woocommerce-order-created.json"), lambda_context)
    # Then it is accepted and converts without failures
    assert json.loads(answer["body"])["status"] == "accepted"
    assert drain(aws, lambda_context)["convert"] == {"batchItemFailures": []}


# ---- PayPal: a certificate of our own, served instead of PayPal's ---------------------------------------------------

PAYPAL_CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"


@pytest.fixture(scope="module")
def paypal_signer():
    """A key and a PayPal-shaped self-signed certificate; returns (pem, sign(body) -> headers)."""
    import base64
    import zlib
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM)

    def sign(body: bytes, webhook_id: str = "LOCAL-PAYPAL-WEBHOOK-ID") -> dict[str, str]:
        # A transmission of its own each, signed now: ingest binds each id to one body and refuses old times.
        transmission_id = str(uuid.uuid4())
        transmission_time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()
        return {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(
                key.sign(message, padding.PKCS1v15(), hashes.SHA256())
            ).decode(),
            "PAYPAL-CERT-URL": PAYPAL_CERT_URL,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }

    return pem, sign


@pytest.fixture
def paypal(paypal_signer, monkeypatch):
    """PayPal with certificate downloads answered by our certificate (no network in tests)."""
    from crmsync import webhooks
    from crmsync.sources.paypal import PayPalWebhooks, clear_certificate_cache

    pem, sign = paypal_signer
    clear_certificate_cache()
    monkeypatch.setitem(webhooks.SOURCES, "paypal", PayPalWebhooks(fetch_cert=lambda url: pem))
    return sign


def test_paypal_capture_and_its_refund_become_a_deal_and_a_note(aws, post, paypal, lambda_context):
    # Given a signed PAYMENT.CAPTURE.COMPLETED (the published sample)
    capture = fixture("paypal", "PAYMENT.CAPTURE.COMPLETED.json")
    status, answer = post("paypal", capture, paypal(capture))
    assert (status, answer["status"]) == (200, "accepted")
    # When the pipeline drains
    assert drain(aws, lambda_context)["convert"] == {"batchItemFailures": []}
    # Then the capture is a deal with its own external id, amount and stage
    [deal] = local_crm(lambda_context, "deals")
    capture_id = json.loads(capture)["resource"]["id"]
    assert deal["properties"]["crmsync_external_id"] == f"paypal:capture:{capture_id}"
    assert deal["properties"]["dealstage"] == "closedwon"


def test_paypal_signature_for_another_webhook_id_is_401(aws, post, paypal):
    capture = fixture("paypal", "PAYMENT.CAPTURE.COMPLETED.json")
    assert post("paypal", capture, paypal(capture, webhook_id="SOMEONE-ELSE")) == (401, {"error": "signature mismatch"})


def test_paypal_certificate_from_a_foreign_host_is_401_without_fetching(aws, post, paypal):
    capture = fixture("paypal", "PAYMENT.CAPTURE.COMPLETED.json")
    headers = {**paypal(capture), "PAYPAL-CERT-URL": "https://evil.example.com/cert.pem"}
    assert post("paypal", capture, headers) == (401, {"error": "certificate host not allowed"})


# ---- Stripe ----------------------------------------------------------------------------------------------------------

STRIPE_SECRET = "whsec_local-stripe-secret"


def stripe_headers(body: bytes, *, secret: str = STRIPE_SECRET, age: int = 0) -> dict[str, str]:
    import time

    from crmsync.sources.stripe import sign

    return {"Content-Type": "application/json", "Stripe-Signature": sign(body, secret, int(time.time()) - age)}


def test_stripe_payment_becomes_a_deal_with_a_contact(aws, post, lambda_context):
    # Given a signed payment_intent.succeeded (the published 2020-08-27 sample)
    event = fixture("stripe", "payment_intent.succeeded.json")
    status, answer = post("stripe", event, stripe_headers(event))
    assert (status, answer["status"]) == (200, "accepted")
    assert answer["receipt_id"] == f"stripe:self:{json.loads(event)['id']}"
    # When the pipeline drains
    assert drain(aws, lambda_context)["convert"] == {"batchItemFailures": []}
    # Then the payment is a deal stripe:payment:<pi id>
    intent = json.loads(event)["data"]["object"]
    [deal] = local_crm(lambda_context, "deals")
    assert deal["properties"]["crmsync_external_id"] == f"stripe:payment:{intent['id']}"
    assert deal["properties"]["dealstage"] == "closedwon"


def test_stripe_dispute_is_a_note_on_the_payment_deal(aws, post, lambda_context):
    # Given a payment, then a dispute naming its payment intent (the samples share one event id: give each its own)
    payment = json.loads(fixture("stripe", "payment_intent.succeeded.json"))
    dispute = json.loads(fixture("stripe", "charge.dispute.created.json"))
    dispute["id"], dispute["data"]["object"]["payment_intent"] = "evt_dispute_1", payment["data"]["object"]["id"]
    for event in (payment, dispute):
        body = json.dumps(event).encode()
        assert post("stripe", body, stripe_headers(body))[1]["status"] == "accepted"
    drain(aws, lambda_context)
    # Then the dispute is one note, on the payment's deal
    [deal] = local_crm(lambda_context, "deals")
    [note] = local_crm(lambda_context, "notes")
    assert note["properties"]["hs_note_body"].startswith("Dispute ")
    assert note["associations"]["deals"] == [deal["id"]]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [({"age": 301}, "timestamp outside the tolerance"), ({"secret": "whsec_wrong"}, "signature mismatch")],
    ids=["expired", "wrong-secret"],
)
def test_stripe_bad_signatures_are_401(aws, post, kwargs, reason):
    event = fixture("stripe", "payment_intent.succeeded.json")
    assert post("stripe", event, stripe_headers(event, **kwargs)) == (401, {"error": reason})


def test_a_signature_of_one_source_sent_to_another_is_401(aws, post):
    # Given a correctly signed Stripe event posted to the Shopify endpoint
    event = fixture("stripe", "payment_intent.succeeded.json")
    status, body = post("shopify", event, stripe_headers(event))
    assert (status, body) == (401, {"error": "missing signature"})


def test_stripe_sample_event_file_is_accepted(aws, load_event, lambda_context, monkeypatch):
    # Given the documented event, signed at a fixed time, and a clock five seconds after it
    from crmsync import webhooks
    from crmsync.sources.stripe import StripeWebhooks

    event = load_event("ingest-stripe-payment-intent-succeeded.json")
    signed_at = int(event["headers"]["Stripe-Signature"].split(",")[0].removeprefix("t="))
    monkeypatch.setitem(webhooks.SOURCES, "stripe", StripeWebhooks(clock=lambda: signed_at + 5))
    # When invoked, Then it is accepted and converts
    assert json.loads(ingest_app.lambda_handler(event, lambda_context)["body"])["status"] == "accepted"
    assert drain(aws, lambda_context)["convert"] == {"batchItemFailures": []}


def test_paypal_sample_event_file_verifies_with_the_test_certificate(aws, load_event, lambda_context, monkeypatch):
    # Given the documented event, signed with the test-only key whose certificate stands in for PayPal's
    from crmsync import webhooks
    from crmsync.sources.paypal import PayPalWebhooks, clear_certificate_cache

    pem = (FIXTURES / "paypal" / "local-test-cert.pem").read_bytes()
    clear_certificate_cache()
    monkeypatch.setitem(webhooks.SOURCES, "paypal", PayPalWebhooks(fetch_cert=lambda url: pem))
    # And a clock five seconds after its fixed transmission time (older ones are refused)
    event = load_event("ingest-paypal-capture-completed.json")
    signed_at = datetime.fromisoformat(event["headers"]["PAYPAL-TRANSMISSION-TIME"]).timestamp()
    real_deps = ingest_app.deps
    monkeypatch.setattr(ingest_app, "deps", lambda settings: replace(real_deps(settings), clock=lambda: signed_at + 5))
    # When invoked, Then it is accepted and converts
    answer = ingest_app.lambda_handler(event, lambda_context)
    assert json.loads(answer["body"])["status"] == "accepted"
    assert drain(aws, lambda_context)["convert"] == {"batchItemFailures": []}
