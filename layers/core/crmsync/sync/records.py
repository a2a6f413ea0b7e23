"""Source API records through the normal conversion path, and the comparison a dry run or a reconciliation makes.

A REST resource of Shopify or WooCommerce has the shape of the webhook body of its topic, so it is archived and
enqueued as if that webhook had arrived (an `IngestMessage` for convert, as crmsync.replay does): convert's version
guard and identity resolution decide what it changes, so a record sent twice changes nothing the second time.
Stripe's list APIs return bare objects: each is wrapped in the event envelope its webhook would have had, the
event's `created` being the object's own `created` (a backfill never wins over a newer webhook of the same object);
events from /v1/events are sent as they are. Shopify's GraphQL nodes arrive mapped to their REST resources, PayPal's
transactions as the events that report them (crmsync.sync.clients), and are sent as they are.

Receipt ids are derived from the record's content (`sync:<source>:<object>:<id>:<digest>`), so a page processed
again after a crash produces the very same receipts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from crmsync.convert import KINDS, epoch_ms
from crmsync.ingest import archive_key, archive_metadata
from crmsync.messages import IngestMessage

if TYPE_CHECKING:
    from crmsync.store.archive import ArchivedObject
from crmsync.sources.base import Converted
from crmsync.store.queue import OutgoingMessage
from crmsync.store.state import StateStore
from crmsync.webhooks import SOURCES

TOPICS: dict[tuple[str, str], str] = {
    ("shopify", "orders"): "orders/updated",
    ("shopify", "customers"): "customers/update",
    ("woocommerce", "orders"): "order.updated",
    ("woocommerce", "customers"): "customer.updated",
    ("stripe", "customers"): "customer.updated",
}
# Fields that say nothing about the record's content: left out of checksums.
VOLATILE = frozenset({"receipt_id", "reporting", "source_version"})


class Archive(Protocol):
    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> None: ...


class FileArchive(Archive, Protocol):
    """What imports also need of the archive: uploaded files (crmsync.store.archive.RawArchive)."""

    def get(self, key: str) -> bytes: ...

    def head(self, key: str) -> ArchivedObject | None: ...

    def upload_url(self, key: str, content_type: str, expires_in: int) -> str: ...


class IngestQueue(Protocol):
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> tuple[list[str], dict[str, str]]: ...


@dataclass(frozen=True)
class SourceRecord:
    source: str
    object_type: str
    topic: str
    body: bytes
    record_id: str

    @property
    def receipt_id(self) -> str:
        digest = hashlib.sha256(self.body).hexdigest()[:16]
        return f"sync:{self.source}:{self.object_type}:{self.record_id}:{digest}"


def _stripe_event(record: dict[str, Any], topic: str) -> bytes:
    event = {
        "id": f"evt_sync_{record['id']}",
        "object": "event",
        "type": topic,
        "created": int(record.get("created") or 0),
        "livemode": bool(record.get("livemode", False)),
        "data": {"object": record},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def as_webhook(source: str, object_type: str, record: dict[str, Any]) -> SourceRecord | None:
    """The webhook this API record stands for; None when no webhook topic carries it (e.g. an unpaid intent)."""
    record_id = str(record.get("id", ""))
    if not record_id:
        return None
    if source == "paypal":
        # The PayPal client returns each transaction as the webhook event reporting it (clients.paypal_event).
        topic = str(record.get("event_type", ""))
        if topic not in SOURCES["paypal"].handled_topics:
            return None
        resource_id = str((record.get("resource") or {}).get("id") or record_id)
        return SourceRecord(source, object_type, topic, json.dumps(record, separators=(",", ":")).encode(), resource_id)
    if source == "stripe":
        if object_type == "events":
            topic = str(record.get("type", ""))
            body = json.dumps(record, separators=(",", ":")).encode()
        else:
            if object_type == "payment_intents":
                status = record.get("status")
                if status == "succeeded":
                    topic = "payment_intent.succeeded"
                elif status == "requires_payment_method" and record.get("last_payment_error"):
                    topic = "payment_intent.payment_failed"
                else:
                    return None
            else:
                topic = TOPICS[(source, object_type)]
            body = _stripe_event(record, topic)
        if topic not in SOURCES["stripe"].handled_topics:
            return None
        return SourceRecord(source, object_type, topic, body, record_id)
    topic = TOPICS.get((source, object_type), "")
    if not topic:
        return None
    return SourceRecord(source, object_type, topic, json.dumps(record, separators=(",", ":")).encode(), record_id)


def send_through_ingest(
    records: Sequence[SourceRecord], archive: Archive, queue: IngestQueue, *, correlation_id: str, now: datetime
) -> int:
    """Archive each record's body and enqueue its IngestMessage, as ingest does for a webhook; returns how many."""
    messages: list[OutgoingMessage] = []
    for index, record in enumerate(records):
        receipt_id = record.receipt_id
        key = archive_key(record.source, receipt_id, now)
        archive.put(key, record.body, archive_metadata(record.topic, receipt_id, now, None))
        message = IngestMessage(
            receipt_id=receipt_id,
            source=record.source,
            topic=record.topic,
            archive_key=key,
            received_at=now,
            correlation_id=correlation_id,
        )
        messages.append(OutgoingMessage(str(index), message.model_dump_json()))
    if messages:
        _, refused = queue.send_batch(messages)
        if refused:
            from crmsync.store.errors import StoreError

            raise StoreError(f"the ingest queue refused {len(refused)} messages")
    return len(messages)


def checksum(data: dict[str, Any]) -> str:
    """Digest of an entity's canonical content (what a CRM could show), whatever receipt carried it."""
    content = {k: v for k, v in data.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Comparison:
    """What sending records through the normal path would do, per entity."""

    creates: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)
    noops: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # records the converter refuses (they would dead-letter)

    def counts(self) -> dict[str, int]:
        return {
            "create": len(self.creates),
            "update": len(self.updates),
            "noop": len(self.noops),
            "invalid": len(self.failed),
        }


def convert_record(record: SourceRecord) -> Converted:
    from crmsync.convert import converter

    converted: Converted = converter(record.source).convert(record.topic, record.body, receipt_id=record.receipt_id)
    return converted


def compare(records: Sequence[SourceRecord], state: StateStore, into: Comparison | None = None) -> Comparison:
    """Classify each entity of each record against stored state, writing nothing: create (not stored), update
    (a newer version with other content), no-op (stored already, or stored newer)."""
    result = into or Comparison()
    for record in records:
        try:
            converted = convert_record(record)
        except Exception:
            result.failed.append(f"{record.source}:{record.object_type}:{record.record_id}")
            continue
        customer = converted.customer
        if customer is not None:
            label = f"{customer.source}:customer:{customer.source_id or customer.email}"
            keys = [f"email:{customer.email}"] if customer.email else []
            if customer.source_id:
                keys.insert(0, f"{customer.source}:customer:{customer.source_id}")
            found = next((cid for key in keys if (cid := state.lookup_identity(key))), None)
            if found is None:
                result.creates.append(label)
            else:
                sk = f"SRC#{customer.source}#{customer.source_id or customer.email or '-'}"
                mine = next((item for item in state.customer_items(found) if item.sk == sk), None)
                _classify(
                    result,
                    label,
                    mine.version if mine else None,
                    mine.data if mine else None,
                    epoch_ms(customer.source_version),
                    customer.model_dump(mode="json"),
                )
        for _, entity in converted.entities:
            stored = state.get_entity(KINDS[type(entity)], entity.external_id)
            _classify(
                result,
                entity.external_id,
                stored.version if stored else None,
                stored.data if stored else None,
                epoch_ms(entity.source_version),
                entity.model_dump(mode="json"),
            )
    return result


def _classify(
    result: Comparison,
    label: str,
    stored_version: int | None,
    stored: dict[str, Any] | None,
    version: int,
    data: dict[str, Any],
) -> None:
    if stored is None or stored_version is None:
        result.creates.append(label)
    elif version > stored_version and checksum(stored) != checksum(data):
        result.updates.append(label)
    else:
        result.noops.append(label)


def utc_now() -> datetime:
    return datetime.now(UTC)
