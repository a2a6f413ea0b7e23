"""Identity resolution: one canonical customer id per person across every source.

A customer is matched by its normalised email, then by an explicit link (the source's own customer id: Shopify or
WooCommerce customer, Stripe cus_, PayPal payer), then by its E.164 phone. Every key is linked to the customer with
its reason. When one webhook's keys lead to two existing customers, the second is merged into the first (the one
the most trusted key found): its entities, identity links and source views move over, and a `customer.merged`
event lets the CRM writer merge the contacts too. A phone is weaker than an email: a phone already linked to a
customer known by another email is a shared phone (a household, a switchboard), and joins nobody.

Merges are idempotent and resumable: the MERGED record is written first, so a retry after a crash finds the
half-merged customer through it and finishes the move.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crmsync.observability import logger

if TYPE_CHECKING:
    from crmsync.models import Customer
    from crmsync.store.state import StateStore

MAX_MERGE_HOPS = 16  # a merge chain longer than this means corrupt state, not a real history


@dataclass(frozen=True)
class Merge:
    survivor: str
    merged: str
    reason: str


@dataclass(frozen=True)
class Resolution:
    customer_id: str
    matched_by: str  # the reason of the key that found (or, for a new customer, created) the id
    merges: tuple[Merge, ...] = ()
    unmerged: tuple[str, ...] = field(default=())  # why a found customer was deliberately not merged


def identity_keys(customer: Customer) -> list[tuple[str, str]]:
    """(key, reason) in the order they are trusted."""
    keys: list[tuple[str, str]] = []
    if customer.email:
        keys.append((f"email:{customer.email}", "same email"))
    if customer.source_id:
        keys.append((f"{customer.source}:customer:{customer.source_id}", f"same {customer.source} customer id"))
    if customer.phone:
        keys.append((f"phone:{customer.phone}", "same phone"))
    return keys


def new_customer_id() -> str:
    return f"cus_{uuid.uuid4().hex[:20]}"


def current_id(state: StateStore, customer_id: str) -> str:
    """Follow merges to the customer that holds this one's data now."""
    for _ in range(MAX_MERGE_HOPS):
        survivor = state.merged_into(customer_id)
        if survivor is None:
            return customer_id
        customer_id = survivor
    raise RuntimeError(f"merge chain of {customer_id} longer than {MAX_MERGE_HOPS}")


def resolve_customer_id(
    customer: Customer,
    state: StateStore,
    new_id: Callable[[], str] = new_customer_id,
    *,
    receipt_id: str = "",
    at: str = "",
) -> Resolution | None:
    """The canonical id for this customer, linking every key of it and merging customers it joins; None when it
    has no key at all."""
    keys = identity_keys(customer)
    if not keys:
        return None
    found: list[tuple[str, str]] = []  # (reason, current customer id) of every key already linked
    unmerged: list[str] = []
    for key, reason in keys:
        linked = state.lookup_identity(key)
        if linked is None:
            continue
        current = current_id(state, linked)
        if current != linked:
            # A key still on a merged customer: that merge crashed half-way; finishing it is idempotent.
            merge_customers(state, Merge(current, linked, "resumed"), receipt_id=receipt_id, at=at)
        if key.startswith("phone:") and customer.email and _has_other_email(state, current, customer.email):
            unmerged.append(f"{current}: shares the phone but is known by another email")
            continue
        found.append((reason, current))
    first_key, first_reason = keys[0]
    # The first key decides under a race: two new deliveries of one person end with one id.
    customer_id = current_id(state, state.link_identity(first_key, found[0][1] if found else new_id(), first_reason))
    matched_by = next((reason for reason, cid in found if cid == customer_id), f"new customer ({first_reason})")

    merges: list[Merge] = []
    for reason, other in found:
        if other != customer_id and all(m.merged != other for m in merges):
            merge = Merge(customer_id, other, f"{reason} joined {customer_id} and {other}")
            merge_customers(state, merge, receipt_id=receipt_id, at=at)
            logger.info("customers merged", survivor=merge.survivor, merged=merge.merged, reason=merge.reason)
            merges.append(merge)
    for key, reason in keys[1:]:
        kept = current_id(state, state.link_identity(key, customer_id, reason))
        if kept != customer_id:
            # Only a shared phone gets here (every other conflict was merged above): the phone stays theirs.
            logger.info("identity key kept by another customer", key_kind=key.split(":", 1)[0])
    return Resolution(customer_id, matched_by, tuple(merges), tuple(unmerged))


def _has_other_email(state: StateStore, customer_id: str, email: str | None) -> bool:
    emails = {item.data.get("email") for item in state.customer_items(customer_id)} - {None}
    return bool(emails - {email})


def merge_customers(state: StateStore, merge: Merge, *, receipt_id: str, at: str) -> None:
    """Move everything of `merge.merged` to `merge.survivor`. Each step is idempotent, so re-running a merge
    that crashed half-way finishes it."""
    survivor = state.mark_merged(merge.merged, merge.survivor, merge.reason, receipt_id, at)
    for pk, sk in state.customer_index(merge.merged):
        state.reassign(pk, sk, merge.merged, survivor)
    for item in state.customer_items(merge.merged):
        state.move_source(merge.merged, survivor, item)
