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


def company_view(contact: dict[str, Any]) -> dict[str, Any] | None:
    """The company of a contact view: its address's company name (None when it has none), as `name`, with the
    contact's address, and external id `company:<name lower-cased, blanks folded>` so one name is one company."""
    address = contact.get("address") if isinstance(contact.get("address"), dict) else {}
    name = " ".join(str((address or {}).get("company") or "").split())
    if not name:
        return None
    return {"name": name, "external_id": f"company:{name.casefold()}", "address": address}


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


def line_item_views(deal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An order view's lines (models/order.py LineItem), each as a view of its own: the line's fields, `name` (its
    title), `price` (the unit price, money-formatted), `discount` (the line's total discount, money-formatted),
    `currency`, and `external_id` `<order external id>:line:<line source id>` (its position in the order when the
    source gives the line no id, or gives two lines one id). No line total: a source's unit price may be rounded
    (3 for 10.00 is 3.33 each), so price x quantity is left to the CRM. A payment view has no lines: none."""
    lines = [line for line in deal.get("line_items") or () if isinstance(line, dict)]
    ids = [str(line.get("source_id") or "") for line in lines]
    views: dict[str, dict[str, Any]] = {}
    for index, (line, source_id) in enumerate(zip(lines, ids, strict=True)):
        suffix = source_id if source_id and ids.count(source_id) == 1 else str(index)
        external_id = f"{deal['external_id']}:line:{suffix}"
        price = Money.model_validate(line["unit_price"]) if line.get("unit_price") else None
        discount = Money.model_validate(line["total_discount"]) if line.get("total_discount") else None
        views[external_id] = {
            **line,
            "external_id": external_id,
            "deal_external_id": deal["external_id"],
            "position": index,
            "name": line.get("title"),
            "price": price.formatted() if price else None,
            "discount": discount.formatted() if discount else None,
            "currency": price.currency if price else None,
        }
    return views


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
