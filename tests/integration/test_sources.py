"""Every source through the whole pipeline on moto: signed webhook -> state -> CRM, as DESIGN.md section 4 maps it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from api import app as api_app
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
