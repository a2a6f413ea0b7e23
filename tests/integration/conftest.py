"""Integration fixtures: the handlers run in-process against moto, on resources declared in template.yaml."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from crmsync.store import clients
from tests.conftest import REPO

SECRETS = {
    "SHOPIFY_SECRET_ID": "local-shopify-secret",
    "STRIPE_SECRET_ID": "whsec_local-stripe-secret",
    "WOOCOMMERCE_SECRET_ID": "local-woocommerce-secret",
    "PAYPAL_SECRET_ID": "LOCAL-PAYPAL-WEBHOOK-ID",
    "API_KEY_SECRET_ID": "local-operator-key",
}
TABLES = {
    "ReceiptsTable": "RECEIPTS_TABLE",
    "StateTable": "STATE_TABLE",
    "CrmLocalTable": "CRM_LOCAL_TABLE",
    "SyncTable": "SYNC_TABLE",
}
# Queues as template.yaml declares them (name in moto = logical id): env var of the URL, and its DLQ.
DLQS = {
    "IngestDlq": "INGEST_DLQ_URL",
    "CrmDlq": "CRM_DLQ_URL",
    "EventsDlq": "EVENTS_DLQ_URL",
    "RulesDlq": "RULES_DLQ_URL",
    "BackfillDlq": "BACKFILL_DLQ_URL",
    "PrivacyDlq": "PRIVACY_DLQ_URL",
}
QUEUES = {
    "IngestQueue": ("INGEST_QUEUE_URL", "IngestDlq"),
    "CrmQueue": ("CRM_QUEUE_URL", "CrmDlq"),
    "RulesQueue": ("RULES_QUEUE_URL", "RulesDlq"),
    "BackfillQueue": ("BACKFILL_QUEUE_URL", "BackfillDlq"),
    "PrivacyQueue": ("PRIVACY_QUEUE_URL", "PrivacyDlq"),
}


class _CfnLoader(yaml.SafeLoader):
    """Reads template.yaml, keeping CloudFormation's short-form tags as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_resources() -> dict[str, Any]:
    return yaml.load((REPO / "template.yaml").read_text(), Loader=_CfnLoader)["Resources"]  # noqa: S506


def max_receive_count(queue: str) -> int:
    """The maxReceiveCount of a queue's redrive policy in template.yaml."""
    return int(template_resources()[queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


@dataclass
class FakeContext:
    function_name: str = "test-fn"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-fn"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


@dataclass
class Aws:
    """The moto account with crmsync's resources, and helpers to move messages as Lambda's pollers would."""

    env: dict[str, str]
    crm_queue_url: str

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]

    def receive_all(self, queue_url: str) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
            if not batch.get("Messages"):
                return messages
            messages.extend(batch["Messages"])
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch["Messages"])],
            )

    @staticmethod
    def sqs_event(messages: list[dict[str, Any]], queue: str = "queue") -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """A fresh moto account holding the tables (key schemas read from template.yaml), bucket, queues, bus and
    secrets, with the environment every handler reads."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "crmsync",
        "POWERTOOLS_SERVICE_NAME": "crmsync",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    from aws_lambda_powertools.utilities import parameters

    with mock_aws():
        clients.reset()
        parameters.clear_caches()
        parameters.base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]
        env: dict[str, str] = {"CRM_BACKEND": "local"}
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        resources = template_resources()
        for logical, env_name in TABLES.items():
            props = resources[logical]["Properties"]
            name = f"crmsync-test-{logical}"
            ddb.create_table(
                TableName=name,
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                BillingMode=props["BillingMode"],
                **(
                    {"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]}
                    if "GlobalSecondaryIndexes" in props
                    else {}
                ),
            )
            env[env_name] = name
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="crmsync-test-archive")
        env["ARCHIVE_BUCKET"] = "crmsync-test-archive"
        sqs = boto3.client("sqs", region_name="us-east-1")
        for logical, env_name in DLQS.items():
            env[env_name] = sqs.create_queue(QueueName=logical)["QueueUrl"]
        for logical, (env_name, dlq) in QUEUES.items():
            dlq_arn = sqs.get_queue_attributes(QueueUrl=env[DLQS[dlq]], AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count(logical))}
            env[env_name] = sqs.create_queue(
                QueueName=logical,
                Attributes={
                    "VisibilityTimeout": str(resources[logical]["Properties"]["VisibilityTimeout"]),
                    "RedrivePolicy": json.dumps(redrive),
                },
            )["QueueUrl"]
        crm_queue_url = env["CRM_QUEUE_URL"]
        crm_queue_arn = sqs.get_queue_attributes(QueueUrl=crm_queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client("events", region_name="us-east-1")
        events.create_event_bus(Name="crmsync-test-bus")
        rule = resources["CrmEventsRule"]["Properties"]
        events.put_rule(Name="crm", EventBusName="crmsync-test-bus", EventPattern=json.dumps(rule["EventPattern"]))
        events.put_targets(Rule="crm", EventBusName="crmsync-test-bus", Targets=[{"Id": "crm", "Arn": crm_queue_arn}])
        # The automation rules' bus rule, to the rules queue (drained by tests that run the rules function).
        rules_queue_arn = sqs.get_queue_attributes(QueueUrl=env["RULES_QUEUE_URL"], AttributeNames=["QueueArn"])
        pattern = resources["RulesEventsRule"]["Properties"]["EventPattern"]
        events.put_rule(Name="rules", EventBusName="crmsync-test-bus", EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule="rules", EventBusName="crmsync-test-bus",
            Targets=[{"Id": "rules", "Arn": rules_queue_arn["Attributes"]["QueueArn"]}],
        )  # fmt: skip
        # Erasure and data requests, to the privacy queue (drained by tests that run the privacy function).
        privacy_queue_arn = sqs.get_queue_attributes(QueueUrl=env["PRIVACY_QUEUE_URL"], AttributeNames=["QueueArn"])
        pattern = resources["PrivacyEventsRule"]["Properties"]["EventPattern"]
        events.put_rule(Name="privacy", EventBusName="crmsync-test-bus", EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule="privacy", EventBusName="crmsync-test-bus",
            Targets=[{"Id": "privacy", "Arn": privacy_queue_arn["Attributes"]["QueueArn"]}],
        )  # fmt: skip
        env["EVENT_BUS_NAME"] = "crmsync-test-bus"
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        for env_name, value in SECRETS.items():
            env[env_name] = secrets.create_secret(Name=f"crmsync-test/{env_name.lower()}", SecretString=value)["ARN"]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield Aws(env=env, crm_queue_url=crm_queue_url)
        clients.reset()
        parameters.base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]


def api_event(
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    path_params: dict[str, str] | None = None,
    resource: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event as the deployed API sends it (binary media type */*: base64 bodies)."""
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def read_fixture(path: str) -> bytes:
    return (Path(__file__).resolve().parent.parent / "fixtures" / path).read_bytes()
