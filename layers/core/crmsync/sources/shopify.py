"""Shopify webhooks: signature check, REST Admin payloads (orders, refunds, customers, the mandatory compliance
topics), conversion to canonical models."""

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, NotRequired, TypedDict, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from crmsync.messages import DetailType
from crmsync.models import (
    AddressFields,
    Customer,
    Money,
    MoneyFields,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    exact_minor_units,
    minor_units,
    normalize_email,
    normalize_phone,
    whole_minor_units,
    zero,
)
from crmsync.sources.base import PARSE_CONFIG, Converted, Notice, UnsupportedTopic, sign_base64_hmac, verify_base64_hmac

SOURCE = "shopify"

TOPIC_ORDERS_CREATE = "orders/create"
TOPIC_ORDERS_UPDATED = "orders/updated"
TOPIC_ORDERS_PAID = "orders/paid"
TOPIC_ORDERS_CANCELLED = "orders/cancelled"
TOPIC_ORDERS_FULFILLED = "orders/fulfilled"
ORDER_TOPICS = frozenset(
    {TOPIC_ORDERS_CREATE, TOPIC_ORDERS_UPDATED, TOPIC_ORDERS_PAID, TOPIC_ORDERS_CANCELLED, TOPIC_ORDERS_FULFILLED}
)
TOPIC_REFUNDS_CREATE = "refunds/create"
TOPIC_CUSTOMERS_CREATE = "customers/create"
TOPIC_CUSTOMERS_UPDATE = "customers/update"
TOPIC_CUSTOMERS_DELETE = "customers/delete"
# The mandatory compliance topics every public app must answer (GDPR/CCPA); the bodies carry no resource version.
TOPIC_CUSTOMERS_REDACT = "customers/redact"
TOPIC_SHOP_REDACT = "shop/redact"
TOPIC_CUSTOMERS_DATA_REQUEST = "customers/data_request"
CUSTOMER_TOPICS = frozenset({TOPIC_CUSTOMERS_CREATE, TOPIC_CUSTOMERS_UPDATE})
COMPLIANCE_TOPICS = frozenset({TOPIC_CUSTOMERS_REDACT, TOPIC_SHOP_REDACT, TOPIC_CUSTOMERS_DATA_REQUEST})
HANDLED_TOPICS = ORDER_TOPICS | CUSTOMER_TOPICS | COMPLIANCE_TOPICS | {TOPIC_REFUNDS_CREATE, TOPIC_CUSTOMERS_DELETE}


# ---- signature -------------------------------------------------------------------------------------------------


# Shopify and WooCommerce sign alike: base64(HMAC-SHA256(secret, raw body)).
sign = sign_base64_hmac
verify = verify_base64_hmac


# ---- payload ---------------------------------------------------------------------------------------------------

# Shopify sends money as decimal strings; keeping them strings until Money.from_decimal means no float ever sees them.
Amount = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^-?\d+(\.\d+)?$")]
CurrencyCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]{3}$")]
# Timestamps keep the shop's offset here: they only reach the canonical models, whose UtcDatetime fields convert
# them to UTC (converting here too would cost a Python call per timestamp for the same result).
ShopDatetime = AwareDatetime


class _Payload(BaseModel):
    # Webhook bodies carry hundreds of fields and Shopify adds more each API version; read only what we use.
    model_config = ConfigDict(frozen=True, extra="ignore", cache_strings=PARSE_CONFIG["cache_strings"])


# Leaves of a payload are TypedDicts, not models: an order carries a dozen of them (addresses, lines, money sets),
# and pydantic-core builds a dict for a fraction of a model's cost. They are validated alike, extra keys ignored.


class ShopifyMoney(TypedDict):
    amount: Amount
    currency_code: CurrencyCode


class ShopifyMoneySet(TypedDict):
    shop_money: ShopifyMoney
    presentment_money: ShopifyMoney


class ShopifyAddress(TypedDict, total=False):
    first_name: str | None
    last_name: str | None
    address1: str | None
    address2: str | None
    city: str | None
    province: str | None
    province_code: str | None
    zip: str | None
    country_code: str | None
    phone: str | None
    company: str | None


class ShopifyMarketingConsent(TypedDict, total=False):
    state: str | None


class ShopifyCustomer(_Payload):
    id: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    accepts_marketing: bool | None = None  # older API versions
    email_marketing_consent: ShopifyMarketingConsent | None = None  # its replacement
    default_address: ShopifyAddress | None = None


class ShopifyLineItem(TypedDict):
    id: int
    sku: NotRequired[str | None]
    title: str
    quantity: int
    price: Amount
    total_discount: NotRequired[Amount]  # "0" when absent


class ShopifyShippingLine(TypedDict):
    price: Amount


class ShopifyTransaction(TypedDict):
    kind: str
    status: NotRequired[str | None]
    amount: Amount
    currency: NotRequired[CurrencyCode | None]
    test: NotRequired[bool | None]


class ShopifyOrderTransaction(TypedDict, total=False):
    # Only the payment id is read from an order's own transactions, so nothing else of them can fail an order.
    authorization: str | None


class ShopifyRefund(TypedDict, total=False):
    transactions: tuple[ShopifyTransaction, ...]


class ShopifyOrder(_Payload):
    id: int
    name: str
    currency: CurrencyCode
    total_price: Amount
    current_total_price: Amount | None = None
    total_price_set: ShopifyMoneySet | None = None
    current_total_price_set: ShopifyMoneySet | None = None
    subtotal_price: Amount | None = None
    current_subtotal_price: Amount | None = None
    total_tax: Amount | None = None
    current_total_tax: Amount | None = None
    total_discounts: Amount | None = None
    current_total_discounts: Amount | None = None
    total_shipping_price_set: ShopifyMoneySet | None = None
    shipping_lines: tuple[ShopifyShippingLine, ...] = ()
    financial_status: str | None = None
    fulfillment_status: str | None = None
    created_at: ShopDatetime
    updated_at: ShopDatetime
    processed_at: ShopDatetime | None = None
    cancelled_at: ShopDatetime | None = None
    closed_at: ShopDatetime | None = None
    test: bool = False
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    buyer_accepts_marketing: bool | None = None
    customer: ShopifyCustomer | None = None
    billing_address: ShopifyAddress | None = None
    shipping_address: ShopifyAddress | None = None
    line_items: tuple[ShopifyLineItem, ...] = ()
    refunds: tuple[ShopifyRefund, ...] = ()
    transactions: tuple[ShopifyOrderTransaction, ...] = ()  # webhook bodies rarely carry them; API reads may


def parse_order(body: bytes) -> ShopifyOrder:
    """Validate a raw orders/* webhook body; pydantic.ValidationError says what does not fit."""
    return ShopifyOrder.model_validate_json(body)


class ShopifyRefundLineItem(TypedDict, total=False):
    subtotal_set: ShopifyMoneySet | None  # API 2019-10 on; old bodies price refunds by transactions only
    total_tax_set: ShopifyMoneySet | None


class ShopifyOrderAdjustment(TypedDict, total=False):
    # Signed from the order's side: a refunded shipping charge of 5.00 is "-5.00".
    amount_set: ShopifyMoneySet | None
    tax_amount_set: ShopifyMoneySet | None


class ShopifyRefundResource(_Payload):
    """The refunds/create body: the bare REST Refund resource (not the refund summary inside an order)."""

    id: int
    order_id: int
    created_at: ShopDatetime
    processed_at: ShopDatetime | None = None
    note: str | None = None
    transactions: tuple[ShopifyTransaction, ...] = ()
    refund_line_items: tuple[ShopifyRefundLineItem, ...] = ()
    order_adjustments: tuple[ShopifyOrderAdjustment, ...] = ()


def parse_refund(body: bytes) -> ShopifyRefundResource:
    """Validate a raw refunds/create webhook body; pydantic.ValidationError says what does not fit."""
    return ShopifyRefundResource.model_validate_json(body)


class ShopifyCustomerResource(ShopifyCustomer):
    """The customers/create and customers/update body: the bare REST Customer resource."""

    created_at: ShopDatetime | None = None
    updated_at: ShopDatetime


def parse_customer(body: bytes) -> ShopifyCustomerResource:
    """Validate a raw customers/create or customers/update body."""
    return ShopifyCustomerResource.model_validate_json(body)


ShopDomain = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ShopifyCustomerRef(_Payload):
    # customers/delete and the compliance bodies also carry email and phone; they are never read, so no personal
    # data of a person asking to be forgotten enters the pipeline from here.
    id: int


class ShopifyDataRequestRef(_Payload):
    id: int


class ShopifyCustomersRedact(_Payload):
    shop_id: int
    shop_domain: ShopDomain
    customer: ShopifyCustomerRef
    orders_to_redact: tuple[int, ...] = ()


class ShopifyShopRedact(_Payload):
    shop_id: int
    shop_domain: ShopDomain


class ShopifyCustomersDataRequest(_Payload):
    shop_id: int
    shop_domain: ShopDomain
    customer: ShopifyCustomerRef
    orders_requested: tuple[int, ...] = ()
    data_request: ShopifyDataRequestRef


# ---- conversion ------------------------------------------------------------------------------------------------

_FINANCIAL_STATUS: dict[str, OrderStatus] = {
    "pending": OrderStatus.PENDING,
    "authorized": OrderStatus.AUTHORIZED,
    "partially_paid": OrderStatus.PENDING,  # still waiting for money, which is what pending means downstream
    "paid": OrderStatus.PAID,
    "partially_refunded": OrderStatus.PARTIALLY_REFUNDED,
    "refunded": OrderStatus.REFUNDED,
    "voided": OrderStatus.CANCELLED,
}
_MARKETING_CONSENT = {"subscribed": True, "not_subscribed": False, "unsubscribed": False}
# Stand-ins for a guest checkout's missing customer and a missing address, so field fallbacks read as one chain.
_NOBODY = ShopifyCustomer(id=0)
_NOWHERE = ShopifyAddress()


def order_to_canonical(order: ShopifyOrder, *, receipt_id: str) -> tuple[Customer | None, Order]:
    """The customer (None when the order names nobody) and the order, in shop currency."""
    shopper = order.customer
    email = (
        (normalize_email(shopper.email) if shopper else None)
        or normalize_email(order.email)
        or normalize_email(order.contact_email)
    )
    customer_id = str(shopper.id) if shopper else None
    currency = order.currency.upper()
    subtotal = order.current_subtotal_price or order.subtotal_price
    tax = order.current_total_tax or order.total_tax
    discounts = order.current_total_discounts or order.total_discounts
    # One validation for the order with its money and lines (Order.of): mypy checks every name against OrderFields,
    # pydantic-core validates every Money and LineItem as their own constructors would.
    canonical = Order.of(
        {
            "source": SOURCE,
            "source_id": str(order.id),
            "source_version": order.updated_at,
            "receipt_id": receipt_id,
            "name": order.name,
            "status": _status(order),
            "fulfillment_status": order.fulfillment_status,
            "total": _money(order.current_total_price or order.total_price, currency),
            "presentment_total": _presentment_total(order),
            "subtotal": None if subtotal is None else _money(subtotal, currency),
            "total_tax": None if tax is None else _money(tax, currency),
            "total_discounts": None if discounts is None else _money(discounts, currency),
            "total_shipping": _shipping(order, currency),
            "refunded": _refunded(order, currency),
            "line_items": [
                {
                    "source_id": str(item["id"]),
                    "sku": _clean(item.get("sku")),
                    "title": item["title"],
                    "quantity": item["quantity"],
                    "unit_price": _money(item["price"], currency),
                    "total_discount": _money(item.get("total_discount", "0"), currency),
                }
                for item in order.line_items
            ],
            "customer_email": email,
            "customer_source_id": customer_id,
            "placed_at": order.processed_at or order.created_at,
            "cancelled_at": order.cancelled_at,
            "closed_at": order.closed_at,
            "test": order.test,
            "transaction_ids": _transaction_ids(order),
        }
    )
    if shopper is None and email is None:
        return None, canonical
    return _customer(order, email, customer_id, receipt_id), canonical


def _customer(order: ShopifyOrder, email: str | None, customer_id: str | None, receipt_id: str) -> Customer:
    shopper = order.customer or _NOBODY
    address = _first_filled(order.billing_address, order.shipping_address, shopper.default_address)
    from_address = address or _NOWHERE
    return Customer.of(
        {
            "source": SOURCE,
            "source_id": customer_id,
            # The customer is read from this order, so the order's version is the one that orders these facts.
            "source_version": order.updated_at,
            "receipt_id": receipt_id,
            "email": email,
            "first_name": _first_text(shopper.first_name, from_address.get("first_name")),
            "last_name": _first_text(shopper.last_name, from_address.get("last_name")),
            "phone": normalize_phone(
                _first_text(shopper.phone, from_address.get("phone"), order.phone), from_address.get("country_code")
            ),
            "address": _address(address) if address else None,
            "accepts_marketing": _accepts_marketing(order),
            "test": order.test,
        }
    )


def _status(order: ShopifyOrder) -> OrderStatus:
    if order.cancelled_at is not None:
        return OrderStatus.CANCELLED
    # A financial status Shopify adds later must not fail conversion; pending ranks lowest, so it overrides nothing.
    return _FINANCIAL_STATUS.get(order.financial_status or "", OrderStatus.PENDING)


def _presentment_total(order: ShopifyOrder) -> Money | MoneyFields | None:
    money_set = order.current_total_price_set or order.total_price_set
    if money_set is None:
        return None
    presentment = money_set["presentment_money"]
    return _money(presentment["amount"], presentment["currency_code"])


def _shipping(order: ShopifyOrder, currency: str) -> Money | MoneyFields | None:
    if order.total_shipping_price_set is not None:
        shop = order.total_shipping_price_set["shop_money"]
        return _money(shop["amount"], shop["currency_code"])
    if order.shipping_lines:
        return _sum([line["price"] for line in order.shipping_lines], currency)
    return None


def _transaction_ids(order: ShopifyOrder) -> tuple[str, ...]:
    """The gateway's payment ids (`authorization`: a Stripe charge or PaymentIntent id, a PayPal capture id...) of
    the order's own transactions, first seen first, each once, so a payment webhook can find this order.

    Only `authorization` is read: `receipt` is a free-form gateway dump whose keys differ by gateway, and
    `payment_gateway_names` names gateways, not payments. Refund transactions inside `refunds` are not the order's."""
    if not order.transactions:
        return ()
    ids = (_clean(tx.get("authorization")) for tx in order.transactions)
    return tuple(dict.fromkeys(txn for txn in ids if txn))


def _refund_succeeded(tx: ShopifyTransaction) -> bool:
    # Older API versions may omit the status of a recorded refund; only an explicit non-success status excludes one.
    return tx["kind"] == "refund" and tx.get("status") in (None, "success")


def _refunded(order: ShopifyOrder, currency: str) -> Money | MoneyFields | None:
    refunds = [tx for refund in order.refunds for tx in refund.get("transactions", ()) if _refund_succeeded(tx)]
    # Refund transactions are in the buyer's currency; they can be summed directly only when that is the shop's.
    if refunds and all((tx.get("currency") or currency).upper() == currency for tx in refunds):
        return _sum([tx["amount"] for tx in refunds], currency)
    if order.financial_status in ("refunded", "partially_refunded") and order.current_total_price is not None:
        # Shop-currency fallback: current_total_price is what remains after refunds (and edits).
        try:
            difference = minor_units(order.total_price, currency) - minor_units(order.current_total_price, currency)
        except ValueError:  # finer than the minor unit: the exact difference decides whether it is refused
            paid, kept = order.total_price, order.current_total_price
            exact = exact_minor_units(paid, currency) - exact_minor_units(kept, currency)
            difference = whole_minor_units(exact, currency) if exact > 0 else 0
        return {"amount": difference, "currency": currency} if difference > 0 else None
    return None


def _accepts_marketing(order: ShopifyOrder) -> bool | None:
    shopper = order.customer
    if shopper is not None:
        consent = _customer_consent(shopper)
        if consent is not None:
            return consent
    return order.buyer_accepts_marketing


def _customer_consent(shopper: ShopifyCustomer) -> bool | None:
    """email_marketing_consent.state when it is one we know, else the older accepts_marketing flag."""
    consent = shopper.email_marketing_consent
    state = consent.get("state") if consent is not None else None
    if state in _MARKETING_CONSENT:
        return _MARKETING_CONSENT[state]
    return shopper.accepts_marketing


def refund_to_canonical(refund: ShopifyRefundResource, *, receipt_id: str) -> Refund:
    """One refunds/create body as a canonical Refund of the order it names."""
    succeeded = [tx for tx in refund.transactions if _refund_succeeded(tx)]
    return Refund.of(
        {
            "source": SOURCE,
            "source_id": str(refund.id),
            # processed_at is when the money moved (it may be back-dated on import); created_at when Shopify
            # recorded it.
            "source_version": refund.processed_at or refund.created_at,
            "receipt_id": receipt_id,
            "status": RefundStatus.SUCCEEDED if succeeded else RefundStatus.PENDING,
            "amount": _paid_back(refund, succeeded) if succeeded else _priced_back(refund),
            "order_id": str(refund.order_id),
            "reason": _clean(refund.note),
            "created_at": refund.created_at,
            "test": any(tx.get("test") for tx in refund.transactions),
        }
    )


def _paid_back(refund: ShopifyRefundResource, succeeded: list[ShopifyTransaction]) -> Money | MoneyFields:
    """The money that went back: the successful refund transactions, in their (the buyer's) currency."""
    currencies = {(tx.get("currency") or _shop_currency(refund)).upper() for tx in succeeded}
    if len(currencies) != 1:
        raise ValueError(f"refund {refund.id} has successful transactions in several currencies: {sorted(currencies)}")
    return _sum([tx["amount"] for tx in succeeded], currencies.pop())


def _priced_back(refund: ShopifyRefundResource) -> Money | MoneyFields:
    """No money moved yet (no transaction, or none succeeded): what the refund is worth in the shop currency.

    The refunded lines with their tax, less the order adjustments: Shopify signs those from the order's side, so a
    refunded 5.00 shipping charge is "-5.00" and a refund kept 2.00 short of the lines' worth is "+2.00"."""
    if any(line.get("subtotal_set") is None for line in refund.refund_line_items) or any(
        adjustment.get("amount_set") is None for adjustment in refund.order_adjustments
    ):
        raise ValueError(f"refund {refund.id} has no successful transaction and parts without shop money")
    lines = [
        money_set["shop_money"]
        for line in refund.refund_line_items
        for money_set in (line.get("subtotal_set"), line.get("total_tax_set"))
        if money_set is not None
    ]
    adjustments = [
        money_set["shop_money"]
        for adjustment in refund.order_adjustments
        for money_set in (adjustment.get("amount_set"), adjustment.get("tax_amount_set"))
        if money_set is not None
    ]
    currency = _shop_currency(refund)
    if any(money["currency_code"].upper() != currency for money in (*lines, *adjustments)):
        raise ValueError(f"refund {refund.id} mixes shop currencies")
    return _sum([money["amount"] for money in lines], currency, less=[money["amount"] for money in adjustments])


def _shop_currency(refund: ShopifyRefundResource) -> str:
    money_sets = [
        *(line.get("subtotal_set") for line in refund.refund_line_items),
        *(adjustment.get("amount_set") for adjustment in refund.order_adjustments),
    ]
    for money_set in money_sets:
        if money_set is not None:
            return money_set["shop_money"]["currency_code"].upper()
    raise ValueError(f"refund {refund.id} names no currency")


def customer_to_canonical(shopper: ShopifyCustomerResource, *, receipt_id: str) -> Customer:
    """A customers/create or customers/update body as a canonical Customer; contact details from the customer,
    else from their default address (whose country is the phone's region)."""
    address = shopper.default_address if _filled(shopper.default_address) else None
    from_address = address or _NOWHERE
    return Customer.of(
        {
            "source": SOURCE,
            "source_id": str(shopper.id),
            "source_version": shopper.updated_at,
            "receipt_id": receipt_id,
            "email": normalize_email(shopper.email),
            "first_name": _first_text(shopper.first_name, from_address.get("first_name")),
            "last_name": _first_text(shopper.last_name, from_address.get("last_name")),
            "phone": normalize_phone(
                _first_text(shopper.phone, from_address.get("phone")), _clean(from_address.get("country_code"))
            ),
            "address": _address(address) if address else None,
            "accepts_marketing": _customer_consent(shopper),
            "test": False,  # Shopify customers have no test flag
        }
    )


# Notices carry ids as strings: Shopify ids pass 2**53, which JSON readers that use doubles would round.


def customer_deleted(body: bytes) -> Notice:
    customer = ShopifyCustomerRef.model_validate_json(body)
    return Notice(DetailType.CUSTOMER_DELETED, key=f"{SOURCE}:customer:{customer.id}")


def customer_redact_requested(body: bytes) -> Notice:
    """customers/redact: recorded so the erasure issue can act on it; nothing personal is kept from the body."""
    request = ShopifyCustomersRedact.model_validate_json(body)
    return Notice(
        DetailType.ERASURE_REQUESTED,
        key=f"{SOURCE}:customer:{request.customer.id}",
        data={
            "kind": TOPIC_CUSTOMERS_REDACT,
            "shop_domain": request.shop_domain,
            "customer_id": str(request.customer.id),
            "orders_to_redact": [str(order_id) for order_id in request.orders_to_redact],
        },
    )


def shop_redact_requested(body: bytes) -> Notice:
    """shop/redact: 48 hours after uninstall, everything of the shop is to be erased."""
    request = ShopifyShopRedact.model_validate_json(body)
    return Notice(
        DetailType.ERASURE_REQUESTED,
        key=f"{SOURCE}:shop:{request.shop_domain}",
        data={"kind": TOPIC_SHOP_REDACT, "shop_domain": request.shop_domain, "shop_id": str(request.shop_id)},
    )


def customer_data_requested(body: bytes) -> Notice:
    """customers/data_request: the customer asked the merchant for their data (an export, never an erasure)."""
    request = ShopifyCustomersDataRequest.model_validate_json(body)
    return Notice(
        DetailType.DATA_REQUESTED,
        key=f"{SOURCE}:customer:{request.customer.id}",
        data={
            "kind": TOPIC_CUSTOMERS_DATA_REQUEST,
            "data_request_id": str(request.data_request.id),
            "shop_domain": request.shop_domain,
            "customer_id": str(request.customer.id),
            "orders_requested": [str(order_id) for order_id in request.orders_requested],
        },
    )


def _address(address: ShopifyAddress) -> AddressFields:
    country = _clean(address.get("country_code"))
    return {
        "line1": _clean(address.get("address1")),
        "line2": _clean(address.get("address2")),
        "city": _clean(address.get("city")),
        "region": _first_text(address.get("province_code"), address.get("province")),
        "postal_code": _clean(address.get("zip")),
        # Shopify writes odd placeholders for unknown countries; an address without a country beats a failed order.
        "country": (
            country.upper() if country and len(country) == 2 and country.isascii() and country.isalpha() else None
        ),
        "company": _clean(address.get("company")),
    }


def _first_filled(*addresses: ShopifyAddress | None) -> ShopifyAddress | None:
    for address in addresses:
        if _filled(address):
            return address
    return None


def _filled(address: ShopifyAddress | None) -> bool:
    # Every ShopifyAddress field is optional text, so "filled" means any of them holds more than blanks.
    if address:
        for value in cast("Iterable[str | None]", address.values()):
            if value and not value.isspace():
                return True
    return False


def _money(amount: str | Decimal, currency: str) -> Money | MoneyFields:
    """Money's fields, validated as Money inside the model that holds them (Order.of, Refund.of); zero, the most
    common amount by far, is the one shared Money of its currency."""
    units = minor_units(amount, currency)
    return {"amount": units, "currency": currency} if units else zero(currency)


def _sum(amounts: Sequence[str], currency: str, less: Sequence[str] = ()) -> Money | MoneyFields:
    """Σ amounts - Σ less as Money's fields (see _money)."""
    units = _sum_units(amounts, currency, less)
    return {"amount": units, "currency": currency} if units else zero(currency)


def _sum_units(amounts: Sequence[str], currency: str, less: Sequence[str] = ()) -> int:
    """Σ amounts - Σ less, exactly, in minor units. Shopify writes every amount with its currency's decimals; should
    one have more, the sum is taken first (in exact fractions of the minor unit), so such parts may still add up."""
    try:
        total = 0
        for amount in amounts:
            total += minor_units(amount, currency)
        for amount in less:
            total -= minor_units(amount, currency)
        return total
    except ValueError:
        exact = sum((exact_minor_units(amount, currency) for amount in amounts), Fraction(0))
        exact -= sum((exact_minor_units(amount, currency) for amount in less), Fraction(0))
        return whole_minor_units(exact, currency)


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def _first_text(*values: str | None) -> str | None:
    """The first value that is more than blanks, stripped."""
    for value in values:
        if value and (text := value.strip()):
            return text
    return None


# ---- webhook source ----------------------------------------------------------------------------------------------

ORDER_EVENTS: dict[str, DetailType] = {
    TOPIC_ORDERS_CREATE: DetailType.ORDER_PLACED,
    TOPIC_ORDERS_UPDATED: DetailType.ORDER_UPDATED,
    TOPIC_ORDERS_PAID: DetailType.ORDER_PAID,
    TOPIC_ORDERS_CANCELLED: DetailType.ORDER_CANCELLED,
    TOPIC_ORDERS_FULFILLED: DetailType.ORDER_FULFILLED,
}
NOTICES: dict[str, Callable[[bytes], Notice]] = {
    TOPIC_CUSTOMERS_DELETE: customer_deleted,
    TOPIC_CUSTOMERS_REDACT: customer_redact_requested,
    TOPIC_SHOP_REDACT: shop_redact_requested,
    TOPIC_CUSTOMERS_DATA_REQUEST: customer_data_requested,
}


@dataclass(frozen=True)
class ShopifyWebhooks:
    """Shopify as ingest and convert see it (crmsync.sources.base.WebhookSource)."""

    name: str = SOURCE
    secret_setting: str = "shopify_secret_id"  # noqa: S105 - the name of a setting, not a secret
    handled_topics: frozenset[str] = HANDLED_TOPICS

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return False

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        verify(body, headers.get("x-shopify-hmac-sha256"), secrets)

    def topic(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return headers.get("x-shopify-topic")

    def account(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return headers.get("x-shopify-shop-domain")

    def receipt_id(self, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
        # Shopify documents both ids as the dedupe key: the event id is stable across subscriptions.
        delivery = headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id")
        if not delivery:
            delivery = "sha256-" + hashlib.sha256(body).hexdigest()
        return f"shopify:{self.account(headers, payload) or '-'}:{delivery}"

    def convert(self, topic: str, body: bytes, *, receipt_id: str) -> Converted:
        if topic in ORDER_EVENTS:
            customer, order = order_to_canonical(parse_order(body), receipt_id=receipt_id)
            return Converted(customer=customer, entities=((ORDER_EVENTS[topic], order),))
        if topic == TOPIC_REFUNDS_CREATE:
            # The refund body names the order, not the customer: identity comes from the order's own webhook.
            refund = refund_to_canonical(parse_refund(body), receipt_id=receipt_id)
            return Converted(entities=((DetailType.REFUND_ISSUED, refund),))
        if topic in CUSTOMER_TOPICS:
            return Converted(customer=customer_to_canonical(parse_customer(body), receipt_id=receipt_id))
        if topic in NOTICES:
            # Compliance requests are answered 200 once stored; convert records them (erasure is done elsewhere).
            return Converted(notices=(NOTICES[topic](body),))
        raise UnsupportedTopic(f"no converter for shopify {topic}")
