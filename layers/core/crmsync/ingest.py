"""Ingest: verify a webhook, claim its receipt, archive the raw body, enqueue it, answer fast.

Nothing is acknowledged before it is durably stored; any failure on the way releases the claim, so the
sender's retry is processed instead of being taken for a duplicate.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable
from urllib.parse import quote_from_bytes

from crmsync import jsontext
from crmsync.messages import IngestMessage
from crmsync.observability import logger, metrics
from crmsync.sources.base import SignatureError
from crmsync.store.archive import RawArchive
from crmsync.store.queue import Queue
from crmsync.store.receipts import Claim, ReceiptStore
from crmsync.webhooks import SOURCES

DAY = 86400
# Header values HTTP cannot carry (CR/LF end a header, NUL is refused, a lone surrogate is no character): forged.
_UNDELIVERABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
MAX_ID_CHARS = 512  # a receipt id or account: DynamoDB keys take 2048 bytes, S3 user metadata 2 KB in all
# A signed transmission time may run this far ahead of our clock (the sender's clock is not ours).
TRANSMISSION_CLOCK_SKEW_SECONDS = 900
DEFAULT_TRANSMISSION_MAX_AGE_SECONDS = 4 * DAY  # PayPal retries a delivery up to 25 times over 3 days


@runtime_checkable
class SignsTransmissions(Protocol):
    """A source whose signature covers less than the whole body (PayPal signs CRC32(body)): it names the signed
    transmission (id and time) of a verified delivery, so ingest can refuse old ones and bind each id to its body."""

    def signed_transmission(self, headers: Mapping[str, str]) -> tuple[str, datetime]: ...


@dataclass(frozen=True)
class WebhookRequest:
    source: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    correlation_id: str = ""


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict[str, str | None]


@dataclass(frozen=True)
class IngestDeps:
    receipts: ReceiptStore
    archive: RawArchive
    queue: Queue
    secrets: Callable[[str], list[str]]  # settings field name -> secret values
    max_body_bytes: int = 1024 * 1024
    claim_seconds: int = 60
    retention_seconds: int = 35 * DAY
    clock: Callable[[], float] = time.time
    new_token: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    transmission_max_age_seconds: int = DEFAULT_TRANSMISSION_MAX_AGE_SECONDS


def error(status: int, reason: str) -> WebhookAnswer:
    return WebhookAnswer(status, {"error": reason})


def archive_key(source: str, receipt_id: str, at: datetime) -> str:
    digest = hashlib.sha256(receipt_id.encode()).hexdigest()[:40]
    return f"raw/{source}/{at:%Y/%m/%d}/{digest}"


def archive_metadata(topic: str, receipt_id: str, received_at: datetime, account: str | None) -> dict[str, str]:
    """What a replay needs to rebuild the queue message from the archive alone (crmsync.replay); S3 metadata is
    ASCII only, so an account name that is not stays out (the message's account is informative only)."""
    metadata = {"topic": topic, "receipt-id": receipt_id, "received-at": received_at.isoformat()}
    if account and account.isascii():
        metadata["account"] = account
    return metadata


def safe_id(text: str, limit: int = MAX_ID_CHARS) -> str:
    """`text` as printable ASCII, each other character percent-encoded (UTF-8), and at most `limit` characters (a
    longer one keeps its start and ends in the digest of the whole): what DynamoDB keys, S3 metadata and SQS all take.
    The ids senders really send are printable ASCII already and come out unchanged; unsigned headers (Shopify's event
    id, WooCommerce's store URL) could otherwise make a signed delivery unstorable, answered 503 on every retry."""
    if not (text.isascii() and text.isprintable()):
        text = "".join(c if " " <= c <= "~" else quote_from_bytes(c.encode("utf-8", "surrogatepass")) for c in text)
    if len(text) > limit:
        text = f"{text[: limit - 72]}:sha256-{hashlib.sha256(text.encode()).hexdigest()}"
    return text


def accept_webhook(request: WebhookRequest, deps: IngestDeps) -> WebhookAnswer:
    source = SOURCES.get(request.source)
    if source is None:
        return error(404, "unknown webhook source")
    if len(request.body) > deps.max_body_bytes:
        return error(413, f"body larger than {deps.max_body_bytes} bytes")
    if any(_UNDELIVERABLE.search(value) for value in request.headers.values()):
        return error(400, "header value with a control or invalid character")
    if source.is_ping(request.body, request.headers):
        return WebhookAnswer(200, {"status": "ignored", "receipt_id": None})
    secrets = deps.secrets(source.secret_setting)
    if not secrets:
        logger.error("webhook secret not configured", source=source.name)
        return error(503, "webhook secret not configured")
    try:
        source.verify(request.body, request.headers, secrets)
    except SignatureError as exc:
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        return error(401, str(exc))
    signed = _signed_transmission(source, request, deps)
    if isinstance(signed, WebhookAnswer):
        return signed
    try:
        payload = jsontext.loads(request.body)
    except jsontext.NestedTooDeeply:
        return error(400, "body is nested too deeply")
    except ValueError:
        return error(400, "body is not JSON")
    topic = source.topic(request.headers, payload)
    if not topic:
        return error(400, "missing topic")
    receipt_id = safe_id(source.receipt_id(request.headers, payload, request.body))
    if topic not in source.handled_topics:
        metrics.add_metric(name="WebhookIgnored", unit="Count", value=1)
        return WebhookAnswer(200, {"status": "ignored", "receipt_id": receipt_id})

    now = deps.clock()
    if signed is not None and not deps.receipts.bind_transmission(
        f"transmission:{source.name}:{safe_id(signed)}",
        hashlib.sha256(request.body).hexdigest(),
        now=int(now),
        retention_seconds=deps.transmission_max_age_seconds + TRANSMISSION_CLOCK_SKEW_SECONDS,
    ):
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        logger.warning("signed transmission replayed with another body", source=source.name)
        return error(401, "transmission already used for another body")
    token = deps.new_token()
    claim = deps.receipts.claim(
        receipt_id, token, now=int(now), claim_seconds=deps.claim_seconds, retention_seconds=deps.retention_seconds
    )
    if claim is Claim.DUPLICATE:
        metrics.add_metric(name="WebhookDuplicate", unit="Count", value=1)
        return WebhookAnswer(200, {"status": "duplicate", "receipt_id": receipt_id})
    if claim is Claim.IN_PROGRESS:
        return error(409, "another delivery of this event is being processed; retry later")

    received_at = datetime.fromtimestamp(now, UTC)
    key = archive_key(source.name, receipt_id, received_at)
    sender = source.account(request.headers, payload)
    account = safe_id(sender) if sender else None
    try:
        deps.archive.put(key, request.body, archive_metadata(topic, receipt_id, received_at, account))
        message = IngestMessage(
            receipt_id=receipt_id,
            source=source.name,
            topic=topic,
            archive_key=key,
            received_at=received_at,
            correlation_id=request.correlation_id or receipt_id,
            account=account,
        )
        deps.queue.send(message.model_dump_json())
        deps.receipts.accept(receipt_id, token, topic=topic, archive_key=key, now=int(now))
    except Exception:
        logger.exception("webhook not stored; releasing the claim", source=source.name, topic=topic)
        try:
            deps.receipts.release(receipt_id, token)
        except Exception:  # the claim then expires after claim_seconds; the original error matters more
            logger.exception("claim not released", source=source.name)
        raise
    metrics.add_metric(name="WebhookAccepted", unit="Count", value=1)
    logger.info("webhook accepted", source=source.name, topic=topic, receipt_id=receipt_id)
    return WebhookAnswer(200, {"status": "accepted", "receipt_id": receipt_id})


def _signed_transmission(source: object, request: WebhookRequest, deps: IngestDeps) -> str | WebhookAnswer | None:
    """The transmission id of a verified delivery whose signature does not cover the whole body (None for the
    others), or the 401 of one signed too long ago: its time is signed, so a captured delivery ages out."""
    if not isinstance(source, SignsTransmissions):
        return None
    try:
        transmission_id, signed_at = source.signed_transmission(request.headers)
    except SignatureError as exc:
        return error(401, str(exc))
    age = deps.clock() - signed_at.timestamp()
    if age > deps.transmission_max_age_seconds or age < -TRANSMISSION_CLOCK_SKEW_SECONDS:
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        return error(401, "transmission time outside the accepted window")
    return transmission_id
