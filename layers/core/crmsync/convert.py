"""Convert: an accepted webhook -> canonical entities -> identity -> versioned state -> domain events.

Idempotent by construction: a retried message writes the same versions again (the guard lets the same
receipt through) and publishes the same events, and every consumer downstream upserts by external id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from crmsync.identity import resolve_customer_id
from crmsync.messages import DetailType, DomainEvent
from crmsync.observability import logger
from crmsync.sources import shopify
from crmsync.store.state import StateStore, Versioned

if TYPE_CHECKING:
    from crmsync.messages import IngestMessage
    from crmsync.models import Customer, Order
    from crmsync.store.archive import RawArchive
    from crmsync.store.bus import EventBus

MAX_DETAIL_BYTES = 200_000  # EventBridge takes 256 KB an entry; bigger entities travel by key only

ORDER_EVENTS: dict[str, DetailType] = {
    shopify.TOPIC_ORDERS_CREATE: DetailType.ORDER_PLACED,
    shopify.TOPIC_ORDERS_UPDATED: DetailType.ORDER_UPDATED,
    shopify.TOPIC_ORDERS_PAID: DetailType.ORDER_PAID,
    shopify.TOPIC_ORDERS_CANCELLED: DetailType.ORDER_CANCELLED,
    shopify.TOPIC_ORDERS_FULFILLED: DetailType.ORDER_FULFILLED,
}


class UnsupportedTopic(ValueError):
    """A message whose source and topic no converter handles (ingest should not have accepted it)."""


@dataclass(frozen=True)
class ConvertDeps:
    archive: RawArchive
    state: StateStore
    bus: EventBus
    new_customer_id: Callable[[], str] | None = None


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def to_canonical(message: IngestMessage, body: bytes) -> tuple[Customer | None, Order]:
    if message.source == "shopify" and message.topic in ORDER_EVENTS:
        return shopify.order_to_canonical(shopify.parse_order(body), receipt_id=message.receipt_id)
    raise UnsupportedTopic(f"no converter for {message.source} {message.topic}")


def convert_message(message: IngestMessage, deps: ConvertDeps) -> list[tuple[str, str]]:
    """Convert one accepted webhook; returns the (detail-type, detail) pairs it published."""
    customer, order = to_canonical(message, deps.archive.get(message.archive_key))
    events: list[tuple[str, str]] = []

    customer_id: str | None = None
    if customer is not None:
        kwargs = {"new_id": deps.new_customer_id} if deps.new_customer_id else {}
        customer_id = resolve_customer_id(customer, deps.state, **kwargs)
    if customer is not None and customer_id is not None:
        source_key = customer.source_id or customer.email or "-"
        written = deps.state.put_versioned(
            f"CUSTOMER#{customer_id}",
            f"SRC#{customer.source}#{source_key}",
            Versioned(epoch_ms(customer.source_version), 0, message.receipt_id),
            customer.model_dump(mode="json"),
        )
        if written:
            events.append(_event(DetailType.CUSTOMER_UPSERTED, message, customer, customer_id, customer_id))

    written = deps.state.put_versioned(
        f"ORDER#{order.external_id}",
        "STATE",
        Versioned(epoch_ms(order.source_version), order.status.rank, message.receipt_id),
        order.model_dump(mode="json"),
        customer_id=customer_id,
    )
    if written:
        events.append(_event(ORDER_EVENTS[message.topic], message, order, order.external_id, customer_id))
    else:
        logger.info("stale order version ignored", order=order.external_id, receipt_id=message.receipt_id)

    deps.bus.publish(events)
    return events


def _event(
    detail_type: DetailType, message: IngestMessage, entity: Customer | Order, key: str, customer_id: str | None
) -> tuple[str, str]:
    event = DomainEvent(
        entity="customer" if detail_type is DetailType.CUSTOMER_UPSERTED else "order",
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
