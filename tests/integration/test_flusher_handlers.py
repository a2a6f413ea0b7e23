"""The CRM writer and flusher handlers on moto with the local CRM: with CRM_FLUSH_DELAY_SECONDS unset (0) nothing
changes; with a delay the writer only marks what the events touched, and the flusher writes it, coalesced."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm_writer import app as writer_app
from crmsync.store.dirty import DirtyStore
from crmsync.store.errors import StoreError
from flusher import app as flusher_app
from tests.integration.conftest import Aws, FakeContext, api_event
from tests.integration.test_pipeline import ORDER, drain, local_crm

PAID = {**ORDER, "financial_status": "paid", "updated_at": "2026-11-20T10:20:00-05:00"}
PENDING = {**ORDER, "financial_status": "pending"}


@pytest.fixture
def deliver(aws: Aws, lambda_context: FakeContext) -> Any:
    """Send a signed Shopify webhook to ingest, then run convert and the CRM writer on what is queued."""
    from crmsync.sources.shopify import sign
    from ingest import app as ingest_app

    def run(payload: dict[str, Any], *, topic: str = "orders/create", event_id: str = "evt-1") -> dict[str, Any]:
        body = json.dumps(payload).encode()
        headers = {
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body, "local-shopify-secret"),
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Event-Id": event_id,
        }
        event = api_event("POST", "/webhooks/shopify", body=body, headers=headers, path_params={"source": "shopify"})
        ingest_app.lambda_handler(event, lambda_context)
        return drain(aws, lambda_context)

    return run


@pytest.fixture
def dirty(aws: Aws) -> DirtyStore:
    return DirtyStore(aws.env["STATE_TABLE"])


@pytest.fixture
def delayed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_FLUSH_DELAY_SECONDS", "60")


def test_without_a_delay_the_writer_writes_at_once_and_marks_nothing(
    aws: Aws, deliver: Any, dirty: DirtyStore, lambda_context: FakeContext
) -> None:
    # Given CRM_FLUSH_DELAY_SECONDS unset, When an order flows through the pipeline
    deliver(ORDER)
    # Then the CRM shows it at once, and nothing waits for a flusher
    assert len(local_crm(lambda_context, "deals")) == 1
    assert dirty.pending() == []


@pytest.mark.usefixtures("delayed")
def test_with_a_delay_the_writer_marks_and_the_flusher_writes_the_newest_state_once(
    aws: Aws, deliver: Any, dirty: DirtyStore, lambda_context: FakeContext, load_event: Any
) -> None:
    # Given a delay, When an order is placed and then paid
    deliver(PENDING, event_id="evt-1")
    deliver(PAID, topic="orders/paid", event_id="evt-2")

    # Then the CRM shows nothing yet: the customer and the order wait as two dirty records
    assert local_crm(lambda_context, "deals") == []
    assert sorted(i.entity for i in dirty.pending()) == ["customer", "order"]

    # When the scheduled flusher runs before the delay is over
    scheduled = flusher_app.lambda_handler(load_event("flusher-schedule.json"), lambda_context)
    # Then it writes nothing
    assert (scheduled["pending"], scheduled["chosen"], scheduled["written"]) == (2, 0, 0)

    # When it is invoked on demand for everything
    report = flusher_app.lambda_handler(load_event("flusher-all.json"), lambda_context)

    # Then the paid order is one deal with its contact, and nothing is dirty any more
    assert (report["written"], report["redirtied"], report["failed"]) == (2, 0, 0)
    [deal] = local_crm(lambda_context, "deals")
    [contact] = local_crm(lambda_context, "contacts")
    assert deal["properties"]["dealstage"] == "closedwon"
    assert deal["associations"] == {"contacts": [contact["id"]]}
    assert dirty.pending() == []


@pytest.mark.usefixtures("delayed")
def test_a_batch_whose_marks_fail_is_retried_and_never_acknowledged(
    deliver: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeContext
) -> None:
    # Given a state table that refuses the marks
    class Refusing(DirtyStore):
        def mark(self, touches: Any) -> None:
            raise StoreError("TransactWriteItems: ProvisionedThroughputExceededException")

    monkeypatch.setattr(writer_app, "dirty_store", lambda settings: Refusing(settings.state_table))

    # When an order's events reach the CRM writer
    results = deliver(ORDER)

    # Then every record of the batch is reported failed (SQS delivers it again), and nothing was written
    assert len(results["writer"]["batchItemFailures"]) == 2
    assert local_crm(lambda_context, "deals") == []
