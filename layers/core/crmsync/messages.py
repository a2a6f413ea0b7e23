"""What travels between functions: the ingest queue message and the domain event (DESIGN.md section 1)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class IngestMessage(BaseModel):
    """An accepted webhook on the ingest queue; the body itself stays in the raw archive."""

    model_config = ConfigDict(frozen=True)

    receipt_id: str
    source: str
    topic: str
    archive_key: str
    received_at: datetime
    correlation_id: str
    account: str | None = None  # shop domain / store URL / Stripe account: who sent it


class DetailType(StrEnum):
    """Domain event names: users write these in rule files, so they are a contract."""

    CUSTOMER_UPSERTED = "customer.upserted"
    CUSTOMER_DELETED = "customer.deleted"
    CUSTOMER_MERGED = "customer.merged"  # two canonical customers turned out to be one person
    ORDER_PLACED = "order.placed"
    ORDER_UPDATED = "order.updated"
    ORDER_PAID = "order.paid"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_FULFILLED = "order.fulfilled"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    REFUND_ISSUED = "refund.issued"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_UPDATED = "dispute.updated"
    DISPUTE_CLOSED = "dispute.closed"
    RISK_FLAGGED = "risk.flagged"
    ERASURE_REQUESTED = "erasure.requested"
    DATA_REQUESTED = "data.requested"  # a customer asked for an export of their data (Shopify customers/data_request)


class DomainEvent(BaseModel):
    """The detail of a domain event on the bus."""

    model_config = ConfigDict(frozen=True)

    entity: Literal["customer", "order", "payment", "refund", "dispute", "notice"]
    key: str  # canonical customer id, or the entity's external id ("shopify:order:123", "stripe:payment:pi_1")
    customer_id: str | None
    source: str
    source_id: str | None
    source_version: datetime
    receipt_id: str
    correlation_id: str
    data: dict[str, Any] | None = None  # the canonical form; left out when it would not fit an event
    merged: str | None = None  # customer.merged: the customer id folded into `key`
