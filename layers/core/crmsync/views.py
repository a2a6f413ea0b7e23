"""Views: the current stored state of an entity as one dict, what mappings and `GET /customers` read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmsync.models import Money

if TYPE_CHECKING:
    from crmsync.store.state import StoredItem

CUSTOMER_FIELDS = ("email", "first_name", "last_name", "phone", "address", "accepts_marketing")


def customer_external_id(customer_id: str) -> str:
    return f"crmsync:customer:{customer_id}"


def customer_view(customer_id: str, items: list[StoredItem]) -> dict[str, Any]:
    """Merge what every source says: for each field the newest source that has a value wins."""
    view: dict[str, Any] = {"id": customer_id, "external_id": customer_external_id(customer_id), "sources": {}}
    for item in sorted(items, key=lambda i: i.version, reverse=True):
        data = item.data
        for field in CUSTOMER_FIELDS:
            if view.get(field) is None and data.get(field) is not None:
                view[field] = data[field]
        view["sources"].setdefault(data.get("source", "?"), data.get("source_id"))
    return view


def order_view(data: dict[str, Any], customer_id: str | None) -> dict[str, Any]:
    total = Money.model_validate(data["total"])
    refunded = Money.model_validate(data["refunded"]) if data.get("refunded") else None
    source = str(data["source"])
    status = str(data["status"])
    closed_at = data.get("placed_at") if status in ("paid", "partially_refunded", "refunded") else None
    return {
        **data,
        "external_id": f"{source}:order:{data['source_id']}",
        "customer_id": customer_id,
        "title": f"{source.capitalize()} order {data['name']}",
        "amount": total.formatted(),
        "currency": total.currency,
        "refunded_amount": refunded.formatted() if refunded else None,
        "closed_at": closed_at,
    }
