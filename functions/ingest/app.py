"""Webhook handler: POST /webhooks/{source} -> crmsync.ingest.accept_webhook."""

from __future__ import annotations

import base64
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
        transmission_max_age_seconds=settings.paypal_transmission_max_age_seconds,
    )


def source_of(event: dict[str, Any]) -> str:
    """The {source} of /webhooks/{source}; each known source also has a route of its own (/webhooks/shopify, ...,
    throttled on its own), which has no path parameters."""
    source = (event.get("pathParameters") or {}).get("source")
    if isinstance(source, str):
        return source
    resource = event.get("resource") or ""
    return resource.removeprefix("/webhooks/") if resource.startswith("/webhooks/") and "{" not in resource else ""


def request_from(event: dict[str, Any]) -> WebhookRequest | WebhookAnswer:
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
    except ValueError:  # not base64 (binascii.Error), non-ASCII text flagged base64, text that is not UTF-8
        return error(400, "body could not be decoded")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items() if isinstance(v, str)}
    return WebhookRequest(
        source=source_of(event),
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
