"""One person across sources on moto: a phone that joins a phone-only customer to an email one merges them, in
state and in the CRM; a phone shared by someone with another email merges nobody (tests/fixtures/identity/)."""

from __future__ import annotations

import json

import pytest

from api import app as api_app
from tests.conftest import FIXTURES
from tests.integration.conftest import api_event
from tests.integration.test_pipeline import drain, local_crm
from tests.integration.test_sources import post, woo_headers  # noqa: F401 - post is a fixture

SHOPIFY_SECRET = "local-shopify-secret"
MARIE = "marie.curie@example.com"


def scenario(name: str) -> bytes:
    return (FIXTURES / "identity" / name).read_bytes()


@pytest.fixture
def send(aws, post, lambda_context):  # noqa: F811 - the imported fixture
    """Deliver one webhook of the scenario and drain the pipeline."""
    from crmsync.sources.shopify import sign

    def run(name: str, *, topic: str, event_id: str | None = None) -> None:
        body = scenario(name)
        if name.startswith("woocommerce"):
            status, _ = post("woocommerce", body, woo_headers(topic, body))
        else:
            headers = {
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign(body, SHOPIFY_SECRET),
                "X-Shopify-Shop-Domain": "demo.myshopify.com",
                "X-Shopify-Event-Id": event_id or f"evt-{name}",
            }
            status, _ = post("shopify", body, headers)
        assert status == 200
        drain(aws, lambda_context)

    return run


def customer(lambda_context, customer_id: str) -> dict:
    event = api_event(
        "GET", f"/customers/{customer_id}", headers={"x-api-key": "local-operator-key"},
        path_params={"customer_id": customer_id}, resource="/customers/{customer_id}",
    )  # fmt: skip
    answer = api_app.lambda_handler(event, lambda_context)
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])


def find(lambda_context, email: str) -> dict:
    event = api_event(
        "GET", "/customers", headers={"x-api-key": "local-operator-key"}, query={"email": email},
        resource="/customers",
    )  # fmt: skip
    [document] = json.loads(api_app.lambda_handler(event, lambda_context)["body"])["customers"]
    return document


def test_a_phone_that_joins_two_customers_merges_them_in_state_and_crm(aws, send, lambda_context):
    # Given a WooCommerce guest known only by phone, and her Shopify account known by email (two customers)
    send("woocommerce-guest-order.json", topic="order.created")
    send("shopify-customer-create.json", topic="customers/create")
    assert len(local_crm(lambda_context, "contacts")) == 2
    [guest] = [c for c in local_crm(lambda_context, "contacts") if "email" not in c["properties"]]
    guest_id = guest["properties"]["crmsync_external_id"].removeprefix("crmsync:customer:")

    # When she adds that phone to her Shopify account
    send("shopify-customer-update.json", topic="customers/update")

    # Then there is one customer: the guest order belongs to her, and every key finds her
    marie = find(lambda_context, MARIE)
    assert [o["source_id"] for o in marie["orders"]] == ["88001"]
    assert {link["key"] for link in marie["identity"]} == {
        f"email:{MARIE}",
        "shopify:customer:7300000000001",
        "phone:+33612345678",
    }
    # And the merge is recorded with its reason, and the old id answers with the survivor
    [update] = [e for e in marie["history"][f"customer:{marie['id']}"] if e.get("identity", {}).get("merged")]
    assert update["identity"]["merged"] == [
        {"customer_id": guest_id, "reason": f"same phone joined {marie['id']} and {guest_id}"}
    ]
    old = customer(lambda_context, guest_id)
    assert old["id"] == marie["id"]
    assert old["merged"]["survivor"] == marie["id"]
    # And the CRM has one contact, with her email and phone, associated with the guest order's deal
    [contact] = local_crm(lambda_context, "contacts")
    assert (contact["properties"]["email"], contact["properties"]["phone"]) == (MARIE, "+33612345678")
    [deal] = local_crm(lambda_context, "deals")
    assert deal["associations"]["contacts"] == [contact["id"]]
    assert contact["associations"]["deals"] == [deal["id"]]
    # And the order's history runs receipt -> version -> events -> CRM id
    convert_step, crm_step = marie["history"]["woocommerce:order:88001"]
    assert (convert_step["step"], convert_step["outcome"], convert_step["events"]) == (
        "convert", "written", ["order.placed"],
    )  # fmt: skip
    assert (crm_step["step"], crm_step["crm_id"], crm_step["receipt_id"]) == (
        "crm", deal["id"], convert_step["receipt_id"],
    )  # fmt: skip


def test_a_shared_phone_never_merges_people_with_different_emails(aws, send, lambda_context):
    # Given Marie with her phone on her Shopify account
    send("shopify-customer-create.json", topic="customers/create")
    send("shopify-customer-update.json", topic="customers/update")
    # When Pierre, another email, gives the same phone
    send("shopify-customer-other-email.json", topic="customers/create")
    # Then they stay two customers and two contacts, and the phone stays Marie's
    marie, pierre = find(lambda_context, MARIE), find(lambda_context, "pierre.curie@example.com")
    assert marie["id"] != pierre["id"]
    assert "phone:+33612345678" in {link["key"] for link in marie["identity"]}
    assert "phone:+33612345678" not in {link["key"] for link in pierre["identity"]}
    [entry] = [e for e in pierre["history"][f"customer:{pierre['id']}"] if e["step"] == "convert"]
    assert entry["identity"]["not_merged"] == [f"{marie['id']}: shares the phone but is known by another email"]
    assert len(local_crm(lambda_context, "contacts")) == 2


def test_the_joining_state_sent_again_changes_nothing(aws, send, lambda_context):
    # Given the merge happened
    send("woocommerce-guest-order.json", topic="order.created")
    send("shopify-customer-create.json", topic="customers/create")
    send("shopify-customer-update.json", topic="customers/update")
    before = find(lambda_context, MARIE)
    # When Shopify sends the same customer state again under a new event id (so it is converted again)
    send("shopify-customer-update.json", topic="customers/update", event_id="evt-again")
    # Then one customer, one contact, one deal, as before
    after = find(lambda_context, MARIE)
    assert after["id"] == before["id"]
    assert after["orders"] == before["orders"]
    assert len(local_crm(lambda_context, "contacts")) == 1
    assert len(local_crm(lambda_context, "deals")) == 1


def test_a_contact_first_known_without_email_stays_one_contact_when_the_email_arrives(aws, send, lambda_context):
    # Given a WooCommerce guest known only by phone: one contact without an email
    send("woocommerce-guest-order.json", topic="order.created")
    [before] = local_crm(lambda_context, "contacts")
    assert "email" not in before["properties"]
    # When her Shopify account with that phone and her email arrives (no create seen before)
    send("shopify-customer-update.json", topic="customers/update")
    # Then she is still one contact, now with her email, and still on the guest order's deal
    [contact] = local_crm(lambda_context, "contacts")
    assert (contact["properties"]["email"], contact["properties"]["phone"]) == (MARIE, "+33612345678")
    [deal] = local_crm(lambda_context, "deals")
    assert deal["associations"]["contacts"] == [contact["id"]]
