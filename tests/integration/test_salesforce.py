"""The CRM writer on Salesforce: state on moto, the fake Salesforce over HTTP on 127.0.0.1 (local/salesforce_fake.py).
Contacts, opportunities, their contact roles and the refund's task are written and linked; 5xx and timeouts are
retried; an ambiguous external id and a spent API allowance reach the CRM DLQ with their reasons, without a storm."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from crmsync.crm import salesforce
from crmsync.crm.port import UpsertInput
from crmsync.crm.salesforce import (
    ApiUsageGuard,
    RetryPolicy,
    SalesforceApi,
    SalesforceCredentials,
    SalesforceCrm,
    SalesforceLimitExceeded,
    connect,
)
from crmsync.mapping import load_mapping
from crmsync.messages import DomainEvent
from crmsync.settings import Settings
from crmsync.store.state import StateStore
from crmsync.writer import WriterDeps, write_events
from local.salesforce_fake import FakeSalesforce, FakeSalesforceServer
from tests.integration.test_pipeline import ORDER, deliver, drain  # noqa: F401 - deliver is a fixture
from tests.integration.test_sources import fixture, post, woo_headers  # noqa: F401 - post is a fixture

EXT = "Crmsync_External_Id__c"
REFUND_ORDER = "woocommerce:order:7310"
REFUND_NOTE = "crmsync:woocommerce:refund:7420"


@pytest.fixture
def server(aws, monkeypatch) -> Iterator[FakeSalesforceServer]:
    """The fake Salesforce on a free port, and CRM_BACKEND=salesforce pointed at it (as a local run sets it)."""
    with FakeSalesforceServer() as running:
        monkeypatch.setenv("CRM_BACKEND", "salesforce")
        monkeypatch.setenv("SALESFORCE_INSTANCE_URL", running.url)
        monkeypatch.setenv("SALESFORCE_ACCESS_TOKEN", running.fake.token)
        salesforce._shared_api.cache_clear()
        yield running
        salesforce._shared_api.cache_clear()


@pytest.fixture
def fake(server) -> FakeSalesforce:
    return server.fake


def adapter(url: str, token: str, *, read_timeout: float = 10.0) -> SalesforceCrm:
    sf = connect(SalesforceCredentials(instance_url=url, access_token=token))
    api = SalesforceApi(sf, guard=ApiUsageGuard(), retry=RetryPolicy(initial_seconds=0.05, max_seconds=0.2),
                        timeout=(2.0, read_timeout))  # fmt: skip
    return SalesforceCrm(api=api)


def crm_events(aws) -> list[DomainEvent]:
    """Domain events waiting on the CRM queue (taken off it)."""
    return [DomainEvent.model_validate(json.loads(m["Body"])["detail"]) for m in aws.receive_all(aws.crm_queue_url)]


def convert_only(aws, lambda_context) -> None:
    from convert import app as convert_app

    ingest = aws.receive_all(aws.env["INGEST_QUEUE_URL"])
    assert convert_app.lambda_handler(aws.sqs_event(ingest, "ingest"), lambda_context) == {"batchItemFailures": []}


def company_order_events(aws, send, lambda_context) -> list[DomainEvent]:
    """A WooCommerce order of two lines (3 socks for 10.00, a rain jacket at 50.00 less 5.00) whose billing address
    names the buyer's company, Rivera Design, delivered through `send` (the `post` fixture) and converted: the
    domain events on the CRM queue."""
    order = json.loads(fixture("woocommerce", "order-partial-refund.json"))
    order["billing"]["company"] = "Rivera Design"
    body = json.dumps(order).encode()
    assert send("woocommerce", body, woo_headers("order.updated", body))[0] == 200
    convert_only(aws, lambda_context)
    return crm_events(aws)


def dead_letters(aws) -> list[dict]:
    sqs = aws.client("sqs")
    answer = sqs.receive_message(QueueUrl=aws.env["CRM_DLQ_URL"], MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return [
        {name: value["StringValue"] for name, value in m.get("MessageAttributes", {}).items()}
        for m in answer.get("Messages", [])
    ]


def test_writer_writes_contacts_opportunities_roles_and_tasks(aws, post, server, lambda_context):  # noqa: F811
    # Given a WooCommerce order with a partial refund, converted into state (moto)
    fake = server.fake
    order = fixture("woocommerce", "order-partial-refund.json")
    assert post("woocommerce", order, woo_headers("order.updated", order))[0] == 200
    convert_only(aws, lambda_context)
    events = crm_events(aws)
    if True:  # the CRM writer with WriterDeps(state on moto, SalesforceCrm over HTTP, the Salesforce mapping)
        crm = adapter(server.url, fake.token)
        deps = WriterDeps(state=StateStore(aws.env["STATE_TABLE"]), crm=crm, mapping=load_mapping("salesforce"))

        # When the CRM writer writes the batch to Salesforce
        summary = write_events(events, deps)

        # Then the buyer is one Contact
        [contact] = fake.all("Contact")
        assert (contact["Email"], contact["LastName"]) == ("sam.rivera@example.com", "Rivera")
        assert contact[EXT].startswith("crmsync:customer:")
        # And the order one Opportunity, with Salesforce types and the mapped stage
        [deal] = fake.all("Opportunity")
        assert (deal[EXT], deal["Amount"], deal["Crmsync_Refunded_Amount__c"], deal["Crmsync_Currency__c"]) == (
            REFUND_ORDER, 60.0, 15.0, "USD",
        )  # fmt: skip
        assert deal["StageName"] == "Closed Won"
        assert len(deal["CloseDate"]) == 10
        # And the contact is the opportunity's primary contact role
        [role] = fake.all("OpportunityContactRole")
        assert (role["OpportunityId"], role["ContactId"], role["IsPrimary"]) == (deal["Id"], contact["Id"], True)
        assert deal["ContactId"] == contact["Id"]
        # And the refund is a completed Task on both
        [task] = fake.all("Task")
        assert (task[EXT], task["WhatId"], task["WhoId"], task["Status"]) == (
            REFUND_NOTE, deal["Id"], contact["Id"], "Completed",
        )  # fmt: skip
        assert "15.00 USD" in task["Description"]
        # And state records the Salesforce ids, with one call per object type and link kind (6 in all)
        assert summary.deals == {REFUND_ORDER: deal["Id"]}
        assert summary.notes == {REFUND_NOTE: task["Id"]}
        assert deps.state.crm_ids(f"ORDER#{REFUND_ORDER}", "salesforce") == {"deal": deal["Id"]}
        assert fake.used == 6

        # When the same events are written again by another invocation
        write_events(events, WriterDeps(deps.state, adapter(server.url, fake.token), deps.mapping))
        # Then nothing is duplicated (the contact roles are read before any is created)
        assert [len(fake.all(s)) for s in ("Contact", "Opportunity", "OpportunityContactRole", "Task")] == [1] * 4


def test_crm_writer_handler_on_salesforce_through_the_whole_pipeline(aws, deliver, fake):  # noqa: F811
    # Given CRM_BACKEND=salesforce pointed at the fake, When a Shopify order flows through ingest, convert and writer
    assert deliver(ORDER)["status"] == "accepted"
    # Then Salesforce has the buyer and the order, linked by the primary contact role
    [contact] = fake.all("Contact")
    assert (contact["Email"], contact["FirstName"], contact["Phone"]) == (
        "ada.lovelace@example.com",
        "Ada",
        "+15024581234",
    )
    [deal] = fake.all("Opportunity")
    assert (deal["Name"], deal["Amount"], deal["StageName"]) == ("Shopify order #1042", 225.4, "Closed Won")
    assert deal[EXT] == f"shopify:order:{ORDER['id']}"
    assert deal["ContactId"] == contact["Id"]


def test_server_errors_are_retried_and_the_write_goes_through(aws, deliver, fake, monkeypatch):  # noqa: F811
    # Given Salesforce answers the first two requests 503 and 500 (and short backoffs, to keep the test quick)
    monkeypatch.setattr(salesforce, "RetryPolicy", lambda: RetryPolicy(initial_seconds=0.05, max_seconds=0.1))
    fake.fail_next(503)
    fake.fail_next(500)
    # When an order is written
    deliver(ORDER)
    # Then the retries wrote it once
    assert len(fake.all("Contact")) == 1
    assert len(fake.all("Opportunity")) == 1
    assert fake.received == fake.used == len(fake.seen) + 2


def test_a_timeout_is_retried_and_the_upsert_stays_idempotent():
    # Given a Salesforce that answers the first request after the client's read timeout (but still applies it)
    with FakeSalesforceServer() as server:
        fake = server.fake
        crm = adapter(server.url, fake.token, read_timeout=0.3)
        fake.delay_next(1.0)
        # When a contact is upserted
        item = UpsertInput(EXT, "crmsync:customer:c1", {"LastName": "Lovelace", EXT: "crmsync:customer:c1"})
        [result] = crm.upsert("contacts", [item])
        # Then it was sent twice: the retry answered, and the late first request applies too (wait for it, 5 s at most)
        deadline = time.monotonic() + 5
        while fake.received < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
    assert fake.received == 2
    # And there is one contact: an upsert by external id is safe to repeat
    assert [c["Id"] for c in fake.all("Contact")] == [result.id]


def test_an_ambiguous_external_id_is_dead_lettered_with_its_reason(aws, deliver, fake, monkeypatch):  # noqa: F811
    # Given two opportunities in Salesforce holding the order's external id, and one attempt allowed
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "1")
    for name in ("Twin A", "Twin B"):
        fake.seed("Opportunity", Name=name, StageName="Prospecting", CloseDate="2024-01-01",
                  **{EXT: f"shopify:order:{ORDER['id']}"})  # fmt: skip
    # When the order is written
    deliver(ORDER)
    # Then the order's event is in the CRM DLQ with a reason that says what happened and what to do
    letters = dead_letters(aws)
    assert letters
    for letter in letters:
        assert letter["crmsync-error-type"] == "SalesforceRecordError"
        assert "matches more than one Opportunity" in letter["crmsync-error-message"]
        assert "ada.lovelace" not in letter["crmsync-error-message"]
    # And nothing was guessed: still the two twins
    assert len(fake.all("Opportunity")) == 2


def test_a_spent_api_allowance_stops_the_writer_without_a_retry_storm(aws, deliver, fake, monkeypatch):  # noqa: F811
    # Given an org whose daily allowance is spent, and one attempt allowed (each event is then written alone)
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "1")
    fake.daily_limit = 10
    fake.used = 10
    # When an order arrives (its customer and order events reach the writer together)
    deliver(ORDER)
    # Then Salesforce was asked once: its 403 REQUEST_LIMIT_EXCEEDED stopped every later call in the container
    assert fake.received == 1
    # And the events are dead-lettered with the reason, for a redrive once the allowance is back
    letters = dead_letters(aws)
    assert letters
    assert {letter["crmsync-error-type"] for letter in letters} == {"SalesforceLimitExceeded"}
    assert all("REQUEST_LIMIT_EXCEEDED" in letter["crmsync-error-message"] for letter in letters)
    # And the next invocation in the container is refused before it calls, until the cool-down ends
    with pytest.raises(SalesforceLimitExceeded):
        SalesforceCrm.from_settings(Settings.from_env()).upsert("contacts", [UpsertInput(EXT, "x", {"LastName": "X"})])
    assert fake.received == 1


def test_a_contact_deleted_in_salesforce_is_upserted_again_when_an_opportunity_needs_it(aws, deliver, fake, server):  # noqa: F811
    # Given an order in Salesforce, then its Contact deleted there (its contact roles go with it)
    deliver(ORDER)
    [gone] = fake.all("Contact")
    assert [a.outcome for a in adapter(server.url, fake.token).delete("contacts", [gone["Id"]])] == ["deleted"]
    # When the buyer's next order arrives, stamped like the first, so the customer is unchanged and the writer does
    # not send the contact
    second = {**ORDER, "id": ORDER["id"] + 1, "name": "#1043", "order_number": ORDER["order_number"] + 1}
    deliver(second, event_id="evt-2")
    # Then the contact role naming the gone contact is refused, the contact upserted after all (a new record), and
    # the opportunity's primary contact role names it
    [contact] = fake.all("Contact")
    assert contact["Id"] != gone["Id"]
    assert contact["Email"] == "ada.lovelace@example.com"
    deal = next(d for d in fake.all("Opportunity") if d[EXT] == f"shopify:order:{second['id']}")
    [role] = fake.find("OpportunityContactRole", OpportunityId=deal["Id"])
    assert (role["ContactId"], role["IsPrimary"]) == (contact["Id"], True)
    assert dead_letters(aws) == []


def test_a_second_order_of_a_known_buyer_reuses_the_salesforce_contact(aws, deliver, fake):  # noqa: F811
    # Given an order in Salesforce
    deliver(ORDER)
    [contact] = fake.all("Contact")
    upserts = len(fake.calls("PATCH", "composite/sobjects/Contact"))
    # When the buyer's next order arrives, leaving the customer unchanged
    second = {**ORDER, "id": ORDER["id"] + 1, "name": "#1043", "order_number": ORDER["order_number"] + 1}
    deliver(second, event_id="evt-2")
    # Then the Contact is not sent again, and the new opportunity's contact role names it
    assert len(fake.calls("PATCH", "composite/sobjects/Contact")) == upserts
    deal = next(d for d in fake.all("Opportunity") if d[EXT] == f"shopify:order:{second['id']}")
    [role] = fake.find("OpportunityContactRole", OpportunityId=deal["Id"])
    assert role["ContactId"] == contact["Id"]


def test_a_companies_section_makes_one_account_per_company_and_sets_the_contacts_account(
    aws, post, server, lambda_context,  # noqa: F811
):  # fmt: skip
    # Given the Salesforce mapping with a companies section (-> Account), and a WooCommerce order whose billing
    # address names the buyer's company, converted into state
    from crmsync.mapping import parse_mapping_text
    from crmsync.mapping.fields import CONFIG_DIR

    section = "companies:\n  id_property: Crmsync_External_Id__c\n  properties:\n    Name: name\n"
    section += "    Crmsync_External_Id__c: external_id\n"
    text = (CONFIG_DIR / "salesforce.yaml").read_text() + "\n" + section
    mapping = parse_mapping_text(text, source="salesforce+companies.yaml", backend="salesforce")
    fake = server.fake
    events = company_order_events(aws, post, lambda_context)
    # When the CRM writer writes the batch, twice
    deps = WriterDeps(state=StateStore(aws.env["STATE_TABLE"]), crm=adapter(server.url, fake.token), mapping=mapping)
    summary = write_events(events, deps)
    write_events(events, WriterDeps(deps.state, adapter(server.url, fake.token), mapping))
    # Then the company is one Account, found by its external id, and the Contact's AccountId is that Account
    [account] = fake.all("Account")
    assert (account["Name"], account[EXT]) == ("Rivera Design", "company:rivera design")
    [contact] = fake.all("Contact")
    assert contact["AccountId"] == account["Id"]
    assert summary.companies == {"company:rivera design": account["Id"]}
