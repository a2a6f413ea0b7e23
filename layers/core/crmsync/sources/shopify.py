"""Shopify webhooks: signature check, REST Admin payloads (orders, refunds, customers, the mandatory compliance
topics), conversion to canonical models."""

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from crmsync.messages import DetailType
from crmsync.models import (
    Address,
    Customer,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
    UtcDatetime,
    normalize_email,
    normalize_phone,
)
from crmsync.sources.base import Converted, Notice, UnsupportedTopic, sign_base64_hmac, verify_base64_hmac

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


class _Payload(BaseModel):
    # Webhook bodies carry hundreds of fields and Shopify adds more each API version; read only what we use.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ShopifyMoney(_Payload):
    amount: Amount
    currency_code: CurrencyCode


class ShopifyMoneySet(_Payload):
    shop_money: ShopifyMoney
    presentment_money: ShopifyMoney


class ShopifyAddress(_Payload):
    first_name: str | None = None
    last_name: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country_code: str | None = None
    phone: str | None = None


class ShopifyMarketingConsent(_Payload):
    state: str | None = None


class ShopifyCustomer(_Payload):
    id: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    accepts_marketing: bool | None = None  # older API versions
    email_marketing_consent: ShopifyMarketingConsent | None = None  # its replacement
    default_address: ShopifyAddress | None = None


class ShopifyLineItem(_Payload):
    id: int
    sku: str | None = None
    title: str
    quantity: int
    price: Amount
    total_discount: Amount = "0"


class ShopifyShippingLine(_Payload):
    price: Amount


class ShopifyTransaction(_Payload):
    kind: str
    status: str | None = None
    amount: Amount
    currency: CurrencyCode | None = None
    test: bool | None = None


class ShopifyOrderTransaction(_Payload):
    # Only the payment id is read from an order's own transactions, so nothing else of them can fail an order.
    authorization: str | None = None


class ShopifyRefund(_Payload):
    transactions: tuple[ShopifyTransaction, ...] = ()


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
    created_at: UtcDatetime
    updated_at: UtcDatetime
    processed_at: UtcDatetime | None = None
    cancelled_at: UtcDatetime | None = None
    closed_at: UtcDatetime | None = None
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


class ShopifyRefundLineItem(_Payload):
    subtotal_set: ShopifyMoneySet | None = None  # API 2019-10 on; old bodies price refunds by transactions only
    total_tax_set: ShopifyMoneySet | None = None


class ShopifyOrderAdjustment(_Payload):
    # Signed from the order's side: a refunded shipping charge of 5.00 is "-5.00".
    amount_set: ShopifyMoneySet | None = None
    tax_amount_set: ShopifyMoneySet | None = None


class ShopifyRefundResource(_Payload):
    """The refunds/create body: the bare REST Refund resource (not the refund summary inside an order)."""

    id: int
    order_id: int
    created_at: UtcDatetime
    processed_at: UtcDatetime | None = None
    note: str | None = None
    transactions: tuple[ShopifyTransaction, ...] = ()
    refund_line_items: tuple[ShopifyRefundLineItem, ...] = ()
    order_adjustments: tuple[ShopifyOrderAdjustment, ...] = ()


def parse_refund(body: bytes) -> ShopifyRefundResource:
    """Validate a raw refunds/create webhook body; pydantic.ValidationError says what does not fit."""
    return ShopifyRefundResource.model_validate_json(body)


class ShopifyCustomerResource(ShopifyCustomer):
    """The customers/create and customers/update body: the bare REST Customer resource."""

    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime


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
    email = (
        normalize_email(order.customer.email if order.customer else None)
        or normalize_email(order.email)
        or normalize_email(order.contact_email)
    )
    customer_id = str(order.customer.id) if order.customer else None
    currency = order.currency.upper()
    canonical = Order(
        source=SOURCE,
        source_id=str(order.id),
        source_version=order.updated_at,
        receipt_id=receipt_id,
        name=order.name,
        status=_status(order),
        fulfillment_status=order.fulfillment_status,
        total=Money.from_decimal(order.current_total_price or order.total_price, currency),
        presentment_total=_presentment_total(order),
        subtotal=_money(order.current_subtotal_price or order.subtotal_price, currency),
        total_tax=_money(order.current_total_tax or order.total_tax, currency),
        total_discounts=_money(order.current_total_discounts or order.total_discounts, currency),
        total_shipping=_shipping(order, currency),
        refunded=_refunded(order, currency),
        line_items=tuple(
            LineItem(
                source_id=str(item.id),
                sku=_clean(item.sku),
                title=item.title,
                quantity=item.quantity,
                unit_price=Money.from_decimal(item.price, currency),
                total_discount=Money.from_decimal(item.total_discount, currency),
            )
            for item in order.line_items
        ),
        customer_email=email,
        customer_source_id=customer_id,
        placed_at=order.processed_at or order.created_at,
        cancelled_at=order.cancelled_at,
        closed_at=order.closed_at,
        test=order.test,
        transaction_ids=_transaction_ids(order),
    )
    if order.customer is None and email is None:
        return None, canonical
    return _customer(order, email, customer_id, receipt_id), canonical


def _customer(order: ShopifyOrder, email: str | None, customer_id: str | None, receipt_id: str) -> Customer:
    shopper = order.customer or _NOBODY
    address = next(
        (a for a in (order.billing_address, order.shipping_address, shopper.default_address) if _filled(a)),
        None,
    )
    from_address = address or _NOWHERE
    phone = _first_text(shopper.phone, from_address.phone, order.phone)
    return Customer(
        source=SOURCE,
        source_id=customer_id,
        # The customer is read from this order, so the order's version is the one that orders these facts.
        source_version=order.updated_at,
        receipt_id=receipt_id,
        email=email,
        first_name=_first_text(shopper.first_name, from_address.first_name),
        last_name=_first_text(shopper.last_name, from_address.last_name),
        phone=normalize_phone(phone, from_address.country_code),
        address=_address(address) if address else None,
        accepts_marketing=_accepts_marketing(order),
        test=order.test,
    )


def _status(order: ShopifyOrder) -> OrderStatus:
    if order.cancelled_at is not None:
        return OrderStatus.CANCELLED
    # A financial status Shopify adds later must not fail conversion; pending ranks lowest, so it overrides nothing.
    return _FINANCIAL_STATUS.get(order.financial_status or "", OrderStatus.PENDING)


def _presentment_total(order: ShopifyOrder) -> Money | None:
    money_set = order.current_total_price_set or order.total_price_set
    if money_set is None:
        return None
    return Money.from_decimal(money_set.presentment_money.amount, money_set.presentment_money.currency_code)


def _shipping(order: ShopifyOrder, currency: str) -> Money | None:
    if order.total_shipping_price_set is not None:
        shop = order.total_shipping_price_set.shop_money
        return Money.from_decimal(shop.amount, shop.currency_code)
    if order.shipping_lines:
        return Money.from_decimal(sum((Decimal(line.price) for line in order.shipping_lines), Decimal(0)), currency)
    return None


def _transaction_ids(order: ShopifyOrder) -> tuple[str, ...]:
    """The gateway's payment ids (`authorization`: a Stripe charge or PaymentIntent id, a PayPal capture id...) of
    the order's own transactions, first seen first, each once, so a payment webhook can find this order.

    Only `authorization` is read: `receipt` is a free-form gateway dump whose keys differ by gateway, and
    `payment_gateway_names` names gateways, not payments. Refund transactions inside `refunds` are not the order's."""
    ids = (_clean(tx.authorization) for tx in order.transactions)
    return tuple(dict.fromkeys(txn for txn in ids if txn))


def _refund_succeeded(tx: ShopifyTransaction) -> bool:
    # Older API versions may omit the status of a recorded refund; only an explicit non-success status excludes one.
    return tx.kind == "refund" and tx.status in (None, "success")


def _refunded(order: ShopifyOrder, currency: str) -> Money | None:
    refunds = [tx for refund in order.refunds for tx in refund.transactions if _refund_succeeded(tx)]
    # Refund transactions are in the buyer's currency; they can be summed directly only when that is the shop's.
    if refunds and all((tx.currency or currency).upper() == currency for tx in refunds):
        return Money.from_decimal(sum((Decimal(tx.amount) for tx in refunds), Decimal(0)), currency)
    if order.financial_status in ("refunded", "partially_refunded") and order.current_total_price is not None:
        # Shop-currency fallback: current_total_price is what remains after refunds (and edits).
        difference = Decimal(order.total_price) - Decimal(order.current_total_price)
        return Money.from_decimal(difference, currency) if difference > 0 else None
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
    if consent is not None and consent.state in _MARKETING_CONSENT:
        return _MARKETING_CONSENT[consent.state]
    return shopper.accepts_marketing


def refund_to_canonical(refund: ShopifyRefundResource, *, receipt_id: str) -> Refund:
    """One refunds/create body as a canonical Refund of the order it names."""
    succeeded = [tx for tx in refund.transactions if _refund_succeeded(tx)]
    return Refund(
        source=SOURCE,
        source_id=str(refund.id),
        # processed_at is when the money moved (it may be back-dated on import); created_at when Shopify recorded it.
        source_version=refund.processed_at or refund.created_at,
        receipt_id=receipt_id,
        status=RefundStatus.SUCCEEDED if succeeded else RefundStatus.PENDING,
        amount=_paid_back(refund, succeeded) if succeeded else _priced_back(refund),
        order_id=str(refund.order_id),
        reason=_clean(refund.note),
        created_at=refund.created_at,
        test=any(tx.test for tx in refund.transactions),
    )


def _paid_back(refund: ShopifyRefundResource, succeeded: list[ShopifyTransaction]) -> Money:
    """The money that went back: the successful refund transactions, in their (the buyer's) currency."""
    currencies = {(tx.currency or _shop_currency(refund)).upper() for tx in succeeded}
    if len(currencies) != 1:
        raise ValueError(f"refund {refund.id} has successful transactions in several currencies: {sorted(currencies)}")
    return Money.from_decimal(sum((Decimal(tx.amount) for tx in succeeded), Decimal(0)), currencies.pop())


def _priced_back(refund: ShopifyRefundResource) -> Money:
    """No money moved yet (no transaction, or none succeeded): what the refund is worth in the shop currency.

    The refunded lines with their tax, less the order adjustments: Shopify signs those from the order's side, so a
    refunded 5.00 shipping charge is "-5.00" and a refund kept 2.00 short of the lines' worth is "+2.00"."""
    if any(line.subtotal_set is None for line in refund.refund_line_items) or any(
        adjustment.amount_set is None for adjustment in refund.order_adjustments
    ):
        raise ValueError(f"refund {refund.id} has no successful transaction and parts without shop money")
    lines = [
        money_set.shop_money
        for line in refund.refund_line_items
        for money_set in (line.subtotal_set, line.total_tax_set)
        if money_set is not None
    ]
    adjustments = [
        money_set.shop_money
        for adjustment in refund.order_adjustments
        for money_set in (adjustment.amount_set, adjustment.tax_amount_set)
        if money_set is not None
    ]
    currency = _shop_currency(refund)
    if any(money.currency_code.upper() != currency for money in (*lines, *adjustments)):
        raise ValueError(f"refund {refund.id} mixes shop currencies")
    worth = sum((Decimal(money.amount) for money in lines), Decimal(0))
    worth -= sum((Decimal(money.amount) for money in adjustments), Decimal(0))
    return Money.from_decimal(worth, currency)


def _shop_currency(refund: ShopifyRefundResource) -> str:
    money_sets = [
        *(line.subtotal_set for line in refund.refund_line_items),
        *(adjustment.amount_set for adjustment in refund.order_adjustments),
    ]
    for money_set in money_sets:
        if money_set is not None:
            return money_set.shop_money.currency_code.upper()
    raise ValueError(f"refund {refund.id} names no currency")


def customer_to_canonical(shopper: ShopifyCustomerResource, *, receipt_id: str) -> Customer:
    """A customers/create or customers/update body as a canonical Customer; contact details from the customer,
    else from their default address (whose country is the phone's region)."""
    address = shopper.default_address if _filled(shopper.default_address) else None
    from_address = address or _NOWHERE
    return Customer(
        source=SOURCE,
        source_id=str(shopper.id),
        source_version=shopper.updated_at,
        receipt_id=receipt_id,
        email=normalize_email(shopper.email),
        first_name=_first_text(shopper.first_name, from_address.first_name),
        last_name=_first_text(shopper.last_name, from_address.last_name),
        phone=normalize_phone(_first_text(shopper.phone, from_address.phone), _clean(from_address.country_code)),
        address=_address(address) if address else None,
        accepts_marketing=_customer_consent(shopper),
        test=False,  # Shopify customers have no test flag
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


def _address(address: ShopifyAddress) -> Address:
    country = _clean(address.country_code)
    return Address(
        line1=_clean(address.address1),
        line2=_clean(address.address2),
        city=_clean(address.city),
        region=_first_text(address.province_code, address.province),
        postal_code=_clean(address.zip),
        # Shopify writes odd placeholders for unknown countries; an address without a country beats a failed order.
        country=country.upper() if country and len(country) == 2 and country.isascii() and country.isalpha() else None,
    )


def _filled(address: ShopifyAddress | None) -> bool:
    # Every ShopifyAddress field is optional text, so "filled" means any of them holds more than blanks.
    return address is not None and any(value and not value.isspace() for value in address.__dict__.values())


def _money(amount: str | None, currency: str) -> Money | None:
    return None if amount is None else Money.from_decimal(amount, currency)


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def _first_text(*values: str | None) -> str | None:
    return next((text for text in map(_clean, values) if text), None)


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
