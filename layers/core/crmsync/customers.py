"""The customer as operators see it (GET /customers): merged profile, every entity, CRM ids and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.identity import current_id
from crmsync.models import normalize_email
from crmsync.views import customer_view

if TYPE_CHECKING:
    from crmsync.store.state import StateStore

COLLECTIONS = {"ORDER": "orders", "PAYMENT": "payments", "REFUND": "refunds", "DISPUTE": "disputes"}


def customer_document(state: StateStore, customer_id: str, crm_backend: str) -> dict[str, Any] | None:
    """The merged profile, every entity, CRM ids and lineage; a merged customer's id answers with its survivor."""
    requested, customer_id = customer_id, current_id(state, customer_id)
    items = state.customer_items(customer_id)
    if not items:
        return None
    document: dict[str, Any] = {
        **customer_view(customer_id, items),
        "emails": sorted({i.data["email"] for i in items if i.data.get("email")}),
        **{name: [] for name in COLLECTIONS.values()},
        "crm_ids": state.crm_ids(f"CUSTOMER#{customer_id}", crm_backend),
        "identity": _identity_links(state, customer_id),
        "lineage": [
            {
                "kind": "customer",
                "key": item.sk.removeprefix("SRC#"),
                "version": item.version,
                "receipt_id": item.receipt_id,
            }
            for item in items
        ],
        "history": {f"customer:{customer_id}": state.lineage(f"CUSTOMER#{customer_id}")},
    }
    if requested != customer_id:
        document["merged"] = {"requested_id": requested, **(state.merge_record(requested) or {})}
    for kind, item in state.customer_entities(customer_id):
        if kind not in COLLECTIONS:
            continue
        document[COLLECTIONS[kind]].append(item.data)
        key = f"{item.data['source']}:{kind.lower()}:{item.data['source_id']}"
        if kind == "PAYMENT":
            key = f"{item.data['source']}:{item.data['kind']}:{item.data['source_id']}"
        document["lineage"].append(
            {
                "kind": kind.lower(),
                "key": key,
                "version": item.version,
                "receipt_id": item.receipt_id,
                "crm_ids": state.crm_ids(f"{kind}#{key}", crm_backend),
            }
        )
        document["history"][key] = state.lineage(f"{kind}#{key}")
    return document


def _identity_links(state: StateStore, customer_id: str) -> list[dict[str, str]]:
    """Every key that finds this customer, with the reason it was linked."""
    links = []
    for pk, _ in state.customer_index(customer_id):
        if pk.startswith("IDENTITY#"):
            key = pk.removeprefix("IDENTITY#")
            links.append({"key": key, "reason": state.identity_reason(key) or ""})
    return sorted(links, key=lambda link: link["key"])


def find_by_email(state: StateStore, email: str, crm_backend: str) -> list[dict[str, Any]]:
    normalised = normalize_email(email)
    customer_id = state.lookup_identity(f"email:{normalised}") if normalised else None
    document = customer_document(state, customer_id, crm_backend) if customer_id else None
    return [document] if document else []
