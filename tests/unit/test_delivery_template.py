"""template.yaml keeps the delivery guarantees: a DLQ on every async edge, consumers that know their queue's
maxReceiveCount (they dead-letter the last attempt themselves, with the error), and visibility timeouts that outlast
the consumer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import template_resources

# consumer function -> its queue
CONSUMERS = {"ConvertFunction": "IngestQueue", "CrmWriterFunction": "CrmQueue", "PrivacyFunction": "PrivacyQueue"}


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return template_resources()


def function_timeout(resources: dict[str, Any], name: str) -> int:
    return int(resources[name]["Properties"].get("Timeout", 20))  # Globals: 20


@pytest.mark.parametrize(("function", "queue"), CONSUMERS.items())
def test_each_consumer_knows_its_queues_max_receive_count(resources, function, queue):
    props = resources[queue]["Properties"]
    env = resources[function]["Properties"]["Environment"]["Variables"]
    assert int(env["MAX_RECEIVE_COUNT"]) == int(props["RedrivePolicy"]["maxReceiveCount"]) >= 3
    assert "RETRY_BACKOFF_SECONDS" in env
    # and may send to its DLQ, and change the visibility of its own queue's messages (backoff)
    policies = resources[function]["Properties"]["Policies"]
    assert {"SQSSendMessagePolicy", "SQSPollerPolicy"} <= {name for p in policies if isinstance(p, dict) for name in p}
    # Lambda's advice: a visibility timeout of six times the function's timeout
    assert props["VisibilityTimeout"] >= 6 * function_timeout(resources, function)


def test_every_queue_and_rule_target_has_a_dlq(resources):
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    dlqs = {name for name in queues if name.endswith("Dlq")}
    assert {"IngestDlq", "CrmDlq", "EventsDlq"} <= dlqs
    assert all("RedrivePolicy" in resources[q]["Properties"] for q in queues - dlqs)
    for rule in (r for r in resources.values() if r["Type"] == "AWS::Events::Rule"):
        assert all("DeadLetterConfig" in target for target in rule["Properties"]["Targets"])
    # a DLQ keeps its messages as long as SQS allows (14 days)
    assert all(resources[q]["Properties"]["MessageRetentionPeriod"] == 1209600 for q in dlqs)


def test_the_operator_tools_are_deployed_on_the_api_function(resources):
    events = resources["ApiFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}
    assert {("GET", "/sync/dlq"), ("POST", "/sync/dlq/redrive"), ("POST", "/sync/replay")} <= routes
