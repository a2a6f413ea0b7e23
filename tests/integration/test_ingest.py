"""Ingest handler on moto: verify, claim, archive, enqueue; every bad input answered 4xx with nothing stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from crmsync.store import clients
from ingest import app as ingest_app
from tests.conftest import EVENTS
from tests.integration.conftest import api_event

SECRET = "local-shopify-secret"
ORDER = (EVENTS / "payloads" / "shopify-orders-create.json").read_bytes()


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def webhook():
    """Build a Shopify webhook API event; signed with the local secret unless told otherwise."""

    def build(
        body: bytes = ORDER,
        *,
        topic: str = "orders/create",
        event_id: str = "evt-1",
        signature: str | None = None,
        source: str = "shopify",
        drop: tuple[str, ...] = (),
    ) -> dict:
        headers = {
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body) if signature is None else signature,
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Webhook-Id": f"wh-{event_id}",
            "Content-Type": "application/json",
        }
        headers = {k: v for k, v in headers.items() if k not in drop}
        return api_event(
            "POST",
            f"/webhooks/{source}",
            body=body,
            headers=headers,
            path_params={"source": source},
            resource="/webhooks/{source}",
        )

    return build


def call(event, lambda_context) -> tuple[int, dict]:
    answer = ingest_app.lambda_handler(event, lambda_context)
    return answer["statusCode"], json.loads(answer["body"])


def stored(aws) -> tuple[int, int, int]:
    """(receipts, archived objects, queued messages)."""
    receipts = aws.client("dynamodb").scan(TableName=aws.env["RECEIPTS_TABLE"])["Count"]
    objects = aws.client("s3").list_objects_v2(Bucket=aws.env["ARCHIVE_BUCKET"]).get("KeyCount", 0)
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.env["INGEST_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    return receipts, objects, int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_signed_order_is_archived_byte_for_byte_and_enqueued(aws, webhook, lambda_context):
    # Given a correctly signed orders/create webhook
    event = webhook()
    # When it is delivered
    status, body = call(event, lambda_context)
    # Then it is accepted, and the exact bytes are archived and referenced by the queued message
    assert (status, body["status"]) == (200, "accepted")
    assert body["receipt_id"] == "shopify:demo.myshopify.com:evt-1"
    [message] = aws.receive_all(aws.env["INGEST_QUEUE_URL"])
    queued = json.loads(message["Body"])
    assert queued["topic"] == "orders/create"
    assert queued["account"] == "demo.myshopify.com"
    archived = aws.client("s3").get_object(Bucket=aws.env["ARCHIVE_BUCKET"], Key=queued["archive_key"])
    assert archived["Body"].read() == ORDER
    receipt = aws.client("dynamodb").get_item(
        TableName=aws.env["RECEIPTS_TABLE"], Key={"pk": {"S": body["receipt_id"]}}
    )
    assert receipt["Item"]["status"]["S"] == "ACCEPTED"
    assert int(receipt["Item"]["expires_at"]["N"]) - int(receipt["Item"]["accepted_at"]["N"]) >= 30 * 86400


def test_sample_event_file_is_accepted(aws, load_event, lambda_context):
    # Given the documented sam-local event (signed with the local default secret)
    event = load_event("ingest-shopify-orders-create.json")
    # When invoked, Then it is accepted
    status, body = call(event, lambda_context)
    assert (status, body["status"]) == (200, "accepted")


def test_redelivery_is_a_duplicate_and_stores_nothing_new(aws, webhook, lambda_context):
    # Given an accepted delivery
    assert call(webhook(), lambda_context)[1]["status"] == "accepted"
    before = stored(aws)
    # When Shopify delivers the same event again
    status, body = call(webhook(), lambda_context)
    # Then it is answered as a duplicate and nothing new is stored or enqueued
    assert (status, body["status"]) == (200, "duplicate")
    assert stored(aws) == before


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"signature": sign(ORDER, "wrong-secret")}, 401, "signature mismatch"),
        ({"drop": ("X-Shopify-Hmac-Sha256",)}, 401, "missing signature"),
        ({"signature": "not base64 at all"}, 401, "signature mismatch"),
        ({"body": b"{not json", "signature": sign(b"{not json")}, 400, "body is not JSON"),
        ({"body": ORDER, "signature": sign(ORDER + b" ")}, 401, "signature mismatch"),
        ({"source": "nosuchshop"}, 404, "unknown webhook source"),
        ({"drop": ("X-Shopify-Topic",)}, 400, "missing topic"),
    ],
    ids=["wrong-secret", "unsigned", "garbage-signature", "not-json", "tampered", "unknown-source", "no-topic"],
)
def test_bad_input_is_refused_with_a_reason_and_nothing_is_stored(aws, webhook, lambda_context, kwargs, status, reason):
    # Given a bad delivery, When it arrives
    answer_status, body = call(webhook(**kwargs), lambda_context)
    # Then it gets a 4xx with a JSON reason and nothing is stored or enqueued
    assert (answer_status, body["error"]) == (status, reason)
    assert stored(aws) == (0, 0, 0)


def test_body_over_one_mebibyte_is_refused(aws, webhook, lambda_context):
    # Given a signed body one byte over 1 MiB
    body = b'{"pad":"' + b"x" * (1024 * 1024 - 9) + b'"}'
    assert len(body) == 1024 * 1024 + 1
    # When delivered, Then 413 and nothing stored
    status, answer = call(webhook(body=body), lambda_context)
    assert status == 413
    assert "larger than" in answer["error"]
    assert stored(aws) == (0, 0, 0)


def test_topic_we_do_not_handle_is_acknowledged_but_not_processed(aws, webhook, lambda_context):
    # Given a signed products/create webhook
    status, body = call(webhook(body=b'{"id": 1}', topic="products/create"), lambda_context)
    # Then 200 ignored, nothing stored
    assert (status, body["status"]) == (200, "ignored")
    assert stored(aws) == (0, 0, 0)


def test_rotated_secrets_accept_old_and_new(aws, webhook, lambda_context, monkeypatch):
    # Given the secret holds the new secret first and the old one second
    secrets = aws.client("secretsmanager")
    secrets.put_secret_value(SecretId=aws.env["SHOPIFY_SECRET_ID"], SecretString="new-one, " + SECRET)
    # When deliveries signed with either arrive, Then both are accepted
    assert call(webhook(event_id="a"), lambda_context)[1]["status"] == "accepted"
    assert call(webhook(event_id="b", signature=sign(ORDER, "new-one")), lambda_context)[1]["status"] == "accepted"


def test_unencoded_body_is_verified_over_its_utf8_bytes(aws, webhook, lambda_context):
    # Given API Gateway passed the body as text (no binary media type matched)
    event = webhook()
    event["body"], event["isBase64Encoded"] = ORDER.decode(), False
    # Then it verifies and is accepted
    assert call(event, lambda_context)[1]["status"] == "accepted"


def test_a_failure_after_the_claim_releases_it_so_the_retry_is_processed(aws, webhook, lambda_context, monkeypatch):
    # Given the queue is unreachable
    monkeypatch.setenv("INGEST_QUEUE_URL", aws.env["INGEST_QUEUE_URL"] + "-missing")
    # When the webhook arrives, Then the sender is told to retry and no receipt is left behind
    status, body = call(webhook(), lambda_context)
    assert status == 503
    assert body == {"error": "could not store the webhook; retry later"}
    assert stored(aws)[0] == 0
    # When the queue is back and Shopify retries, Then the retry is accepted (not taken for a duplicate)
    monkeypatch.setenv("INGEST_QUEUE_URL", aws.env["INGEST_QUEUE_URL"])
    clients.reset()
    assert call(webhook(), lambda_context)[1]["status"] == "accepted"


def hold_claim(aws, *, token: str, claim_expires: int) -> None:
    """Put an in-progress claim on evt-1 as another (or a crashed) delivery would have left it."""
    aws.client("dynamodb").put_item(
        TableName=aws.env["RECEIPTS_TABLE"],
        Item={
            "pk": {"S": "shopify:demo.myshopify.com:evt-1"},
            "status": {"S": "IN_PROGRESS"},
            "token": {"S": token},
            "claim_expires": {"N": str(claim_expires)},
            "expires_at": {"N": "99999999999"},
        },
    )


def test_a_delivery_in_progress_elsewhere_is_answered_409(aws, webhook, lambda_context):
    # Given another delivery of the same event holds a live claim
    hold_claim(aws, token="other", claim_expires=99999999999)
    # When this delivery arrives, Then it is told to retry later
    status, body = call(webhook(), lambda_context)
    assert status == 409
    assert "retry" in body["error"]


def test_an_expired_claim_is_taken_over(aws, webhook, lambda_context):
    # Given a claim left by a crashed delivery, long expired
    hold_claim(aws, token="crashed", claim_expires=1)
    # When the retry arrives, Then it is accepted
    assert call(webhook(), lambda_context)[1]["status"] == "accepted"
