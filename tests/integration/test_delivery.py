"""Delivery guarantees on moto: poison records dead-lettered with their error on their last attempt, the operator's
DLQ listing (nothing consumed) and redrive (exactly what was asked), and replay from the raw archive through the
normal path (exactly the receipts in range, paged, idempotent)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from api import app as api_app
from convert import app as convert_app
from crm_writer import app as writer_app
from crmsync.failures import NO_ERROR
from crmsync.ingest import WebhookRequest, accept_webhook
from crmsync.settings import Settings
from ingest import app as ingest_app
from tests.conftest import EVENTS
from tests.integration.conftest import api_event, max_receive_count

KEY = "local-operator-key"
SECRET = "local-shopify-secret"
ORDER = json.loads((EVENTS / "payloads" / "shopify-orders-create.json").read_bytes())
POISON = b'{"id": "not-an-order", "email": "someone@example.com"}'


# --- helpers --------------------------------------------------------------------------------------------------------
def api(
    lambda_context, method: str, path: str, *, body=None, raw: bytes | None = None, query=None, key: str | None = KEY
):
    headers = {"x-api-key": key} if key is not None else {}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    answer = api_app.lambda_handler(api_event(method, path, body=data, headers=headers, query=query), lambda_context)
    return answer["statusCode"], json.loads(answer["body"])


def order(number: int) -> bytes:
    return json.dumps({**ORDER, "id": 5678901234000 + number, "name": f"#{1000 + number}"}).encode()


def webhook(body: bytes, event_id: str, at: datetime | None = None) -> str:
    """Accept a signed Shopify orders/create webhook (received at `at`); returns its receipt id."""
    from crmsync.sources.shopify import sign

    headers = {
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": sign(body, SECRET),
        "x-shopify-shop-domain": "demo.myshopify.com",
        "x-shopify-event-id": event_id,
    }
    deps = ingest_app.deps(Settings.from_env())
    if at is not None:
        deps = dataclasses.replace(deps, clock=at.timestamp)
    answer = accept_webhook(WebhookRequest("shopify", headers, body), deps)
    assert answer.body["status"] == "accepted", answer
    return str(answer.body["receipt_id"])


def receive_on_attempt(aws, queue_url: str, attempt: int) -> list[dict]:
    """Receive every message as Lambda's poller does on delivery number `attempt` (the earlier ones time out)."""
    sqs = aws.client("sqs")
    for _ in range(attempt - 1):
        sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    batch = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=120, AttributeNames=["All"]
    ).get("Messages", [])
    assert batch
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in batch} == {str(attempt)}
    return batch


def peek_all(aws, queue_url: str) -> list[dict]:
    """Every message of a queue with its attributes, left in the queue."""
    sqs = aws.client("sqs")
    found: dict[str, dict] = {}
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            break
        found.update({m["MessageId"]: m for m in batch})
    for message in found.values():
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return list(found.values())


def drain(aws, lambda_context) -> None:
    """Run convert and the CRM writer until both queues are empty (first attempts)."""
    while True:
        ingest = aws.receive_all(aws.env["INGEST_QUEUE_URL"])
        if ingest:
            convert_app.lambda_handler(aws.sqs_event(ingest, "IngestQueue"), lambda_context)
        crm = aws.receive_all(aws.crm_queue_url)
        if crm:
            writer_app.lambda_handler(aws.sqs_event(crm, "CrmQueue"), lambda_context)
        if not ingest and not crm:
            return


def state_snapshot(aws) -> dict[tuple[str, str], dict]:
    """The canonical state (lineage entries left out: each conversion appends its own)."""
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=aws.env["STATE_TABLE"])
    items = [item for page in pages for item in page["Items"]]
    return {(i["pk"]["S"], i["sk"]["S"]): i for i in items if not i["sk"]["S"].startswith("LINEAGE#")}


def deals(lambda_context) -> list[dict]:
    status, body = api(lambda_context, "GET", "/local-crm/deals")
    assert status == 200
    return body["results"]


def attribute(message: dict, name: str) -> str:
    return message["MessageAttributes"][name]["StringValue"]


def event_envelope(key: str, detail_type: str = "order.placed") -> str:
    return json.dumps(
        {
            "version": "0",
            "id": f"evt-{key}",
            "detail-type": detail_type,
            "source": "crmsync",
            "time": "2026-11-20T15:15:45Z",
            "detail": {
                "entity": "order",
                "key": key,
                "customer_id": None,
                "source": "shopify",
                "source_id": key.rsplit(":", 1)[-1],
                "source_version": "2026-11-20T15:15:43Z",
                "receipt_id": f"rcpt-{key}",
                "correlation_id": "c-1",
                "data": {"email": "someone@example.com"},
            },
        }
    )


# --- poison records: dead-lettered with their error on their last attempt -------------------------------------------
def test_a_poison_record_on_its_last_attempt_lands_in_the_dlq_with_its_error(aws, lambda_context):
    # Given a signed body that is no order, accepted and queued
    receipt_id = webhook(POISON, "poison-1")
    last = max_receive_count("IngestQueue")
    # When convert gets it on its last allowed attempt
    batch = receive_on_attempt(aws, aws.env["INGEST_QUEUE_URL"], last)
    answer = convert_app.lambda_handler(aws.sqs_event(batch, "IngestQueue"), lambda_context)
    # Then it is reported handled (Lambda deletes it from the ingest queue)
    assert answer == {"batchItemFailures": []}
    # And the ingest DLQ holds it, body unchanged, with the error attached
    [dead] = peek_all(aws, aws.env["INGEST_DLQ_URL"])
    assert dead["Body"] == batch[0]["Body"]
    assert json.loads(dead["Body"])["receipt_id"] == receipt_id
    assert attribute(dead, "crmsync-error-type") == "ValidationError"
    assert "validation error" in attribute(dead, "crmsync-error-message")
    assert "someone@example.com" not in attribute(dead, "crmsync-error-message")  # never the input values
    assert attribute(dead, "crmsync-attempts") == str(last)
    assert attribute(dead, "crmsync-source-queue") == "IngestQueue"
    assert datetime.fromisoformat(attribute(dead, "crmsync-failed-at")).tzinfo is not None


def test_an_earlier_attempt_is_only_reported_failed(aws, lambda_context):
    # Given a poison message on an attempt before the last
    webhook(POISON, "poison-2")
    batch = receive_on_attempt(aws, aws.env["INGEST_QUEUE_URL"], max_receive_count("IngestQueue") - 1)
    # When convert fails it, Then it is reported failed (SQS delivers it again) and nothing is dead-lettered
    answer = convert_app.lambda_handler(aws.sqs_event(batch, "IngestQueue"), lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": batch[0]["MessageId"]}]}
    assert peek_all(aws, aws.env["INGEST_DLQ_URL"]) == []


def test_a_record_whose_dead_lettering_fails_is_reported_failed(aws, lambda_context, monkeypatch):
    # Given the DLQ cannot be reached
    webhook(POISON, "poison-3")
    batch = receive_on_attempt(aws, aws.env["INGEST_QUEUE_URL"], max_receive_count("IngestQueue"))
    monkeypatch.setenv("INGEST_DLQ_URL", aws.env["INGEST_DLQ_URL"] + "-gone")
    # When its last attempt fails, Then it is reported failed: SQS's redrive policy stays the backstop
    answer = convert_app.lambda_handler(aws.sqs_event(batch, "IngestQueue"), lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": batch[0]["MessageId"]}]}


def test_the_writer_dead_letters_only_the_event_that_fails_on_its_own(aws, lambda_context, monkeypatch):
    # Given a synced order, and a CRM batch of its event and of an event the CRM write always fails on
    webhook(order(1), "good-1")
    drain(aws, lambda_context)
    sqs = aws.client("sqs")

    def enqueue_both() -> None:
        for key in ("shopify:order:5678901234001", "shopify:order:poison"):
            sqs.send_message(QueueUrl=aws.crm_queue_url, MessageBody=event_envelope(key))

    from crmsync.writer import write_events as real_write

    def write_events(events, deps):
        if any(e.key == "shopify:order:poison" for e in events):
            raise RuntimeError("CRM refused the deal")
        return real_write(events, deps)

    monkeypatch.setattr(writer_app, "write_events", write_events)
    # When the batch comes on an earlier attempt, Then both are retried and nothing is dead-lettered
    enqueue_both()
    batch = receive_on_attempt(aws, aws.crm_queue_url, 1)
    answer = writer_app.lambda_handler(aws.sqs_event(batch, "CrmQueue"), lambda_context)
    assert len(answer["batchItemFailures"]) == 2
    assert peek_all(aws, aws.env["CRM_DLQ_URL"]) == []
    for message in batch:
        sqs.delete_message(QueueUrl=aws.crm_queue_url, ReceiptHandle=message["ReceiptHandle"])
    # When the same batch comes on its last attempt
    enqueue_both()
    batch = receive_on_attempt(aws, aws.crm_queue_url, max_receive_count("CrmQueue"))
    answer = writer_app.lambda_handler(aws.sqs_event(batch, "CrmQueue"), lambda_context)
    # Then the good event is written on its own, and only the poison one is in the CRM DLQ, with its own error
    assert answer == {"batchItemFailures": []}
    [dead] = peek_all(aws, aws.env["CRM_DLQ_URL"])
    assert json.loads(dead["Body"])["detail"]["key"] == "shopify:order:poison"
    assert (attribute(dead, "crmsync-error-type"), attribute(dead, "crmsync-error-message")) == (
        "RuntimeError",
        "CRM refused the deal",
    )
    assert attribute(dead, "crmsync-source-queue") == "CrmQueue"
    assert len(deals(lambda_context)) == 1


def test_the_writer_dead_letters_a_record_that_is_no_domain_event(aws, lambda_context):
    aws.client("sqs").send_message(QueueUrl=aws.crm_queue_url, MessageBody="{}")
    batch = receive_on_attempt(aws, aws.crm_queue_url, max_receive_count("CrmQueue"))
    assert writer_app.lambda_handler(aws.sqs_event(batch, "CrmQueue"), lambda_context) == {"batchItemFailures": []}
    [dead] = peek_all(aws, aws.env["CRM_DLQ_URL"])
    assert attribute(dead, "crmsync-error-type") == "KeyError"


# --- the operator's DLQ listing ---------------------------------------------------------------------------------------
@pytest.fixture
def dead_letters(aws, lambda_context):
    """One message in each DLQ: a poison webhook dead-lettered by convert, a CRM event moved by the redrive policy
    (no error recorded), and an event EventBridge could not deliver (its own error attributes)."""
    receipt_id = webhook(POISON, "poison-dlq")
    batch = receive_on_attempt(aws, aws.env["INGEST_QUEUE_URL"], max_receive_count("IngestQueue"))
    convert_app.lambda_handler(aws.sqs_event(batch, "IngestQueue"), lambda_context)
    aws.client("sqs").delete_message(QueueUrl=aws.env["INGEST_QUEUE_URL"], ReceiptHandle=batch[0]["ReceiptHandle"])
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws.crm_queue_url, MessageBody=event_envelope("shopify:order:timeout"))
    [timed_out] = receive_on_attempt(aws, aws.crm_queue_url, max_receive_count("CrmQueue"))
    sqs.change_message_visibility(  # ... the function timed out on its last attempt
        QueueUrl=aws.crm_queue_url, ReceiptHandle=timed_out["ReceiptHandle"], VisibilityTimeout=0
    )
    assert "Messages" not in sqs.receive_message(QueueUrl=aws.crm_queue_url)  # this receive moves it to the DLQ
    sqs.send_message(
        QueueUrl=aws.env["EVENTS_DLQ_URL"],
        MessageBody=event_envelope("shopify:order:undelivered"),
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": "SQSError"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "Access denied to the queue"},
            "RULE_ARN": {"DataType": "String", "StringValue": "arn:aws:events:us-east-1:1:rule/bus/crm"},
            "RETRY_ATTEMPTS": {"DataType": "String", "StringValue": "185"},
        },
    )
    return receipt_id


def test_dlq_listing_shows_every_message_with_its_error_and_consumes_none(
    aws, dead_letters, load_event, lambda_context
):
    # Given a message in each DLQ, When the operator lists them twice with the documented event
    first = api_app.lambda_handler(load_event("api-sync-dlq-list.json"), lambda_context)
    second = api_app.lambda_handler(load_event("api-sync-dlq-list.json"), lambda_context)
    assert first["statusCode"] == second["statusCode"] == 200
    listing, again = json.loads(first["body"]), json.loads(second["body"])
    queues = {q["name"]: q for q in listing["queues"]}
    # Then every DLQ is there with its depth, its target and its message
    assert [q["name"] for q in listing["queues"]] == ["ingest-dlq", "crm-dlq", "events-dlq", "rules-dlq"]
    assert {n: (q["depth"], q["redrives_to"], len(q["messages"])) for n, q in queues.items()} == {
        "ingest-dlq": (1, "ingest-queue", 1),
        "crm-dlq": (1, "crm-queue", 1),
        "events-dlq": (1, "crm-queue", 1),
        "rules-dlq": (0, "rules-queue", 0),
    }
    [poison] = queues["ingest-dlq"]["messages"]
    assert poison["summary"]["receipt_id"] == dead_letters
    assert poison["summary"]["topic"] == "orders/create"
    assert poison["error"]["type"] == "ValidationError"
    assert poison["error"]["attempts"] == max_receive_count("IngestQueue")
    assert poison["error"]["source_queue"] == "IngestQueue"
    [timed_out] = queues["crm-dlq"]["messages"]
    assert timed_out["error"]["message"] == NO_ERROR
    assert timed_out["summary"]["key"] == "shopify:order:timeout"
    assert "data" not in json.dumps(timed_out["summary"])  # the event's data (personal) is not shown
    [undelivered] = queues["events-dlq"]["messages"]
    assert undelivered["error"] == {
        "type": "SQSError",
        "message": "Access denied to the queue",
        "failed_at": None,
        "attempts": 186,
        "source_queue": "rule crm",
    }
    # And listing consumed nothing: the second listing is the same, and every message is still in its queue
    assert again == listing
    for env in ("INGEST_DLQ_URL", "CRM_DLQ_URL", "EVENTS_DLQ_URL"):
        assert len(peek_all(aws, aws.env[env])) == 1


def test_dlq_listing_of_one_queue_with_a_limit(aws, lambda_context):
    sqs = aws.client("sqs")
    for n in range(3):
        sqs.send_message(QueueUrl=aws.env["CRM_DLQ_URL"], MessageBody=event_envelope(f"shopify:order:{n}"))
    status, body = api(lambda_context, "GET", "/sync/dlq", query={"queue": "crm-dlq", "limit": "2"})
    assert status == 200
    [queue] = body["queues"]
    assert (queue["name"], queue["depth"], len(queue["messages"]), queue["truncated"]) == ("crm-dlq", 3, 2, True)
    assert len(peek_all(aws, aws.env["CRM_DLQ_URL"])) == 3


# --- redrive ----------------------------------------------------------------------------------------------------------
def test_redrive_of_some_then_all_moves_exactly_those(aws, lambda_context):
    # Given three dead-lettered CRM events, each with the error attached
    sqs = aws.client("sqs")
    ids = []
    for n in range(3):
        ids.append(
            sqs.send_message(
                QueueUrl=aws.env["CRM_DLQ_URL"],
                MessageBody=event_envelope(f"shopify:order:{n}"),
                MessageAttributes={
                    "crmsync-error-type": {"DataType": "String", "StringValue": "RuntimeError"},
                    "trace": {"DataType": "String", "StringValue": f"t-{n}"},
                },
            )["MessageId"]
        )
    # When the operator redrives the first and the last (and one that is not there)
    status, body = api(
        lambda_context, "POST", "/sync/dlq/redrive", body={"queue": "crm-dlq", "message_ids": [ids[0], ids[2], "nope"]}
    )
    # Then exactly those two are back on the CRM queue, without the error, with their own attributes
    assert status == 202
    assert (body["redriven"], body["failed"], body["not_found"], body["remaining"]) == (2, 0, ["nope"], 1)
    assert sorted(body["message_ids"]) == sorted([ids[0], ids[2]])
    moved = peek_all(aws, aws.crm_queue_url)
    assert sorted(json.loads(m["Body"])["detail"]["key"] for m in moved) == ["shopify:order:0", "shopify:order:2"]
    assert all(set(m["MessageAttributes"]) == {"trace"} for m in moved)
    [left] = peek_all(aws, aws.env["CRM_DLQ_URL"])
    assert left["MessageId"] == ids[1]
    # When the operator redrives all, Then the last one moves too and the DLQ is empty
    status, body = api(lambda_context, "POST", "/sync/dlq/redrive", body={"queue": "crm-dlq"})
    assert (status, body["redriven"], body["remaining"], body["more"]) == (202, 1, 0, False)
    assert len(peek_all(aws, aws.crm_queue_url)) == 3
    assert peek_all(aws, aws.env["CRM_DLQ_URL"]) == []


def test_the_rules_dlq_redrives_to_the_rules_queue(aws, lambda_context):
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws.env["RULES_DLQ_URL"], MessageBody=event_envelope("shopify:order:1"))
    status, body = api(lambda_context, "POST", "/sync/dlq/redrive", body={"queue": "rules-dlq"})
    assert (status, body["target"], body["redriven"]) == (202, "rules-queue", 1)
    assert [json.loads(m["Body"])["detail"]["key"] for m in peek_all(aws, aws.env["RULES_QUEUE_URL"])] == [
        "shopify:order:1"
    ]


def test_redrive_of_all_is_bounded_per_call(aws, lambda_context):
    sqs = aws.client("sqs")
    for n in range(5):
        sqs.send_message(QueueUrl=aws.env["EVENTS_DLQ_URL"], MessageBody=event_envelope(f"shopify:order:{n}"))
    status, body = api(lambda_context, "POST", "/sync/dlq/redrive", body={"queue": "events-dlq", "limit": 3})
    assert (status, body["redriven"], body["more"], body["remaining"]) == (202, 3, True, 2)
    assert body["target"] == "crm-queue"
    status, body = api(lambda_context, "POST", "/sync/dlq/redrive", body={"queue": "events-dlq", "limit": 3})
    assert (body["redriven"], body["more"], body["remaining"]) == (2, False, 0)
    assert len(peek_all(aws, aws.crm_queue_url)) == 5


def test_a_fixed_poison_message_redriven_converts_to_the_right_result(aws, load_event, lambda_context):
    # Given an order webhook whose archived body was broken, dead-lettered with its error on its last attempt
    receipt_id = webhook(POISON, "fixable")
    batch = receive_on_attempt(aws, aws.env["INGEST_QUEUE_URL"], max_receive_count("IngestQueue"))
    assert convert_app.lambda_handler(aws.sqs_event(batch, "IngestQueue"), lambda_context) == {"batchItemFailures": []}
    aws.client("sqs").delete_message(QueueUrl=aws.env["INGEST_QUEUE_URL"], ReceiptHandle=batch[0]["ReceiptHandle"])
    assert deals(lambda_context) == []
    # When the cause is fixed (the archived body corrected) and the ingest DLQ redriven with the documented event
    key = json.loads(batch[0]["Body"])["archive_key"]
    aws.client("s3").put_object(Bucket=aws.env["ARCHIVE_BUCKET"], Key=key, Body=order(7))
    answer = api_app.lambda_handler(load_event("api-sync-dlq-redrive.json"), lambda_context)
    assert answer["statusCode"] == 202
    assert json.loads(answer["body"])["redriven"] == 1
    drain(aws, lambda_context)
    # Then it went the normal path to the right result: one deal for the order, made by that receipt
    [deal] = deals(lambda_context)
    assert deal["properties"]["crmsync_external_id"] == "shopify:order:5678901234007"
    assert deal["properties"]["amount"] == "225.40"
    assert peek_all(aws, aws.env["INGEST_DLQ_URL"]) == []
    state = state_snapshot(aws)
    assert state[("ORDER#shopify:order:5678901234007", "STATE")]["receipt_id"]["S"] == receipt_id


# --- replay from the archive ----------------------------------------------------------------------------------------
def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def archived(aws, lambda_context):
    """Four orders received over three days, converted and written: {received at: receipt id}."""
    times = [
        "2026-11-19T23:59:59+00:00",
        "2026-11-20T09:00:00+00:00",
        "2026-11-20T23:30:00+00:00",
        "2026-11-21T00:00:00+00:00",
    ]
    receipts = {t: webhook(order(n), f"evt-{n}", at(t)) for n, t in enumerate(times)}
    drain(aws, lambda_context)
    return receipts


def queued(aws) -> list[dict]:
    return [json.loads(m["Body"]) for m in aws.receive_all(aws.env["INGEST_QUEUE_URL"])]


def test_replay_of_a_window_enqueues_exactly_its_receipts_and_changes_nothing(
    aws, archived, load_event, lambda_context
):
    before, deals_before = state_snapshot(aws), deals(lambda_context)
    # When the documented replay of 2026-11-20 (UTC) is sent
    answer = api_app.lambda_handler(load_event("api-sync-replay.json"), lambda_context)
    body = json.loads(answer["body"])
    # Then exactly the two receipts of that day are back on the ingest queue, as ingest queued them
    assert answer["statusCode"] == 202
    in_window = {archived["2026-11-20T09:00:00+00:00"], archived["2026-11-20T23:30:00+00:00"]}
    assert (set(body["receipt_ids"]), body["enqueued"], body["next_token"], body["done"]) == (in_window, 2, None, True)
    messages = queued(aws)
    assert {m["receipt_id"] for m in messages} == in_window
    assert all(m["correlation_id"] == f"replay:{body['job_id']}" for m in messages)
    assert all(m["topic"] == "orders/create" and m["account"] == "demo.myshopify.com" for m in messages)
    assert {m["received_at"] for m in messages} == {"2026-11-20T09:00:00Z", "2026-11-20T23:30:00Z"}
    # When they go through the pipeline again (and the whole window is replayed once more)
    for message in messages:
        aws.client("sqs").send_message(QueueUrl=aws.env["INGEST_QUEUE_URL"], MessageBody=json.dumps(message))
    drain(aws, lambda_context)
    status, again = api(lambda_context, "POST", "/sync/replay", body={"since": "2026-11-19", "until": "2026-11-22"})
    assert (status, again["enqueued"]) == (202, 4)
    drain(aws, lambda_context)
    # Then state and CRM are exactly as before: a replay never duplicates nor regresses
    assert state_snapshot(aws) == before
    assert deals(lambda_context) == deals_before


def test_replay_of_a_window_pages_with_a_continuation_token(aws, archived, lambda_context):
    # Given a window [23:59:59 on the 19th, midnight of the 21st) UTC, given with offsets: three receipts
    window = {"from": "2026-11-20T00:59:59+01:00", "to": "2026-11-21T01:00:00+01:00", "limit": 1}
    expected = [archived[t] for t in list(archived)[:3]]
    # When the operator follows the tokens (the window may be left out once there is a token)
    seen: list[str] = []
    status, page = api(lambda_context, "POST", "/sync/replay", body=window)
    job, calls = page["job_id"], 1
    while page["next_token"]:
        assert (status, page["enqueued"], page["job_id"]) == (202, 1, job)
        seen += page["receipt_ids"]
        token = {"continuation_token": page["next_token"], "limit": 1}
        status, page = api(lambda_context, "POST", "/sync/replay", body=token if calls % 2 else {**window, **token})
        calls += 1
    seen += page["receipt_ids"]
    # Then every receipt of the window came exactly once, one a call, and nothing else
    assert sorted(seen) == sorted(expected)
    assert calls in (3, 4)  # the last page may find nothing more
    assert sorted(m["receipt_id"] for m in queued(aws)) == sorted(expected)


def test_replay_of_receipt_ids_enqueues_exactly_those(aws, archived, lambda_context):
    wanted = [archived["2026-11-19T23:59:59+00:00"], archived["2026-11-21T00:00:00+00:00"]]
    status, body = api(
        lambda_context, "POST", "/sync/replay", body={"receipt_ids": [*wanted, "shopify:-:unknown", wanted[0]]}
    )
    assert status == 202
    assert (sorted(body["receipt_ids"]), body["not_found"], body["next_token"]) == (
        sorted(wanted),
        ["shopify:-:unknown"],
        None,
    )
    messages = queued(aws)
    assert sorted(m["receipt_id"] for m in messages) == sorted(wanted)
    assert {m["received_at"] for m in messages} == {"2026-11-19T23:59:59Z", "2026-11-21T00:00:00Z"}


def test_replay_of_an_archive_written_before_receipt_times_were_recorded(aws, lambda_context):
    # Given an archived body with only its topic and receipt id as metadata (as ingest wrote them before)
    now = datetime.now(UTC)
    key = f"raw/shopify/{now:%Y/%m/%d}/" + "a" * 40
    aws.client("s3").put_object(
        Bucket=aws.env["ARCHIVE_BUCKET"],
        Key=key,
        Body=order(9),
        Metadata={"topic": "orders/create", "receipt-id": "r-old"},
    )
    # When a window around now is replayed, Then the object's own time stands for its receipt time
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    status, body = api(lambda_context, "POST", "/sync/replay", body=window)
    assert (status, body["receipt_ids"]) == (202, ["r-old"])
    [message] = queued(aws)
    assert (message["archive_key"], message["source"], message["account"]) == (key, "shopify", None)
    later = {"from": (now + timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=2)).isoformat()}
    assert api(lambda_context, "POST", "/sync/replay", body=later)[1]["receipt_ids"] == []


# --- bad requests -----------------------------------------------------------------------------------------------------
TOO_MANY = [f"r-{n}" for n in range(101)]


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    [
        ("GET", "/sync/dlq", None, {"queue": "nope"}),
        ("GET", "/sync/dlq", None, {"limit": "0"}),
        ("GET", "/sync/dlq", None, {"limit": "many"}),
        ("GET", "/sync/dlq", None, {"colour": "red"}),
        ("POST", "/sync/dlq/redrive", {"queue": "nope"}, None),
        ("POST", "/sync/dlq/redrive", {}, None),
        ("POST", "/sync/dlq/redrive", {"queue": "crm-dlq", "message_ids": []}, None),
        ("POST", "/sync/dlq/redrive", {"queue": "crm-dlq", "message_ids": TOO_MANY}, None),
        ("POST", "/sync/dlq/redrive", {"queue": "crm-dlq", "limit": 0}, None),
        ("POST", "/sync/dlq/redrive", ["crm-dlq"], None),
        ("POST", "/sync/dlq/redrive", b"queue=crm-dlq", None),
        ("POST", "/sync/dlq/redrive", None, None),
        ("POST", "/sync/replay", {"from": "yesterday", "to": "2026-11-21T00:00:00Z"}, None),
        ("POST", "/sync/replay", {"from": "2026-11-20T00:00:00Z", "to": "2026-13-01T00:00:00Z"}, None),
        ("POST", "/sync/replay", {"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, None),
        ("POST", "/sync/replay", {"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, None),
        ("POST", "/sync/replay", {"from": "2026-11-20T00:00:00Z"}, None),
        ("POST", "/sync/replay", {"from": "2026-11-20", "to": "2026-11-21", "receipt_ids": ["r-1"]}, None),
        ("POST", "/sync/replay", {"receipt_ids": TOO_MANY}, None),
        ("POST", "/sync/replay", {"receipt_ids": []}, None),
        ("POST", "/sync/replay", {"receipt_ids": ["r-1"], "continuation_token": "x"}, None),
        ("POST", "/sync/replay", {"from": "2026-11-20", "to": "2026-11-21", "limit": 501}, None),
        ("POST", "/sync/replay", {"continuation_token": "not-a-token"}, None),
        ("POST", "/sync/replay", {"form": "2026-11-20", "to": "2026-11-21"}, None),
        ("POST", "/sync/replay", {}, None),
        ("POST", "/sync/replay", b"{not json", None),
        ("POST", "/sync/replay", b"\xff\xfe", None),
    ],
)
def test_bad_requests_get_400_with_a_json_reason(aws, lambda_context, method, path, body, query):
    raw = body if isinstance(body, bytes) else None
    status, answer = api(lambda_context, method, path, body=None if raw else body, raw=raw, query=query)
    assert status == 400, answer
    assert isinstance(answer["error"], str)
    assert answer["error"]


def test_a_token_of_another_window_is_refused(aws, archived, lambda_context):
    window = {"from": "2026-11-19T00:00:00Z", "to": "2026-11-22T00:00:00Z", "limit": 1}
    _, page = api(lambda_context, "POST", "/sync/replay", body=window)
    other = {**window, "to": "2026-11-23T00:00:00Z", "continuation_token": page["next_token"]}
    status, answer = api(lambda_context, "POST", "/sync/replay", body=other)
    assert (status, answer) == (400, {"error": "continuation_token belongs to another window"})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/sync/dlq", None),
        ("POST", "/sync/dlq/redrive", {"queue": "crm-dlq"}),
        ("POST", "/sync/replay", {"receipt_ids": ["r-1"]}),
    ],
)
@pytest.mark.parametrize(("key", "reason"), [(None, "missing x-api-key header"), ("wrong", "invalid x-api-key")])
def test_operator_tools_need_the_operator_key(aws, lambda_context, method, path, body, key, reason):
    assert api(lambda_context, method, path, body=body, key=key) == (401, {"error": reason})


def test_an_unconfigured_queue_is_a_503_that_says_which(aws, lambda_context, monkeypatch):
    monkeypatch.delenv("EVENTS_DLQ_URL")
    status, answer = api(lambda_context, "GET", "/sync/dlq")
    assert (status, answer) == (503, {"error": "events-dlq is not configured (EVENTS_DLQ_URL, CRM_QUEUE_URL)"})
