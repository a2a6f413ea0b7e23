"""Canonical pydantic models shared by every source and CRM; imports nothing else of crmsync."""

from crmsync.models.customer import (
    Address,
    Customer,
    UtcDatetime,
    normalize_country,
    normalize_email,
    normalize_phone,
)
from crmsync.models.money import Money, ReportingAmount, currency_exponent
from crmsync.models.order import LineItem, Order, OrderStatus
from crmsync.models.payment import Dispute, DisputeStatus, Payment, PaymentStatus, Refund, RefundStatus

__all__ = [
    "Address",
    "Customer",
    "Dispute",
    "DisputeStatus",
    "LineItem",
    "Money",
    "Order",
    "OrderStatus",
    "Payment",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "ReportingAmount",
    "UtcDatetime",
    "currency_exponent",
    "normalize_country",
    "normalize_email",
    "normalize_phone",
]
