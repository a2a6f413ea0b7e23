"""WooCommerce webhooks: creation ping, signature check, REST v3 order/customer payloads, canonical conversion.

What this module relies on, read from WooCommerce core (includes/class-wc-webhook.php and the REST controllers):
- The body is the store's own REST response for /wc/v3/{resource}s/{id}, built when the delivery is *sent*
  (deliveries are asynchronous), so a late delivery carries the latest state. `*.deleted` bodies are {"id": n}.
- X-WC-Webhook-Signature = base64(HMAC-SHA256(secret, exact body bytes)).
- Money totals are decimal strings already formatted to the store's decimals; refund totals are negative strings
  ("-10.00"). A line's `price` is a JSON number computed as line total / quantity in PHP floats: after discounts and
  unrounded (10.00 / 3 = 3.3333333333333335), so it is not read; the unit price is derived from the line subtotal.
- `*_gmt` timestamps are UTC written without an offset.
- Core never retries, and the delivery id changes on every delivery, so deliveries are deduplicated on the
  resource's modified time (section 1.3 of the facts sheet).
"""

import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, NoReturn, NotRequired, TypedDict

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    GetPydanticSchema,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import core_schema

from crmsync.messages import DetailType
from crmsync.models import (
    AddressFields,
    Customer,
    LineItemFields,
    Money,
    MoneyFields,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    exact_minor_units,
    minor_units,
    normalize_country,
    normalize_email,
    normalize_phone,
    whole_minor_units,
    zero,
)
from crmsync.sources.base import (
    PARSE_CONFIG,
    Converted,
    Entity,
    Notice,
    UnsupportedTopic,
    sign_base64_hmac,
    verify_base64_hmac,
)

SOURCE = "woocommerce"

SIGNATURE_HEADER = "x-wc-webhook-signature"
TOPIC_HEADER = "x-wc-webhook-topic"
SOURCE_HEADER = "x-wc-webhook-source"
RESOURCE_HEADER = "x-wc-webhook-resource"
DELIVERY_HEADER = "x-wc-webhook-delivery-id"

TOPIC_ORDER_CREATED = "order.created"
TOPIC_ORDER_UPDATED = "order.updated"
TOPIC_ORDER_DELETED = "order.deleted"
TOPIC_ORDER_RESTORED = "order.restored"
TOPIC_CUSTOMER_CREATED = "customer.created"
TOPIC_CUSTOMER_UPDATED = "customer.updated"
TOPIC_CUSTOMER_DELETED = "customer.deleted"
ORDER_STATE_TOPICS = frozenset({TOPIC_ORDER_CREATED, TOPIC_ORDER_UPDATED, TOPIC_ORDER_RESTORED})
CUSTOMER_STATE_TOPICS = frozenset({TOPIC_CUSTOMER_CREATED, TOPIC_CUSTOMER_UPDATED})
HANDLED_TOPICS = ORDER_STATE_TOPICS | CUSTOMER_STATE_TOPICS | {TOPIC_ORDER_DELETED, TOPIC_CUSTOMER_DELETED}


# ---- ping and signature ----------------------------------------------------------------------------------------

# WC_Webhook::deliver_ping posts exactly "webhook_id=<post id>", form-encoded and unsigned, and wants a 200.
_PING_BODY = re.compile(rb"webhook_id=[0-9]+")


def is_ping(body: bytes, headers: Mapping[str, str]) -> bool:
    """The unsigned hello WooCommerce sends when a webhook is created or activated; never processed."""
    if (headers.get(SIGNATURE_HEADER) or "").strip():
        return False
    return _PING_BODY.fullmatch(body.strip()) is not None


# WooCommerce signs as Shopify does: base64(HMAC-SHA256(secret, raw body)).
sign = sign_base64_hmac
verify = verify_base64_hmac


# ---- payload ---------------------------------------------------------------------------------------------------


def _as_utc(value: datetime) -> datetime:
    # WooCommerce writes *_gmt fields in UTC with no offset; an offset, should a plugin add one, is honoured.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


GmtDatetime = Annotated[datetime, AfterValidator(_as_utc)]
CurrencyCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]{3}$")]

# An amount as core sends it, a plain decimal string ("29.35", refunds "-10.00"), kept as the string: minor_units
# reads it exactly without a Decimal, and pydantic-core checks its shape without a Python call; a JSON integer is
# exact as it is. A JSON number with a fraction or an exponent (some plugins send them) does not fit the JSON side,
# because pydantic-core would read it as a binary float (12.345678901234567890123 would come back as
# 12.345678901234567): such a body is read again with json.loads(parse_float=Decimal), whose exact Decimals the
# Python side takes (see _parse). No float is ever involved.
_DECIMAL_TEXT = core_schema.str_schema(
    strict=True, pattern=r"^\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$"
)
_AMOUNT_ERROR = {
    "custom_error_type": "decimal_amount",
    "custom_error_message": 'Input should be a decimal amount, as text ("29.35") or a number',
}
Amount = Annotated[
    str | int | Decimal,
    GetPydanticSchema(
        lambda _type, _handler: core_schema.json_or_python_schema(
            json_schema=core_schema.union_schema(
                [_DECIMAL_TEXT, core_schema.int_schema(strict=True)], mode="left_to_right", **_AMOUNT_ERROR
            ),
            python_schema=core_schema.union_schema(
                [
                    _DECIMAL_TEXT,
                    core_schema.int_schema(strict=True),
                    core_schema.decimal_schema(strict=True, allow_inf_nan=False),
                ],
                **_AMOUNT_ERROR,
            ),
        )
    ),
]


class _Payload(BaseModel):
    # REST responses carry many fields (and plugins add more); read only what we use.
    model_config = ConfigDict(frozen=True, extra="ignore", cache_strings=PARSE_CONFIG["cache_strings"])


# TypedDicts, not models, for what a payload holds several of: pydantic-core builds a dict for a fraction of a
# model's cost (extra keys ignored).
class WooAddress(TypedDict, total=False):
    first_name: str | None
    last_name: str | None
    address_1: str | None
    address_2: str | None
    city: str | None
    state: str | None
    postcode: str | None
    country: str | None
    email: str | None  # billing only
    phone: str | None
    company: str | None


class WooLineItem(TypedDict):
    id: int
    name: str
    sku: NotRequired[str | None]
    quantity: int
    subtotal: Amount  # before discounts, excluding tax
    total: Amount  # after discounts, excluding tax


class WooRefundRef(TypedDict):
    id: int
    reason: NotRequired[str | None]
    total: Amount  # negative: "-10.00"


class WooOrder(_Payload):
    id: int
    number: str | int | None = None
    status: str
    currency: CurrencyCode
    total: Amount
    total_tax: Amount | None = None
    discount_total: Amount | None = None
    shipping_total: Amount | None = None
    customer_id: int = 0  # 0 is a guest checkout
    billing: WooAddress | None = None
    transaction_id: str | None = None
    date_created_gmt: GmtDatetime | None = None
    date_modified_gmt: GmtDatetime
    date_paid_gmt: GmtDatetime | None = None
    date_completed_gmt: GmtDatetime | None = None
    line_items: tuple[WooLineItem, ...] = ()
    refunds: tuple[WooRefundRef, ...] = ()


class WooCustomer(_Payload):
    id: int
    email: str  # every /customers response has it; requiring it keeps other resources from passing as customers
    first_name: str | None = None
    last_name: str | None = None
    billing: WooAddress | None = None
    date_created_gmt: GmtDatetime | None = None
    date_modified_gmt: GmtDatetime | None = None

    @model_validator(mode="after")
    def _has_a_version(self) -> "WooCustomer":
        if self.date_modified_gmt is None and self.date_created_gmt is None:
            raise ValueError("customer has neither date_modified_gmt nor date_created_gmt")
        return self

    @property
    def version(self) -> datetime:
        version = self.date_modified_gmt or self.date_created_gmt
        assert version is not None  # checked by _has_a_version
        return version


class WooDeleted(_Payload):
    id: int


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def _exact_number(text: str) -> Decimal:
    # Decimal("1e999999999999999999") signals InvalidOperation (an ArithmeticError): any number in the body, read or
    # not, must fail as every other malformed body does, with a ValueError that says why.
    try:
        return Decimal(text)
    except ArithmeticError:
        raise ValueError(f"number out of range: {text[:40]}") from None


# Bodies the fast parser cannot read exactly: a JSON number with a fraction where an amount is expected (pydantic-core
# says so for the union's branches: a string, an integer), or not strict JSON.
_PARSE_EXACTLY = frozenset({"decimal_amount", "json_invalid"})


def _parse[PayloadT: _Payload](model: type[PayloadT], body: bytes) -> PayloadT:
    """pydantic-core's JSON parser in the common case (core writes amounts as strings); the stdlib parser with
    parse_float=Decimal when an amount is a JSON number, so its digits are kept exactly, or when the body is not
    strict JSON, so NaN/Infinity literals and form bodies are refused with the stdlib's plain reason."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        if not any(detail["type"] in _PARSE_EXACTLY for detail in error.errors()):
            raise
    return model.model_validate(json.loads(body, parse_float=_exact_number, parse_constant=_no_constant))


def parse_order(body: bytes) -> WooOrder:
    """Validate a raw order.created/updated/restored body; ValidationError (or ValueError) says what does not fit."""
    return _parse(WooOrder, body)


def parse_customer(body: bytes) -> WooCustomer:
    """Validate a raw customer.created/updated body."""
    return _parse(WooCustomer, body)


def parse_deleted(body: bytes) -> WooDeleted:
    """Validate a raw *.deleted body ({"id": n})."""
    return _parse(WooDeleted, body)


# ---- conversion ------------------------------------------------------------------------------------------------

_ORDER_STATUS: dict[str, OrderStatus] = {
    "pending": OrderStatus.PENDING,  # awaiting payment
    "on-hold": OrderStatus.AUTHORIZED,  # awaiting payment confirmation (bank transfer, cheque)
    "processing": OrderStatus.PAID,  # only with date_paid_gmt: see _status
    "completed": OrderStatus.PAID,
    "cancelled": OrderStatus.CANCELLED,
    "refunded": OrderStatus.REFUNDED,
    "failed": OrderStatus.PENDING,  # a failed payment can be retried on the same order, so it still awaits money
    "checkout-draft": OrderStatus.PENDING,  # block checkout's draft, not yet submitted
}
_NOWHERE = WooAddress()


def order_to_canonical(order: WooOrder, *, receipt_id: str) -> tuple[Customer | None, Order, tuple[Refund, ...]]:
    """The customer (None when the order names nobody), the order in store currency, and its refunds.

    Rules: `total` is WooCommerce's order total, which refunds do not reduce (they are listed in `refunded`); a
    refund total larger than the order total is kept as sent. The unit price is the line subtotal / quantity
    (before discounts, rounded half-even to the currency's minor unit when it does not divide evenly) and
    total_discount is the line subtotal - line total, so unit_price * quantity - total_discount = line total.
    """
    currency = order.currency.upper()
    version = order.date_modified_gmt
    billing = order.billing or _NOWHERE
    email = normalize_email(billing.get("email"))
    customer_id = str(order.customer_id) if order.customer_id else None
    transaction_id = _clean(order.transaction_id)
    woo_status = _woo_status(order)
    # Line amounts in minor units (exact: see _units); only what the canonical order holds must be whole units.
    lines: list[LineItemFields] = []
    subtotal: int | Fraction = 0
    for item in order.line_items:
        line_subtotal, line_total = _units(item["subtotal"], currency), _units(item["total"], currency)
        subtotal += line_subtotal
        lines.append(
            {
                "source_id": str(item["id"]),
                "sku": _clean(item.get("sku")),
                # Core stores some names HTML-encoded ("Ship Your Idea &ndash; Color: Black"); CRMs show plain text.
                "title": html.unescape(item["name"]),
                "quantity": item["quantity"],
                "unit_price": _money(_divide_half_even(line_subtotal, max(1, item["quantity"])), currency),
                "total_discount": _money(line_subtotal - line_total, currency),
            }
        )
    refunded = [_refunded(refund, currency) for refund in order.refunds]
    # One validation for the order with its money and lines (Order.of): mypy checks every name against OrderFields,
    # pydantic-core validates every Money and LineItem as their own constructors would.
    canonical = Order.of(
        {
            "source": SOURCE,
            "source_id": str(order.id),
            "source_version": version,
            "receipt_id": receipt_id,
            "name": f"#{_clean(str(order.number or '')) or order.id}",
            "status": _status(order, woo_status),
            "fulfillment_status": "fulfilled" if woo_status == "completed" else None,
            "total": _money(minor_units(order.total, currency), currency),
            "presentment_total": None,
            "subtotal": _money(subtotal, currency) if order.line_items else None,
            "total_tax": _amount(order.total_tax, currency),
            "total_discounts": _amount(order.discount_total, currency),
            "total_shipping": _amount(order.shipping_total, currency),
            "refunded": _money(sum(refunded), currency) if refunded else None,
            "line_items": lines,
            "customer_email": email,
            "customer_source_id": customer_id,
            "placed_at": order.date_created_gmt,
            "cancelled_at": None,  # WooCommerce keeps no cancellation date
            "closed_at": order.date_completed_gmt,
            "transaction_ids": (transaction_id,) if transaction_id else (),
        }
    )
    refunds = tuple(
        Refund.of(
            {
                "source": SOURCE,
                "source_id": str(refund["id"]),
                # The payload has no refund date; the order's version orders what it says about its refunds.
                "source_version": version,
                "receipt_id": receipt_id,
                # A refund exists in WooCommerce only once it went through (a failed gateway refund is deleted).
                "status": RefundStatus.SUCCEEDED,
                "amount": _money(amount, currency),
                "order_id": str(order.id),
                "reason": _clean(refund.get("reason")),
            }
        )
        for refund, amount in zip(order.refunds, refunded, strict=True)
    )
    return _order_customer(order, billing, email, customer_id, receipt_id), canonical, refunds


def customer_to_canonical(customer: WooCustomer, *, receipt_id: str) -> Customer:
    """A registered customer (customer.created/updated); names fall back to the billing address."""
    billing = customer.billing or _NOWHERE
    country = normalize_country(billing.get("country"))  # the phone's region and the address's country
    return Customer.of(
        {
            "source": SOURCE,
            "source_id": str(customer.id),
            "source_version": customer.version,
            "receipt_id": receipt_id,
            "email": normalize_email(customer.email) or normalize_email(billing.get("email")),
            "first_name": _first_text(customer.first_name, billing.get("first_name")),
            "last_name": _first_text(customer.last_name, billing.get("last_name")),
            "phone": normalize_phone(_clean(billing.get("phone")), country),
            "address": _address(billing, country),
        }
    )


def _order_customer(
    order: WooOrder, billing: WooAddress, email: str | None, customer_id: str | None, receipt_id: str
) -> Customer | None:
    first_name, last_name = _clean(billing.get("first_name")), _clean(billing.get("last_name"))
    country = normalize_country(billing.get("country"))  # the phone's region and the address's country
    phone = normalize_phone(_clean(billing.get("phone")), country)
    # Someone identity resolution can work with: an email, a store customer id, or a name with a phone.
    if not (email or customer_id or ((first_name or last_name) and phone)):
        return None
    return Customer.of(
        {
            "source": SOURCE,
            "source_id": customer_id,
            # The customer is read from this order, so the order's version is the one that orders these facts.
            "source_version": order.date_modified_gmt,
            "receipt_id": receipt_id,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "phone": phone,
            "address": _address(billing, country),
        }
    )


def _woo_status(order: WooOrder) -> str:
    return order.status.strip().lower().removeprefix("wc-")


def _status(order: WooOrder, woo: str) -> OrderStatus:
    if woo == "processing" and order.date_paid_gmt is None:
        # Cash on delivery: core's COD gateway makes "completed" its payment-complete status, so a processing COD
        # order ships before any money arrives and has no date_paid. It is committed but not paid.
        status = OrderStatus.AUTHORIZED
    else:
        # A status a plugin adds must not fail conversion; pending ranks lowest, so it overrides nothing.
        status = _ORDER_STATUS.get(woo, OrderStatus.PENDING)
    if order.refunds and status.rank < OrderStatus.PARTIALLY_REFUNDED.rank:
        # Money went back but the order is not marked refunded (WooCommerce does that itself once all of it is).
        return OrderStatus.PARTIALLY_REFUNDED
    return status


def _address(address: WooAddress, country: str | None) -> AddressFields | None:
    """The address, with its country already normalised (normalize_country of its `country`), if any is filled."""
    line1, line2 = _clean(address.get("address_1")), _clean(address.get("address_2"))
    city, region, postal_code = (
        _clean(address.get("city")),
        _clean(address.get("state")),
        _clean(address.get("postcode")),
    )
    if not (line1 or line2 or city or region or postal_code or _clean(address.get("country"))):
        return None
    return {
        "line1": line1,
        "line2": line2,
        "city": city,
        "region": region,
        "postal_code": postal_code,
        "country": country,
        "company": _clean(address.get("company")),
    }


def _units(amount: str | int | Decimal, currency: str) -> int | Fraction:
    """The amount in minor units: an int, or, when a store set more decimals than its currency has, the exact
    Fraction of minor units (a line priced 0.125 USD is 25/2 cents), so line arithmetic stays exact and only a result
    that the canonical order holds must come out whole (_money)."""
    try:
        return minor_units(amount, currency)
    except ValueError:
        return exact_minor_units(amount, currency)  # refuses, in turn, what is no finite amount in range


def _refunded(refund: WooRefundRef, currency: str) -> int | Fraction:
    """The refund's amount in minor units, positive (core sends refund totals negative: "-10.00")."""
    units = _units(refund["total"], currency)
    return -units if units < 0 else units


def _divide_half_even(units: int | Fraction, quantity: int) -> int:
    """units / quantity, rounded half-even to a whole minor unit: the unit price of a line."""
    if isinstance(units, Fraction):
        return round(units / quantity)  # Fraction rounds half to even, exactly
    quotient, remainder = divmod(units, quantity)  # floor division: 0 <= remainder < quantity, for any sign
    if 2 * remainder > quantity or (2 * remainder == quantity and quotient % 2):
        return quotient + 1
    return quotient


def _money(units: int | Fraction, currency: str) -> Money | MoneyFields:
    """Money's fields, validated as Money inside the model that holds them (Order.of, Refund.of); zero, the most
    common amount by far, is the one shared Money of its currency. Refuses a fraction of a minor unit."""
    if isinstance(units, Fraction):
        units = whole_minor_units(units, currency)
    return {"amount": units, "currency": currency} if units else zero(currency)


def _amount(amount: str | int | Decimal | None, currency: str) -> Money | MoneyFields | None:
    return None if amount is None else _money(minor_units(amount, currency), currency)


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def _first_text(*values: str | None) -> str | None:
    """The first value that is more than blanks, stripped."""
    for value in values:
        if value and (text := value.strip()):
            return text
    return None


def _order_event(topic: str, order: Order) -> DetailType:
    """order.created is a placement; on order.updated a cancelled order is a cancellation and a paid one a payment.

    Payloads describe state, not transitions, so every update of a paid order says order.paid again; consumers
    upsert by external id, and a repeated order.paid is safer than a missed one (core never retries)."""
    if topic == TOPIC_ORDER_CREATED:
        return DetailType.ORDER_PLACED
    if topic == TOPIC_ORDER_UPDATED and order.status is OrderStatus.CANCELLED:
        return DetailType.ORDER_CANCELLED
    if topic == TOPIC_ORDER_UPDATED and order.status is OrderStatus.PAID:
        return DetailType.ORDER_PAID
    return DetailType.ORDER_UPDATED


# ---- webhook source ----------------------------------------------------------------------------------------------


def _resource_id(payload: Any) -> str | None:
    value = payload.get("id") if isinstance(payload, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


@dataclass(frozen=True)
class WooCommerceWebhooks:
    """WooCommerce as ingest and convert see it (crmsync.sources.base.WebhookSource)."""

    name: str = SOURCE
    secret_setting: str = "woocommerce_secret_id"  # noqa: S105 - the name of a setting, not a secret
    handled_topics: frozenset[str] = HANDLED_TOPICS

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return is_ping(body, headers)

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        verify(body, headers.get(SIGNATURE_HEADER), secrets)

    def topic(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return _clean(headers.get(TOPIC_HEADER))

    def account(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return _clean(headers.get(SOURCE_HEADER))

    def receipt_id(self, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
        # The delivery id is new on every delivery, so it cannot spot a duplicate; the resource's modified time can
        # (a deletion has none).
        topic = self.topic(headers, payload) or ""
        resource = _clean(headers.get(RESOURCE_HEADER)) or _clean(topic.partition(".")[0]) or "-"
        # The event is part of the key: order.created and order.updated of one save share a modified time, and
        # the second must not be taken for a duplicate of the first (facts.md 1.5).
        event = topic.partition(".")[2] or "-"
        prefix = f"{SOURCE}:{self.account(headers, payload) or '-'}:{resource}.{event}"
        resource_id = _resource_id(payload)
        if resource_id is not None:
            if topic.partition(".")[2] == "deleted":
                # The body is {"id": n}: only the delivery id tells a second deletion (after a restore) from the first,
                # and handling a deletion twice changes nothing. Without it (a replay), one per resource.
                delivery = _clean(headers.get(DELIVERY_HEADER))
                return f"{prefix}:{resource_id}:deleted" + (f":{delivery}" if delivery else "")
            modified = payload.get("date_modified_gmt")
            if isinstance(modified, str) and modified.strip():
                return f"{prefix}:{resource_id}:{modified.strip()}"
        # Not a resource we know (or one without a modified time): the exact bytes are the identity.
        return f"{prefix}:sha256-{hashlib.sha256(body).hexdigest()}"

    def convert(self, topic: str, body: bytes, *, receipt_id: str) -> Converted:
        if topic in ORDER_STATE_TOPICS:
            customer, order, refunds = order_to_canonical(parse_order(body), receipt_id=receipt_id)
            entities: tuple[tuple[DetailType, Entity], ...] = ((_order_event(topic, order), order),)
            entities += tuple((DetailType.REFUND_ISSUED, refund) for refund in refunds)
            return Converted(customer=customer, entities=entities)
        if topic == TOPIC_ORDER_DELETED:
            order_id = parse_deleted(body).id
            notice = Notice(
                DetailType.ORDER_CANCELLED, key=f"{SOURCE}:order:{order_id}", data={"deleted": True}, deletes=Order
            )
            return Converted(notices=(notice,))
        if topic in CUSTOMER_STATE_TOPICS:
            return Converted(customer=customer_to_canonical(parse_customer(body), receipt_id=receipt_id))
        if topic == TOPIC_CUSTOMER_DELETED:
            customer_id = parse_deleted(body).id
            return Converted(notices=(Notice(DetailType.CUSTOMER_DELETED, key=f"{SOURCE}:customer:{customer_id}"),))
        raise UnsupportedTopic(f"no converter for woocommerce {topic}")
