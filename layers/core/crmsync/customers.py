"""The customer as operators see it (GET /customers): merged profile, every entity, CRM ids and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.models import normalize_email
from crmsync.views import customer_view

if TYPE_CHECKING:
    from crmsync.store.state import StateStore

COLLECTIONS = {"ORDER": "orders", "PAYMENT": "payments", "REFUND": "refunds", "DISPUTE": "disputes"}


def customer_document(state: StateStore, customer_id: str, crm_backend: str) -> dict[str, Any] | None:
    items = state.customer_items(customer_id)
    if not items:
        return None
    document: dict[str, Any] = {
        **customer_view(customer_id, items),
        "emails": sorted({i.data["email"] for i in items if i.data.get("email")}),
        **{name: [] for name in COLLECTIONS.values()},
        "crm_ids": state.crm_ids(f"CUSTOMER#{customer_id}", crm_backend),
        "lineage": [
            {
                "kind": "customer",
                "key": item.sk.removeprefix("SRC#"),
                "version": item.version,
                "receipt_id": item.receipt_id,
            }
            for item in items
        ],
    }
    for kind, item in state.customer_entities(customer_id):
        if kind not in COLLECTIONS:
            continue
        document[COLLECTIONS[kind]].append(item.data)
        key = f"{item.data['source']}:{kind.lower()}:{item.data['source_id']}"
        document["lineage"].append(
            {"kind": kind.lower(), "key": key, "version": item.version, "receipt_id": item.receipt_id}
        )
    return document


def find_by_email(state: StateStore, email: str, crm_backend: str) -> list[dict[str, Any]]:
    normalised = normalize_email(email)
    customer_id = state.lookup_identity(f"email:{normalised}") if normalised else None
    document = customer_document(state, customer_id, crm_backend) if customer_id else None
    return [document] if document else []
