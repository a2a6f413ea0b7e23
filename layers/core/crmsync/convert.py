"""Convert: an accepted webhook -> canonical entities -> identity -> versioned state -> domain events.

Idempotent by construction: a retried message writes the same versions again (the guard lets the same
receipt through) and publishes the same events, and every consumer downstream upserts by external id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmsync.erasure import screen, screen_notice
from crmsync.identity import resolve_customer_id
from crmsync.links import order_links
from crmsync.messages import DetailType, DomainEvent
from crmsync.models import Dispute, Order, Payment, Refund
from crmsync.observability import logger
from crmsync.sources.base import Converted, UnsupportedTopic
from crmsync.store.state import StateStore, Versioned
from crmsync.webhooks import SOURCES

if TYPE_CHECKING:
    from crmsync.messages import IngestMessage
    from crmsync.models import Customer
    from crmsync.sources.base import Entity
    from crmsync.store.archive import RawArchive
    from crmsync.store.bus import EventBus
    from crmsync.store.sync_jobs import SyncStore

MAX_DETAIL_BYTES = 200_000  # EventBridge takes 256 KB an entry; bigger entities travel by key only

# State partition of each entity kind: <KIND>#<external id>.
KINDS: dict[type[Any], str] = {Order: "ORDER", Payment: "PAYMENT", Refund: "REFUND", Dispute: "DISPUTE"}

__all__ = ["KINDS", "ConvertDeps", "UnsupportedTopic", "convert_message", "to_canonical"]


@dataclass(frozen=True)
class ConvertDeps:
    archive: RawArchive
    state: StateStore
    bus: EventBus
    new_customer_id: Callable[[], str] | None = None
    # Adds reporting-currency amounts to each entity before it is stored (crmsync.fx.reporting_for); None = off.
    reporting: Callable[[Entity], Entity] | None = None
    # Stripe customer.deleted: "keep" (record the notice) or "anonymise" (erase the person: crmsync.erasure).
    stripe_customer_deleted: str = "keep"
    # The sync table: a deletion notice (Notice.deletes) is recorded there as reconciliation records the deletions it
    # finds (GONE#<source>), so a full run does not report it as drift again; None = not recorded.
    sync: SyncStore | None = None


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def version_at(value: datetime) -> str:
    """A version as lineage records it: UTC ISO 8601 at the millisecond precision state versions have."""
    return datetime.fromtimestamp(epoch_ms(value) / 1000, UTC).isoformat()


def to_canonical(message: IngestMessage, body: bytes) -> Converted:
    converted: Converted = converter(message.source).convert(message.topic, body, receipt_id=message.receipt_id)
    return converted


def converter(source_name: str) -> Any:
    """The converter of a source: a webhook source, or "import" (rows of a bulk import, crmsync.sync.importer)."""
    source = SOURCES.get(source_name)
    if source is None and source_name == "import":
        from crmsync.sync.importer import IMPORT_SOURCE  # lazily: only imports need it

        return IMPORT_SOURCE
    if source is None:
        raise UnsupportedTopic(f"no converter for source {source_name}")
    return source


def convert_message(message: IngestMessage, deps: ConvertDeps) -> list[tuple[str, str]]:
    """Convert one accepted webhook; returns the (detail-type, detail) pairs it published."""
    # An erased person's identity keys carry tombstones: a late event or a replay never brings them back.
    converted = screen(to_canonical(message, deps.archive.get(message.archive_key)), deps.state)
    events: list[tuple[str, str]] = []
    deletions: list[str] = []  # state pks of the entities the notices say the source deleted

    customer_id = _write_customer(converted.customer, message, deps, events)
    for detail_type, converted_entity in converted.entities:
        entity = deps.reporting(converted_entity) if deps.reporting else converted_entity
        kind = KINDS[type(entity)]
        written = deps.state.put_versioned(
            f"{kind}#{entity.external_id}",
            "STATE",
            Versioned(epoch_ms(entity.source_version), entity.rank, message.receipt_id),
            entity.model_dump(mode="json"),
            customer_id=customer_id,
        )
        if written:
            if isinstance(entity, Order):
                deps.state.put_links(order_links(entity), entity.external_id)
            events.append(_event(detail_type, message, entity, kind.lower(), entity.external_id, customer_id))
        else:
            logger.info("stale version ignored", entity=entity.external_id, receipt_id=message.receipt_id)
        _record_lineage(
            deps, f"{kind}#{entity.external_id}", message, entity.source_version,
            written=written, events=[detail_type.value] if written else [], customer_id=customer_id,
        )  # fmt: skip
    for original in converted.notices:
        # Compliance and deletion notices: erasure triggers tombstone their keys and lose any email (crmsync.erasure).
        screened = screen_notice(original, message, deps.state, stripe_deleted=deps.stripe_customer_deleted)
        notice = screened.notice
        deps.state.record_notice(message.receipt_id, notice.detail_type.value, notice.key, notice.data)
        if notice.deletes is not None:
            deletions.append(f"{KINDS[notice.deletes]}#{notice.key}")  # the state pk, as reconciliation records it
        for published in (notice, *screened.also):
            detail = DomainEvent(
                entity="notice", key=published.key, customer_id=screened.customer_id or customer_id,
                source=message.source, source_id=None, source_version=message.received_at,
                receipt_id=message.receipt_id, correlation_id=message.correlation_id, data=published.data,
            )  # fmt: skip
            events.append((published.detail_type.value, detail.model_dump_json()))

    deps.bus.publish(events)
    if deps.sync is not None:
        # Only once its notice is published, as reconciliation records a deletion only once its webhook is sent: a
        # failed write fails the message, and its retry publishes again (idempotent) before writing again.
        at = message.received_at.isoformat()
        for deleted in deletions:
            deps.sync.record_deletion_notice(message.source, deleted, message.receipt_id, at)
    return events


def _write_customer(
    customer: Customer | None, message: IngestMessage, deps: ConvertDeps, events: list[tuple[str, str]]
) -> str | None:
    if customer is None:
        return None
    kwargs = {"new_id": deps.new_customer_id} if deps.new_customer_id else {}
    at = message.received_at.isoformat()
    resolution = resolve_customer_id(customer, deps.state, receipt_id=message.receipt_id, at=at, **kwargs)
    if resolution is None:
        return None
    customer_id = resolution.customer_id
    for merge in resolution.merges:
        merged = DomainEvent(
            entity="customer", key=merge.survivor, customer_id=merge.survivor, source=customer.source,
            source_id=customer.source_id, source_version=customer.source_version, receipt_id=message.receipt_id,
            correlation_id=message.correlation_id, data={"reason": merge.reason}, merged=merge.merged,
        )  # fmt: skip
        events.append((DetailType.CUSTOMER_MERGED.value, merged.model_dump_json()))
    source_key = customer.source_id or customer.email or "-"
    written = deps.state.put_versioned(
        f"CUSTOMER#{customer_id}",
        f"SRC#{customer.source}#{source_key}",
        Versioned(epoch_ms(customer.source_version), 0, message.receipt_id),
        customer.model_dump(mode="json"),
    )
    if written:
        events.append(_event(DetailType.CUSTOMER_UPSERTED, message, customer, "customer", customer_id, customer_id))
    _record_lineage(
        deps, f"CUSTOMER#{customer_id}", message, customer.source_version, written=written,
        events=[DetailType.CUSTOMER_UPSERTED.value] if written else [], customer_id=customer_id,
        identity={
            "matched_by": resolution.matched_by,
            "merged": [{"customer_id": m.merged, "reason": m.reason} for m in resolution.merges],
            "not_merged": list(resolution.unmerged),
        },
    )  # fmt: skip
    return customer_id


def _record_lineage(
    deps: ConvertDeps,
    pk: str,
    message: IngestMessage,
    version: datetime,
    *,
    written: bool,
    events: list[str],
    customer_id: str | None,
    **extra: Any,
) -> None:
    """receipt -> canonical version -> domain events: why the entity looks the way it does."""
    deps.state.record_lineage(
        pk,
        version_at(version),  # history sorts by the version it is about, as the CRM writer's steps do
        message.receipt_id,
        {
            "step": "convert",
            "receipt_id": message.receipt_id,
            "source": message.source,
            "topic": message.topic,
            "archive_key": message.archive_key,
            "received_at": message.received_at.isoformat(),
            "source_version": version.isoformat(),
            "outcome": "written" if written else "stale: newer state kept",
            "events": events,
            "customer_id": customer_id,
            **extra,
        },
    )


def _event(
    detail_type: DetailType,
    message: IngestMessage,
    entity: Customer | Entity,
    kind: str,
    key: str,
    customer_id: str | None,
) -> tuple[str, str]:
    event = DomainEvent(
        entity=kind,
        key=key,
        customer_id=customer_id,
        source=entity.source,
        source_id=entity.source_id,
        source_version=entity.source_version,
        receipt_id=message.receipt_id,
        correlation_id=message.correlation_id,
        data=entity.model_dump(mode="json"),
    )
    detail = event.model_dump_json()
    if len(detail) > MAX_DETAIL_BYTES:
        detail = event.model_copy(update={"data": None}).model_dump_json()
    return detail_type.value, detail
