"""Canonical pydantic models shared by every source and CRM; imports nothing else of crmsync.

Each model has a `<Model>Fields` TypedDict of its fields and a `<Model>.of(fields)` constructor: the same validation
as `<Model>(...)`, with nested money, addresses and lines given as their fields, in one call into pydantic-core."""

from crmsync.models.customer import (
    Address,
    AddressFields,
    Customer,
    CustomerFields,
    UtcDatetime,
    normalize_country,
    normalize_email,
    normalize_phone,
)
from crmsync.models.money import (
    Money,
    MoneyFields,
    ReportingAmount,
    currency_exponent,
    exact_minor_units,
    minor_units,
    whole_minor_units,
    zero,
)
from crmsync.models.order import LineItem, LineItemFields, Order, OrderFields, OrderStatus
from crmsync.models.payment import (
    Dispute,
    DisputeFields,
    DisputeStatus,
    Payment,
    PaymentFields,
    PaymentStatus,
    Refund,
    RefundFields,
    RefundStatus,
)

__all__ = [
    "Address",
    "AddressFields",
    "Customer",
    "CustomerFields",
    "Dispute",
    "DisputeFields",
    "DisputeStatus",
    "LineItem",
    "LineItemFields",
    "Money",
    "MoneyFields",
    "Order",
    "OrderFields",
    "OrderStatus",
    "Payment",
    "PaymentFields",
    "PaymentStatus",
    "Refund",
    "RefundFields",
    "RefundStatus",
    "ReportingAmount",
    "UtcDatetime",
    "currency_exponent",
    "exact_minor_units",
    "minor_units",
    "normalize_country",
    "normalize_email",
    "normalize_phone",
    "whole_minor_units",
    "zero",
]
