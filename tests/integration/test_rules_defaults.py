"""Each shipped default rule (config/rules/default.yaml) through the pipeline on moto: webhook -> ... -> local CRM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest import app as ingest_app
from tests.conftest import EVENTS, FIXTURES
from tests.integration.conftest import api_event
from tests.integration.test_pipeline import local_crm
from tests.integration.test_rules_pipeline import EMAIL, drain_all, post_stripe, stripe_event

ORDER = json.loads((EVENTS / "payloads" / "shopify-orders-create.json").read_bytes())
SHOP_EMAIL = "ada.lovelace@example.com"


@pytest.fixture
def shopify(aws, lambda_context):
    """Deliver a signed Shopify webhook and drain convert, the CRM writer and the rules."""
    from crmsync.sources.shopify import sign

    def deliver(payload: dict[str, Any], *, topic: str = "orders/create", event_id: str = "evt-1") -> dict[str, Any]:
        body = json.dumps(payload).encode()
        headers = {
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body, "local-shopify-secret"),
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Event-Id": event_id,
        }
        event = api_event("POST", "/webhooks/shopify", body=body, headers=headers, path_params={"source": "shopify"})
        assert json.loads(ingest_app.lambda_handler(event, lambda_context)["body"])["status"] == "accepted"
        results = drain_all(aws, lambda_context)
        assert results.get("rules", {"batchItemFailures": []}) == {"batchItemFailures": []}
        return results

    return deliver


def contact(lambda_context, email: str = SHOP_EMAIL) -> dict[str, Any]:
    [found] = local_crm(lambda_context, "contacts", email=email)
    return found


def order(number: int, total: str, *, updated_at: str = "2026-11-20T10:15:43-05:00") -> dict[str, Any]:
    return {**ORDER, "id": 5678901234000 + number, "name": f"#{1000 + number}", "current_total_price": total,
            "total_price": total, "updated_at": updated_at}  # fmt: skip


# --- first paid order -> lifecycle stage customer -------------------------------------------------------------------
def test_the_first_paid_order_makes_the_contact_a_customer(aws, shopify, lambda_context):
    shopify(ORDER)
    assert contact(lambda_context)["properties"]["lifecyclestage"] == "customer"


def test_an_unpaid_order_leaves_the_lifecycle_stage_alone(aws, shopify, lambda_context):
    shopify({**ORDER, "financial_status": "pending"})
    assert "lifecyclestage" not in contact(lambda_context)["properties"]


# --- lifetime value >= 1000 -> vip tag ------------------------------------------------------------------------------
def test_lifetime_value_reaching_the_threshold_tags_the_customer_vip(aws, shopify, lambda_context):
    # Given a paid order of 600.00: below the threshold
    shopify(order(1, "600.00"), event_id="e1")
    assert "crmsync_tags" not in contact(lambda_context)["properties"]
    # When a second paid order of 450.00 arrives (1050.00 in all)
    shopify(order(2, "450.00"), event_id="e2")
    # Then the contact is tagged vip
    assert contact(lambda_context)["properties"]["crmsync_tags"] == "vip"


def test_a_resent_and_an_updated_order_count_once_toward_lifetime_value(aws, shopify, lambda_context):
    # Given a paid order of 600.00, sent again under a new event id, then updated (a newer version)
    shopify(order(1, "600.00"), event_id="e1")
    shopify(order(1, "600.00"), event_id="e1-again")
    shopify(order(1, "600.00", updated_at="2026-11-21T10:00:00-05:00"), topic="orders/updated", event_id="e1-upd")
    # Then it counts once: 600.00, no vip tag
    assert "crmsync_tags" not in contact(lambda_context)["properties"]
    from crmsync.rules.automation import Reader, customer_facts
    from crmsync.store.aggregates import AggregateStore
    from crmsync.store.decisions import DecisionStore
    from crmsync.store.state import StateStore

    table = aws.env["STATE_TABLE"]
    reader = Reader(StateStore(table), AggregateStore(table), DecisionStore(table), mapping=None)  # type: ignore[arg-type]
    customer_id = contact(lambda_context)["properties"]["crmsync_external_id"].removeprefix("crmsync:customer:")
    from datetime import UTC, datetime

    facts = customer_facts(reader, customer_id, as_of=datetime(2027, 1, 1, tzinfo=UTC))
    assert (str(facts.lifetime_value), facts.paid_orders, facts.currency) == ("600.00", 1, "USD")


# --- payment failed -> follow-up task -------------------------------------------------------------------------------
def failed_payment(event_id: str, created: int, *, risk_level: str | None = None) -> dict[str, Any]:
    charges = None
    if risk_level:
        charges = {"object": "list", "data": [{"id": f"ch_{event_id}", "object": "charge", "amount": 5000,
                   "currency": "eur", "status": "failed", "created": created, "billing_details": {"email": EMAIL},
                   "outcome": {"risk_level": risk_level, "risk_score": 90, "type": "blocked"}}]}  # fmt: skip
    return stripe_event(
        "payment_intent.payment_failed.json", id=event_id, created=created,
        object={"id": f"pi_{event_id}", "receipt_email": EMAIL, "charges": charges},
    )  # fmt: skip


def test_a_failed_payment_gets_a_follow_up_task(aws, lambda_context):
    post_stripe(failed_payment("evt_f1", 1717236000), lambda_context)
    drain_all(aws, lambda_context)
    [task] = local_crm(lambda_context, "tasks", crmsync_external_id="payment-failed:stripe:payment:pi_evt_f1")
    props = task["properties"]
    assert (props["hs_task_priority"], props["hs_queue_membership_ids"]) == ("MEDIUM", "billing")
    assert props["hs_task_subject"] == "Follow up: payment stripe:payment:pi_evt_f1 of 50.00 EUR failed"
    assert props["hs_task_body"].startswith("Reason: card_declined Your card has insufficient funds.")
    assert props["hs_timestamp"] == "2024-06-02T10:00:00+00:00"  # the failure + 24 h
    assert task["associations"]["contacts"] == [contact(lambda_context, EMAIL)["id"]]


# --- risk score above the threshold -> property, task, note with the factors -------------------------------------
def test_failed_payment_velocity_and_radar_push_the_risk_score_over_the_threshold(aws, lambda_context):
    # Given three failed payments of one buyer within an hour, which Stripe Radar rates "highest"
    for number, created in enumerate((1717236000, 1717237000, 1717238000), start=1):
        post_stripe(failed_payment(f"evt_r{number}", created, risk_level="highest"), lambda_context)
        drain_all(aws, lambda_context)
    # Then the third scored 30 (velocity) + 30 (radar) = 60: a review task, a note listing the factors, the property
    [task] = local_crm(lambda_context, "tasks", crmsync_external_id="high-risk:stripe:payment:pi_evt_r3")
    assert task["properties"]["hs_task_priority"] == "HIGH"
    assert task["properties"]["hs_task_subject"] == "Review risk 60/100 on stripe:payment:pi_evt_r3"
    [note] = local_crm(lambda_context, "notes", crmsync_external_id="high-risk:stripe:payment:pi_evt_r3")
    body = note["properties"]["hs_note_body"]
    assert body.startswith("Risk score 60/100 (threshold 60): failed_payment_velocity +30 (weight 30): 3 failed")
    assert "radar +30 (weight 30): Stripe Radar risk level highest, score 90" in body
    props = contact(lambda_context, EMAIL)["properties"]
    assert (props["crmsync_risk_score"], props["crmsync_risk_flag"]) == ("60", "true")
    # And the earlier two stayed below it
    assert local_crm(lambda_context, "tasks", crmsync_external_id="high-risk:stripe:payment:pi_evt_r2") == []


# --- refund -> deal stage and note ----------------------------------------------------------------------------------
def test_a_partial_refund_notes_the_deal_and_a_full_refund_closes_it_lost(aws, lambda_context):
    woo = (FIXTURES / "woocommerce" / "order-partial-refund.json").read_bytes()
    from tests.integration.test_sources import woo_headers

    event = api_event("POST", "/webhooks/woocommerce", body=woo, headers=woo_headers("order.updated", woo),
                      path_params={"source": "woocommerce"})  # fmt: skip
    ingest_app.lambda_handler(event, lambda_context)
    drain_all(aws, lambda_context)
    [deal] = local_crm(lambda_context, "deals", crmsync_external_id="woocommerce:order:7310")
    [note] = local_crm(lambda_context, "notes", crmsync_external_id="refund-issued:woocommerce:refund:7420")
    assert note["properties"]["hs_note_body"].startswith("Refund 7420: 15.00 USD")
    assert "refunded 15.00 of 60.00 USD" in note["properties"]["hs_note_body"]
    assert note["associations"]["deals"] == [deal["id"]]
    assert deal["properties"]["crmsync_refund_status"] == "partially_refunded"
    assert deal["properties"]["dealstage"] != "closedlost"


def test_a_full_stripe_refund_moves_the_deal_to_closed_lost(aws, lambda_context):
    payment = stripe_event("payment_intent.succeeded.json", id="evt_paid_r", object={"receipt_email": EMAIL})
    post_stripe(payment, lambda_context)
    drain_all(aws, lambda_context)
    refunded = stripe_event("charge.refunded.json", id="evt_refund_r", created=payment["created"] + 60, object={
        "payment_intent": payment["data"]["object"]["id"], "amount": 2000, "amount_refunded": 2000,
        "amount_captured": 2000})  # fmt: skip
    for refund in refunded["data"]["object"]["refunds"]["data"]:
        refund.update(amount=2000, payment_intent=payment["data"]["object"]["id"], status="succeeded")
    post_stripe(refunded, lambda_context)
    drain_all(aws, lambda_context)
    [deal] = local_crm(lambda_context, "deals")
    assert deal["properties"]["dealstage"] == "closedlost"
    assert deal["properties"]["crmsync_refund_status"] == "refunded"
    notes = [n for n in local_crm(lambda_context, "notes")
             if n["properties"]["crmsync_external_id"].startswith("refund-issued:")]  # fmt: skip
    assert len(notes) == len(refunded["data"]["object"]["refunds"]["data"])


# --- early fraud warning -> risk flag (and risk.flagged on the bus) -------------------------------------------------
def test_an_early_fraud_warning_flags_the_customer_and_publishes_risk_flagged(aws, lambda_context):
    # Given a listener on the events the rules publish
    sqs, events = aws.client("sqs"), aws.client("events")
    listener = sqs.create_queue(QueueName="listener")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=listener, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="listen", EventBusName=aws.env["EVENT_BUS_NAME"],
                    EventPattern=json.dumps({"source": ["crmsync.rules"]}))  # fmt: skip
    events.put_targets(Rule="listen", EventBusName=aws.env["EVENT_BUS_NAME"], Targets=[{"Id": "l", "Arn": arn}])
    # And a paid payment of a known buyer
    payment = stripe_event("payment_intent.succeeded.json", id="evt_paid_w", object={
        "id": "pi_3PfraudWarning000000001", "receipt_email": EMAIL})  # fmt: skip
    post_stripe(payment, lambda_context)
    drain_all(aws, lambda_context)
    # When Stripe Radar sends an early fraud warning for it
    post_stripe(stripe_event("radar.early_fraud_warning.created.json"), lambda_context)
    drain_all(aws, lambda_context)
    # Then the contact carries the risk flag with the reason
    props = contact(lambda_context, EMAIL)["properties"]
    assert props["crmsync_risk_flag"] == "true"
    assert props["crmsync_risk_reason"] == "early fraud warning (made_with_stolen_card)"
    # And risk.flagged was published by the rules (source crmsync.rules: no crmsync queue takes it back)
    [published] = aws.receive_all(listener)
    envelope = json.loads(published["Body"])
    assert (envelope["detail-type"], envelope["source"]) == ("risk.flagged", "crmsync.rules")
    assert envelope["detail"]["data"]["rule_id"] == "early-fraud-warning"
    assert envelope["detail"]["key"] == "stripe:dispute:issfr_1PfraudWarning0000001"
    assert aws.receive_all(aws.env["RULES_QUEUE_URL"]) == []


def test_the_sample_rules_event_is_handled(aws, load_event, lambda_context):
    # The documented rules-queue event (an order the state does not hold): rules run, nothing fails
    from rules import app as rules_app

    assert rules_app.lambda_handler(load_event("rules-order-placed.json"), lambda_context) == {"batchItemFailures": []}


def test_automation_can_be_switched_off(aws, shopify, lambda_context, monkeypatch):
    monkeypatch.setenv("CRMSYNC_RULES", "none")
    shopify(ORDER)
    assert "lifecyclestage" not in contact(lambda_context)["properties"]
