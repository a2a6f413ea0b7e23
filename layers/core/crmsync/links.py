"""How payments find the shop orders they pay: references both sides carry, stored as LINK# items in state.

Its own module so the CRM writer can use it without importing every source's converter."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmsync.models import Order, Payment


def order_links(order: Order) -> list[str]:
    """The references by which a payment may name this order: its payment ids, its id and its number."""
    refs = [f"txn:{txn}" for txn in order.transaction_ids if txn]
    refs.append(f"order:{order.source_id}")
    number = order.name.lstrip("#").strip()
    if number and number != order.source_id:
        refs.append(f"order:{number}")
    return refs


def payment_links(payment: Payment) -> list[str]:
    """The references a payment carries that may name a shop order (matched against order_links)."""
    return [f"txn:{txn}" for txn in payment.transaction_ids if txn] + [
        f"order:{ref}" for ref in payment.order_refs if ref
    ]
