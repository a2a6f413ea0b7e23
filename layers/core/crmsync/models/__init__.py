"""Canonical pydantic models shared by every source and CRM; imports nothing else of crmsync."""

from crmsync.models.customer import Address, Customer, UtcDatetime, normalize_email, normalize_phone
from crmsync.models.money import Money, currency_exponent
from crmsync.models.order import LineItem, Order, OrderStatus

__all__ = [
    "Address",
    "Customer",
    "LineItem",
    "Money",
    "Order",
    "OrderStatus",
    "UtcDatetime",
    "currency_exponent",
    "normalize_email",
    "normalize_phone",
]
