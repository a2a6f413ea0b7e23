"""Least privilege, checked over what `sam deploy` would create: every function's generated role (SAM policy
templates expanded with their parameters, inline statements, managed policies) reaches only its own resources, with
only the actions it needs there; no `*` action anywhere; `*` resources only where AWS allows nothing narrower."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.security.template import functions, source, transformed

TABLE_READ = frozenset(
    {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"}
)
TABLE_WRITE = TABLE_READ | {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
}
BUCKET_READ = frozenset(
    {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation", "s3:GetLifecycleConfiguration"}
)
OBJECT_PUT = frozenset({"s3:PutObject"})  # never PutObjectAcl nor PutLifecycleConfiguration (S3WritePolicy has both)
QUEUE_SEND = frozenset({"sqs:SendMessage*"})  # SendMessage and SendMessageBatch (SAM's SQSSendMessagePolicy)
QUEUE_CONSUME = frozenset(
    {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:DeleteMessageBatch",
        "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch",
        "sqs:GetQueueAttributes",
    }
)
SECRET_READ = frozenset({"secretsmanager:GetSecretValue"})
PUT_EVENTS = frozenset({"events:PutEvents"})
# Erasure: every version of a raw body deleted (the bucket is versioned), exports written and read back.
ARCHIVE_ERASE = frozenset(
    {
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
    }
)

# Function -> the template resources its role may name, and what it may do there. A new permission is added here,
# with the reason, in the same change as template.yaml.
ALLOWED: dict[str, dict[str, frozenset[str]]] = {
    # Verify with the webhook secrets, claim/accept/release receipts, archive the raw body, enqueue.
    "IngestFunction": {
        "ReceiptsTable": TABLE_WRITE,
        "ArchiveBucket": OBJECT_PUT,
        "IngestQueue": QUEUE_SEND,
        "ShopifyWebhookSecret": SECRET_READ,
        "StripeWebhookSecret": SECRET_READ,
        "WooCommerceWebhookSecret": SECRET_READ,
        "PayPalWebhookId": SECRET_READ,
    },
    # Read the archived body, write canonical state, publish domain events; back off or dead-letter a record.
    "ConvertFunction": {
        "ArchiveBucket": BUCKET_READ,
        "StateTable": TABLE_WRITE,
        # PutItem on GONE# items only (LeadingKeys): a deletion webhook recorded as reconciliation records it
        "SyncTable": frozenset({"dynamodb:PutItem"}),
        "EventBus": PUT_EVENTS,
        "IngestQueue": QUEUE_CONSUME,
        "IngestDlq": QUEUE_SEND,
    },
    # Read current state (and record CRM ids and lineage), write the CRM (local table, or HubSpot / Salesforce with
    # their credentials); back off or dead-letter a record.
    "CrmWriterFunction": {
        "StateTable": TABLE_WRITE,
        "CrmLocalTable": TABLE_WRITE,
        "HubSpotTokenSecret": SECRET_READ,
        "SalesforceCredentialsSecret": SECRET_READ,
        "CrmQueue": QUEUE_CONSUME,
        "CrmDlq": QUEUE_SEND,
    },
    # The CRM flusher (CrmFlushDelaySeconds > 0): dirty records and its lease in the state table, then what the writer
    # does (state reads, CRM ids, lineage; the local CRM or the CRM credentials); a poison record to the CRM DLQ; a
    # failed run to its own DLQ (the function's DeadLetterQueue: SAM grants SendMessage alone).
    "FlusherFunction": {
        "StateTable": TABLE_WRITE,
        "CrmLocalTable": TABLE_WRITE,
        "HubSpotTokenSecret": SECRET_READ,
        "SalesforceCredentialsSecret": SECRET_READ,
        "CrmDlq": QUEUE_SEND,
        "FlusherDlq": frozenset({"sqs:SendMessage"}),
    },
    # Aggregates, risk and rules: state (aggregates, decisions, lineage), CRM actions (as the writer), risk.flagged
    # and the rules' own events on the bus; back off or dead-letter a record.
    "RulesFunction": {
        "StateTable": TABLE_WRITE,
        "CrmLocalTable": TABLE_WRITE,
        "HubSpotTokenSecret": SECRET_READ,
        "SalesforceCredentialsSecret": SECRET_READ,
        "EventBus": PUT_EVENTS,
        "RulesQueue": QUEUE_CONSUME,
        "RulesDlq": QUEUE_SEND,
    },
    # Operator routes: the operator key; read state, the local CRM and receipts; list and redrive the DLQs to their
    # source queues; replay from the archive (head/list objects) onto the ingest queue.
    "ApiFunction": {
        "OperatorApiKey": SECRET_READ,
        "StateTable": TABLE_READ,
        "CrmLocalTable": TABLE_READ,
        "ReceiptsTable": TABLE_READ,
        "ArchiveBucket": BUCKET_READ | OBJECT_PUT,  # PutObject: an import's valid rows (POST /sync/import)
        "IngestDlq": QUEUE_CONSUME,
        "CrmDlq": QUEUE_CONSUME,
        "EventsDlq": QUEUE_CONSUME,
        "RulesDlq": QUEUE_CONSUME,  # the operator's DLQ tools: list, redrive (crmsync.dlq)
        "IngestQueue": QUEUE_SEND,
        "CrmQueue": QUEUE_SEND,
        "RulesQueue": QUEUE_SEND,  # redrive of the rules DLQ
        "SyncTable": TABLE_WRITE,  # backfill/import jobs, reconciliation runs (crmsync.sync)
        "BackfillQueue": QUEUE_SEND,  # the first page of a backfill, an import's chunks, reconciliation requests
        "PrivacyQueue": QUEUE_SEND,  # DELETE /customers/{id}: the erasure request (crmsync.erasure)
    },
    # Erasure and data requests (crmsync.erasure): state (customers, identity links, entities, lineage, tombstones,
    # proofs), the request's receipt (its archive key), the local CRM or the CRM credentials (delete or anonymise the
    # contact), the archive (delete every version of the person's raw bodies, write exports); its own queue (shop/redact
    # fans out one erasure per customer) and DLQ.
    "PrivacyFunction": {
        "StateTable": TABLE_WRITE,
        "ReceiptsTable": TABLE_READ,
        "CrmLocalTable": TABLE_WRITE,
        "ArchiveBucket": ARCHIVE_ERASE,
        "HubSpotTokenSecret": SECRET_READ,
        "SalesforceCredentialsSecret": SECRET_READ,
        "PrivacyQueue": QUEUE_CONSUME | QUEUE_SEND,
        "PrivacyDlq": QUEUE_SEND,
    },
    # Backfill, import and reconciliation: jobs and checkpoints; state and the local CRM read for comparisons; source
    # records archived and enqueued for convert; CRM repairs on the CRM queue; its own queue (the next page) and DLQ;
    # the source API credentials and the CRM credentials (read-back).
    "SyncFunction": {
        "SyncTable": TABLE_WRITE,
        # reads for comparisons; PutItem on the HubSpot rate budget's one item (LeadingKeys RATE#hubspot): the CRM
        # read-back of a reconciliation takes its tokens from the budget the writers share
        "StateTable": TABLE_READ | {"dynamodb:PutItem"},
        "CrmLocalTable": TABLE_READ,
        "ArchiveBucket": BUCKET_READ | OBJECT_PUT,
        "IngestQueue": QUEUE_SEND,
        "CrmQueue": QUEUE_SEND,
        "BackfillQueue": QUEUE_CONSUME | QUEUE_SEND,
        "BackfillDlq": QUEUE_SEND,
        "SourceApiCredentials": SECRET_READ,
        "HubSpotTokenSecret": SECRET_READ,
        "SalesforceCredentialsSecret": SECRET_READ,
    },
}

# Managed policies SAM attaches to the roles it generates. Their `*` resources are the only ones allowed.
MANAGED = "arn:aws:iam::aws:policy/"
BASIC_EXECUTION = MANAGED + "service-role/AWSLambdaBasicExecutionRole"
XRAY = MANAGED + "AWSXrayWriteOnlyAccess"
SQS_EXECUTION = MANAGED + "service-role/AWSLambdaSQSQueueExecutionRole"
STAR_RESOURCE_EXCEPTIONS = {
    # logs:CreateLogGroup/CreateLogStream/PutLogEvents on *: attached by SAM to every generated role. The log groups
    # exist in the template, but Lambda writes to /aws/lambda/<function name> before any statement could name it.
    BASIC_EXECUTION: "Lambda's own logs (SAM attaches it to every generated role)",
    # xray:PutTraceSegments/PutTelemetryRecords/GetSampling*: X-Ray has no resource-level permissions; AWS requires *.
    XRAY: "X-Ray has no resource-level permissions (Tracing: Active)",
    # sqs:ReceiveMessage/DeleteMessage/GetQueueAttributes on *: SAM attaches it to every function with an SQS event
    # and offers no opt-out short of a hand-written role. The function's own SQSPollerPolicy already names its queue,
    # so this adds reading other queues of the account. Follow-up: explicit roles for convert and the CRM writer.
    SQS_EXECUTION: "SAM's SQS event source policy (no opt-out with a generated role)",
}
# Not needed, so never granted: cloudwatch:PutMetricData (Powertools Metrics writes EMF to the log, which CloudWatch
# turns into metrics), kms:* (tables, bucket and queues use AWS-owned keys).


def roles() -> dict[str, dict[str, Any]]:
    """Function logical id -> its generated AWS::IAM::Role properties."""
    resources = transformed()["Resources"]
    found = {}
    for name in functions():
        role = resources.get(f"{name}Role")
        assert role is not None, f"{name} must use the role SAM generates"
        assert role["Type"] == "AWS::IAM::Role", name
        found[name] = role["Properties"]
    return found


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in role.get("Policies") or []:
        body = policy["PolicyDocument"]["Statement"]
        found.extend(body if isinstance(body, list) else [body])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def referenced(expression: Any, resources: set[str]) -> set[str]:
    """The template resources an ARN expression names (through Ref, GetAtt and Sub's ${...})."""
    if isinstance(expression, str):
        return {name.split(".")[0] for name in re.findall(r"\$\{([^}]+)\}", expression)} & resources
    if isinstance(expression, list):
        return set().union(*(referenced(item, resources) for item in expression)) if expression else set()
    if isinstance(expression, dict):
        if "Ref" in expression:
            return {expression["Ref"]} & resources
        if "Fn::GetAtt" in expression:
            return {as_list(expression["Fn::GetAtt"])[0]} & resources
        return set().union(*(referenced(v, resources) for v in expression.values())) if expression else set()
    return set()


def star_grants() -> list[str]:
    """Every Allow of a `*` action or a whole-service wildcard, in any function's inline policies."""
    found: list[str] = []
    for name, role in roles().items():
        for statement in statements(role):
            found.extend(
                f"{name}: {action}"
                for action in as_list(statement.get("Action", []))
                if action == "*" or action.endswith(":*")
            )
    return found


def test_every_function_has_a_row_in_the_allowed_table():
    # A new function gets its own row (and its reasons) before it gets any permission.
    assert set(functions()) == set(ALLOWED)


def test_no_action_is_a_wildcard():
    assert star_grants() == []


@pytest.mark.parametrize("function", sorted(ALLOWED))
def test_each_function_reaches_only_its_own_resources_with_only_the_actions_it_needs(function):
    # Given the function's generated role, every policy template expanded with its parameters
    role = roles()[function]
    resources = set(source()["Resources"])
    allowed = ALLOWED[function]
    granted: dict[str, set[str]] = {}
    problems = []
    for statement in statements(role):
        assert statement.get("Effect") == "Allow", statement
        assert "NotAction" not in statement, statement
        assert "NotResource" not in statement, statement
        actions = set(as_list(statement["Action"]))
        for resource in as_list(statement["Resource"]):
            # Then each resource names exactly one template resource (never "*" nor a literal ARN) ...
            names = referenced(resource, resources)
            if len(names) != 1:
                problems.append(f"{resource!r} names {sorted(names) or 'no template resource'}")
                continue
            [name] = names
            granted.setdefault(name, set()).update(actions)
            # ... that is the function's own, with only the actions it needs there
            if name not in allowed:
                problems.append(f"{name} is not {function}'s resource ({sorted(actions)})")
            elif actions - allowed[name]:
                problems.append(f"{name}: {sorted(actions - allowed[name])} beyond what {function} needs")
    assert problems == []
    # And it can reach everything it needs (a missing grant fails in AWS only: moto and ministack enforce no IAM)
    assert set(granted) == set(allowed)


@pytest.mark.parametrize("function", sorted(ALLOWED))
def test_star_resources_come_only_from_the_listed_managed_policies(function):
    role = roles()[function]
    has_sqs_event = any(e["Type"] == "SQS" for e in (functions()[function].get("Events") or {}).values())
    expected = {BASIC_EXECUTION, XRAY} | ({SQS_EXECUTION} if has_sqs_event else set())
    assert set(role.get("ManagedPolicyArns") or []) == expected
    assert set(expected) <= set(STAR_RESOURCE_EXCEPTIONS)
    assert not role.get("PermissionsBoundary")


def test_roles_are_assumable_by_lambda_only():
    for name, role in roles().items():
        [statement] = role["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": ["lambda.amazonaws.com"]}, name
        assert statement["Action"] == ["sts:AssumeRole"], name


def test_no_other_iam_resources_are_declared():
    # Roles come only from SAM's generation above; a hand-written role or policy would escape these checks.
    iam = {
        name: resource["Type"]
        for name, resource in transformed()["Resources"].items()
        if resource["Type"].startswith("AWS::IAM::")
    }
    assert iam == {f"{name}Role": "AWS::IAM::Role" for name in functions()}


def test_resource_policies_allow_only_named_services_from_named_sources():
    # Bucket and queue policies: an Allow names a service principal and the one resource that may use it
    # (aws:SourceArn); only a Deny may apply to everyone (the archive's TLS-only rule).
    checked = 0
    for name, resource in source()["Resources"].items():
        if resource["Type"] not in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            continue
        for statement in as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
            checked += 1
            if statement["Effect"] == "Deny":
                continue
            principal = statement["Principal"]
            assert isinstance(principal, dict), (name, principal)
            assert set(principal) == {"Service"}, (name, principal)
            assert "*" not in as_list(statement["Action"]), name
            condition = statement.get("Condition") or {}
            assert any("aws:SourceArn" in test for test in condition.values()), (name, "no aws:SourceArn condition")
    assert checked > 0


# Writes to a shared table narrowed to some items: (function, table, the condition on the partition keys written).
LEADING_KEYS = [
    ("ConvertFunction", "SyncTable", {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["GONE#*"]}}),
    ("SyncFunction", "StateTable", {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["RATE#hubspot"]}}),
]


@pytest.mark.parametrize(("function", "table", "condition"), LEADING_KEYS)
def test_item_scoped_table_writes_keep_their_leading_keys_condition(function, table, condition):
    # Given the function's statements that allow only PutItem on the table (its item-scoped grant)
    resources = set(transformed()["Resources"])
    scoped = [
        statement
        for statement in statements(roles()[function])
        if referenced(statement.get("Resource"), resources) == {table}
        and set(as_list(statement.get("Action", []))) == {"dynamodb:PutItem"}
    ]
    # Then there is one, and it holds every written partition key to its items (dropping the condition would let
    # the function overwrite any item of the table)
    assert len(scoped) == 1, scoped
    assert scoped[0].get("Condition") == condition
