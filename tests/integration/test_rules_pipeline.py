"""Automation rules through the whole pipeline on moto: signed webhook -> convert -> bus -> rules queue -> rules
function -> local CRM, and the dry run through the operator API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api import app as api_app
from ingest import app as ingest_app
from rules import app as rules_app
from tests.conftest import FIXTURES
from tests.integration.conftest import api_event
from tests.integration.test_pipeline import drain, local_crm

STRIPE_SECRET = "whsec_local-stripe-secret"
OPERATOR = {"x-api-key": "local-operator-key"}
EMAIL = "grace.hopper@example.com"


def stripe_event(name: str, **changes: Any) -> dict[str, Any]:
    event = json.loads((FIXTURES / "stripe" / name).read_bytes())
    event["data"]["object"].update(changes.pop("object", {}))
    event.update(changes)
    return event


def post_stripe(event: dict[str, Any], lambda_context) -> dict[str, Any]:
    import time

    from crmsync.sources.stripe import sign

    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, STRIPE_SECRET, int(time.time()))}
    request = api_event(
        "POST", "/webhooks/stripe", body=body, headers=headers, path_params={"source": "stripe"},
        resource="/webhooks/{source}",
    )  # fmt: skip
    answer: dict[str, Any] = json.loads(ingest_app.lambda_handler(request, lambda_context)["body"])
    return answer


def drain_all(aws, lambda_context) -> dict[str, Any]:
    """convert and the CRM writer (tests.integration.test_pipeline.drain), then the rules function."""
    results = drain(aws, lambda_context)
    messages = aws.receive_all(aws.env["RULES_QUEUE_URL"])
    if messages:
        results["rules"] = rules_app.lambda_handler(aws.sqs_event(messages, "RulesQueue"), lambda_context)
    return results


def paid_then_disputed(lambda_context, aws) -> tuple[dict[str, Any], dict[str, Any]]:
    payment = stripe_event("payment_intent.succeeded.json", id="evt_paid_1", object={"receipt_email": EMAIL})
    intent = payment["data"]["object"]["id"]
    dispute = stripe_event("charge.dispute.created.json", id="evt_dispute_1", object={"payment_intent": intent})
    assert post_stripe(payment, lambda_context)["status"] == "accepted"
    assert drain_all(aws, lambda_context)["rules"] == {"batchItemFailures": []}
    assert post_stripe(dispute, lambda_context)["status"] == "accepted"
    assert drain_all(aws, lambda_context)["rules"] == {"batchItemFailures": []}
    return payment, dispute


def test_a_stripe_dispute_ends_as_a_high_priority_task_and_a_risk_flag_on_the_right_contact(aws, lambda_context):
    # Given a paid Stripe payment of a known buyer, and another buyer's contact
    other = stripe_event("payment_intent.succeeded.json", id="evt_other", object={
        "id": "pi_other", "receipt_email": "someone.else@example.com"})  # fmt: skip
    post_stripe(other, lambda_context)
    drain_all(aws, lambda_context)
    # When a charge.dispute.created webhook for the first payment goes through the pipeline
    _, dispute = paid_then_disputed(lambda_context, aws)
    # Then there is one high-priority task for the dispute, on the buyer's contact and the payment's deal
    [contact] = local_crm(lambda_context, "contacts", email=EMAIL)
    dispute_id = dispute["data"]["object"]["id"]
    [task] = local_crm(lambda_context, "tasks", crmsync_external_id=f"dispute-opened:stripe:dispute:{dispute_id}")
    assert task["properties"]["hs_task_priority"] == "HIGH"
    assert task["properties"]["hs_task_subject"].startswith(f"Dispute {dispute_id}")
    assert task["associations"]["contacts"] == [contact["id"]]
    [deal] = local_crm(lambda_context, "deals", crmsync_external_id="stripe:payment:pi_000000000000000000000000")
    assert task["associations"]["deals"] == [deal["id"]]
    # And the risk flag is on that contact (and its deal), not on the other buyer's
    assert contact["properties"]["crmsync_risk_flag"] == "true"
    assert contact["properties"]["crmsync_risk_reason"] == "dispute opened (fraudulent)"
    assert deal["properties"]["crmsync_risk_flag"] == "true"
    [bystander] = local_crm(lambda_context, "contacts", email="someone.else@example.com")
    assert "crmsync_risk_flag" not in bystander["properties"]
    # And the buyer is still one contact (the writer and the rules found the same record)
    assert len(local_crm(lambda_context, "contacts")) == 2


def test_the_decision_is_in_the_lineage_of_the_dispute_and_the_customer(aws, lambda_context):
    paid_then_disputed(lambda_context, aws)
    answer = api_app.lambda_handler(
        api_event("GET", "/customers", headers=OPERATOR, query={"email": EMAIL}), lambda_context
    )
    [customer] = json.loads(answer["body"])["customers"]
    steps = [e for e in customer["history"][f"customer:{customer['id']}"] if e["step"] == "rule"]
    decided = {d["rule_id"]: d for entry in steps for d in entry["decisions"]}
    assert decided["dispute-opened"]["outcome"] == "applied"
    assert decided["dispute-opened"]["rule_version"] == 1
    assert [a["action"] for a in decided["dispute-opened"]["actions"]] == ["create_task", "flag_risk"]
    assert decided["first-paid-order"]["outcome"] == "applied"


def test_a_redelivered_dispute_event_makes_no_second_task(aws, lambda_context):
    # Given the dispute went through once
    paid_then_disputed(lambda_context, aws)
    tasks = local_crm(lambda_context, "tasks")
    # When the same webhook is sent again under a new Stripe event id (same version), and its bus event redelivered
    dispute = stripe_event("charge.dispute.created.json", id="evt_dispute_again", object={
        "payment_intent": "pi_000000000000000000000000"})  # fmt: skip
    post_stripe(dispute, lambda_context)
    drain_all(aws, lambda_context)
    # Then there is still exactly one task per rule and record
    assert local_crm(lambda_context, "tasks") == tasks


def test_a_bad_rule_file_fails_the_records_with_its_reason_and_acts_on_nothing(
    aws, lambda_context, monkeypatch, tmp_path
):
    from crmsync.rules import config

    # Given a deployed rule set whose file has a typo in a condition
    (tmp_path / "broken.yaml").write_text(
        "rules:\n  - id: typo\n    version: 1\n    when: [payment.succeeded]\n    condition: custmer.orders > 1\n"
        "    then: [{add_tags: [x]}]\n"
    )
    load = config.load_rules.__wrapped__
    monkeypatch.setattr(config, "load_rules", lambda name: load(name, tmp_path))
    monkeypatch.setenv("CRMSYNC_RULES", "broken")
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "1")
    post_stripe(stripe_event("payment_intent.succeeded.json", object={"receipt_email": EMAIL}), lambda_context)
    # When the rules function takes its events (on their last attempt)
    results = drain_all(aws, lambda_context)
    # Then no record is lost: each is in the rules DLQ, with the reason naming the file, the rule and what is wrong
    assert results["rules"] == {"batchItemFailures": []}
    answer = aws.client("sqs").receive_message(
        QueueUrl=aws.env["RULES_DLQ_URL"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    [message, *_] = answer["Messages"]
    reason = message["MessageAttributes"]["crmsync-error-message"]["StringValue"]
    assert reason == "broken.yaml: rule typo: condition: unknown symbol: 'custmer'"
    # And nothing was done
    assert local_crm(lambda_context, "tasks") == []
    assert "lifecyclestage" not in local_crm(lambda_context, "contacts")[0]["properties"]


@pytest.fixture
def rules_off(monkeypatch):
    monkeypatch.setenv("CRMSYNC_RULES", "none")


def table_items(aws) -> dict[str, int]:
    ddb = aws.client("dynamodb")
    return {
        name: ddb.scan(TableName=aws.env[name], Select="COUNT")["Count"] for name in ("STATE_TABLE", "CRM_LOCAL_TABLE")
    }


def dry_run(lambda_context, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = api_app.lambda_handler(
        api_event("POST", "/rules/dry-run", body=json.dumps(body).encode(), headers=OPERATOR), lambda_context
    )
    return answer["statusCode"], json.loads(answer["body"])


def test_dry_run_reports_what_the_rules_would_have_done_and_writes_nothing(aws, lambda_context, rules_off):
    # Given a payment and its dispute synced while automation was off
    paid_then_disputed(lambda_context, aws)
    assert local_crm(lambda_context, "tasks") == []
    before = table_items(aws)
    # When the default rules are dry-run over the period
    status, report = dry_run(lambda_context, {"since": "2022-03-01T00:00:00Z", "until": "2022-04-01T00:00:00Z",
                                              "rules": "default"})  # fmt: skip
    # Then the report says the dispute would have made a task and a risk flag
    assert status == 200, report
    assert report["rule_set"] == "default"
    assert report["rules"]["dispute-opened"]["would_apply"] == 1
    [disputed] = [e for e in report["events"] if e["detail_type"] == "dispute.opened"]
    [decision] = [d for d in disputed["decisions"] if d["rule_id"] == "dispute-opened"]
    assert decision["outcome"] == "would apply"
    assert [a["action"] for a in decision["actions"]] == ["create_task", "flag_risk"]
    # And nothing was written anywhere
    assert table_items(aws) == before
    assert local_crm(lambda_context, "tasks") == []
    assert aws.receive_all(aws.env["RULES_QUEUE_URL"]) == []


def test_dry_run_of_a_broken_rule_file_is_400_naming_the_rule(aws, lambda_context):
    yaml_text = (
        "rules:\n  - id: vip-typo\n    version: 1\n    when: [order.paid]\n    condition: customer.lifetime > 1\n"
        "    then: [{add_tags: [vip]}]\n"
    )
    status, answer = dry_run(lambda_context, {"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z",
                                              "rules_yaml": yaml_text})  # fmt: skip
    assert status == 400
    assert answer["error"].startswith("rules_yaml: rule vip-typo: condition: unknown attribute")


def test_dry_run_needs_the_operator_key_and_a_period(aws, lambda_context):
    answer = api_app.lambda_handler(api_event("POST", "/rules/dry-run", body=b"{}"), lambda_context)
    assert answer["statusCode"] == 401
    status, body = dry_run(lambda_context, {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
    assert status == 400
    assert "until must be after since" in body["error"]


def test_the_sample_dry_run_event_is_answered(aws, load_event, lambda_context):
    answer = api_app.lambda_handler(load_event("api-rules-dry-run.json"), lambda_context)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["events_seen"] == 0


def test_the_cli_dry_run_prints_what_each_rule_would_do(aws, lambda_context, rules_off, tmp_path):
    import io
    import urllib.parse

    from local import ops

    # Given a payment and its dispute synced while automation was off, and a rule file of the operator's own
    paid_then_disputed(lambda_context, aws)
    (tmp_path / "mine.yaml").write_text(
        "rules:\n  - id: disputes-to-legal\n    version: 3\n    when: [dispute.opened]\n"
        "    then: [{create_task: {subject: 'Legal: {key}', queue: legal}}]\n"
    )
    before = table_items(aws)

    def transport(method: str, url: str, body: bytes | None, headers) -> tuple[int, Any]:
        path = urllib.parse.urlparse(url).path
        answer = api_app.lambda_handler(api_event(method, path, body=body, headers=dict(headers)), lambda_context)
        return answer["statusCode"], json.loads(answer["body"])

    out = io.StringIO()
    # When the CLI dry-runs the file over the period
    code = ops.main(
        ["--url", "http://api.test", "--api-key", "local-operator-key", "rules", "dry-run", "--since",
         "2022-03-01T00:00:00Z", "--until", "2022-04-01T00:00:00Z", "--file", str(tmp_path / "mine.yaml")],
        transport=transport, env={}, out=out,
    )  # fmt: skip
    # Then it prints the rule's tally and the event it would act on, and nothing was written
    assert code == 0, out.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == "rule set inline v1: 3 event(s)"
    assert lines[1] == "  disputes-to-legal: 1 seen, 1 matched, 1 would act (1 action(s), E=1.0)"
    assert lines[3] == "      disputes-to-legal v3: create_task"
    assert table_items(aws) == before
