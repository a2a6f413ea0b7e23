"""Stripe webhooks: Stripe-Signature check, event envelope and objects, conversion to canonical models."""

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, NamedTuple, NotRequired, TypedDict, cast

from pydantic import Field, StringConstraints
from pydantic_core import SchemaValidator

from crmsync.messages import DetailType
from crmsync.models import (
    Address,
    AddressFields,
    Customer,
    Dispute,
    DisputeStatus,
    MoneyFields,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    normalize_country,
    normalize_email,
    normalize_phone,
)
from crmsync.sources.base import Converted, Notice, SignatureError, UnsupportedTopic, json_validator

SOURCE = "stripe"
DEFAULT_TOLERANCE_SECONDS = 300  # what every Stripe SDK uses

# ---- signature -------------------------------------------------------------------------------------------------
# Hand-written: importing the `stripe` package costs more than the whole ingest cold-start budget allows.


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """One v1 value: hex(HMAC-SHA256(secret, "<timestamp>." + raw body)); the whole whsec_... string is the key."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header Stripe sends for this body: `t=<timestamp>,v1=<hex>`."""
    return f"t={timestamp},v1={signature(body, secret, timestamp)}"


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """The signed timestamp and every v1 signature of `t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator:
            raise SignatureError("malformed signature header")
        if key == "t":
            # ASCII digits only (int() would take " 1", "+1", "1_0" and other scripts' digits), and short enough
            # that int() can never refuse it.
            if timestamp is not None or not (value.isascii() and value.isdigit() and len(value) <= 12):
                raise SignatureError("malformed signature header")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
        # v0 is Stripe's legacy test-mode scheme and anything else is a scheme we do not know: both are ignored.
    if timestamp is None:
        raise SignatureError("malformed signature header")
    if not signatures:
        raise SignatureError("no v1 signature")
    return timestamp, signatures


def verify(
    body: bytes,
    signature_header: str | None,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureError unless a v1 signature fits the raw body under one of the secrets (current first) and
    the signed timestamp lies within the tolerance of `now`, in either direction."""
    # A bare string is a Sequence[str] too; iterating it would turn each character into a guessable key.
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    # An empty key would let anyone sign, so blank entries count as no secret at all.
    keys = [key for key in candidates if key.strip()]
    if not keys:
        raise SignatureError("no secret configured")
    if signature_header is None or not signature_header.strip():
        raise SignatureError("missing signature")
    timestamp, given = parse_signature_header(signature_header)
    offered = [value.encode("utf-8", "replace") for value in given]
    matched = False
    for key in keys:  # no early exit: every key and every v1 value costs the same, whichever one matches
        expected = signature(body, key, timestamp).encode("ascii")
        for value in offered:
            matched |= hmac.compare_digest(expected, value)
    if not matched:
        raise SignatureError("signature mismatch")
    # Checked only once the timestamp is proven authentic, so this reason always means a stale or early replay.
    # Stricter than Stripe's SDKs, which let a future timestamp through: a clock that far ahead is not Stripe's.
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError("timestamp outside the tolerance")


# ---- payload ---------------------------------------------------------------------------------------------------

# Stripe sends integer minor units; strict, so a float (or a bool, or a string) never passes as an amount.
Amount = Annotated[int, Field(strict=True, ge=0)]
Timestamp = Annotated[int, Field(strict=True, ge=0)]  # unix seconds
CurrencyCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]{3}$")]
Metadata = dict[str, Any]  # Stripe stores strings; anything else is read leniently and only for order refs


# Every payload type is a TypedDict, not a model: pydantic-core builds a dict for a fraction of a model's cost, and
# validates it alike. Unknown keys are ignored: Stripe adds fields with every API version, and only these are read.


class StripeAddress(TypedDict, total=False):
    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None


class StripeContact(TypedDict, total=False):
    """billing_details, shipping, a checkout session's customer_details: a name, a way to reach, an address."""

    email: str | None
    name: str | None
    phone: str | None
    address: StripeAddress | None


class StripeOutcome(TypedDict, total=False):
    risk_level: str | None
    risk_score: int | None


class StripeRefund(TypedDict):
    id: str
    amount: Amount
    currency: CurrencyCode
    status: NotRequired[str | None]
    charge: NotRequired[str | None]
    payment_intent: NotRequired[str | None]
    reason: NotRequired[str | None]
    created: Timestamp


class StripeRefundList(TypedDict, total=False):
    data: tuple[StripeRefund, ...]
    has_more: bool


class StripeCharge(TypedDict):
    id: str
    amount: Amount
    amount_refunded: NotRequired[Amount]  # 0 when absent
    currency: CurrencyCode
    status: str
    captured: NotRequired[bool]  # True when absent
    payment_intent: NotRequired[str | None]
    customer: NotRequired[str | None]
    receipt_email: NotRequired[str | None]
    billing_details: NotRequired[StripeContact | None]
    outcome: NotRequired[StripeOutcome | None]
    failure_code: NotRequired[str | None]
    failure_message: NotRequired[str | None]
    description: NotRequired[str | None]
    metadata: NotRequired[Metadata]
    refunds: NotRequired[StripeRefundList | None]  # embedded before API 2022-11-15, absent since
    created: Timestamp


class StripeChargeList(TypedDict, total=False):
    data: tuple[StripeCharge, ...]
    has_more: bool


class StripePaymentError(TypedDict, total=False):
    code: str | None
    message: str | None


class StripePaymentIntent(TypedDict):
    id: str
    amount: Amount
    amount_received: NotRequired[Amount]  # 0 when absent
    currency: CurrencyCode
    status: str
    customer: NotRequired[str | None]
    receipt_email: NotRequired[str | None]
    description: NotRequired[str | None]
    metadata: NotRequired[Metadata]
    last_payment_error: NotRequired[StripePaymentError | None]
    charges: NotRequired[StripeChargeList | None]  # API versions before 2022-11-15: the charges, newest first
    latest_charge: NotRequired[str | None]  # 2022-11-15 and later: only the id, so no billing details
    created: Timestamp


class StripeEvidenceDetails(TypedDict, total=False):
    due_by: Timestamp | None


class StripeDispute(TypedDict):
    id: str
    amount: Amount
    currency: CurrencyCode
    status: str
    charge: NotRequired[str | None]
    payment_intent: NotRequired[str | None]
    reason: NotRequired[str | None]
    evidence_details: NotRequired[StripeEvidenceDetails | None]
    created: Timestamp


class StripeEarlyFraudWarning(TypedDict):
    id: str
    charge: NotRequired[str | None]
    payment_intent: NotRequired[str | None]
    fraud_type: NotRequired[str | None]
    created: Timestamp


class StripeCustomer(TypedDict):
    id: str
    email: NotRequired[str | None]
    name: NotRequired[str | None]
    phone: NotRequired[str | None]
    address: NotRequired[StripeAddress | None]
    shipping: NotRequired[StripeContact | None]


class StripeInvoice(TypedDict):
    id: str
    number: NotRequired[str | None]
    amount_due: Amount
    amount_paid: Amount
    currency: CurrencyCode
    status: NotRequired[str | None]
    customer: NotRequired[str | None]
    customer_email: NotRequired[str | None]
    customer_name: NotRequired[str | None]
    customer_phone: NotRequired[str | None]
    customer_address: NotRequired[StripeAddress | None]
    payment_intent: NotRequired[str | None]  # gone from invoices since API 2025-03-31.basil
    charge: NotRequired[str | None]  # likewise
    metadata: NotRequired[Metadata]
    created: Timestamp


class StripeCheckoutSession(TypedDict):
    id: str
    mode: NotRequired[str | None]
    amount_total: NotRequired[Amount | None]  # null for setup-mode sessions, which move no money
    currency: NotRequired[CurrencyCode | None]
    payment_status: str
    payment_intent: NotRequired[str | None]
    customer: NotRequired[str | None]
    customer_email: NotRequired[str | None]
    customer_details: NotRequired[StripeContact | None]
    client_reference_id: NotRequired[str | None]
    metadata: NotRequired[Metadata]
    created: Timestamp


class StripeEventData[T](TypedDict):
    object: T


class StripeEvent[T](TypedDict):
    """The envelope every webhook shares; `data.object` is the resource as the endpoint's API version shapes it."""

    id: str
    type: str
    created: Timestamp
    livemode: Annotated[bool, Field(strict=True)]  # decides test vs live: never read "no" or 0 as a verdict
    api_version: NotRequired[str | None]
    account: NotRequired[str | None]  # set for Connect events: the connected account the object lives in
    data: StripeEventData[T]


class EventParser[T]:
    """Validates a webhook body as StripeEvent[T]; pydantic.ValidationError says what does not fit.

    The validator is built on first use, so ingest, which imports this module only to verify signatures, never
    pays for it."""

    def __init__(self, shape: Any) -> None:
        self._shape = shape  # StripeEvent[<resource>]

    @cached_property
    def _validator(self) -> SchemaValidator:
        return json_validator(self._shape)

    def validate_json(self, body: bytes) -> StripeEvent[T]:
        event: StripeEvent[T] = self._validator.validate_json(body)
        return event


# One parser per resource: pydantic builds a validator per concrete envelope.
PaymentIntentEvent = EventParser[StripePaymentIntent](StripeEvent[StripePaymentIntent])
ChargeEvent = EventParser[StripeCharge](StripeEvent[StripeCharge])
RefundEvent = EventParser[StripeRefund](StripeEvent[StripeRefund])
DisputeEvent = EventParser[StripeDispute](StripeEvent[StripeDispute])
EarlyFraudWarningEvent = EventParser[StripeEarlyFraudWarning](StripeEvent[StripeEarlyFraudWarning])
CustomerEvent = EventParser[StripeCustomer](StripeEvent[StripeCustomer])
InvoiceEvent = EventParser[StripeInvoice](StripeEvent[StripeInvoice])
CheckoutSessionEvent = EventParser[StripeCheckoutSession](StripeEvent[StripeCheckoutSession])


# ---- conversion ------------------------------------------------------------------------------------------------

_INTENT_STATUS: dict[str, PaymentStatus] = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "processing": PaymentStatus.PENDING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "canceled": PaymentStatus.FAILED,
}
_REFUND_STATUS: dict[str, RefundStatus] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}
_DISPUTE_STATUS: dict[str, DisputeStatus] = {
    "warning_needs_response": DisputeStatus.WARNING,
    "warning_under_review": DisputeStatus.WARNING,
    # An inquiry that closed without becoming a chargeback: the money stays, and it must rank as closed.
    "warning_closed": DisputeStatus.WON,
    "needs_response": DisputeStatus.NEEDS_RESPONSE,
    "appeal_needs_response": DisputeStatus.NEEDS_RESPONSE,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "appeal_under_review": DisputeStatus.UNDER_REVIEW,
    "won": DisputeStatus.WON,
    # Stopped before it became a chargeback, typically by an automatic refund (Visa RDR): closed, money returned.
    "prevented": DisputeStatus.LOST,
    "lost": DisputeStatus.LOST,
    # Older API versions: the merchant refunded to settle it; closed, and the money is gone, as when lost.
    "charge_refunded": DisputeStatus.LOST,
}
# Metadata keys shops and plugins use to name their order, most specific first.
ORDER_REF_KEYS = ("order_id", "order_number", "woocommerce_order_id", "shopify_order_id", "order")


class _Event(NamedTuple):
    """What every entity of one webhook shares."""

    receipt_id: str
    version: datetime  # the event's `created`: Stripe's version of everything the event carries
    test: bool


def _context(event: StripeEvent[Any], receipt_id: str) -> _Event:
    return _Event(receipt_id, _time(event["created"]), not event["livemode"])


def payment_intent_to_canonical(event: StripeEvent[StripePaymentIntent], *, failed: bool, receipt_id: str) -> Converted:
    ctx = _context(event, receipt_id)
    intent = event["data"]["object"]
    charges = (intent.get("charges") or _NO_CHARGES).get("data", ())
    charge = charges[0] if charges else None
    status = _INTENT_STATUS.get(intent["status"], PaymentStatus.FAILED if failed else PaymentStatus.PENDING)
    amount = intent.get("amount_received", 0) if status is PaymentStatus.SUCCEEDED else intent["amount"]
    billing = (charge.get("billing_details") if charge else None) or _NOBODY
    phone, address = _contact(billing.get("phone"), billing.get("address"))
    error = intent.get("last_payment_error") or _NO_ERROR
    outcome = (charge.get("outcome") if charge else None) or _NO_OUTCOME
    payment = Payment.of(
        {
            "source": SOURCE,
            "source_id": intent["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "test": ctx.test,
            "kind": "payment",
            "status": status,
            "amount": _money(amount, intent["currency"]),
            "customer_email": normalize_email(intent.get("receipt_email")) or normalize_email(billing.get("email")),
            "customer_source_id": intent.get("customer"),
            "customer_name": _clean(billing.get("name")),
            "customer_phone": phone,
            "billing_address": address,
            "order_refs": _order_refs(intent.get("metadata", {})),
            "transaction_ids": _unique([intent["id"], *[c["id"] for c in charges], intent.get("latest_charge")]),
            "description": _clean(intent.get("description")),
            "failure_code": _clean(error.get("code")),  # what charge.failure_code holds too, so both events agree
            "failure_message": _clean(error.get("message")),
            "risk_level": outcome.get("risk_level"),
            "risk_score": outcome.get("risk_score"),
            "created_at": _time(intent["created"]),
        }
    )
    detail = DetailType.PAYMENT_FAILED if failed else DetailType.PAYMENT_SUCCEEDED
    return Converted(customer=_payer(ctx, payment), entities=((detail, payment),))


def charge_to_canonical(event: StripeEvent[StripeCharge], detail: DetailType, *, receipt_id: str) -> Converted:
    """A charge as the payment it belongs to, plus, on charge.refunded, every refund it lists."""
    ctx = _context(event, receipt_id)
    charge = event["data"]["object"]
    payment = _charge_payment(ctx, charge)
    refunds: list[tuple[DetailType, Refund]] = []
    listed = charge.get("refunds")
    if detail is DetailType.REFUND_ISSUED and listed is not None:
        refunds = [(detail, _refund(ctx, refund, payment.source_id)) for refund in listed.get("data", ())]
    return Converted(customer=_payer(ctx, payment), entities=((detail, payment), *refunds))


def refund_to_canonical(event: StripeEvent[StripeRefund], *, receipt_id: str) -> Converted:
    refund = event["data"]["object"]
    payment_id = refund.get("payment_intent") or refund.get("charge")
    return Converted(entities=((DetailType.REFUND_ISSUED, _refund(_context(event, receipt_id), refund, payment_id)),))


def dispute_to_canonical(event: StripeEvent[StripeDispute], detail: DetailType, *, receipt_id: str) -> Converted:
    ctx = _context(event, receipt_id)
    dispute = event["data"]["object"]
    due_by = (dispute.get("evidence_details") or _NO_EVIDENCE).get("due_by")
    canonical = Dispute.of(
        {
            "source": SOURCE,
            "source_id": dispute["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "test": ctx.test,
            # A status Stripe adds later must not fail conversion; warning ranks lowest, so it overrides nothing.
            "status": _DISPUTE_STATUS.get(dispute["status"], DisputeStatus.WARNING),
            "amount": _money(dispute["amount"], dispute["currency"]),
            "payment_id": dispute.get("payment_intent") or dispute.get("charge"),
            "reason": _clean(dispute.get("reason")),
            "evidence_due_by": None if due_by is None else _time(due_by),
            "created_at": _time(dispute["created"]),
        }
    )
    return Converted(entities=((detail, canonical),))


def early_fraud_warning_to_canonical(event: StripeEvent[StripeEarlyFraudWarning], *, receipt_id: str) -> Converted:
    """A card issuer's fraud report: no money is held yet, so a dispute in the warning state with no amount."""
    ctx = _context(event, receipt_id)
    warning = event["data"]["object"]
    canonical = Dispute.of(
        {
            "source": SOURCE,
            "source_id": warning["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "test": ctx.test,
            "status": DisputeStatus.WARNING,
            "amount": None,
            "payment_id": warning.get("payment_intent") or warning.get("charge"),
            "reason": _clean(warning.get("fraud_type")),
            "created_at": _time(warning["created"]),
        }
    )
    return Converted(entities=((DetailType.RISK_FLAGGED, canonical),))


def customer_to_canonical(event: StripeEvent[StripeCustomer], *, receipt_id: str) -> Converted:
    """The Stripe customer; its shipping details stand in for whatever the customer object leaves blank."""
    ctx = _context(event, receipt_id)
    customer = event["data"]["object"]
    shipping = customer.get("shipping") or _NOBODY
    address = customer.get("address") if _filled(customer.get("address")) else shipping.get("address")
    phone, address_fields = _contact(_first_text(customer.get("phone"), shipping.get("phone")), address)
    first_name, last_name = _split_name(_first_text(customer.get("name"), shipping.get("name")))
    canonical = Customer.of(
        {
            "source": SOURCE,
            "source_id": customer["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "email": normalize_email(customer.get("email")),
            "first_name": first_name,
            "last_name": last_name,
            "phone": phone,
            "address": address_fields,
            "test": ctx.test,
        }
    )
    return Converted(customer=canonical)


def customer_deleted_to_canonical(event: StripeEvent[StripeCustomer], *, receipt_id: str) -> Converted:
    customer = event["data"]["object"]
    notice = Notice(
        DetailType.CUSTOMER_DELETED,
        key=f"{SOURCE}:customer:{customer['id']}",
        data={"email": normalize_email(customer.get("email"))},
    )
    return Converted(notices=(notice,))


def invoice_to_canonical(event: StripeEvent[StripeInvoice], *, paid: bool, receipt_id: str) -> Converted:
    """An invoice's payment: the payment intent it was paid through, else (basil and later) the invoice itself."""
    ctx = _context(event, receipt_id)
    invoice = event["data"]["object"]
    phone, address = _contact(invoice.get("customer_phone"), invoice.get("customer_address"))
    payment = Payment.of(
        {
            "source": SOURCE,
            "source_id": invoice.get("payment_intent") or invoice["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "test": ctx.test,
            "kind": "payment",
            "status": PaymentStatus.SUCCEEDED if paid else PaymentStatus.FAILED,
            "amount": _money(invoice["amount_paid"] if paid else invoice["amount_due"], invoice["currency"]),
            "customer_email": normalize_email(invoice.get("customer_email")),
            "customer_source_id": invoice.get("customer"),
            "customer_name": _clean(invoice.get("customer_name")),
            "customer_phone": phone,
            "billing_address": address,
            "order_refs": _order_refs(invoice.get("metadata", {})),
            "transaction_ids": _unique([invoice.get("payment_intent"), invoice.get("charge"), invoice["id"]]),
            "description": f"Invoice {invoice.get('number') or invoice['id']}",
            "created_at": _time(invoice["created"]),
        }
    )
    detail = DetailType.PAYMENT_SUCCEEDED if paid else DetailType.PAYMENT_FAILED
    return Converted(customer=_payer(ctx, payment), entities=((detail, payment),))


def checkout_session_to_canonical(event: StripeEvent[StripeCheckoutSession], *, receipt_id: str) -> Converted:
    """A completed Checkout: the payment (pending until an asynchronous method settles) and who paid."""
    ctx = _context(event, receipt_id)
    session = event["data"]["object"]
    details = session.get("customer_details") or _NOBODY
    phone, address = _contact(details.get("phone"), details.get("address"))
    email = normalize_email(details.get("email")) or normalize_email(session.get("customer_email"))
    amount, currency = session.get("amount_total"), session.get("currency")
    if amount is None or currency is None:  # setup mode: a saved card, no money moved
        customer = _person(
            ctx,
            source_id=session.get("customer"),
            email=email,
            name=_clean(details.get("name")),
            phone=phone,
            address=address,
        )
        return Converted(customer=customer)
    payment = Payment.of(
        {
            "source": SOURCE,
            "source_id": session.get("payment_intent") or session["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "test": ctx.test,
            "kind": "payment",
            # "no_payment_required" (a free order) is settled too: nothing will ever be pending on it.
            "status": PaymentStatus.SUCCEEDED
            if session["payment_status"] in ("paid", "no_payment_required")
            else PaymentStatus.PENDING,
            "amount": _money(amount, currency),
            "customer_email": email,
            "customer_source_id": session.get("customer"),
            "customer_name": _clean(details.get("name")),
            "customer_phone": phone,
            "billing_address": address,
            "order_refs": _unique(
                [_clean(session.get("client_reference_id")), *_order_refs(session.get("metadata", {}))]
            ),
            "transaction_ids": _unique([session.get("payment_intent"), session["id"]]),
            "created_at": _time(session["created"]),
        }
    )
    return Converted(customer=_payer(ctx, payment), entities=((DetailType.PAYMENT_SUCCEEDED, payment),))


def _charge_payment(ctx: _Event, charge: StripeCharge) -> Payment:
    billing = charge.get("billing_details") or _NOBODY
    phone, address = _contact(billing.get("phone"), billing.get("address"))
    outcome = charge.get("outcome") or _NO_OUTCOME
    refunded = charge.get("amount_refunded", 0)
    return Payment.of(
        {
            "source": SOURCE,
            # The payment is the intent when there is one (DESIGN: stripe:payment:<pi id>), so charge and intent
            # events update the same deal; a charge made without an intent is its own payment.
            "source_id": charge.get("payment_intent") or charge["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "test": ctx.test,
            "kind": "payment",
            "status": _charge_status(charge),
            "amount": _money(charge["amount"], charge["currency"]),
            "amount_refunded": _money(refunded, charge["currency"]) if refunded else None,
            "customer_email": normalize_email(charge.get("receipt_email")) or normalize_email(billing.get("email")),
            "customer_source_id": charge.get("customer"),
            "customer_name": _clean(billing.get("name")),
            "customer_phone": phone,
            "billing_address": address,
            "order_refs": _order_refs(charge.get("metadata", {})),
            "transaction_ids": _unique([charge.get("payment_intent"), charge["id"]]),
            "description": _clean(charge.get("description")),
            "failure_code": _clean(charge.get("failure_code")),
            "failure_message": _clean(charge.get("failure_message")),
            "risk_level": outcome.get("risk_level"),
            "risk_score": outcome.get("risk_score"),
            "created_at": _time(charge["created"]),
        }
    )


def _charge_status(charge: StripeCharge) -> PaymentStatus:
    if charge["status"] == "failed":
        return PaymentStatus.FAILED
    if charge["status"] != "succeeded":  # "pending", or a status Stripe adds later: the lowest rank overrides nothing
        return PaymentStatus.PENDING
    refunded = charge.get("amount_refunded", 0)
    if refunded and refunded >= charge["amount"]:
        return PaymentStatus.REFUNDED
    if refunded:
        return PaymentStatus.PARTIALLY_REFUNDED
    return PaymentStatus.SUCCEEDED if charge.get("captured", True) else PaymentStatus.AUTHORIZED


def _refund(ctx: _Event, refund: StripeRefund, payment_id: str | None) -> Refund:
    return Refund.of(
        {
            "source": SOURCE,
            "source_id": refund["id"],
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "test": ctx.test,
            "status": _REFUND_STATUS.get(refund.get("status") or "", RefundStatus.PENDING),
            "amount": _money(refund["amount"], refund["currency"]),
            "payment_id": refund.get("payment_intent") or payment_id,
            "reason": _clean(refund.get("reason")),
            "created_at": _time(refund["created"]),
        }
    )


def _payer(ctx: _Event, payment: Payment) -> Customer | None:
    """The person a payment names, from the fields the payment already normalised."""
    return _person(
        ctx,
        source_id=payment.customer_source_id,
        email=payment.customer_email,
        name=payment.customer_name,
        phone=payment.customer_phone,
        address=payment.billing_address,
    )


def _person(
    ctx: _Event,
    *,
    source_id: str | None,
    email: str | None,
    name: str | None,
    phone: str | None,
    address: Address | AddressFields | None,
) -> Customer | None:
    """A customer when there is something to match it by: an email, a Stripe customer id, or a name and phone."""
    first_name, last_name = _split_name(name)
    if not (email or source_id or (first_name and phone)):
        return None
    return Customer.of(
        {
            "source": SOURCE,
            "source_id": source_id,
            "source_version": ctx.version,
            "receipt_id": ctx.receipt_id,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "phone": phone,
            "address": address,
            "test": ctx.test,
        }
    )


# Stand-ins for missing billing details, errors, outcomes and lists, so field fallbacks read as one chain.
_NOBODY = StripeContact()
_NO_ERROR = StripePaymentError()
_NO_OUTCOME = StripeOutcome()
_NO_CHARGES = StripeChargeList()
_NO_EVIDENCE = StripeEvidenceDetails()


def _contact(phone: str | None, address: StripeAddress | None) -> tuple[str | None, AddressFields | None]:
    """The phone in E.164, read with the country of the address it came with, and that address, if filled."""
    country = _country(address)
    return normalize_phone(_clean(phone), country), _address(address, country)


def _split_name(name: str | None) -> tuple[str | None, str | None]:
    """Stripe keeps one name field: first word and the rest, on the first (Unicode) space."""
    text = _clean(name)
    if text is None:
        return None, None
    first, *rest = text.split(maxsplit=1)
    return first, rest[0] if rest else None


def _address(address: StripeAddress | None, country: str | None) -> AddressFields | None:
    """The address, with its country already read (_country), unless it is all nulls."""
    if not _filled(address):
        return None
    assert address is not None  # _filled says so
    return {
        "line1": _clean(address.get("line1")),
        "line2": _clean(address.get("line2")),
        "city": _clean(address.get("city")),
        "region": _clean(address.get("state")),
        "postal_code": _clean(address.get("postal_code")),
        "country": country,
    }


def _country(address: StripeAddress | None) -> str | None:
    code = _clean(address.get("country")) if address else None
    if code is None:
        return None
    if len(code) == 2 and code.isascii() and code.isalpha():  # what Stripe sends: ISO 3166-1 alpha-2
        return code.upper()
    return normalize_country(code)


def _filled(address: StripeAddress | None) -> bool:
    """Stripe sends an address of nulls rather than none at all."""
    if address:
        for part in cast("Iterable[str | None]", address.values()):  # every field is optional text
            if part and not part.isspace():
                return True
    return False


def _order_refs(metadata: Metadata) -> tuple[str, ...]:
    refs: dict[str, None] = {}  # first seen first, each once
    for key in ORDER_REF_KEYS:
        value = metadata.get(key)
        if value is None:
            continue
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            text = str(value).strip()
            if text:
                refs[text] = None
    return tuple(refs)


def _money(amount: int, currency: str) -> MoneyFields:
    """Money's fields, validated as Money inside the entity that holds them (Payment.of, Refund.of...)."""
    return {"amount": amount, "currency": currency.upper()}


def _time(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([value for value in values if value]))


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def _first_text(*values: str | None) -> str | None:
    return next((text for text in map(_clean, values) if text), None)


# ---- webhook source ----------------------------------------------------------------------------------------------

PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
PAYMENT_INTENT_FAILED = "payment_intent.payment_failed"
CHARGE_EVENTS: dict[str, DetailType] = {
    "charge.succeeded": DetailType.PAYMENT_SUCCEEDED,
    "charge.failed": DetailType.PAYMENT_FAILED,
    "charge.refunded": DetailType.REFUND_ISSUED,
}
REFUND_UPDATED = "charge.refund.updated"
DISPUTE_EVENTS: dict[str, DetailType] = {
    "charge.dispute.created": DetailType.DISPUTE_OPENED,
    "charge.dispute.updated": DetailType.DISPUTE_UPDATED,
    "charge.dispute.closed": DetailType.DISPUTE_CLOSED,
}
EARLY_FRAUD_WARNING_CREATED = "radar.early_fraud_warning.created"
CUSTOMER_UPSERTS = frozenset({"customer.created", "customer.updated"})
CUSTOMER_DELETED = "customer.deleted"
INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
CHECKOUT_SESSION_COMPLETED = "checkout.session.completed"
TOPICS = frozenset(
    {
        PAYMENT_INTENT_SUCCEEDED,
        PAYMENT_INTENT_FAILED,
        *CHARGE_EVENTS,
        REFUND_UPDATED,
        *DISPUTE_EVENTS,
        EARLY_FRAUD_WARNING_CREATED,
        *CUSTOMER_UPSERTS,
        CUSTOMER_DELETED,
        INVOICE_PAID,
        INVOICE_PAYMENT_FAILED,
        CHECKOUT_SESSION_COMPLETED,
    }
)


def to_canonical(topic: str, body: bytes, *, receipt_id: str) -> Converted:
    """Parse the event body as the topic's object and convert it; UnsupportedTopic for any other topic."""
    if topic in (PAYMENT_INTENT_SUCCEEDED, PAYMENT_INTENT_FAILED):
        intent = PaymentIntentEvent.validate_json(body)
        return payment_intent_to_canonical(intent, failed=topic == PAYMENT_INTENT_FAILED, receipt_id=receipt_id)
    if topic in CHARGE_EVENTS:
        return charge_to_canonical(ChargeEvent.validate_json(body), CHARGE_EVENTS[topic], receipt_id=receipt_id)
    if topic == REFUND_UPDATED:
        return refund_to_canonical(RefundEvent.validate_json(body), receipt_id=receipt_id)
    if topic in DISPUTE_EVENTS:
        dispute = DisputeEvent.validate_json(body)
        return dispute_to_canonical(dispute, DISPUTE_EVENTS[topic], receipt_id=receipt_id)
    if topic == EARLY_FRAUD_WARNING_CREATED:
        warning = EarlyFraudWarningEvent.validate_json(body)
        return early_fraud_warning_to_canonical(warning, receipt_id=receipt_id)
    if topic in CUSTOMER_UPSERTS:
        return customer_to_canonical(CustomerEvent.validate_json(body), receipt_id=receipt_id)
    if topic == CUSTOMER_DELETED:
        return customer_deleted_to_canonical(CustomerEvent.validate_json(body), receipt_id=receipt_id)
    if topic in (INVOICE_PAID, INVOICE_PAYMENT_FAILED):
        invoice = InvoiceEvent.validate_json(body)
        return invoice_to_canonical(invoice, paid=topic == INVOICE_PAID, receipt_id=receipt_id)
    if topic == CHECKOUT_SESSION_COMPLETED:
        return checkout_session_to_canonical(CheckoutSessionEvent.validate_json(body), receipt_id=receipt_id)
    raise UnsupportedTopic(f"no converter for stripe {topic}")


@dataclass(frozen=True)
class StripeWebhooks:
    """Stripe as ingest and convert see it (crmsync.sources.base.WebhookSource)."""

    name: str = SOURCE
    secret_setting: str = "stripe_secret_id"  # noqa: S105 - the name of a setting, not a secret
    handled_topics: frozenset[str] = TOPICS
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    clock: Callable[[], float] = time.time

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return False

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        verify(
            body,
            headers.get("stripe-signature"),
            secrets,
            now=self.clock(),
            tolerance_seconds=self.tolerance_seconds,
        )

    def topic(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return _text_field(payload, "type")

    def account(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return _text_field(payload, "account")

    def receipt_id(self, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
        # The event id (evt_...) is what Stripe documents as the dedupe key; it is unique per account.
        delivery = _text_field(payload, "id") or "sha256-" + hashlib.sha256(body).hexdigest()
        return f"{SOURCE}:{self.account(headers, payload) or 'self'}:{delivery}"

    def convert(self, topic: str, body: bytes, *, receipt_id: str) -> Converted:
        return to_canonical(topic, body, receipt_id=receipt_id)


def _text_field(payload: Any, name: str) -> str | None:
    value = payload.get(name) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None
