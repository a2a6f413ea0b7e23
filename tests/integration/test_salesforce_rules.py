"""Automation rules on CRM_BACKEND=salesforce: rule files name properties the HubSpot way, and the Salesforce
mapping's `rule_properties` (config/mappings/salesforce.yaml) puts each under its Salesforce field. Webhook -> convert
-> CRM writer -> rules function, state on moto, the fake Salesforce over HTTP on 127.0.0.1."""

from __future__ import annotations

from tests.integration.test_rules_defaults import ORDER, failed_payment, shopify  # noqa: F401 - shopify is a fixture
from tests.integration.test_rules_pipeline import EMAIL, drain_all, post_stripe
from tests.integration.test_salesforce import EXT, server  # noqa: F401 - server is a fixture


def test_a_rules_contact_property_lands_under_its_salesforce_field(aws, server, shopify):  # noqa: F811
    # Given CRM_BACKEND=salesforce pointed at the fake org, and the shipped rules and Salesforce mapping
    # When a paid Shopify order goes through convert, the CRM writer and the rules (no record fails)
    shopify(ORDER)
    # Then first-paid-order's `set_contact: {lifecyclestage: customer}` is the Contact's Crmsync_Lifecycle_Stage__c
    [contact] = server.fake.all("Contact")
    assert contact["Crmsync_Lifecycle_Stage__c"] == "customer"
    assert contact["Email"] == "ada.lovelace@example.com"


def test_a_rules_tasks_note_and_risk_properties_land_under_salesforce_fields(aws, server, lambda_context):  # noqa: F811
    # Given three failed payments of one buyer within an hour, rated "highest" by Stripe Radar
    for number, created in enumerate((1717236000, 1717237000, 1717238000), start=1):
        post_stripe(failed_payment(f"evt_r{number}", created, risk_level="highest"), lambda_context)
        assert drain_all(aws, lambda_context)["rules"] == {"batchItemFailures": []}
    fake = server.fake
    [contact] = fake.find("Contact", Email=EMAIL)
    # Then payment-failed's task is a Task: subject, Salesforce priority, status and due date, the queue left out
    [follow_up] = fake.find("Task", **{EXT: "payment-failed:stripe:payment:pi_evt_r1"})
    assert follow_up["Subject"] == "Follow up: payment stripe:payment:pi_evt_r1 of 50.00 EUR failed"
    assert (follow_up["Priority"], follow_up["Status"], follow_up["ActivityDate"]) == (
        "Normal", "Not Started", "2024-06-02",
    )  # fmt: skip
    assert follow_up["Description"].startswith("Reason: card_declined")
    assert follow_up["WhoId"] == contact["Id"]
    # And high-risk's task (HIGH -> High), its note (a Task with the body as Description) and the risk properties
    # (both are Tasks here: the note's external id gets ":note", so the two stay two records)
    [review] = fake.find("Task", **{EXT: "high-risk:stripe:payment:pi_evt_r3"})
    assert (review["Subject"], review["Priority"]) == ("Review risk 60/100 on stripe:payment:pi_evt_r3", "High")
    [note] = fake.find("Task", **{EXT: "high-risk:stripe:payment:pi_evt_r3:note"})
    assert (note["Status"], note["WhoId"]) == ("Completed", contact["Id"])
    assert note["Description"].startswith("Risk score 60/100 (threshold 60)")
    assert (contact["Crmsync_Risk_Score__c"], contact["Crmsync_Risk_Flag__c"]) == (60, "true")
    [deal] = fake.find("Opportunity", **{EXT: "stripe:payment:pi_evt_r3"})
    assert deal["Crmsync_Risk_Reason__c"] == "risk score 60"
