"""The fakes carry the real pipeline functions end to end: accept_webhook -> ingest queue -> convert_message -> bus ->
CRM queue -> write_events -> CRM, with redeliveries and injected faults, and still one contact and one deal."""

from __future__ import annotations

import json

from crmsync.convert import ConvertDeps, convert_message
from crmsync.ingest import IngestDeps, WebhookRequest, accept_webhook
from crmsync.mapping import load_mapping
from crmsync.messages import DomainEvent, IngestMessage
from crmsync.sources import shopify
from crmsync.store.queue import QueueMessage
from crmsync.writer import WriterDeps, write_events
from tests.conftest import EVENTS
from tests.fakes import (
    FakeClock,
    Faults,
    FaultyCrm,
    MemoryArchive,
    MemoryBus,
    MemoryReceipts,
    MemoryState,
    SqsSimulator,
)

SECRET = "fakes-shopify-secret"
ORDER = (EVENTS / "payloads" / "shopify-orders-create.json").read_bytes()


def webhook(event_id: str) -> WebhookRequest:
    headers = {
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": shopify.sign(ORDER, SECRET),
        "x-shopify-shop-domain": "demo.myshopify.com",
        "x-shopify-event-id": event_id,
        "x-shopify-webhook-id": f"wh-{event_id}",
    }
    return WebhookRequest(source="shopify", headers=headers, body=ORDER)


def test_one_order_delivered_three_times_through_faults_is_one_contact_and_one_deal() -> None:
    # Given the whole pipeline on fakes, with a flaky bus and a flaky CRM
    clock = FakeClock()
    state, receipts, archive = MemoryState(), MemoryReceipts(), MemoryArchive(clock=clock)
    ingest_queue = SqsSimulator.from_template("IngestQueue", seed=1, clock=clock)
    crm_queue = SqsSimulator.from_template("CrmQueue", seed=2, clock=clock)
    bus_faults = Faults(3, before={"bus.publish": 0.3})
    bus = MemoryBus(clock=clock, faults=bus_faults)
    bus.route_crm_queue(crm_queue)
    crm = FaultyCrm(seed=4, rate_limited=0.05, server_error=0.05, timeout=0.05, effect_then_timeout=0.1)
    ingest = IngestDeps(
        receipts=receipts.as_store(),
        archive=archive.as_store(),
        queue=ingest_queue.as_store(),
        secrets=lambda _name: [SECRET],
        clock=clock,
    )
    convert = ConvertDeps(archive=archive.as_store(), state=state.as_store(), bus=bus.as_store())
    writer = WriterDeps(state=state.as_store(), crm=crm, mapping=load_mapping("default"))

    def convert_batch(batch: list[QueueMessage]) -> list[str]:
        failed = []
        for message in batch:
            try:
                convert_message(IngestMessage.model_validate_json(message.body), convert)
            except Exception:
                failed.append(message.message_id)
        return failed

    def write_batch(batch: list[QueueMessage]) -> list[str]:
        events = [DomainEvent.model_validate(json.loads(m.body)["detail"]) for m in batch]
        write_events(events, writer)  # an exception fails the whole batch, as the CRM writer reports it
        return []

    # When the order is delivered twice under one event id and once under another
    answers = [accept_webhook(webhook(e), ingest).body["status"] for e in ("evt-1", "evt-1", "evt-2")]
    ingest_report = ingest_queue.drain(convert_batch)
    crm_report = crm_queue.drain(write_batch, batch_size=50)
    # Then the redelivery was a duplicate, and after every retry the CRM holds one contact and one deal, associated
    assert answers == ["accepted", "duplicate", "accepted"]
    assert ingest_report.moved_to_dlq == crm_report.moved_to_dlq == 0
    assert crm.faults_injected or bus_faults.total  # the seeds above do inject faults
    [contact] = crm.records("contacts")
    [deal] = crm.records("deals")
    assert contact.properties["email"] == "ada.lovelace@example.com"
    assert deal.properties["crmsync_external_id"] == "shopify:order:5678901234567"
    assert deal.associations == {"contacts": [contact.id]}
    assert crm.duplicate_contacts_by_email() == {}
    assert list(state.entities("ORDER")) == ["shopify:order:5678901234567"]
    assert len(archive) == 2
    assert sorted(receipts.statuses().values()) == ["ACCEPTED", "ACCEPTED"]
