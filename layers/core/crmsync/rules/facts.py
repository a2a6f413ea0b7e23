"""What rules know about a customer: each entity's contribution (crmsync.store.aggregates), folded into aggregates.

A contribution is computed from an entity's canonical form alone, so writing it twice writes the same item. The fold
reads every contribution of the customer as of a moment (the event's version, so a late or replayed event sees what
was true then, and a redelivery computes the same answer):

- lifetime value: what paid orders and standalone payments brought in, less what was refunded, in one currency (the
  reporting currency when set, else the customer's most used currency); amounts in other currencies are counted
  in `unconverted`, never added at a made-up rate. A payment that pays a known shop order is counted with the order.
- orders / paid orders: shop orders not cancelled, plus standalone payments that succeeded; paid ones only.
- first order: the earliest paid order or standalone payment (`first_order_at`, `first_order_key`).
- failed payments in the last 24 h: every failed attempt counts once (one item per payment and version).
- disputes: all, open ones (warnings and inquiries included), lost ones; fraud warnings (disputes with no amount).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crmsync.links import order_links, payment_links
from crmsync.models import Dispute, DisputeStatus, Order, Payment, Refund, currency_exponent
from crmsync.store.aggregates import Contribution

PAID_ORDER = frozenset({"paid", "partially_refunded", "refunded"})
PAID_PAYMENT = frozenset({"succeeded", "partially_refunded", "refunded", "reversed"})
OPEN_DISPUTE = frozenset(status.value for status in DisputeStatus if status.is_open)
FAILURE_WINDOW = timedelta(hours=24)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _minor(money: dict[str, Any] | None) -> tuple[int | None, str | None]:
    if not money:
        return None, None
    return int(money["amount"]), str(money["currency"])


def _reporting(data: dict[str, Any], name: str) -> tuple[int | None, str | None]:
    reporting = (data.get("reporting") or {}).get(name)
    return _minor(reporting["amount"]) if reporting else (None, None)


def _money_fields(data: dict[str, Any], amount: str, refunded: str) -> dict[str, Any]:
    value, currency = _minor(data.get(amount))
    back, _ = _minor(data.get(refunded))
    rep_value, rep_currency = _reporting(data, amount)
    rep_back, _ = _reporting(data, refunded)
    return {
        "amount": value,
        "refunded": back or 0,
        "currency": currency,
        "reporting_amount": rep_value,
        "reporting_refunded": rep_back or 0,
        "reporting_currency": rep_currency,
    }


def contributions_for(kind: str, data: dict[str, Any], *, failed: bool = False) -> list[Contribution]:
    """An entity's contributions to its customer's aggregates, from its canonical form (`data`), for state kind
    ORDER, PAYMENT, REFUND or DISPUTE; `failed` adds the failed attempt of a payment.failed event."""
    receipt_id = str(data["receipt_id"])
    if kind == "ORDER":
        order = Order.model_validate(data)
        version = epoch_ms(order.source_version)
        body = {
            "key": order.external_id,
            "status": order.status.value,
            "at": (order.placed_at or order.source_version).isoformat(),
            "refs": order_links(order),
            **_money_fields(data, "total", "refunded"),
        }
        return [Contribution(f"C#ORDER#{order.external_id}", version, order.rank, receipt_id, body)]
    if kind == "PAYMENT":
        payment = Payment.model_validate(data)
        version = epoch_ms(payment.source_version)
        body = {
            "key": payment.external_id,
            "status": payment.status.value,
            "at": (payment.created_at or payment.source_version).isoformat(),
            "refs": payment_links(payment),
            **_money_fields(data, "amount", "amount_refunded"),
        }
        found = [Contribution(f"C#PAYMENT#{payment.external_id}", version, payment.rank, receipt_id, body)]
        if failed or payment.status.value == "failed":
            at = payment.source_version.isoformat()
            failure = {"key": payment.external_id, "at": at, "code": payment.failure_code}
            found.append(Contribution(f"C#FAIL#{payment.external_id}#{version}", version, 0, receipt_id, failure))
        return found
    if kind == "REFUND":
        refund = Refund.model_validate(data)
        value, currency = _minor(data.get("amount"))
        body = {
            "key": refund.external_id,
            "status": refund.status.value,
            "at": (refund.created_at or refund.source_version).isoformat(),
            "amount": value,
            "currency": currency,
        }
        return [Contribution(f"C#REFUND#{refund.external_id}", epoch_ms(refund.source_version), refund.rank,
                             receipt_id, body)]  # fmt: skip
    if kind == "DISPUTE":
        dispute = Dispute.model_validate(data)
        value, currency = _minor(data.get("amount"))
        body = {
            "key": dispute.external_id,
            "status": dispute.status.value,
            "at": (dispute.created_at or dispute.source_version).isoformat(),
            "amount": value,
            "currency": currency,
        }
        return [Contribution(f"C#DISPUTE#{dispute.external_id}", epoch_ms(dispute.source_version), dispute.rank,
                             receipt_id, body)]  # fmt: skip
    return []


@dataclass(frozen=True)
class Paid:
    """One paid order or standalone payment, as the fold counted it."""

    key: str
    at: datetime
    amount: int  # minor units of `currency`
    refunded: int
    currency: str
    status: str


@dataclass(frozen=True)
class CustomerFacts:
    """A customer's aggregates as rules see them (`customer.<name>`)."""

    id: str = ""
    currency: str = ""
    lifetime_value: Decimal = Decimal(0)  # major units of `currency`, net of refunds
    lifetime_value_minor: int = 0
    unconverted: int = 0  # paid orders / payments in another currency, left out of the lifetime value
    orders: int = 0
    paid_orders: int = 0
    first_order_at: datetime | None = None
    first_order_key: str = ""
    last_order_at: datetime | None = None
    average_order_value: Decimal = Decimal(0)
    failed_payments_24h: int = 0
    failed_payments: int = 0
    refunds: int = 0
    disputes: int = 0
    open_disputes: int = 0
    lost_disputes: int = 0
    fraud_warnings: int = 0
    tags: frozenset[str] = frozenset()
    paid: tuple[Paid, ...] = field(default=(), repr=False)  # for the risk score, not for rules
    dispute_keys: tuple[str, ...] = field(default=(), repr=False)
    failures: tuple[datetime, ...] = field(default=(), repr=False)

    def for_rules(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in CUSTOMER_ATTRIBUTES}
        values["tags"] = set(self.tags)  # rule-engine maps set, not frozenset
        return values


CUSTOMER_ATTRIBUTES = (
    "id", "currency", "lifetime_value", "lifetime_value_minor", "unconverted", "orders", "paid_orders",
    "first_order_at", "first_order_key", "last_order_at", "average_order_value", "failed_payments_24h",
    "failed_payments", "refunds", "disputes", "open_disputes", "lost_disputes", "fraud_warnings", "tags",
)  # fmt: skip


def _at(text: str | None) -> datetime:
    if not text:
        return EPOCH
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-currency_exponent(currency)) if currency else Decimal(minor)


def _counted(data: dict[str, Any], currency: str) -> tuple[int, int] | None:
    """(amount, refunded) of a paid entry in `currency`: its own amounts, else its reporting amounts."""
    if data.get("currency") == currency and data.get("amount") is not None:
        return int(data["amount"]), int(data.get("refunded") or 0)
    if data.get("reporting_currency") == currency and data.get("reporting_amount") is not None:
        return int(data["reporting_amount"]), int(data.get("reporting_refunded") or 0)
    return None


def fold(
    customer_id: str,
    contributions: list[Contribution],
    *,
    as_of: datetime,
    tags: set[str] | frozenset[str] = frozenset(),
    reporting_currency: str = "",
) -> CustomerFacts:
    """The customer's aggregates as of `as_of`, from every contribution (those dated later are left out)."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for contribution in contributions:
        if _at(contribution.data.get("at")) <= as_of:
            by_kind.setdefault(contribution.kind, []).append(contribution.data)
    orders = by_kind.get("ORDER", [])
    order_refs = {ref for order in orders for ref in order.get("refs", [])}
    standalone = [p for p in by_kind.get("PAYMENT", []) if not order_refs.intersection(p.get("refs", []))]
    paid_entries = [o for o in orders if o["status"] in PAID_ORDER] + [
        p for p in standalone if p["status"] in PAID_PAYMENT
    ]
    currency = reporting_currency or _main_currency(paid_entries)
    paid: list[Paid] = []
    unconverted = 0
    for entry in paid_entries:
        counted = _counted(entry, currency)
        if counted is None:
            unconverted += 1
            continue
        amount, refunded = counted
        if entry["status"] == "reversed":
            refunded = amount  # charged back: the money is gone
        paid.append(Paid(entry["key"], _at(entry["at"]), amount, refunded, currency, entry["status"]))
    paid.sort(key=lambda p: (p.at, p.key))
    net = sum(p.amount - min(p.refunded, p.amount) for p in paid)
    failures = sorted(_at(f["at"]) for f in by_kind.get("FAIL", []))
    disputes = by_kind.get("DISPUTE", [])
    return CustomerFacts(
        id=customer_id,
        currency=currency,
        lifetime_value=major(net, currency),
        lifetime_value_minor=net,
        unconverted=unconverted,
        orders=sum(1 for o in orders if o["status"] != "cancelled")
        + sum(1 for p in standalone if p["status"] in PAID_PAYMENT),
        paid_orders=len(paid_entries),
        first_order_at=paid[0].at if paid else None,
        first_order_key=paid[0].key if paid else "",
        last_order_at=paid[-1].at if paid else None,
        average_order_value=major(sum(p.amount for p in paid) // len(paid), currency) if paid else Decimal(0),
        failed_payments_24h=sum(1 for at in failures if as_of - FAILURE_WINDOW < at <= as_of),
        failed_payments=len(failures),
        refunds=sum(1 for r in by_kind.get("REFUND", []) if r["status"] == "succeeded"),
        disputes=len(disputes),
        open_disputes=sum(1 for d in disputes if d["status"] in OPEN_DISPUTE),
        lost_disputes=sum(1 for d in disputes if d["status"] == "lost"),
        fraud_warnings=sum(1 for d in disputes if d["status"] == "warning" and d.get("amount") is None),
        tags=frozenset(tags),
        paid=tuple(paid),
        dispute_keys=tuple(sorted(d["key"] for d in disputes)),
        failures=tuple(failures),
    )


def _main_currency(entries: list[dict[str, Any]]) -> str:
    counts = Counter(str(e["currency"]) for e in entries if e.get("currency"))
    if not counts:
        return ""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]


def newest(contributions: list[Contribution]) -> list[Contribution]:
    """One contribution per item key, the newest by the state's version rule (for folding items of two origins)."""
    best: dict[str, Contribution] = {}
    for contribution in contributions:
        held = best.get(contribution.sk)
        if held is None or (contribution.version, contribution.rank) > (held.version, held.rank):
            best[contribution.sk] = contribution
    return list(best.values())
