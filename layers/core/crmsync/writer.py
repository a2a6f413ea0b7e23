"""The CRM writer: for every entity a batch of domain events touched, read its CURRENT stored state, map it
and upsert it by external id, so concurrent writers can only ever put the same or newer data last."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync.crm.port import Association, CrmPort, UpsertInput
from crmsync.observability import logger
from crmsync.views import customer_view, order_view

if TYPE_CHECKING:
    from crmsync.mapping import Mapping, ObjectMapping
    from crmsync.messages import DomainEvent
    from crmsync.store.state import StateStore


@dataclass(frozen=True)
class WriterDeps:
    state: StateStore
    crm: CrmPort
    mapping: Mapping


@dataclass
class WriteSummary:
    contacts: dict[str, str] = field(default_factory=dict)  # customer id -> CRM contact id
    deals: dict[str, str] = field(default_factory=dict)  # order external id -> CRM deal id
    associations: int = 0
    skipped: list[str] = field(default_factory=list)


def _input(mapping: ObjectMapping, view: dict[str, Any]) -> UpsertInput | None:
    properties = mapping.apply(view)
    for id_property in (mapping.id_property, mapping.fallback_id_property):
        if id_property and properties.get(id_property):
            return UpsertInput(id_property=id_property, id_value=properties[id_property], properties=properties)
    return None


def write_events(events: Sequence[DomainEvent], deps: WriterDeps) -> WriteSummary:
    summary = WriteSummary()
    order_keys = list(dict.fromkeys(e.key for e in events if e.entity == "order"))
    customer_ids = list(dict.fromkeys(e.key for e in events if e.entity == "customer"))

    orders: dict[str, dict[str, Any]] = {}
    for key in order_keys:
        stored = deps.state.get_order(key)
        if stored is None:
            summary.skipped.append(key)
            continue
        orders[key] = order_view(stored.data, stored.customer_id)
        if stored.customer_id and stored.customer_id not in customer_ids:
            customer_ids.append(stored.customer_id)

    contact_inputs: list[tuple[str, UpsertInput]] = []
    for customer_id in customer_ids:
        items = deps.state.customer_items(customer_id)
        upsert = _input(deps.mapping.contacts, customer_view(customer_id, items)) if items else None
        if upsert is None:
            summary.skipped.append(customer_id)
            continue
        contact_inputs.append((customer_id, upsert))
    if contact_inputs:
        results = deps.crm.upsert("contacts", [i for _, i in contact_inputs])
        for (customer_id, _), result in zip(contact_inputs, results, strict=True):
            summary.contacts[customer_id] = result.id
            deps.state.record_crm_id(f"CUSTOMER#{customer_id}", deps.crm.name, "contact", result.id)

    deal_inputs: list[tuple[str, UpsertInput]] = []
    for key, view in orders.items():
        upsert = _input(deps.mapping.deals, view)
        if upsert is None:
            summary.skipped.append(key)
            continue
        deal_inputs.append((key, upsert))
    if deal_inputs:
        results = deps.crm.upsert("deals", [i for _, i in deal_inputs])
        for (key, _), result in zip(deal_inputs, results, strict=True):
            summary.deals[key] = result.id
            deps.state.record_crm_id(f"ORDER#{key}", deps.crm.name, "deal", result.id)

    pairs = [
        Association(from_id=summary.deals[key], to_id=summary.contacts[view["customer_id"]])
        for key, view in orders.items()
        if key in summary.deals and view.get("customer_id") in summary.contacts
    ]
    if pairs:
        deps.crm.associate("deals", "contacts", pairs)
    summary.associations = len(pairs)
    logger.info(
        "crm written", contacts=len(summary.contacts), deals=len(summary.deals), associations=len(pairs),
        skipped=len(summary.skipped),
    )  # fmt: skip
    return summary
