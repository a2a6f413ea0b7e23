"""Erasure and data export (issue 8): forget a person everywhere crmsync put them, and prove it without keeping them.

Triggers: Shopify `customers/redact` and `shop/redact`, Stripe `customer.deleted` when STRIPE_CUSTOMER_DELETED is
`anonymise` (`keep`, the default, only records the notice), and `DELETE /customers/{id}` (operator key). Shopify's
`customers/data_request` produces an export instead.

Where it runs. Convert sees the trigger first (`screen_notice`): it puts a tombstone on every identity key the trigger
names (the SHA-256 of `email:<email>`, `shopify:customer:<id>`, `stripe:customer:<id>`, `phone:<E.164>`), resolves the
canonical customer and publishes `erasure.requested` (or `data.requested`) with the customer id and the key hashes
only, never the email. The bus routes both to the privacy queue, whose consumer (functions/privacy) runs `erase` or
`export`; `DELETE /customers/{id}` puts the same message on that queue itself. Every later conversion checks its
identity keys against the tombstones first (`screen`), so a late webhook or a replay of an erased person never
re-creates them: a tombstoned email or source id drops the person (their orders and payments are stored anonymised),
a tombstoned phone alone only drops the phone (a phone can be shared by a household).

What erasure does, in order, each step idempotent (a retry redoes the steps, and a step finds nothing left to do):
1. plan: what to erase is gathered from state (the customer and every customer merged into it: identity links,
   source views, orders/payments/refunds/disputes, the lineage's receipts and archive keys, the CRM contact id) and
   kept (ERASURE-PLAN#<id>: no personal data) until the erasure completes, so a retry after the state step still knows
   the archive keys and CRM ids.
2. tombstones on every identity key of the person (hashes only).
3. state: the customer's partition (source views, CRM ids, lineage), aggregates and identity links are deleted;
   their orders, payments, refunds and disputes are kept anonymised (personal fields cleared, unlinked from the
   customer, amounts and statuses kept for the merchant's books) and their lineage loses customer and identity.
4. archive: every raw body of their receipts (and the trigger's own body, which names them) is deleted with every
   version (the bucket is versioned); earlier exports of them too.
5. CRM: their contact is deleted (HubSpot: GDPR delete) or anonymised (ERASURE_CRM_ACTION), with the CRM's answers.
   Deals stay (no personal data), without their contact.
6. the proof (ERASURE#<id>) is completed: what was erased where and when, the CRM's answers, hashes instead of
   identifiers; the plan is deleted.

Receipts stay (pk, topic, archive key, no body): a redelivery of an erased person's old webhook is still a duplicate.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmsync.identity import current_id, identity_keys
from crmsync.messages import DetailType, DomainEvent
from crmsync.observability import logger
from crmsync.sources.base import Converted, Notice

if TYPE_CHECKING:
    from crmsync.crm.port import CrmPort, ErasureAnswer
    from crmsync.messages import IngestMessage
    from crmsync.sources.base import Entity
    from crmsync.store.archive import RawArchive
    from crmsync.store.receipts import ReceiptStore
    from crmsync.store.state import StateStore

# Fields of an order, payment, refund or dispute that say who the person is; cleared when they are erased.
PERSONAL_FIELDS = (
    "customer_email",
    "customer_source_id",
    "customer_name",
    "customer_phone",
    "billing_address",
    "description",
)
# Lineage fields that tie an entity's history to the erased customer.
LINEAGE_FIELDS = ("customer_id", "identity", "archive_key")
EXPORTS = "exports/"
CRM_ACTIONS = ("delete", "anonymise")


def key_hash(key: str) -> str:
    """The SHA-256 of an identity key, as tombstones and proofs name it."""
    return hashlib.sha256(f"crmsync:erasure:{key}".encode()).hexdigest()


def erasure_id_for(trigger: str) -> str:
    """One erasure per trigger (a webhook's receipt id, or `operator:<customer id>`): a retry finds the same one."""
    return "era_" + hashlib.sha256(trigger.encode()).hexdigest()[:24]


def export_id_for(receipt_id: str) -> str:
    return "exp_" + hashlib.sha256(receipt_id.encode()).hexdigest()[:24]


def _now() -> datetime:
    return datetime.now(UTC)


# ---- convert: tombstones checked before anything is stored --------------------------------------------------------
def _entity_keys(entity: Entity) -> tuple[list[str], list[str]]:
    """(strong keys, phone keys) naming the person an order or payment is about."""
    strong: list[str] = []
    email = getattr(entity, "customer_email", None)
    source_id = getattr(entity, "customer_source_id", None)
    phone = getattr(entity, "customer_phone", None)
    if email:
        strong.append(f"email:{email}")
    if source_id:
        strong.append(f"{entity.source}:customer:{source_id}")
    return strong, [f"phone:{phone}"] if phone else []


def anonymised(entity: Entity) -> Entity:
    """The entity without the fields that say who the person is."""
    cleared = {name: None for name in PERSONAL_FIELDS if name in type(entity).model_fields}
    return entity.model_copy(update=cleared)


def anonymised_data(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, **{name: None for name in PERSONAL_FIELDS if name in data}}


def screen(converted: Converted, state: StateStore) -> Converted:
    """What a webhook may store once tombstones are checked: an erased person's customer is dropped (a tombstoned
    phone alone only drops the phone) and their orders and payments are kept anonymised. One read for the webhook."""
    customer = converted.customer
    customer_keys = [key for key, _ in identity_keys(customer)] if customer else []
    per_entity = [_entity_keys(entity) for _, entity in converted.entities]
    every = customer_keys + [key for strong, phones in per_entity for key in strong + phones]
    if not every:
        return converted
    erased_hashes = state.erased([key_hash(key) for key in every])
    if not erased_hashes:
        return converted

    def erased(key: str) -> bool:
        return key_hash(key) in erased_hashes

    person_erased = any(erased(key) for key in customer_keys if not key.startswith("phone:"))
    if customer is not None and person_erased:
        logger.info("erased person: customer dropped", source=customer.source, receipt_id=customer.receipt_id)
        customer = None
    elif customer is not None and customer.phone and erased(f"phone:{customer.phone}"):
        customer = customer.model_copy(update={"phone": None})
        if not identity_keys(customer):
            customer = None
    entities = []
    for (detail_type, entity), (strong, phones) in zip(converted.entities, per_entity, strict=True):
        if person_erased or any(erased(key) for key in strong):
            entity = anonymised(entity)
            logger.info("erased person: entity stored anonymised", entity=entity.external_id)
        elif any(erased(key) for key in phones):
            entity = entity.model_copy(update={"customer_phone": None})
        entities.append((detail_type, entity))
    return dataclasses.replace(converted, customer=customer, entities=tuple(entities))


@dataclass(frozen=True)
class ScreenedNotice:
    notice: Notice  # what is recorded and published (personal data removed)
    customer_id: str | None  # the canonical customer it is about, when known
    also: tuple[Notice, ...] = ()  # further notices to publish (a Stripe deletion that erases: erasure.requested)


def _customer_of(state: StateStore, keys: Sequence[str]) -> str | None:
    for key in keys:
        linked = state.lookup_identity(key)
        if linked:
            return current_id(state, linked)
    return None


def screen_notice(notice: Notice, message: IngestMessage, state: StateStore, *, stripe_deleted: str) -> ScreenedNotice:
    """A compliance or deletion notice as convert records and publishes it. An erasure trigger tombstones the keys it
    names at once (a late event converted before the erasure runs is screened already) and becomes
    `erasure.requested` with the customer id and the key hashes, without the email it may carry."""
    data = dict(notice.data)
    if notice.detail_type is DetailType.DATA_REQUESTED:
        customer_id = _customer_of(state, [notice.key])
        return ScreenedNotice(
            dataclasses.replace(notice, data={**data, "export_id": export_id_for(message.receipt_id)}), customer_id
        )
    erases = notice.detail_type is DetailType.ERASURE_REQUESTED or (
        notice.detail_type is DetailType.CUSTOMER_DELETED
        and message.source == "stripe"
        and stripe_deleted == "anonymise"
    )
    if not erases:
        return ScreenedNotice(notice, None)
    erasure_id = erasure_id_for(message.receipt_id)
    trigger = {"source": message.source, "topic": message.topic, "receipt_id": message.receipt_id}
    if notice.key.startswith("shopify:shop:"):
        request = Notice(
            DetailType.ERASURE_REQUESTED,
            notice.key,
            {**data, "erasure_id": erasure_id, "scope": "shop", "trigger": trigger},
        )
        return ScreenedNotice(request, None)
    keys = [notice.key] + ([f"email:{email}"] if (email := data.get("email")) else [])
    customer_id = _customer_of(state, keys)
    hashes = [key_hash(key) for key in keys]
    at = message.received_at.isoformat()
    for hashed in hashes:
        state.put_tombstone(hashed, erasure_id, at)
    # Recorded and published pseudonymised: the source's customer id and any email or phone only as hashes.
    kept = {k: v for k, v in data.items() if k not in ("email", "phone", "customer_id")}
    key = f"{notice.key.rsplit(':', 1)[0]}:sha256:{hashes[0]}"
    request_data = {**kept, "erasure_id": erasure_id, "scope": "customer", "trigger": trigger, "key_sha256": hashes}
    request = Notice(DetailType.ERASURE_REQUESTED, key, request_data)
    logger.info("erasure requested", erasure_id=erasure_id, source=message.source, found=customer_id is not None)
    if notice.detail_type is DetailType.ERASURE_REQUESTED:
        return ScreenedNotice(request, customer_id)
    deleted = Notice(notice.detail_type, key, {**kept, "erasure_id": erasure_id})
    return ScreenedNotice(deleted, customer_id, (request,))


# ---- the privacy queue's consumer ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrivacyDeps:
    state: StateStore
    archive: RawArchive
    receipts: ReceiptStore
    crm: Callable[[], CrmPort]  # made only when a CRM step runs
    crm_backend: str
    crm_action: str = "delete"  # or "anonymise"
    contact_properties: Sequence[str] = ()  # what anonymising clears (the mapping's personal contact properties)
    fan_out: Callable[[str], object] | None = None  # send one message to the privacy queue (shop/redact's customers)
    clock: Callable[[], datetime] = field(default=_now)


def request_message(detail_type: DetailType, event: DomainEvent) -> str:
    """A privacy-queue message as the bus delivers one (an EventBridge envelope), for senders other than the bus."""
    return json.dumps({"detail-type": detail_type.value, "source": "crmsync", "detail": event.model_dump(mode="json")})


def operator_request(customer_id: str, *, correlation_id: str, at: datetime) -> tuple[str, str]:
    """(erasure id, queue message) of DELETE /customers/{id}."""
    erasure_id = erasure_id_for(f"operator:{customer_id}")
    trigger = {"source": "operator", "route": "DELETE /customers/{id}"}
    event = DomainEvent(
        entity="notice", key=f"crmsync:customer:{customer_id}", customer_id=customer_id, source="operator",
        source_id=None, source_version=at, receipt_id=erasure_id, correlation_id=correlation_id or erasure_id,
        data={"erasure_id": erasure_id, "scope": "customer", "trigger": trigger},
    )  # fmt: skip
    return erasure_id, request_message(DetailType.ERASURE_REQUESTED, event)


def handle(detail_type: str, event: DomainEvent, deps: PrivacyDeps) -> dict[str, Any]:
    """One privacy-queue message: an erasure (of a customer or a whole shop) or an export."""
    data = event.data or {}
    if detail_type == DetailType.DATA_REQUESTED.value:
        return export(event, deps)
    if detail_type != DetailType.ERASURE_REQUESTED.value:
        raise ValueError(f"not a privacy request: {detail_type}")
    erasure_id = str(data.get("erasure_id") or erasure_id_for(event.receipt_id))
    if data.get("scope") == "shop":
        return erase_shop(
            erasure_id, str(data.get("shop_domain") or event.key.removeprefix("shopify:shop:")), event, deps
        )
    return erase(erasure_id, event, deps)


def _customer_hash(customer_id: str) -> str:
    return key_hash(f"customer:{customer_id}")


def _plan(event: DomainEvent, deps: PrivacyDeps) -> dict[str, Any]:
    """Everything of the person still in state: ids, keys (hashed), entities, archive keys, CRM contact ids."""
    state = deps.state
    data = event.data or {}
    start = event.customer_id or _customer_of(state, [event.key])
    customers = [current_id(state, start)] if start else []
    # Only a customer crmsync still holds something of (a retry after the state step finds them in the kept plan).
    customers = [c for c in customers if state.customer_items(c) or state.customer_index(c)]
    hashes = set(data.get("key_sha256") or [])
    entity_pks: set[str] = set()
    archive_keys: set[str] = set()
    receipt_ids: set[str] = set()
    contacts: set[str] = set()
    for customer_id in customers:
        for item in state.customer_items(customer_id):
            found = item.data
            keys = [f"email:{found['email']}"] if found.get("email") else []
            if found.get("source_id"):
                keys.append(f"{found.get('source')}:customer:{found['source_id']}")
            if found.get("phone"):
                keys.append(f"phone:{found['phone']}")
            hashes.update(key_hash(key) for key in keys)
        for pk, sk in state.customer_index(customer_id):
            if pk.startswith("IDENTITY#"):
                hashes.add(key_hash(pk.removeprefix("IDENTITY#")))
            elif sk == "STATE":
                entity_pks.add(pk)
        for pk in [f"CUSTOMER#{customer_id}", *sorted(entity_pks)]:
            for entry in state.lineage(pk):
                if entry.get("archive_key"):
                    archive_keys.add(str(entry["archive_key"]))
                if entry.get("receipt_id"):
                    receipt_ids.add(str(entry["receipt_id"]))
        contact = state.crm_ids(f"CUSTOMER#{customer_id}", deps.crm_backend).get("contact")
        if contact:
            contacts.add(contact)
    trigger = (data.get("trigger") or {}).get("receipt_id") if isinstance(data.get("trigger"), dict) else None
    if trigger:
        receipt = deps.receipts.get(str(trigger))
        if receipt and receipt.archive_key:
            archive_keys.add(receipt.archive_key)  # the request names the person too
    return {
        "customer_ids": customers,
        "key_sha256": sorted(hashes),
        "entity_pks": sorted(entity_pks),
        "archive_keys": sorted(archive_keys),
        "receipt_ids": sorted(receipt_ids),
        "crm_contacts": sorted(contacts),
    }


def _union(kept: dict[str, Any] | None, fresh: dict[str, Any]) -> dict[str, Any]:
    if not kept:
        return fresh
    return {name: sorted(set(kept.get(name) or []) | set(values)) for name, values in fresh.items()}


def erase(erasure_id: str, event: DomainEvent, deps: PrivacyDeps) -> dict[str, Any]:
    """Erase one person (see the module docstring); returns the proof. Completed erasures are left as they are."""
    state = deps.state
    proof = state.erasure_record(erasure_id)
    if proof is not None and proof.get("status") == "completed":
        logger.info("erasure already completed", erasure_id=erasure_id)
        return proof
    at = deps.clock().isoformat()
    data = event.data or {}
    proof = proof or {
        "erasure_id": erasure_id,
        "trigger": data.get("trigger") or {"source": event.source},
        "requested_at": at,
        "steps": {},
    }
    if data.get("parent"):
        proof["parent"] = data["parent"]
    proof["status"] = "in_progress"
    proof["attempts"] = int(proof.get("attempts", 0)) + 1
    plan = _union(state.erasure_record(erasure_id, "PLAN"), _plan(event, deps))
    state.record_erasure(erasure_id, "PLAN", plan)
    proof["subject"] = {
        "customer_sha256": [_customer_hash(c) for c in plan["customer_ids"]],
        "identity_key_sha256": plan["key_sha256"],
        "found": bool(plan["customer_ids"]),
    }
    state.record_erasure(erasure_id, "ERASURE", proof)

    for hashed in plan["key_sha256"]:
        state.put_tombstone(hashed, erasure_id, at)
    proof["steps"]["tombstones"] = {"count": len(plan["key_sha256"]), "at": at}

    proof["steps"]["state"] = _erase_state(erasure_id, plan, deps) | {"at": deps.clock().isoformat()}
    proof["steps"]["archive"] = _erase_archive(plan, deps) | {"at": deps.clock().isoformat()}
    state.record_erasure(erasure_id, "ERASURE", proof)  # what is done so far survives a CRM outage
    proof["steps"]["crm"] = _erase_crm(plan, deps) | {"at": deps.clock().isoformat()}

    proof["status"] = "completed"
    proof["completed_at"] = deps.clock().isoformat()
    state.record_erasure(erasure_id, "ERASURE", proof)
    state.delete_partition(f"ERASURE-PLAN#{erasure_id}")
    logger.info("erasure completed", erasure_id=erasure_id, customers=len(plan["customer_ids"]))
    return proof


def _erase_state(erasure_id: str, plan: dict[str, Any], deps: PrivacyDeps) -> dict[str, int]:
    state = deps.state
    counts = {"entities_anonymised": 0, "lineage_entries_scrubbed": 0, "identity_links_deleted": 0, "items_deleted": 0}
    for pk in plan["entity_pks"]:
        kind, _, external_id = pk.partition("#")
        stored = state.get_entity(kind, external_id)
        if stored is not None and state.anonymise_entity(pk, anonymised_data(stored.data)):
            counts["entities_anonymised"] += 1
        counts["lineage_entries_scrubbed"] += state.scrub_lineage(pk, LINEAGE_FIELDS, {"erased": erasure_id})
    for customer_id in plan["customer_ids"]:
        for pk, _ in state.customer_index(customer_id):
            if pk.startswith("IDENTITY#") and state.forget_identity(pk.removeprefix("IDENTITY#"), customer_id):
                counts["identity_links_deleted"] += 1
        counts["items_deleted"] += state.delete_partition(f"CUSTOMER#{customer_id}")
        counts["items_deleted"] += state.delete_partition(f"AGG#{customer_id}")
    return counts


def _erase_archive(plan: dict[str, Any], deps: PrivacyDeps) -> dict[str, Any]:
    objects = versions = 0
    keys = list(plan["archive_keys"])
    for customer_id in plan["customer_ids"]:
        for page in deps.archive.keys(f"{EXPORTS}{_customer_hash(customer_id)}/"):
            keys.extend(page)
    for key in keys:
        gone = deps.archive.delete(key)
        versions += gone
        objects += 1 if gone else 0
    return {"objects_deleted": objects, "versions_deleted": versions, "keys": keys}


def _answer(object_type: str, answer: ErasureAnswer) -> dict[str, str]:
    return {"object_type": object_type, "id": answer.id, "outcome": answer.outcome, "detail": answer.detail}


def _erase_crm(plan: dict[str, Any], deps: PrivacyDeps) -> dict[str, Any]:
    contacts = list(plan["crm_contacts"])
    result: dict[str, Any] = {"backend": deps.crm_backend, "action": deps.crm_action, "answers": []}
    if not contacts:
        return result
    crm = deps.crm()
    if deps.crm_action == "anonymise":
        answers = crm.anonymise("contacts", contacts, list(deps.contact_properties))
    else:
        answers = crm.delete("contacts", contacts)
    result["answers"] = [_answer("contacts", answer) for answer in answers]
    return result


def erase_shop(erasure_id: str, shop_domain: str, event: DomainEvent, deps: PrivacyDeps) -> dict[str, Any]:
    """shop/redact: every customer crmsync knows from Shopify is erased (each an erasure of its own, sent to the
    privacy queue, or run here when there is no queue), and every raw body that shop sent is deleted."""
    state = deps.state
    proof = state.erasure_record(erasure_id)
    if proof is not None and proof.get("status") == "completed":
        return proof
    at = deps.clock().isoformat()
    data = event.data or {}
    children = []
    for customer_id in state.customers_with_source("shopify"):
        child_id = erasure_id_for(f"{erasure_id}:{customer_id}")
        child = event.model_copy(
            update={
                "customer_id": customer_id,
                "key": f"crmsync:customer:{customer_id}",
                "data": {
                    "erasure_id": child_id,
                    "scope": "customer",
                    "parent": erasure_id,
                    "trigger": data.get("trigger"),
                },
            }
        )
        if deps.fan_out is not None:
            deps.fan_out(request_message(DetailType.ERASURE_REQUESTED, child))
        else:
            erase(child_id, child, deps)
        children.append(child_id)
    deleted = 0
    for page in deps.archive.keys("raw/shopify/"):
        for head, key in zip(deps.archive.head_many(page), page, strict=True):
            if head is not None and head.metadata.get("account") == shop_domain:
                deleted += 1 if deps.archive.delete(key) else 0
    proof = {
        "erasure_id": erasure_id,
        "trigger": data.get("trigger") or {"source": event.source},
        "requested_at": at,
        "status": "completed",
        "completed_at": deps.clock().isoformat(),
        "subject": {"shop_sha256": key_hash(f"shop:{shop_domain}")},
        "steps": {"customers": {"erasures": children}, "archive": {"objects_deleted": deleted}},
    }
    state.record_erasure(erasure_id, "ERASURE", proof)
    return proof


# ---- export (customers/data_request) --------------------------------------------------------------------------------
def export(event: DomainEvent, deps: PrivacyDeps) -> dict[str, Any]:
    """Everything crmsync holds about the person, as one JSON object written to the archive bucket at
    exports/<customer hash>/<export id>.json: the customer document (profile, every entity, identity links, CRM ids,
    lineage) and every raw webhook body of theirs. The notice is recorded again with the export's key."""
    from crmsync.customers import customer_document  # lazily: only exports need it

    state = deps.state
    data = event.data or {}
    export_id = str(data.get("export_id") or export_id_for(event.receipt_id))
    customer_id = current_id(state, event.customer_id) if event.customer_id else _customer_of(state, [event.key])
    document = customer_document(state, customer_id, deps.crm_backend) if customer_id else None
    bodies = []
    seen: set[str] = set()
    for entries in (document or {}).get("history", {}).values():
        for entry in entries:
            key = entry.get("archive_key")
            if not key or key in seen:
                continue
            seen.add(key)
            head = deps.archive.head(key)
            if head is None:
                continue
            raw = deps.archive.get(key)
            try:
                body: dict[str, str] = {"text": raw.decode("utf-8")}
            except UnicodeDecodeError:
                body = {"base64": base64.b64encode(raw).decode("ascii")}
            bodies.append({"archive_key": key, "receipt_id": head.metadata.get("receipt-id"), **body})
    content = {
        "export_id": export_id,
        "generated_at": deps.clock().isoformat(),
        "request": {k: v for k, v in data.items() if k != "export_id"},
        "found": document is not None,
        "customer": document,
        "raw_webhooks": bodies,
    }
    folder = _customer_hash(customer_id) if customer_id else "unknown"
    key = f"{EXPORTS}{folder}/{export_id}.json"
    deps.archive.put(key, json.dumps(content, ensure_ascii=False, indent=1).encode(), {"export-id": export_id})
    state.record_notice(event.receipt_id, DetailType.DATA_REQUESTED.value, event.key, {**data, "export_key": key})
    logger.info("export written", export_id=export_id, found=document is not None, bodies=len(bodies))
    return {"export_id": export_id, "export_key": key, "found": document is not None}
