"""The CRM writer with CRM_BACKEND=hubspot, in-process on moto, writing over HTTP (loopback) to the spec-validating
fake HubSpot (local/hubspot_fake.py, strict: every request and answer checked against HubSpot's OpenAPI specs)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from convert import app as convert_app
from crm_writer import app as writer_app
from crmsync.crm import hubspot_setup
from crmsync.crm.backends import hubspot_crm
from crmsync.mapping import load_mapping, parse_mapping_text
from crmsync.settings import Settings
from crmsync.store.state import StateStore
from crmsync.writer import WriterDeps, write_events
from ingest import app as ingest_app
from local.hubspot_fake import FakeHubSpot
from tests.integration.conftest import api_event
from tests.integration.test_delivery import attribute, peek_all, receive_on_attempt
from tests.integration.test_line_items_local import LINE_ITEMS_AND_COMPANIES
from tests.integration.test_pipeline import ORDER, drain
from tests.integration.test_salesforce import crm_events
from tests.integration.test_sources import fixture, woo_headers

TOKEN = "pat-na1-local"


@pytest.fixture
def portal(aws, monkeypatch) -> Iterator[FakeHubSpot]:
    """A fake HubSpot portal on 127.0.0.1, set up with `python -m crmsync.crm.hubspot_setup`, and the writer
    configured for it exactly as `CRM_BACKEND=hubspot HUBSPOT_ACCESS_TOKEN=... HUBSPOT_BASE_URL=... make run` does."""
    fake = FakeHubSpot(token=TOKEN, strict=True)
    with fake.serving():
        monkeypatch.setenv("CRM_BACKEND", "hubspot")
        monkeypatch.setenv("HUBSPOT_BASE_URL", fake.url)
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
        assert hubspot_setup.main([]) == 0
        fake.log.clear()
        yield fake


@pytest.fixture
def shopify(aws, lambda_context):
    """Deliver a signed Shopify webhook; with `writer=True` drain both queues through convert and the writer."""
    from crmsync.sources.shopify import sign

    def run(payload: dict, *, topic: str = "orders/create", event_id: str = "evt-1", writer: bool = True) -> dict:
        body = json.dumps(payload).encode()
        headers = {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body, "local-shopify-secret"),
                   "X-Shopify-Shop-Domain": "demo.myshopify.com", "X-Shopify-Event-Id": event_id}  # fmt: skip
        event = api_event("POST", "/webhooks/shopify", body=body, headers=headers, path_params={"source": "shopify"})
        answer = json.loads(ingest_app.lambda_handler(event, lambda_context)["body"])
        if writer:
            drain(aws, lambda_context)
        else:
            ingest = aws.sqs_event(aws.receive_all(aws.env["INGEST_QUEUE_URL"]), "ingest")
            convert_app.lambda_handler(ingest, lambda_context)
        return dict(answer)

    return run


def woocommerce(aws, lambda_context, name: str, topic: str) -> None:
    """Accept a signed WooCommerce webhook and convert it: its domain events wait in the CRM queue."""
    body = fixture("woocommerce", name)
    event = api_event("POST", "/webhooks/woocommerce", body=body, headers=woo_headers(topic, body),
                      path_params={"source": "woocommerce"}, resource="/webhooks/{source}")  # fmt: skip
    assert json.loads(ingest_app.lambda_handler(event, lambda_context)["body"])["status"] == "accepted"
    convert_app.lambda_handler(aws.sqs_event(aws.receive_all(aws.env["INGEST_QUEUE_URL"]), "ingest"), lambda_context)


def records(fake: FakeHubSpot, object_type: str) -> dict[str, dict[str, str]]:
    return dict(fake.state()["records"].get(object_type, {}))


def linked(fake: FakeHubSpot, object_type: str, object_id: str) -> dict[str, list[str]]:
    return dict(fake.state()["associations"].get(object_type, {}).get(object_id, {}))


def test_an_order_lands_in_hubspot_as_a_contact_and_an_associated_deal(portal, shopify):
    # Given a Shopify orders/create webhook, When it flows through the pipeline to the HubSpot writer
    assert shopify(ORDER)["status"] == "accepted"
    # Then the buyer is one contact, found by e-mail, with crmsync's external id
    [(contact_id, contact)] = records(portal, "contacts").items()
    assert contact["email"] == "ada.lovelace@example.com"
    assert (contact["firstname"], contact["lastname"], contact["phone"]) == ("Ada", "Lovelace", "+15024581234")
    assert contact["crmsync_external_id"].startswith("crmsync:customer:cus_")
    # And the order is one deal upserted by crmsync_external_id, associated with the contact both ways
    [(deal_id, deal)] = records(portal, "deals").items()
    assert (deal["crmsync_external_id"], deal["amount"], deal["deal_currency_code"], deal["dealstage"]) == (
        "shopify:order:5678901234567", "225.40", "USD", "closedwon",
    )  # fmt: skip
    assert linked(portal, "deals", deal_id) == {"contacts": [contact_id]}
    assert linked(portal, "contacts", contact_id) == {"deals": [deal_id]}
    # And it took one call per object type and one for the associations: the fewest HubSpot allows
    assert [(e["path"], e["status"], e["inputs"]) for e in portal.log] == [
        ("/crm/v3/objects/contacts/batch/upsert", 200, 1),
        ("/crm/v3/objects/deals/batch/upsert", 200, 1),
        ("/crm/v4/associations/deals/contacts/batch/associate/default", 200, 1),
    ]


def test_the_same_order_again_updates_the_same_records(portal, shopify):
    # Given an order already in HubSpot, When it arrives again under another event id and is redelivered
    shopify(ORDER)
    shopify(ORDER, event_id="evt-2")
    newer = {**ORDER, "updated_at": "2026-11-21T09:00:00-05:00", "cancelled_at": "2026-11-21T08:59:00-05:00"}
    shopify(newer, topic="orders/cancelled", event_id="evt-3")
    # Then there is still one contact and one deal, which shows the newest state
    assert len(records(portal, "contacts")) == 1
    [deal] = records(portal, "deals").values()
    assert deal["dealstage"] == "closedlost"


def test_a_refund_becomes_one_note_on_the_deal_and_the_contact_however_often_it_is_written(portal, aws, lambda_context):
    # Given a WooCommerce order with a partial refund, converted into domain events
    woocommerce(aws, lambda_context, "order-partial-refund.json", "order.updated")
    batch = aws.sqs_event(aws.receive_all(aws.crm_queue_url), "CrmQueue")
    # When the writer runs the batch
    assert writer_app.lambda_handler(batch, lambda_context) == {"batchItemFailures": []}
    # Then the refund is one note (created once, through batch/create), on the deal and on the contact
    [(contact_id, _)] = records(portal, "contacts").items()
    [(deal_id, deal)] = records(portal, "deals").items()
    [(note_id, note)] = records(portal, "notes").items()
    assert deal["crmsync_refunded_amount"] == "15.00"
    assert "15.00 USD" in note["hs_note_body"]
    assert linked(portal, "notes", note_id) == {"contacts": [contact_id], "deals": [deal_id]}
    # When the same batch is delivered again (SQS redelivers a whole batch), twice
    assert writer_app.lambda_handler(batch, lambda_context) == {"batchItemFailures": []}
    assert writer_app.lambda_handler(batch, lambda_context) == {"batchItemFailures": []}
    # Then the note is updated by the id crmsync recorded, never created twice
    assert list(records(portal, "notes")) == [note_id]
    calls = [e["path"] for e in portal.log]
    assert calls.count("/crm/v3/objects/notes/batch/create") == 1
    assert calls.count("/crm/v3/objects/notes/batch/update") == 2


def test_write_events_with_hubspot_crm_directly(portal, aws, lambda_context):
    # Given the domain events of a WooCommerce order with a refund
    woocommerce(aws, lambda_context, "order-partial-refund.json", "order.updated")
    events = crm_events(aws)
    # When crmsync.writer.write_events runs them with HubSpotCrm (as the handler builds it)
    settings = Settings.from_env()
    deps = WriterDeps(StateStore(settings.state_table), hubspot_crm(settings), load_mapping(settings.mapping))
    summary = write_events(events, deps)
    # Then the summary's CRM ids are HubSpot's, and the state table remembers them for the next writer
    assert set(summary.contacts.values()) == set(records(portal, "contacts"))
    assert set(summary.deals.values()) == set(records(portal, "deals"))
    assert set(summary.notes.values()) == set(records(portal, "notes"))
    assert summary.associations == 3
    [deal_id] = summary.deals.values()
    assert deps.state.crm_ids("ORDER#woocommerce:order:7310", "hubspot") == {"deal": deal_id}


def test_a_deal_hubspot_refuses_reaches_the_dlq_with_hubspots_reason(portal, aws, shopify, monkeypatch, lambda_context):
    # Given HubSpot refuses the order's deal (a 207 naming it), on the event's last attempt
    portal.inject(reject=[{"type": "deals", "id": "shopify:order:5678901234567", "message": "Stage is not valid"}])
    shopify(ORDER, writer=False)
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "2")
    batch = receive_on_attempt(aws, aws.crm_queue_url, 2)
    # When the writer runs it
    answer = writer_app.lambda_handler(aws.sqs_event(batch, "CrmQueue"), lambda_context)
    # Then the contact was written, and the event is in the CRM DLQ with HubSpot's reason for the deal
    assert answer == {"batchItemFailures": []}
    assert len(records(portal, "contacts")) == 1
    assert records(portal, "deals") == {}
    [dead] = peek_all(aws, aws.env["CRM_DLQ_URL"])
    assert attribute(dead, "crmsync-error-type") == "CrmRejected"
    message = attribute(dead, "crmsync-error-message")
    assert "shopify:order:5678901234567" in message
    assert "Stage is not valid" in message


def test_without_a_token_every_event_fails_with_a_clear_reason(aws, shopify, monkeypatch, lambda_context):
    # Given CRM_BACKEND=hubspot but no token anywhere, on the event's last attempt
    monkeypatch.setenv("CRM_BACKEND", "hubspot")
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    shopify(ORDER, writer=False)
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "1")
    batch = receive_on_attempt(aws, aws.crm_queue_url, 1)
    # Then the writer dead-letters it, saying what to configure (and makes no call)
    assert writer_app.lambda_handler(aws.sqs_event(batch, "CrmQueue"), lambda_context) == {"batchItemFailures": []}
    dead = peek_all(aws, aws.env["CRM_DLQ_URL"])
    assert len(dead) == 2  # the customer's event and the order's
    assert {attribute(d, "crmsync-error-type") for d in dead} == {"CrmNotConfigured"}
    assert all("HUBSPOT_ACCESS_TOKEN" in attribute(d, "crmsync-error-message") for d in dead)


def another_order_at_the_same_time(order: dict) -> dict:
    """The same buyer's next order, stamped like the first: the customer's stored version stays as it is."""
    return {**order, "id": order["id"] + 1, "name": "#1043", "order_number": order["order_number"] + 1}


def test_a_second_order_of_a_known_buyer_reuses_the_contact_without_sending_it(portal, shopify):
    # Given an order in HubSpot: its buyer's contact written with the customer's current version
    shopify(ORDER)
    [contact_id] = records(portal, "contacts")
    portal.log.clear()
    # When the buyer's next order arrives, leaving the customer unchanged
    shopify(another_order_at_the_same_time(ORDER), event_id="evt-2")
    # Then only the deal is upserted, and associated with the contact on record
    assert [(e["path"], e["inputs"]) for e in portal.log] == [
        ("/crm/v3/objects/deals/batch/upsert", 1),
        ("/crm/v4/associations/deals/contacts/batch/associate/default", 1),
    ]
    assert list(records(portal, "contacts")) == [contact_id]
    assert sorted(linked(portal, "contacts", contact_id)["deals"]) == sorted(records(portal, "deals"))


def test_a_contact_deleted_in_hubspot_is_upserted_again_when_a_deal_needs_it(portal, shopify):
    # Given an order in HubSpot, then its contact deleted in the portal by hand (with its associations)
    shopify(ORDER)
    [gone] = records(portal, "contacts")
    with portal.lock:
        del portal.records["contacts"][gone]
        portal.associations = {a for a in portal.associations if gone not in (a[1], a[3])}
    portal.log.clear()
    # When the buyer's next order arrives, leaving the customer unchanged (the writer does not send the contact)
    shopify(another_order_at_the_same_time(ORDER), event_id="evt-2")
    # Then HubSpot refuses the association with the gone contact (an OBJECT_NOT_FOUND error in the answer), the
    # writer upserts the contact after all (a new record) and associates the deal with it; merging the gone one into
    # it finds nothing
    assert [(e["path"], e["status"]) for e in portal.log] == [
        ("/crm/v3/objects/deals/batch/upsert", 200),
        ("/crm/v4/associations/deals/contacts/batch/associate/default", 200),
        ("/crm/v3/objects/contacts/batch/upsert", 200),
        ("/crm/v3/objects/contacts/merge", 404),
        ("/crm/v4/associations/deals/contacts/batch/associate/default", 200),
    ]
    [(contact_id, contact)] = records(portal, "contacts").items()
    assert contact_id != gone
    assert contact["email"] == "ada.lovelace@example.com"
    new_deal = next(i for i, d in records(portal, "deals").items() if d["crmsync_external_id"].endswith("568"))
    assert linked(portal, "deals", new_deal) == {"contacts": [contact_id]}


def test_mapped_line_items_and_companies_land_in_hubspot_associated_and_spec_valid(portal, aws, shopify):
    # Given a mapping with line_items and companies sections, its properties set up in the (strict, spec-validating)
    # portal, and a Shopify order of two lines whose buyer works at "Babbage & Co", waiting in the CRM queue
    from crmsync.mapping.fields import CONFIG_DIR

    mapping = parse_mapping_text(
        (CONFIG_DIR / "default.yaml").read_text() + LINE_ITEMS_AND_COMPANIES, source="mapped.yaml", backend="hubspot"
    )
    settings = Settings.from_env()
    crm = hubspot_crm(settings)
    report = hubspot_setup.setup(crm, hubspot_setup.required_properties(mapping))
    assert {"line_items.crmsync_external_id", "companies.crmsync_external_id"} <= set(report.created)
    shopify({**ORDER, "billing_address": {**ORDER["billing_address"], "company": " Babbage &  Co"}}, writer=False)
    events = crm_events(aws)
    portal.log.clear()
    # When the writer writes them to HubSpot, twice (a redelivery)
    deps = WriterDeps(StateStore(settings.state_table), crm, mapping)
    write_events(events, deps)
    write_events(events, deps)
    # Then the two lines are two line items, upserted by crmsync_external_id, with their properties, on the deal
    [deal_id] = records(portal, "deals")
    lines = records(portal, "line_items")
    shown = ("crmsync_external_id", "name", "quantity", "price", "hs_sku")
    assert sorted(tuple(p[name] for name in shown) for p in lines.values()) == [
        ("shopify:order:5678901234567:line:13579246801357", "Analytical Engine Desk Lamp", "1", "199.00", "AE-LAMP-BR"),
        ("shopify:order:5678901234567:line:13579246801358", "Punch Card Gift Wrap", "1", "10.00", "GIFT-WRAP"),
    ]  # fmt: skip
    assert sorted(linked(portal, "deals", deal_id)["line_items"]) == sorted(lines)
    # And the buyer's company is one company, associated with the contact
    [(contact_id, _)] = records(portal, "contacts").items()
    [(company_id, company)] = records(portal, "companies").items()
    assert (company["name"], company["crmsync_external_id"]) == ("Babbage & Co", "company:babbage & co")
    assert linked(portal, "contacts", contact_id)["companies"] == [company_id]
    # And each write took one call per object type and per association (every request valid against the specs:
    # line items and companies against the generic objects shape, as no spec of theirs is kept)
    once = [
        ("/crm/v3/objects/contacts/batch/upsert", 200, 1),
        ("/crm/v3/objects/companies/batch/upsert", 200, 1),
        ("/crm/v4/associations/contacts/companies/batch/associate/default", 200, 1),
        ("/crm/v3/objects/deals/batch/upsert", 200, 1),
        ("/crm/v4/associations/deals/contacts/batch/associate/default", 200, 1),
        ("/crm/v3/objects/line_items/batch/upsert", 200, 2),
        ("/crm/v4/associations/line_items/deals/batch/associate/default", 200, 2),
    ]
    assert [(e["path"], e["status"], e["inputs"]) for e in portal.log] == once + once
