"""The CRM writer: for every entity a batch of domain events touched, read its CURRENT stored state, map it
and upsert it by external id, so concurrent writers can only ever put the same or newer data last.

Orders and standalone payments are deals; a payment that names a known order updates that order's deal;
refunds and disputes refresh the deal they are about and become notes on it (and on its contact).

A contact is not sent again when the batch only needs it for a deal or a note (no event of the batch is about the
customer, no merge involves it) and state records, for this CRM, its contact id and that the contact was last
written with the customer's current stored version: the deal is associated with the recorded id. Should the CRM
refuse an association naming such an id (the contact was deleted or merged away in the CRM), those contacts are
upserted after all and the association made again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from crmsync.crm.errors import CrmRejected
from crmsync.crm.port import Association, CrmPort, UpsertInput
from crmsync.identity import current_id
from crmsync.links import payment_links
from crmsync.models import Payment
from crmsync.observability import logger
from crmsync.store.errors import ConditionFailed
from crmsync.views import (
    company_view,
    customer_view,
    deal_target,
    line_item_views,
    note_view,
    order_view,
    payment_view,
)

if TYPE_CHECKING:
    from crmsync.mapping import Mapping, ObjectMapping
    from crmsync.store.state import StateStore, StoredItem


class Touched(Protocol):
    """What the writer needs of a domain event: the entity it touched (it reads that entity's current state) and,
    for customer.merged, the customer folded into it. The CRM flusher (crmsync.flusher) passes entity keys."""

    @property
    def entity(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def merged(self) -> str | None: ...


@dataclass(frozen=True)
class WriterDeps:
    state: StateStore
    crm: CrmPort
    mapping: Mapping


@dataclass
class WriteSummary:
    contacts: dict[str, str] = field(default_factory=dict)  # customer id -> CRM contact id, upserted by this batch
    # customer id -> the CRM contact id on record, for contacts not sent again (unchanged since last written)
    reused: dict[str, str] = field(default_factory=dict)
    deals: dict[str, str] = field(default_factory=dict)  # order / payment external id -> CRM deal id
    notes: dict[str, str] = field(default_factory=dict)  # refund / dispute external id -> CRM note id
    # Only with the mapping's opt-in `line_items:` / `companies:` sections:
    line_items: dict[str, str] = field(default_factory=dict)  # line external id -> CRM line item id
    companies: dict[str, str] = field(default_factory=dict)  # company external id -> CRM company id
    associations: int = 0
    skipped: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # records the match policy left as they were (create_only)


@dataclass
class _Batch:
    """What one batch of events touches, gathered before any CRM call."""

    deals: dict[str, dict[str, Any]] = field(default_factory=dict)  # deal external id -> view
    deal_pk: dict[str, str] = field(default_factory=dict)  # deal external id -> state pk
    written: dict[str, tuple[int, str]] = field(default_factory=dict)  # state pk -> (version, receipt) being sent
    customers: list[str] = field(default_factory=list)
    notes: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)  # (template, view, deal)
    merges: dict[str, set[str]] = field(default_factory=dict)  # survivor customer id -> customer ids merged into it
    owners: dict[str, str] = field(default_factory=dict)  # customer id as stored -> the customer holding it now
    touched: set[str] = field(default_factory=set)  # customers an event of the batch is about (or a merge involves)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer id -> contact view
    versions: dict[str, str] = field(default_factory=dict)  # customer id -> contact_version of its view


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
    state_pks: dict[str, str] | None = None,
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
    results = deps.crm.upsert(object_type, [upsert for _, upsert in inputs], policy=mapping.match_policy)
    ids: dict[str, str] = {}
    for (key, _), result in zip(inputs, results, strict=True):
        if not result.found:  # update_only and no record holds its key: nothing to record, nothing to retry
            summary.skipped.append(key)
            continue
        if result.skipped:  # create_only and the record exists: its id is known, but it shows no version of ours
            summary.unchanged.append(key)
        ids[key] = result.id
        if state_pks is not None and key in state_pks:
            deps.state.record_crm_id(state_pks[key], deps.crm.name, object_type.removesuffix("s"), result.id)
    return ids


def _owner(batch: _Batch, deps: WriterDeps, customer_id: str | None) -> str | None:
    """The customer that holds this one now: an entity written just as its customer was merged may still name
    the merged id (the merge moves entities through an eventually consistent index), and must not be sent to the
    CRM under it."""
    if customer_id is None:
        return None
    if customer_id not in batch.owners:
        batch.owners[customer_id] = current_id(deps.state, customer_id)
    return batch.owners[customer_id]


def _add_customer(batch: _Batch, customer_id: str | None) -> None:
    if customer_id and customer_id not in batch.customers:
        batch.customers.append(customer_id)


def _add_deal(batch: _Batch, deps: WriterDeps, kind: str, key: str, summary: WriteSummary) -> str | None:
    """Load an order or payment into the batch as a deal view; returns the deal's external id (a linked
    payment's is its order's)."""
    if key in batch.deals:
        return key
    stored = deps.state.get_entity(kind, key)
    if stored is None:
        summary.skipped.append(key)
        return None
    if kind == "ORDER":
        batch.deals[key] = order_view(stored.data, _owner(batch, deps, stored.customer_id))
        batch.deal_pk[key] = f"ORDER#{key}"
        batch.written[f"ORDER#{key}"] = (stored.version, stored.receipt_id)
        _add_customer(batch, _owner(batch, deps, stored.customer_id))
        return key
    view = payment_view(stored.data, _owner(batch, deps, stored.customer_id))
    _add_customer(batch, _owner(batch, deps, stored.customer_id))
    order_key = deps.state.find_link(payment_links(Payment.model_validate(stored.data)))
    if order_key and _add_deal(batch, deps, "ORDER", order_key, summary):
        order = batch.deals[order_key]
        order["payment_status"] = view["payment_status"]
        order["customer_id"] = order.get("customer_id") or _owner(batch, deps, stored.customer_id)
        return order_key
    batch.deals[key] = view
    batch.deal_pk[key] = f"PAYMENT#{key}"
    batch.written[f"PAYMENT#{key}"] = (stored.version, stored.receipt_id)
    return key


def _gather(events: Sequence[Touched], deps: WriterDeps, summary: WriteSummary) -> _Batch:
    batch = _Batch()
    # The last event per key is enough (the writer reads current state), but every merge must be seen.
    for event in [e for e in events if e.merged] + list({e.key: e for e in events if not e.merged}.values()):
        if event.entity == "customer":
            owner = _owner(batch, deps, event.key)
            _add_customer(batch, owner)
            batch.touched.update(c for c in (event.key, owner, event.merged) if c)
            if event.merged:
                batch.merges.setdefault(event.key, set()).add(event.merged)
        elif event.entity in ("order", "payment"):
            _add_deal(batch, deps, event.entity.upper(), event.key, summary)
        elif event.entity in ("refund", "dispute"):
            stored = deps.state.get_entity(event.entity.upper(), event.key)
            if stored is None:
                summary.skipped.append(event.key)
                continue
            target = deal_target(event.entity, stored.data)
            deal = _add_deal(batch, deps, *target, summary) if target else None
            _add_customer(batch, _owner(batch, deps, stored.customer_id))
            batch.notes.append((event.entity, note_view(event.entity, stored.data), deal))
    return batch


def contact_version(items: Sequence[StoredItem]) -> str:
    """The stored version a customer's contact is written from: its newest source view's version (epoch ms), and a
    digest of every view's key and version. A contact takes each field from the newest view that has it, so an
    older view of another source changing, or a view a merge moved in, changes the contact too."""
    newest = max(item.version for item in items)
    views = "\n".join(f"{item.sk}={item.version}" for item in sorted(items, key=lambda i: i.sk))
    return f"{newest}:{hashlib.sha256(views.encode()).hexdigest()[:16]}"


def write_events(events: Sequence[Touched], deps: WriterDeps) -> WriteSummary:
    summary = WriteSummary()
    batch = _gather(events, deps, summary)

    for cid in batch.customers:
        items = deps.state.customer_items(cid)
        if items:
            batch.views[cid] = customer_view(cid, items)
            batch.versions[cid] = contact_version(items)
            newest = max(items, key=lambda item: item.version)
            batch.written[f"CUSTOMER#{cid}"] = (newest.version, newest.receipt_id)
    summary.skipped.extend(cid for cid in batch.customers if cid not in batch.views)
    # What state records of each customer's contact (and of every customer merged into it), read before the upsert.
    recorded = {
        owner: deps.state.crm_records(f"CUSTOMER#{owner}", deps.crm.name)
        for cid in batch.views
        for owner in (cid, *batch.merges.get(cid, ()))
    }
    involved = batch.touched | set(batch.merges) | {m for merged in batch.merges.values() for m in merged}
    summary.reused = {
        cid: contact
        for cid in batch.views
        if cid not in involved
        and (contact := recorded[cid].ids.get("contact"))
        and recorded[cid].versions.get("contact") == batch.versions[cid]
    }
    # The contacts each customer to send (and every customer merged into it) already has: the upsert finds a contact
    # by email, so a customer first known without one, or merged from another, may land on a different contact than
    # the one on record, and the two must become one.
    known = {
        cid: {contact for owner in (cid, *batch.merges.get(cid, ())) if (contact := recorded[owner].ids.get("contact"))}
        for cid in batch.views
        if cid not in summary.reused
    }
    _write_contacts(deps, batch, known, summary)
    summary.deals = _upsert_all(deps, "deals", deps.mapping.deals, batch.deals, summary, batch.deal_pk)
    _record_lineage(deps, batch, "deal", summary.deals, batch.deal_pk, summary.unchanged)

    summary.associations = _associate_contacts(
        deps,
        batch,
        "deals",
        [(summary.deals[key], view.get("customer_id")) for key, view in batch.deals.items() if key in summary.deals],
        summary,
    )
    _write_line_items(batch, deps, summary)
    _write_notes(batch, deps, summary)
    opted: dict[str, object] = {}  # the opt-in objects, only when mapped
    if deps.mapping.line_items is not None:
        opted["line_items"] = len(summary.line_items)
    if deps.mapping.companies is not None:
        opted["companies"] = len(summary.companies)
    logger.info(
        "crm written", contacts=len(summary.contacts), contacts_unchanged=len(summary.reused),
        deals=len(summary.deals), notes=len(summary.notes), associations=summary.associations,
        skipped=len(summary.skipped), extra=opted,
    )  # fmt: skip
    return summary


def _write_contacts(deps: WriterDeps, batch: _Batch, known: dict[str, set[str]], summary: WriteSummary) -> None:
    """Upsert the contacts of these customers (`known`: customer id -> contacts on record for it), fold every other
    contact on record into the one written, and record the ids, with the version each contact now shows."""
    views = {cid: batch.views[cid] for cid in known}
    written = _upsert_all(deps, "contacts", deps.mapping.contacts, views, summary)
    summary.contacts.update(written)
    _merge_contacts(known, written, deps)
    # Before the contacts' versions are recorded: should the companies fail, the retry sends the contacts again.
    _write_companies(deps, batch, written, summary)
    # Recorded only once the merges are done: a retry after a failed merge still knows the contact to fold in. A
    # contact the match policy left unchanged shows no version of ours: its id is recorded without one.
    for cid, contact in written.items():
        version = None if cid in summary.unchanged else batch.versions[cid]
        deps.state.record_crm_id(f"CUSTOMER#{cid}", deps.crm.name, "contact", contact, version)
    for merged in {m for survivor in written for m in batch.merges.get(survivor, ())}:
        deps.state.forget_crm_ids(f"CUSTOMER#{merged}", deps.crm.name)
    contact_pks = {cid: f"CUSTOMER#{cid}" for cid in views}
    _record_lineage(deps, batch, "contact", written, contact_pks, summary.unchanged)


def _write_companies(deps: WriterDeps, batch: _Batch, written: dict[str, str], summary: WriteSummary) -> None:
    """With a `companies:` mapping: the company of each contact just written (its address's company name), one CRM
    company per normalised name (upserted by its external id, `company:<name>`), and the contact associated with it
    (HubSpot: v4 default association; Salesforce: the Contact's AccountId). A contact not sent again was associated
    when it was last written."""
    mapping = deps.mapping.companies
    if mapping is None or not written:
        return
    views: dict[str, dict[str, Any]] = {}
    company_of: dict[str, str] = {}
    for cid in written:
        view = company_view(batch.views[cid])
        if view is not None:
            views.setdefault(view["external_id"], view)
            company_of[cid] = view["external_id"]
    if not views:
        return
    companies = _upsert_all(deps, "companies", mapping, views, summary)
    summary.companies.update(companies)
    pairs = [
        Association(contact, companies[company_of[cid]])
        for cid, contact in written.items()
        if cid in company_of and company_of[cid] in companies
    ]
    if pairs:
        deps.crm.associate("contacts", "companies", pairs)
        summary.associations += len(pairs)


def _write_line_items(batch: _Batch, deps: WriterDeps, summary: WriteSummary) -> None:
    """With a `line_items:` mapping: one CRM line item per line of each order written (payments have none),
    upserted by its external id (`<order external id>:line:<line id>`), and associated with its deal."""
    mapping = deps.mapping.line_items
    if mapping is None:
        return
    views: dict[str, dict[str, Any]] = {}
    deal_of: dict[str, str] = {}
    for key, deal in batch.deals.items():
        if key not in summary.deals or not batch.deal_pk.get(key, "").startswith("ORDER#"):
            continue
        for external_id, view in line_item_views(deal).items():
            views[external_id] = view
            deal_of[external_id] = key
    if not views:
        return
    summary.line_items = _upsert_all(deps, "line_items", mapping, views, summary)
    pairs = [Association(item, summary.deals[deal_of[key]]) for key, item in summary.line_items.items()]
    if pairs:
        deps.crm.associate("line_items", "deals", pairs)
        summary.associations += len(pairs)


def _associate_contacts(
    deps: WriterDeps, batch: _Batch, from_type: str, wanted: Sequence[tuple[str, str | None]], summary: WriteSummary
) -> int:
    """Associate records (from id, customer id) with the customers' contacts; returns the pairs associated. When the
    CRM refuses a call naming a contact this batch did not send (its recorded id may be gone: deleted, or merged
    away, in the CRM), those contacts are upserted after all, as the writer always did, and the call made again
    with the ids they get; a second refusal fails the batch."""

    def pairs() -> list[Association]:
        contacts = summary.reused | summary.contacts
        return [Association(from_id, contacts[cid]) for from_id, cid in wanted if cid is not None and cid in contacts]

    first = pairs()
    if not first:
        return 0
    try:
        deps.crm.associate(from_type, "contacts", first)
    except (CrmRejected, ConditionFailed) as refused:  # the local CRM refuses a missing record with ConditionFailed
        stale = sorted({cid for _, cid in wanted if cid in summary.reused})
        if not stale:
            raise
        logger.warning(
            "crm association refused; sending the contacts on record again",
            from_type=from_type, contacts=len(stale), error=str(refused),
        )  # fmt: skip
        recorded = {cid: {summary.reused.pop(cid)} for cid in stale}
        _write_contacts(deps, batch, recorded, summary)
        again = pairs()
        deps.crm.associate(from_type, "contacts", again)
        return len(again)
    return len(first)


def _record_lineage(
    deps: WriterDeps,
    batch: _Batch,
    object_type: str,
    crm_ids: dict[str, str],
    state_pks: dict[str, str],
    unchanged: Sequence[str] = (),
) -> None:
    """canonical version -> CRM id: which stored version each CRM record now shows (once per version; none for a
    record the match policy left unchanged)."""
    for key, crm_id in crm_ids.items():
        pk = state_pks.get(key)
        if pk is None or pk not in batch.written or key in unchanged:
            continue
        version, receipt_id = batch.written[pk]
        at = datetime.fromtimestamp(version / 1000, UTC).isoformat()  # as crmsync.convert.version_at
        deps.state.record_lineage(
            pk, at, receipt_id,
            {"step": "crm", "backend": deps.crm.name, "object_type": object_type, "crm_id": crm_id,
             "version": at, "receipt_id": receipt_id},
        )  # fmt: skip


def _merge_contacts(known: dict[str, set[str]], written: dict[str, str], deps: WriterDeps) -> None:
    """One person, one contact: every other contact on record for the customer (or for customers merged into it)
    is merged into the one the upsert wrote."""
    for cid, contacts in known.items():
        primary = written.get(cid)
        if primary is None:
            continue
        for contact in sorted(contacts - {primary}):
            deps.crm.merge("contacts", primary, contact)
            logger.info("crm contacts merged", customer_id=cid, primary=primary, merged=contact)


def _write_notes(batch: _Batch, deps: WriterDeps, summary: WriteSummary) -> None:
    mapping = deps.mapping.notes
    if mapping is None or not batch.notes:
        return
    views: dict[str, dict[str, Any]] = {}
    deal_of: dict[str, str | None] = {}
    for template, view, deal in batch.notes:
        body = deps.mapping.render(template, view)
        if body is None:
            continue
        views[view["external_id"]] = {**view, "body": body}
        deal_of[view["external_id"]] = deal
    summary.notes = _upsert_all(deps, "notes", mapping, views, summary)
    to_deals = [
        Association(from_id=note_id, to_id=summary.deals[deal])
        for key, note_id in summary.notes.items()
        if (deal := deal_of.get(key)) and deal in summary.deals
    ]
    to_contacts = [
        (note_id, batch.deals.get(deal, {}).get("customer_id"))
        for key, note_id in summary.notes.items()
        if (deal := deal_of.get(key))
    ]
    if to_deals:
        deps.crm.associate("notes", "deals", to_deals)
    summary.associations += len(to_deals) + _associate_contacts(deps, batch, "notes", to_contacts, summary)
