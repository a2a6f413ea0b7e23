"""Canonical order: what a shop says was bought, for how much, and how far along it is."""

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import NotRequired, Self, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmsync.models.customer import UtcDatetime, normalize_email
from crmsync.models.money import Money, MoneyFields, ReportingAmount


class OrderStatus(StrEnum):
    """Lifecycle states, declared in the order an order moves through them."""

    PENDING = "pending"
    AUTHORIZED = "authorized"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        """How far along the lifecycle: on equal source versions the higher rank wins."""
        return _RANKS[self]


_RANKS: dict[OrderStatus, int] = {status: rank for rank, status in enumerate(OrderStatus)}


class LineItemFields(TypedDict):
    """LineItem's fields, to build one inside an Order's validation (Order.of): mypy checks the names."""

    source_id: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Money | MoneyFields
    total_discount: Money | MoneyFields


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_id: str
    sku: str | None
    title: str
    quantity: int = Field(ge=0)
    unit_price: Money
    total_discount: Money


class OrderFields(TypedDict):
    """Order's fields, for Order.of: a misspelled or missing name is a mypy error, as with Order(...)."""

    source: str
    source_id: str
    source_version: datetime
    receipt_id: str
    name: str
    status: OrderStatus
    fulfillment_status: str | None
    total: Money | MoneyFields
    presentment_total: Money | MoneyFields | None
    subtotal: Money | MoneyFields | None
    total_tax: Money | MoneyFields | None
    total_discounts: Money | MoneyFields | None
    total_shipping: Money | MoneyFields | None
    refunded: NotRequired[Money | MoneyFields | None]
    line_items: Sequence[LineItem | LineItemFields]
    customer_email: str | None
    customer_source_id: str | None
    placed_at: datetime | None
    cancelled_at: datetime | None
    closed_at: datetime | None
    test: NotRequired[bool]
    transaction_ids: NotRequired[tuple[str, ...]]
    reporting: NotRequired[dict[str, ReportingAmount] | None]


class Order(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    source_id: str
    source_version: UtcDatetime
    receipt_id: str
    name: str
    status: OrderStatus
    fulfillment_status: str | None
    total: Money  # shop currency
    presentment_total: Money | None  # the buyer's currency; may differ from the shop's
    subtotal: Money | None
    total_tax: Money | None
    total_discounts: Money | None
    total_shipping: Money | None
    refunded: Money | None = None
    line_items: tuple[LineItem, ...]
    customer_email: str | None
    customer_source_id: str | None
    placed_at: UtcDatetime | None
    cancelled_at: UtcDatetime | None
    closed_at: UtcDatetime | None
    test: bool = False
    transaction_ids: tuple[str, ...] = ()  # payment ids this order quotes (Woo transaction_id, Shopify receipts)
    # Money fields restated in the reporting currency, keyed by field name ("total", "subtotal", ...); None when
    # reporting is off. Set by crmsync.fx.apply_reporting, never by a converter.
    reporting: dict[str, ReportingAmount] | None = None

    @property
    def rank(self) -> int:
        return self.status.rank

    @field_validator("customer_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return normalize_email(value)

    @classmethod
    def of(cls, fields: OrderFields) -> Self:
        """Order(**fields), validated the same way (money and lines may come as their fields), in one call into
        pydantic-core instead of one Python frame per Money, LineItem and Order."""
        order: Self = cls.__pydantic_validator__.validate_python(fields)
        return order

    @property
    def external_id(self) -> str:
        return f"{self.source}:order:{self.source_id}"
