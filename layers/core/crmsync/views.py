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


def payment_view(data: dict[str, Any], customer_id: str | None) -> dict[str, Any]:
    amount = Money.model_validate(data["amount"])
    refunded = Money.model_validate(data["amount_refunded"]) if data.get("amount_refunded") else None
    source = str(data["source"])
    status = str(data["status"])
    return {
        **data,
        "external_id": f"{source}:{data['kind']}:{data['source_id']}",
        "customer_id": customer_id,
        "title": f"{source.capitalize()} payment {data['source_id']}",
        "amount": amount.formatted(),
        "currency": amount.currency,
        "refunded_amount": refunded.formatted() if refunded and refunded.amount else None,
        "payment_status": status,
        "closed_at": data.get("created_at") if status in ("succeeded", "partially_refunded", "refunded") else None,
    }


def money_fields(data: dict[str, Any], name: str = "amount") -> dict[str, Any]:
    """A Money field as the formatted amount and its currency (both None when there is no amount)."""
    if not data.get(name):
        return {"amount": None, "currency": None}
    money = Money.model_validate(data[name])
    return {"amount": money.formatted(), "currency": money.currency}


def note_view(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A refund or dispute as a note: the fields its template may name, and the note's own external id."""
    source = str(data["source"])
    return {
        **data,
        **money_fields(data),
        "external_id": f"crmsync:{source}:{kind}:{data['source_id']}",
        "timestamp": data.get("created_at") or data.get("source_version"),
    }


def deal_target(kind: str, data: dict[str, Any]) -> tuple[str, str] | None:
    """(state kind, external id) of the deal a refund or dispute is about: its order's, else its payment's."""
    source = str(data["source"])
    if kind == "refund" and data.get("order_id"):
        return "ORDER", f"{source}:order:{data['order_id']}"
    if data.get("payment_id"):
        return "PAYMENT", f"{source}:{'capture' if source == 'paypal' else 'payment'}:{data['payment_id']}"
    return None
