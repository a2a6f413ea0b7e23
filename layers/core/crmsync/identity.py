"""Identity resolution: one canonical customer id per person, found by email first, then by source link.

Every link is recorded with its reason. Two existing customers joined by a new link are merged by a later
issue (delivery guarantees); until then the first link wins and the conflict is logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from crmsync.observability import logger

if TYPE_CHECKING:
    from crmsync.models import Customer
    from crmsync.store.state import StateStore


def identity_keys(customer: Customer) -> list[tuple[str, str]]:
    """(key, reason) in the order they are trusted."""
    keys: list[tuple[str, str]] = []
    if customer.email:
        keys.append((f"email:{customer.email}", "same email"))
    if customer.source_id:
        keys.append((f"{customer.source}:customer:{customer.source_id}", f"same {customer.source} customer id"))
    if customer.phone and not customer.email:
        keys.append((f"phone:{customer.phone}", "same phone"))
    return keys


def new_customer_id() -> str:
    return f"cus_{uuid.uuid4().hex[:20]}"


def resolve_customer_id(
    customer: Customer, state: StateStore, new_id: Callable[[], str] = new_customer_id
) -> str | None:
    """The canonical id for this customer, linking every key of it; None when it has no key at all."""
    keys = identity_keys(customer)
    if not keys:
        return None
    found = next((cid for key, _ in keys if (cid := state.lookup_identity(key))), None)
    first_key, first_reason = keys[0]
    # The first key decides under a race: two new deliveries of one person end with one id.
    customer_id = state.link_identity(first_key, found or new_id(), first_reason)
    for key, reason in keys[1:]:
        linked = state.link_identity(key, customer_id, reason)
        if linked != customer_id:
            logger.warning("identity conflict left for merge", key_kind=key.split(":", 1)[0], kept=customer_id)
    return customer_id
