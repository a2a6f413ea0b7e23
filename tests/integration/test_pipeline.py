"""The whole pipeline in-process on moto: ingest -> queue -> convert -> bus -> queue -> crm-writer -> local CRM."""

from __future__ import annotations

import json

import pytest

from api import app as api_app
from convert import app as convert_app
from crm_writer import app as writer_app
from ingest import app as ingest_app
from tests.conftest import EVENTS
from tests.integration.conftest import api_event

SECRET = "local-shopify-secret"
ORDER = json.loads((EVENTS / "payloads" / "shopify-orders-create.json").read_bytes())


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def deliver(aws, lambda_context):
    """Deliver a signed Shopify webhook and drain both queues through convert and the CRM writer."""
    from crmsync.sources.shopify import sign

    def run(payload: dict, *, topic: str = "orders/create", event_id: str = "evt-1") -> dict:
        body = encode(payload)
        headers = {
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body, SECRET),
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Event-Id": event_id,
        }
        event = api_event("POST", "/webhooks/shopify", body=body, headers=headers, path_params={"source": "shopify"})
        answer = json.loads(ingest_app.lambda_handler(event, lambda_context)["body"])
        drain(aws, lambda_context)
        return answer

    return run


def drain(aws, lambda_context) -> dict:
    results = {}
    ingest = aws.receive_all(aws.env["INGEST_QUEUE_URL"])
    if ingest:
        results["convert"] = convert_app.lambda_handler(aws.sqs_event(ingest, "ingest"), lambda_context)
    crm = aws.receive_all(aws.crm_queue_url)
    if crm:
        results["writer"] = writer_app.lambda_handler(aws.sqs_event(crm, "crm"), lambda_context)
    return results


def local_crm(lambda_context, object_type: str, **query: str) -> list[dict]:
    event = api_event(
        "GET",
        f"/local-crm/{object_type}",
        headers={"x-api-key": "local-operator-key"},
        query=query or None,
        path_params={"type": object_type},
        resource="/local-crm/{type}",
    )
    answer = api_app.lambda_handler(event, lambda_context)
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])["results"]


def test_order_becomes_a_contact_and_an_associated_deal(aws, deliver, lambda_context):
    # Given a Shopify orders/create webhook, When it flows through the pipeline
    assert deliver(ORDER)["status"] == "accepted"
    # Then the buyer is one contact with email, names, E.164 phone and address
    [contact] = local_crm(lambda_context, "contacts")
    props = contact["properties"]
    assert props["email"] == "ada.lovelace@example.com"
    assert (props["firstname"], props["lastname"]) == ("Ada", "Lovelace")
    assert props["phone"] == "+15024581234"
    assert (props["address"], props["city"], props["zip"], props["country"]) == (
        "1200 Bardstown Rd",
        "Louisville",
        "40204",
        "US",
    )
    assert props["crmsync_external_id"].startswith("crmsync:customer:cus_")
    # And the order is one deal with amount, currency, name and stage, associated both ways
    [deal] = local_crm(lambda_context, "deals")
    d = deal["properties"]
    assert (d["amount"], d["deal_currency_code"], d["dealstage"]) == ("225.40", "USD", "closedwon")
    assert d["dealname"] == "Shopify order #1042"
    assert d["crmsync_external_id"] == "shopify:order:5678901234567"
    assert deal["associations"] == {"contacts": [contact["id"]]}
    assert local_crm(lambda_context, "contacts")[0]["associations"] == {"deals": [deal["id"]]}


def test_redelivered_and_resent_events_never_duplicate_records(aws, deliver, lambda_context):
    # Given an order already synced
    deliver(ORDER)
    # When the same event is redelivered, and the same order arrives again under a new event id
    assert deliver(ORDER)["status"] == "duplicate"
    assert deliver(ORDER, event_id="evt-2")["status"] == "accepted"
    # Then there is still exactly one contact and one deal
    assert len(local_crm(lambda_context, "contacts")) == 1
    assert len(local_crm(lambda_context, "deals")) == 1


def test_a_stale_update_never_overwrites_newer_state(aws, deliver, lambda_context):
    # Given the order was cancelled in a newer update
    newer = {**ORDER, "updated_at": "2026-11-21T09:00:00-05:00", "cancelled_at": "2026-11-21T08:59:00-05:00"}
    deliver(newer, topic="orders/cancelled", event_id="evt-new")
    # When the older orders/create arrives late
    deliver(ORDER, event_id="evt-old")
    # Then the deal still shows the newer, cancelled state
    [deal] = local_crm(lambda_context, "deals")
    assert deal["properties"]["dealstage"] == "closedlost"


def test_a_newer_update_changes_the_same_deal(aws, deliver, lambda_context):
    # Given a synced order
    deliver(ORDER)
    # When an update with a new total and a later updated_at arrives
    updated = {**ORDER, "updated_at": "2026-11-22T12:00:00Z", "current_total_price": "199.99"}
    deliver(updated, topic="orders/updated", event_id="evt-upd")
    # Then the one deal carries the new amount
    [deal] = local_crm(lambda_context, "deals")
    assert deal["properties"]["amount"] == "199.99"


def test_a_signed_body_that_is_not_an_order_fails_only_its_own_record(aws, deliver, lambda_context):
    # Given a good order and a signed JSON body that is no order, both queued
    from crmsync.sources.shopify import sign

    for event_id, body in (("good", encode(ORDER)), ("poison", b'{"id": "not-an-order"}')):
        headers = {
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": sign(body, SECRET),
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Event-Id": event_id,
        }
        event = api_event("POST", "/webhooks/shopify", body=body, headers=headers, path_params={"source": "shopify"})
        assert json.loads(ingest_app.lambda_handler(event, lambda_context)["body"])["status"] == "accepted"
    # When convert processes the batch
    results = drain(aws, lambda_context)
    # Then only the poison record is reported failed (SQS retries it, then moves it to the DLQ)
    assert len(results["convert"]["batchItemFailures"]) == 1
    assert len(local_crm(lambda_context, "deals")) == 1


def test_guest_checkout_makes_a_deal_without_a_contact(aws, deliver, lambda_context):
    # Given an order with no customer and no email
    guest = {k: v for k, v in ORDER.items() if k not in ("customer", "email", "contact_email")}
    deliver(guest)
    # Then there is a deal and no contact
    [deal] = local_crm(lambda_context, "deals")
    assert deal["associations"] == {}
    assert local_crm(lambda_context, "contacts") == []


def test_two_orders_of_one_buyer_share_one_contact(aws, deliver, lambda_context):
    # Given two orders by the same person, the second with the email in another case
    deliver(ORDER)
    second = {**ORDER, "id": 5678901234999, "name": "#1043", "email": "ADA.LOVELACE@example.com "}
    deliver(second, event_id="evt-2")
    # Then one contact is associated with both deals
    [contact] = local_crm(lambda_context, "contacts")
    assert len(contact["associations"]["deals"]) == 2


def test_a_contact_gone_from_the_local_crm_comes_back_with_the_next_deal_of_its_buyer(aws, deliver, lambda_context):
    # Given an order synced, then its contact deleted from the local CRM (its associations with it)
    from crmsync.crm.backends import crm_for
    from crmsync.settings import Settings

    deliver(ORDER)
    [gone] = local_crm(lambda_context, "contacts")
    assert [a.outcome for a in crm_for(Settings.from_env()).delete("contacts", [gone["id"]])] == ["deleted"]
    # When the buyer's next order arrives, stamped like the first: the customer is unchanged, so the writer does not
    # send the contact, and the local CRM refuses to associate the deal with the one on record
    second = {**ORDER, "id": 5678901234999, "name": "#1043"}
    assert deliver(second, event_id="evt-2")["status"] == "accepted"
    # Then the contact is upserted after all, and the new deal is associated with it
    [contact] = local_crm(lambda_context, "contacts")
    assert contact["id"] != gone["id"]
    assert contact["properties"]["email"] == "ada.lovelace@example.com"
    [deal] = local_crm(lambda_context, "deals", crmsync_external_id="shopify:order:5678901234999")
    assert deal["associations"] == {"contacts": [contact["id"]]}


def test_sample_convert_and_writer_events(aws, load_event, lambda_context):
    # Given the archived body that the documented convert event points at
    body = (EVENTS / "payloads" / "shopify-orders-create.json").read_bytes()
    convert_event = load_event("convert-shopify-orders-create.json")
    key = json.loads(convert_event["Records"][0]["body"])["archive_key"]
    aws.client("s3").put_object(Bucket=aws.env["ARCHIVE_BUCKET"], Key=key, Body=body)
    # When the sample events are invoked
    assert convert_app.lambda_handler(convert_event, lambda_context) == {"batchItemFailures": []}
    drain(aws, lambda_context)
    answer = writer_app.lambda_handler(load_event("crm-writer-order-placed.json"), lambda_context)
    # Then they succeed and still leave one deal
    assert answer == {"batchItemFailures": []}
    assert len(local_crm(lambda_context, "deals")) == 1


def test_writer_failure_returns_every_record_for_retry(aws, deliver, lambda_context, load_event, monkeypatch):
    # Given the CRM table is gone
    monkeypatch.setenv("CRM_LOCAL_TABLE", "no-such-table")
    deliver(ORDER)  # convert succeeds; the writer's flush fails
    # When the writer gets a batch, Then every record is reported failed (nothing half-acknowledged)
    event = load_event("crm-writer-order-placed.json")
    answer = writer_app.lambda_handler(event, lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_writer_reports_a_record_that_is_not_a_domain_event(aws, lambda_context):
    # Given a batch with a message that is not an EventBridge domain event
    event = {"Records": [{"messageId": "m1", "body": "{}"}]}
    # Then that record fails on its own
    assert writer_app.lambda_handler(event, lambda_context) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def customers(lambda_context, path: str, query: dict | None = None) -> tuple[int, dict]:
    event = api_event("GET", path, headers={"x-api-key": "local-operator-key"}, query=query)
    answer = api_app.lambda_handler(event, lambda_context)
    return answer["statusCode"], json.loads(answer["body"])


def test_customer_by_email_shows_orders_crm_ids_and_lineage(aws, deliver, lambda_context):
    # Given a synced order
    answer = deliver(ORDER)
    # When the operator looks the buyer up by email, in another case and with spaces
    status, body = customers(lambda_context, "/customers", {"email": " ADA.Lovelace@example.com"})
    # Then one customer comes back with the order, the CRM contact id and the receipt that made it
    assert status == 200
    [customer] = body["customers"]
    assert customer["emails"] == ["ada.lovelace@example.com"]
    assert [o["source_id"] for o in customer["orders"]] == ["5678901234567"]
    [contact] = local_crm(lambda_context, "contacts")
    assert customer["crm_ids"] == {"contact": contact["id"]}
    assert {entry["receipt_id"] for entry in customer["lineage"]} == {answer["receipt_id"]}
    # And the same document is at /customers/{id}
    assert customers(lambda_context, f"/customers/{customer['id']}") == (200, customer)


def test_customer_lookups_that_find_nothing(aws, lambda_context):
    assert customers(lambda_context, "/customers", {"email": "nobody@example.com"}) == (200, {"customers": []})
    assert customers(lambda_context, "/customers/cus_missing")[0] == 404
    assert customers(lambda_context, "/customers")[0] == 400
