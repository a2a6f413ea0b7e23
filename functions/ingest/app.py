"""Webhook handler: POST /webhooks/{source} -> crmsync.ingest.accept_webhook."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.ingest import IngestDeps, WebhookAnswer, WebhookRequest, accept_webhook, error
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.archive import RawArchive
from crmsync.store.queue import Queue
from crmsync.store.receipts import ReceiptStore
from crmsync.store.secrets import secret_values


def deps(settings: Settings) -> IngestDeps:
    return IngestDeps(
        receipts=ReceiptStore(settings.receipts_table),
        archive=RawArchive(settings.archive_bucket),
        queue=Queue(settings.ingest_queue_url),
        secrets=lambda name: secret_values(getattr(settings, name), max_age=settings.secret_max_age_seconds),
        max_body_bytes=settings.max_body_bytes,
        claim_seconds=settings.claim_seconds,
        retention_seconds=settings.receipt_retention_days * 86400,
    )


def request_from(event: dict[str, Any]) -> WebhookRequest | WebhookAnswer:
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
    except (binascii.Error, UnicodeEncodeError):
        return error(400, "body could not be decoded")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items() if isinstance(v, str)}
    return WebhookRequest(
        source=(event.get("pathParameters") or {}).get("source", ""),
        headers=headers,
        body=body,
        correlation_id=(event.get("requestContext") or {}).get("requestId", ""),
    )


def respond(answer: WebhookAnswer) -> dict[str, Any]:
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(answer.body),
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = request_from(event)
    if isinstance(request, WebhookAnswer):
        return respond(request)
    try:
        return respond(accept_webhook(request, deps(Settings.from_env())))
    except Exception:
        logger.exception("webhook not accepted")
        return respond(error(503, "could not store the webhook; retry later"))
