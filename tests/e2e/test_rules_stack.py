"""Automation rules over HTTP on `make run`'s stack: a Stripe dispute webhook ends as a high-priority task and a risk
flag on the right contact in the local CRM."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.e2e.test_local_stack import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EMAIL = "rules.e2e@example.com"


def post_stripe(stack: Any, event: dict[str, Any]) -> dict[str, Any]:
    from crmsync.sources.stripe import sign

    body = json.dumps(event).encode()
    secret = str(stack.state["secrets"]["STRIPE_WEBHOOK_SECRET"]).split(",")[0]
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, secret, int(time.time()))}
    status, answer = stack.request("POST", "/webhooks/stripe", body=body, headers=headers)
    assert status == 200, answer
    return dict(answer)


def test_a_dispute_webhook_ends_as_a_high_priority_task_and_a_risk_flag_on_the_contact(stack):
    # Given a paid Stripe payment of a buyer, synced to the local CRM
    payment = json.loads((FIXTURES / "stripe" / "payment_intent.succeeded.json").read_bytes())
    payment["id"] = "evt_e2e_rules_paid"
    payment["data"]["object"].update(id="pi_e2e_rules", receipt_email=EMAIL)
    assert post_stripe(stack, payment)["status"] == "accepted"

    def buyer() -> list[dict[str, Any]]:
        return [c for c in stack.local_crm("contacts") if c["properties"].get("email") == EMAIL]

    assert wait_for(buyer)
    # When Stripe sends charge.dispute.created for that payment
    dispute = json.loads((FIXTURES / "stripe" / "charge.dispute.created.json").read_bytes())
    dispute["id"] = "evt_e2e_rules_dispute"
    dispute["data"]["object"].update(id="dp_e2e_rules", payment_intent="pi_e2e_rules")
    assert post_stripe(stack, dispute)["status"] == "accepted"
    # Then a high-priority task for the dispute appears, associated with the buyer's contact
    external_id = "dispute-opened:stripe:dispute:dp_e2e_rules"
    tasks = wait_for(
        lambda: [t for t in stack.local_crm("tasks") if t["properties"].get("crmsync_external_id") == external_id]
    )
    assert len(tasks) == 1
    [task] = tasks
    assert task["properties"]["hs_task_priority"] == "HIGH"
    [contact] = buyer()
    assert task["associations"]["contacts"] == [contact["id"]]
    # And that contact carries the risk flag
    assert contact["properties"]["crmsync_risk_flag"] == "true"
    assert contact["properties"]["crmsync_risk_reason"] == "dispute opened (fraudulent)"
