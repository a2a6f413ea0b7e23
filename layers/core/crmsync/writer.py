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


def _upsert_all(
    deps: WriterDeps,
    object_type: str,
    mapping: ObjectMapping,
    views: dict[str, dict[str, Any]],
    summary: WriteSummary,
    *,
    state_pk: str,
) -> dict[str, str]:
    """Upsert every view in one CRM call and record the CRM ids in state; returns entity key -> CRM id."""
    inputs: list[tuple[str, UpsertInput]] = []
    for key, view in views.items():
        upsert = _input(mapping, view)
        if upsert is None:
            summary.skipped.append(key)
        else:
            inputs.append((key, upsert))
    if not inputs:
        return {}
    results = deps.crm.upsert(object_type, [upsert for _, upsert in inputs])
    ids: dict[str, str] = {}
    for (key, _), result in zip(inputs, results, strict=True):
        ids[key] = result.id
        deps.state.record_crm_id(f"{state_pk}{key}", deps.crm.name, object_type.removesuffix("s"), result.id)
    return ids


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

    customers = {cid: customer_view(cid, items) for cid in customer_ids if (items := deps.state.customer_items(cid))}
    summary.skipped.extend(cid for cid in customer_ids if cid not in customers)
    summary.contacts = _upsert_all(deps, "contacts", deps.mapping.contacts, customers, summary, state_pk="CUSTOMER#")
    summary.deals = _upsert_all(deps, "deals", deps.mapping.deals, orders, summary, state_pk="ORDER#")

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
