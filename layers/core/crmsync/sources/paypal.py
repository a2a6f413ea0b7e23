"""PayPal REST webhooks: certificate-based signature check, event payloads, conversion to canonical models.

Verification (facts.md 1.4). PayPal signs each delivery with the private key of a certificate it publishes at
PAYPAL-CERT-URL. The signed text is ``<transmission id>|<transmission time>|<webhook id>|<crc32 of the raw body>``
(the CRC as an unsigned decimal), the signature is RSA PKCS#1 v1.5 over SHA-256 (PAYPAL-AUTH-ALGO
``SHA256withRSA``), base64 in PAYPAL-TRANSMISSION-SIG. The "secret" is the webhook id of the app's subscription
(dashboard), not a key: anyone can read a certificate, so what makes a signature trustworthy is that the certificate
was fetched over HTTPS from one of PayPal's own API hosts. Hence the host allow-list, checked before anything is
fetched. ``mode="postback"`` asks PayPal instead (POST /v1/notifications/verify-webhook-signature): one API call
per delivery, and PayPal re-serialises the event we send it, which facts.md notes can give false FAILUREs.

Conversion. Captures (COMPLETED / DENIED / REVERSED) are Payments of kind "capture", so their deals are
``paypal:capture:<capture id>``; a refund is a Refund whose payment_id is the capture it refunds (the "up" link);
CHECKOUT.ORDER.APPROVED gives only the customer (the payer); disputes are Disputes on the disputed capture.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NotRequired, TypedDict, cast
from urllib.parse import urlsplit

from pydantic import AwareDatetime, StringConstraints
from pydantic_core import SchemaValidator

from crmsync.messages import DetailType
from crmsync.models import (
    AddressFields,
    Customer,
    Dispute,
    DisputeStatus,
    MoneyFields,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    UtcDatetime,
    minor_units,
    normalize_email,
    normalize_phone,
)
from crmsync.sources.base import Converted, SignatureError, UnsupportedTopic, json_validator

if TYPE_CHECKING:
    import urllib.request
    from http.client import HTTPMessage
    from typing import IO

    from cryptography.x509 import Certificate

SOURCE = "paypal"

TOPIC_CAPTURE_COMPLETED = "PAYMENT.CAPTURE.COMPLETED"
TOPIC_CAPTURE_DENIED = "PAYMENT.CAPTURE.DENIED"
TOPIC_CAPTURE_REFUNDED = "PAYMENT.CAPTURE.REFUNDED"
TOPIC_CAPTURE_REVERSED = "PAYMENT.CAPTURE.REVERSED"
TOPIC_ORDER_APPROVED = "CHECKOUT.ORDER.APPROVED"
TOPIC_DISPUTE_CREATED = "CUSTOMER.DISPUTE.CREATED"
TOPIC_DISPUTE_UPDATED = "CUSTOMER.DISPUTE.UPDATED"
TOPIC_DISPUTE_RESOLVED = "CUSTOMER.DISPUTE.RESOLVED"

CAPTURE_EVENTS: dict[str, DetailType] = {
    TOPIC_CAPTURE_COMPLETED: DetailType.PAYMENT_SUCCEEDED,
    TOPIC_CAPTURE_DENIED: DetailType.PAYMENT_FAILED,
    TOPIC_CAPTURE_REVERSED: DetailType.REFUND_ISSUED,
}
DISPUTE_EVENTS: dict[str, DetailType] = {
    TOPIC_DISPUTE_CREATED: DetailType.DISPUTE_OPENED,
    TOPIC_DISPUTE_UPDATED: DetailType.DISPUTE_UPDATED,
    TOPIC_DISPUTE_RESOLVED: DetailType.DISPUTE_CLOSED,
}
HANDLED_TOPICS = frozenset({*CAPTURE_EVENTS, TOPIC_CAPTURE_REFUNDED, TOPIC_ORDER_APPROVED, *DISPUTE_EVENTS})


# ---- signature -------------------------------------------------------------------------------------------------

AUTH_ALGORITHM = "SHA256withRSA"
# PayPal's live and sandbox API hosts, which serve the signing certificates. Exact names, not a suffix match:
# "*.paypal.com" would also trust any PayPal-hosted page that can be made to serve a chosen file.
PAYPAL_CERT_HOSTS = frozenset(
    {"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"}
)
FETCH_TIMEOUT_SECONDS = 5
MAX_CERT_BYTES = 64 * 1024  # PayPal's PEM (leaf and chain) is a few KiB
CERT_CACHE_SIZE = 16  # PayPal rotates certificates rarely; a handful of URLs is all a container ever sees

_HEADERS = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)

# Certificates by URL, per warm container: one download per certificate, not one per delivery. Bounded, oldest out.
_CERTIFICATES: dict[str, Certificate] = {}


@dataclass(frozen=True)
class Transmission:
    """The five PAYPAL-* headers of one delivery."""

    id: str
    time: str
    signature: str
    cert_url: str
    auth_algo: str


def transmission(headers: Mapping[str, str]) -> Transmission:
    """The signature headers (names in any case); SignatureError("missing signature") unless all are there."""
    lowered = {name.lower(): value for name, value in headers.items()}
    values = [(lowered.get(name) or "").strip() for name in _HEADERS]
    if not all(values):
        raise SignatureError("missing signature")
    return Transmission(*values)


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """The text PayPal signs: the CRC32 of the raw body as an unsigned decimal (zlib.crc32 is unsigned)."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()


def cert_host_allowed(url: str, extra_hosts: frozenset[str] = frozenset()) -> bool:
    """True for https://<one of PayPal's API hosts>/… on the default port, with no user info."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and port in (None, 443)
        and parts.username is None
        and parts.password is None
        and (parts.hostname or "") in PAYPAL_CERT_HOSTS | extra_hosts
    )


def fetch_certificate(url: str) -> bytes:
    """GET the certificate over HTTPS (TLS verified, 5 s timeout, redirects refused, size capped)."""
    if urlsplit(url).scheme != "https":
        raise ValueError("certificate URL must be https")
    import urllib.request  # lazily: ~40 ms of imports that only a cold certificate cache needs

    class RefuseRedirects(urllib.request.HTTPRedirectHandler):
        # A redirect could lead off the allow-listed host; returning None makes urllib raise HTTPError instead.
        def redirect_request(
            self,
            req: urllib.request.Request,
            fp: IO[bytes],
            code: int,
            msg: str,
            headers: HTTPMessage,
            newurl: str,
        ) -> urllib.request.Request | None:
            return None

    opener = urllib.request.build_opener(RefuseRedirects)
    with opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # https only, checked above
        data: bytes = response.read(MAX_CERT_BYTES + 1)
    if len(data) > MAX_CERT_BYTES:
        raise ValueError("certificate larger than expected")
    return data


def clear_certificate_cache() -> None:
    """Forget every downloaded certificate (tests; a warm container never needs to)."""
    _CERTIFICATES.clear()


def _valid_at(certificate: Certificate, now: datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def _certificate(url: str, fetch: Callable[[str], bytes], now: datetime) -> Certificate:
    cached = _CERTIFICATES.get(url)
    if cached is not None and _valid_at(cached, now):
        return cached
    from cryptography import x509  # lazily: ingest's cold start should not pay for cryptography

    try:
        data = fetch(url)
        certificate = (
            x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
        )
    except Exception as exc:  # network, HTTP status, size or parse errors: all mean "no usable certificate"
        raise SignatureError("certificate could not be fetched") from exc
    if now > certificate.not_valid_after_utc:
        raise SignatureError("certificate expired")
    if now < certificate.not_valid_before_utc:
        raise SignatureError("certificate not yet valid")
    _CERTIFICATES.pop(url, None)
    while len(_CERTIFICATES) >= CERT_CACHE_SIZE:
        del _CERTIFICATES[next(iter(_CERTIFICATES))]
    _CERTIFICATES[url] = certificate
    return certificate


def verify_offline(
    body: bytes,
    sent: Transmission,
    webhook_ids: Sequence[str],
    fetch_cert: Callable[[str], bytes],
    extra_cert_hosts: frozenset[str] = frozenset(),
) -> None:
    """Check the signature with the certificate's public key, for any of the webhook ids; SignatureError if not."""
    if not cert_host_allowed(sent.cert_url, extra_cert_hosts):
        raise SignatureError("certificate host not allowed")
    try:
        signature = base64.b64decode(sent.signature, validate=True)
    except ValueError:
        raise SignatureError("signature mismatch") from None
    certificate = _certificate(sent.cert_url, fetch_cert, datetime.now(UTC))

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("unsupported algorithm")
    matched = False
    for webhook_id in webhook_ids:  # no early exit: every id costs the same, whichever one matches
        try:
            key.verify(
                signature, signed_message(sent.id, sent.time, webhook_id, body), padding.PKCS1v15(), hashes.SHA256()
            )
            matched = True
        except InvalidSignature:
            pass
    if not matched:
        raise SignatureError("signature mismatch")


def postback_request(sent: Transmission, webhook_id: str, event: Any) -> dict[str, Any]:
    """The body of POST /v1/notifications/verify-webhook-signature for one webhook id."""
    return {
        "auth_algo": sent.auth_algo,
        "cert_url": sent.cert_url,
        "transmission_id": sent.id,
        "transmission_sig": sent.signature,
        "transmission_time": sent.time,
        "webhook_id": webhook_id,
        "webhook_event": event,
    }


def _urlopen(request: urllib.request.Request, *, timeout: float) -> Any:
    import urllib.request  # lazily, as in fetch_certificate

    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the base URL is checked to be https


def postback_verifier(
    base_url: str,
    client_id: str,
    client_secret: str,
    opener: Callable[..., Any] = _urlopen,
    *,
    timeout: float = FETCH_TIMEOUT_SECONDS,
) -> Callable[[dict[str, Any]], bool]:
    """A postback verifier for ``PayPalWebhooks(mode="postback")`` against PayPal's REST API at base_url
    (https://api-m.paypal.com, or https://api-m.sandbox.paypal.com).

    It gets an OAuth token by client credentials (kept until a minute before it expires), then POSTs the request
    to /v1/notifications/verify-webhook-signature and is True only for ``"verification_status": "SUCCESS"``.
    ``opener(request, timeout=…)`` returns a response usable as a context manager with ``read()``; the default is
    urllib.request.urlopen (imported on first use). HTTP and network errors propagate (verify turns them into a
    SignatureError).
    """
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("the PayPal API base URL must be https")
    import urllib.request

    root = base_url.rstrip("/")
    token: dict[str, Any] = {}

    def call(url: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - https
        with opener(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        if not isinstance(answer, dict):
            raise ValueError("PayPal answered something other than a JSON object")
        return answer

    def access_token() -> str:
        now = time.monotonic()
        if token and token["expires_at"] > now:
            return str(token["value"])
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        answer = call(
            f"{root}/v1/oauth2/token",
            b"grant_type=client_credentials",
            {
                "Authorization": f"Basic {basic}",
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        value = answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise ValueError("PayPal returned no access token")
        lifetime = answer.get("expires_in")
        token["value"] = value
        token["expires_at"] = now + max((lifetime if isinstance(lifetime, int) else 0) - 60, 0)
        return value

    def verify(request: dict[str, Any]) -> bool:
        answer = call(
            f"{root}/v1/notifications/verify-webhook-signature",
            json.dumps(request, ensure_ascii=False).encode(),
            {
                "Authorization": f"Bearer {access_token()}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        return answer.get("verification_status") == "SUCCESS"

    return verify


# ---- payload ---------------------------------------------------------------------------------------------------

# PayPal sends money as decimal strings; they stay strings until minor_units, so no float ever sees them.
Amount = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^-?\d+(\.\d+)?$")]
CurrencyCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]{3}$")]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# Timestamps stay as sent (aware, any offset): the canonical models store every one in UTC, and converting here too
# would be paid again for each, read or not. seller_response_due_date is the exception: Dispute keeps it as given.


# Every payload type is a TypedDict, not a model: pydantic-core builds a dict for a fraction of a model's cost, and
# validates it alike. Unknown keys are ignored: PayPal adds fields to its resources over time, and only these are read.


class PayPalMoney(TypedDict):
    currency_code: CurrencyCode
    value: Amount


class PayPalLink(TypedDict):
    href: str
    rel: NotRequired[str | None]


class PayPalRelatedIds(TypedDict, total=False):
    order_id: str | None


class PayPalSupplementaryData(TypedDict, total=False):
    related_ids: PayPalRelatedIds | None


class PayPalStatusDetails(TypedDict, total=False):
    reason: str | None


class PayPalCapture(TypedDict):
    """A Payments v2 capture, or (PAYMENT.CAPTURE.REVERSED with resource_type "refund") the reversal's refund."""

    id: Id
    status: NotRequired[str | None]
    status_details: NotRequired[PayPalStatusDetails | None]
    amount: PayPalMoney
    invoice_id: NotRequired[str | None]
    custom_id: NotRequired[str | None]
    supplementary_data: NotRequired[PayPalSupplementaryData | None]
    create_time: NotRequired[AwareDatetime | None]
    update_time: NotRequired[AwareDatetime | None]
    links: NotRequired[tuple[PayPalLink, ...]]


class PayPalRefund(TypedDict):
    id: Id
    status: NotRequired[str | None]
    amount: PayPalMoney
    note_to_payer: NotRequired[str | None]
    invoice_id: NotRequired[str | None]
    custom_id: NotRequired[str | None]
    create_time: NotRequired[AwareDatetime | None]
    update_time: NotRequired[AwareDatetime | None]
    links: NotRequired[tuple[PayPalLink, ...]]


class PayPalName(TypedDict, total=False):
    given_name: str | None
    surname: str | None
    full_name: str | None


class PayPalPhoneNumber(TypedDict, total=False):
    national_number: str | None


class PayPalPhone(TypedDict, total=False):
    phone_type: str | None
    phone_number: PayPalPhoneNumber | None


class PayPalAddress(TypedDict, total=False):
    address_line_1: str | None
    address_line_2: str | None
    admin_area_2: str | None  # city
    admin_area_1: str | None  # state / province / prefecture
    postal_code: str | None
    country_code: str | None


class PayPalPayer(TypedDict, total=False):
    payer_id: str | None
    email_address: str | None
    name: PayPalName | None
    phone: PayPalPhone | None
    address: PayPalAddress | None


class PayPalWallet(TypedDict, total=False):
    """payment_source.paypal: where Orders v2 puts the payer now that `payer` is deprecated."""

    account_id: str | None
    email_address: str | None
    name: PayPalName | None
    phone_number: PayPalPhoneNumber | None
    address: PayPalAddress | None


class PayPalPaymentSource(TypedDict, total=False):
    paypal: PayPalWallet | None


class PayPalShipping(TypedDict, total=False):
    address: PayPalAddress | None


class PayPalPurchaseUnit(TypedDict, total=False):
    shipping: PayPalShipping | None


class PayPalOrder(TypedDict):
    id: Id
    status: NotRequired[str | None]
    payer: NotRequired[PayPalPayer | None]
    payment_source: NotRequired[PayPalPaymentSource | None]
    purchase_units: NotRequired[tuple[PayPalPurchaseUnit, ...]]
    create_time: NotRequired[AwareDatetime | None]
    update_time: NotRequired[AwareDatetime | None]
    links: NotRequired[tuple[PayPalLink, ...]]


class PayPalDisputeOutcome(TypedDict, total=False):
    outcome_code: str | None


class PayPalDisputedTransaction(TypedDict, total=False):
    seller_transaction_id: str | None


class PayPalDispute(TypedDict):
    dispute_id: Id
    status: NotRequired[str | None]
    reason: NotRequired[str | None]
    dispute_amount: NotRequired[PayPalMoney | None]
    dispute_outcome: NotRequired[PayPalDisputeOutcome | None]
    dispute_life_cycle_stage: NotRequired[str | None]
    disputed_transactions: NotRequired[tuple[PayPalDisputedTransaction, ...]]
    seller_response_due_date: NotRequired[UtcDatetime | None]
    create_time: NotRequired[AwareDatetime | None]
    update_time: NotRequired[AwareDatetime | None]
    links: NotRequired[tuple[PayPalLink, ...]]


class _Event(TypedDict):
    """The envelope every PayPal webhook shares."""

    id: Id
    event_type: Id
    create_time: AwareDatetime
    resource_type: NotRequired[str | None]
    resource_version: NotRequired[str | None]
    summary: NotRequired[str | None]
    links: NotRequired[tuple[PayPalLink, ...]]


class CaptureEvent(_Event):
    resource: PayPalCapture


class RefundEvent(_Event):
    resource: PayPalRefund


class OrderEvent(_Event):
    resource: PayPalOrder


class DisputeEvent(_Event):
    resource: PayPalDispute


# ---- conversion ------------------------------------------------------------------------------------------------

_REFUND_STATUS: dict[str, RefundStatus] = {
    "COMPLETED": RefundStatus.SUCCEEDED,
    "PENDING": RefundStatus.PENDING,
    "FAILED": RefundStatus.FAILED,
    "CANCELLED": RefundStatus.CANCELED,
}
# Dispute status while open (a resolved dispute is WON or LOST by its outcome, see _dispute_status).
# An INQUIRY (the buyer asked, no chargeback or claim yet, no money held) is a WARNING whatever its status.
_OPEN_DISPUTE_STATUS: dict[str, DisputeStatus] = {
    "WAITING_FOR_SELLER_RESPONSE": DisputeStatus.NEEDS_RESPONSE,
    "WAITING_FOR_BUYER_RESPONSE": DisputeStatus.UNDER_REVIEW,
    "UNDER_REVIEW": DisputeStatus.UNDER_REVIEW,
    "OPEN": DisputeStatus.UNDER_REVIEW,
    # "OTHER" and statuses PayPal adds later: UNDER_REVIEW, i.e. open and in PayPal's hands.
}
# Outcomes where the merchant keeps the money. Every other outcome (RESOLVED_BUYER_FAVOUR, ACCEPTED, DENIED,
# RESOLVED_WITH_PAYOUT, NONE, none at all) counts as LOST, so a deal is never closed as won by guesswork.
_SELLER_KEEPS_MONEY = frozenset({"RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER"})
_CAPTURE_PATH = re.compile(r"/v2/payments/captures/([^/?#]+)/?$")
# Stand-ins for missing parts, so field fallbacks read as one chain.
_NO_DATA = PayPalSupplementaryData()
_NO_IDS = PayPalRelatedIds()
_NO_DETAILS = PayPalStatusDetails()
_NO_PAYER = PayPalPayer()
_NO_SOURCE = PayPalPaymentSource()
_NO_WALLET = PayPalWallet()
_NO_NAME = PayPalName()
_NO_PHONE = PayPalPhone()
_NO_OUTCOME = PayPalDisputeOutcome()


# A validator per event type, built on first use: ingest imports this module only to verify signatures.
_VALIDATORS: dict[object, SchemaValidator] = {}


def parse_event[EventT: _Event](body: bytes, model: type[EventT]) -> EventT:
    """Validate a raw webhook body as one of the event TypedDicts; pydantic.ValidationError says what does not fit."""
    validator = _VALIDATORS.get(model)
    if validator is None:
        validator = _VALIDATORS[model] = json_validator(model)
    event: EventT = validator.validate_json(body)
    return event


def is_sandbox(event: _Event, resource_links: Sequence[PayPalLink] = ()) -> bool:
    """PayPal events carry no livemode flag; a sandbox event's HATEOAS links point at api(-m).sandbox.paypal.com."""
    for links in (event.get("links", ()), resource_links):
        for link in links:
            if "sandbox" in link["href"]:
                return True
    return False


def source_version(event: _Event, update_time: datetime | None, create_time: datetime | None) -> datetime:
    """PayPal's version of a resource: its update_time, else its create_time, else the event's create_time."""
    return update_time or create_time or event["create_time"]


def capture_id_from_links(links: Sequence[PayPalLink]) -> str | None:
    """The capture a refund belongs to: its "up" link is …/v2/payments/captures/<id>."""
    for link in links:
        if link.get("rel") == "up":
            found = _CAPTURE_PATH.search(urlsplit(link["href"]).path)
            if found:
                return found.group(1)
    return None


def capture_to_canonical(topic: str, event: CaptureEvent, *, receipt_id: str) -> Payment:
    capture = event["resource"]
    links = capture.get("links", ())
    amount = _money(capture["amount"])
    status = PaymentStatus.SUCCEEDED
    capture_id = capture["id"]
    refunded: MoneyFields | None = None
    if topic == TOPIC_CAPTURE_DENIED:
        status = PaymentStatus.FAILED
    elif topic == TOPIC_CAPTURE_REVERSED:
        status = PaymentStatus.REVERSED
        refunded = amount  # a reversal takes back the whole capture
        if event.get("resource_type") == "refund":
            # PayPal's documented REVERSED event carries the reversal's refund: the capture is its "up" link.
            capture_id = capture_id_from_links(links) or ""
            if not capture_id:
                raise ValueError("reversal names no capture")
    related = (capture.get("supplementary_data") or _NO_DATA).get("related_ids") or _NO_IDS
    refs = (_clean(related.get("order_id")), _clean(capture.get("invoice_id")), _clean(capture.get("custom_id")))
    return Payment.of(
        {
            "source": SOURCE,
            "source_id": capture_id,
            "source_version": source_version(event, capture.get("update_time"), capture.get("create_time")),
            "receipt_id": receipt_id,
            "test": is_sandbox(event, links),
            "kind": "capture",
            "status": status,
            "amount": amount,
            "amount_refunded": refunded,
            "order_refs": tuple(ref for ref in refs if ref),
            "transaction_ids": (capture_id,),
            "failure_code": _clean((capture.get("status_details") or _NO_DETAILS).get("reason")),
            "created_at": capture.get("create_time"),
        }
    )


def refund_to_canonical(event: RefundEvent, *, receipt_id: str) -> Refund:
    refund = event["resource"]
    links = refund.get("links", ())
    return Refund.of(
        {
            "source": SOURCE,
            "source_id": refund["id"],
            "source_version": source_version(event, refund.get("update_time"), refund.get("create_time")),
            "receipt_id": receipt_id,
            "test": is_sandbox(event, links),
            # A status PayPal adds later must not fail conversion; pending ranks lowest, so it overrides nothing.
            "status": _REFUND_STATUS.get((refund.get("status") or "").upper(), RefundStatus.PENDING),
            # As PayPal states it: a refund larger than what remains is PayPal's to refuse, not ours to correct.
            "amount": _money(refund["amount"]),
            "payment_id": capture_id_from_links(links),
            "order_id": None,  # PayPal has no shop order; invoice/custom ids only *may* name one
            "reason": _clean(refund.get("note_to_payer")),
            "created_at": refund.get("create_time"),
        }
    )


def order_to_customer(event: OrderEvent, *, receipt_id: str) -> Customer | None:
    """The payer of an approved checkout: from `payer`, else payment_source.paypal; None when nobody is named."""
    order = event["resource"]
    payer = order.get("payer") or _NO_PAYER
    wallet = (order.get("payment_source") or _NO_SOURCE).get("paypal") or _NO_WALLET
    # A part that is there, even empty, is the one read: the fallback is for a part that is missing.
    name = _present(payer.get("name"), wallet.get("name")) or _NO_NAME
    payer_id = _first_text(payer.get("payer_id"), wallet.get("account_id"))
    email = normalize_email(_first_text(payer.get("email_address"), wallet.get("email_address")))
    phone_number = _present((payer.get("phone") or _NO_PHONE).get("phone_number"), wallet.get("phone_number"))
    shipping = next(
        (
            unit_shipping.get("address")
            for unit in order.get("purchase_units", ())
            if (unit_shipping := unit.get("shipping")) is not None
        ),
        None,
    )
    payer_address = _present(payer.get("address"), wallet.get("address"))
    # The phone's region is the payer's country (PayPal sends national numbers), else where the goods go.
    region = _country(payer_address.get("country_code") if payer_address else None) or _country(
        shipping.get("country_code") if shipping else None
    )
    phone = normalize_phone(phone_number.get("national_number") if phone_number else None, region)
    first_name, last_name = _clean(name.get("given_name")), _clean(name.get("surname"))
    if not (payer_id or email or ((first_name or last_name) and phone)):
        return None
    return Customer.of(
        {
            "source": SOURCE,
            "source_id": payer_id,
            "source_version": source_version(event, order.get("update_time"), order.get("create_time")),
            "receipt_id": receipt_id,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "phone": phone,
            "address": _address(shipping) if shipping and _filled(shipping) else None,
            "test": is_sandbox(event, order.get("links", ())),
        }
    )


def _present[T](*parts: T | None) -> T | None:
    """The first part that is there (not None), even if empty."""
    return next((part for part in parts if part is not None), None)


def dispute_to_canonical(topic: str, event: DisputeEvent, *, receipt_id: str) -> Dispute:
    dispute = event["resource"]
    transactions = dispute.get("disputed_transactions", ())
    amount = dispute.get("dispute_amount")
    return Dispute.of(
        {
            "source": SOURCE,
            "source_id": dispute["dispute_id"],
            "source_version": source_version(event, dispute.get("update_time"), dispute.get("create_time")),
            "receipt_id": receipt_id,
            "test": is_sandbox(event, dispute.get("links", ())),
            "status": _dispute_status(topic, dispute),
            "amount": _money(amount) if amount else None,
            "payment_id": _clean(transactions[0].get("seller_transaction_id")) if transactions else None,
            "reason": _clean(dispute.get("reason")),
            "evidence_due_by": dispute.get("seller_response_due_date"),
            "created_at": dispute.get("create_time"),
        }
    )


def _dispute_status(topic: str, dispute: PayPalDispute) -> DisputeStatus:
    status = (dispute.get("status") or "").upper()
    if topic == TOPIC_DISPUTE_RESOLVED or status == "RESOLVED":
        outcome = (dispute.get("dispute_outcome") or _NO_OUTCOME).get("outcome_code") or ""
        return DisputeStatus.WON if outcome.upper() in _SELLER_KEEPS_MONEY else DisputeStatus.LOST
    if (dispute.get("dispute_life_cycle_stage") or "").upper() == "INQUIRY":
        return DisputeStatus.WARNING
    return _OPEN_DISPUTE_STATUS.get(status, DisputeStatus.UNDER_REVIEW)


def _money(money: PayPalMoney) -> MoneyFields:
    """Money's fields, validated as Money inside the entity that holds them (Payment.of, Refund.of...)."""
    currency = money["currency_code"].upper()
    return {"amount": minor_units(money["value"], currency), "currency": currency}


def _address(address: PayPalAddress) -> AddressFields:
    return {
        "line1": _clean(address.get("address_line_1")),
        "line2": _clean(address.get("address_line_2")),
        "city": _clean(address.get("admin_area_2")),
        "region": _clean(address.get("admin_area_1")),
        "postal_code": _clean(address.get("postal_code")),
        "country": _country(address.get("country_code")),
    }


def _country(code: str | None) -> str | None:
    text = _clean(code)
    return text.upper() if text and len(text) == 2 and text.isascii() and text.isalpha() else None


def _filled(address: PayPalAddress) -> bool:
    return any(_clean(value) for value in cast("Iterable[str | None]", address.values()))


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def _first_text(*values: str | None) -> str | None:
    return next((text for text in map(_clean, values) if text), None)


# ---- webhook source ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayPalWebhooks:
    """PayPal as ingest and convert see it (crmsync.sources.base.WebhookSource).

    The "secrets" are the app's webhook ids (comma-separated in the secret, current first).
    ``fetch_cert`` downloads a certificate (default: HTTPS GET, 5 s timeout). ``extra_cert_hosts`` widens the
    certificate host allow-list for tests against a local fake only: it is never set in AWS, where only PayPal's
    own hosts may vouch for a signature. ``mode`` is "offline" (check the signature here) or "postback" (ask
    PayPal through ``postback``, e.g. ``postback_verifier(…)``).
    """

    name: str = SOURCE
    secret_setting: str = "paypal_secret_id"  # noqa: S105 - the name of a setting, not a secret
    handled_topics: frozenset[str] = HANDLED_TOPICS
    fetch_cert: Callable[[str], bytes] = fetch_certificate
    extra_cert_hosts: frozenset[str] = frozenset()
    mode: str = "offline"  # "offline" or "postback"
    postback: Callable[[dict[str, Any]], bool] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("offline", "postback"):
            raise ValueError(f"unknown PayPal verification mode {self.mode!r}")
        if self.mode == "postback" and self.postback is None:
            raise ValueError("postback mode needs a postback verifier")

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return False

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        # A bare string is a Sequence[str] too; iterating it would turn each character into a webhook id.
        candidates = [secrets] if isinstance(secrets, str) else list(secrets)
        webhook_ids = [webhook_id.strip() for webhook_id in candidates if webhook_id.strip()]
        if not webhook_ids:
            raise SignatureError("no secret configured")
        sent = transmission(headers)
        if sent.auth_algo != AUTH_ALGORITHM:
            raise SignatureError("unsupported algorithm")
        if self.mode == "offline":
            verify_offline(body, sent, webhook_ids, self.fetch_cert, self.extra_cert_hosts)
        else:
            self._verify_by_postback(body, sent, webhook_ids)

    def _verify_by_postback(self, body: bytes, sent: Transmission, webhook_ids: Sequence[str]) -> None:
        assert self.postback is not None  # __post_init__ guarantees it
        try:
            event = json.loads(body)
        except ValueError:
            raise SignatureError("signature mismatch") from None  # PayPal never signs a body that is not JSON
        for webhook_id in webhook_ids:
            try:
                verified = self.postback(postback_request(sent, webhook_id, event))
            except Exception as exc:  # PayPal unreachable or refusing our credentials: not proven, so not accepted
                raise SignatureError("signature could not be verified") from exc
            if verified is True:
                return
        raise SignatureError("signature mismatch")

    def signed_transmission(self, headers: Mapping[str, str]) -> tuple[str, datetime]:
        """(PAYPAL-TRANSMISSION-ID, PAYPAL-TRANSMISSION-TIME) of a verified delivery. PayPal signs only CRC32(body), so
        ingest refuses old times and binds each id to the body's SHA-256 (crmsync.ingest.SignsTransmissions)."""
        sent = transmission(headers)
        try:
            signed_at = datetime.fromisoformat(sent.time)
        except ValueError:
            raise SignatureError("transmission time unreadable") from None
        if signed_at.tzinfo is None:
            raise SignatureError("transmission time without a time zone")
        return sent.id, signed_at

    def topic(self, headers: Mapping[str, str], payload: Any) -> str | None:
        event_type = payload.get("event_type") if isinstance(payload, dict) else None
        return event_type if isinstance(event_type, str) and event_type else None

    def account(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return None  # a webhook belongs to one app; PayPal names no merchant account in the envelope

    def receipt_id(self, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
        # The event id (WH-…) is the same on every retry of the event; the transmission id is per delivery.
        event_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(event_id, str) or not event_id.strip():
            event_id = "sha256-" + hashlib.sha256(body).hexdigest()
        return f"paypal:{event_id.strip()}"

    def convert(self, topic: str, body: bytes, *, receipt_id: str) -> Converted:
        if topic in CAPTURE_EVENTS:
            payment = capture_to_canonical(topic, parse_event(body, CaptureEvent), receipt_id=receipt_id)
            return Converted(entities=((CAPTURE_EVENTS[topic], payment),))
        if topic == TOPIC_CAPTURE_REFUNDED:
            refund = refund_to_canonical(parse_event(body, RefundEvent), receipt_id=receipt_id)
            return Converted(entities=((DetailType.REFUND_ISSUED, refund),))
        if topic == TOPIC_ORDER_APPROVED:
            # Only who paid: the money arrives with PAYMENT.CAPTURE.COMPLETED (convert publishes customer.upserted).
            return Converted(customer=order_to_customer(parse_event(body, OrderEvent), receipt_id=receipt_id))
        if topic in DISPUTE_EVENTS:
            dispute = dispute_to_canonical(topic, parse_event(body, DisputeEvent), receipt_id=receipt_id)
            return Converted(entities=((DISPUTE_EVENTS[topic], dispute),))
        raise UnsupportedTopic(f"no converter for paypal {topic}")
