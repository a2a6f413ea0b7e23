"""Signed webhooks of every source, as each sender signs them, and what one delivery leaves stored.

The secrets are the ones tests/integration/conftest.py seeds into moto's Secrets Manager. PayPal is signed with a key
made here, whose certificate the PayPal source is given instead of downloading one (no network in tests)."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import EVENTS
from tests.integration.conftest import SECRETS, Aws, api_event

SOURCES = ("shopify", "woocommerce", "stripe", "paypal")
OPERATOR_KEY = SECRETS["API_KEY_SECRET_ID"]
WEBHOOK_SECRETS = {
    "shopify": SECRETS["SHOPIFY_SECRET_ID"],
    "woocommerce": SECRETS["WOOCOMMERCE_SECRET_ID"],
    "stripe": SECRETS["STRIPE_SECRET_ID"],
    "paypal": SECRETS["PAYPAL_SECRET_ID"],
}
# A real body of each source (published samples), with a topic crmsync handles.
SAMPLES = {
    "shopify": (EVENTS / "payloads" / "shopify-orders-create.json").read_bytes(),
    "woocommerce": (EVENTS / "payloads" / "woocommerce-order-created.json").read_bytes(),
    "stripe": (EVENTS / "payloads" / "stripe-payment-intent-succeeded.json").read_bytes(),
    "paypal": (EVENTS / "payloads" / "paypal-capture-completed.json").read_bytes(),
}
PAYPAL_CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"
# The headers that carry each source's signature (lower-case).
SIGNATURE_HEADERS = {
    "shopify": ("x-shopify-hmac-sha256",),
    "woocommerce": ("x-wc-webhook-signature",),
    "stripe": ("stripe-signature",),
    "paypal": (
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    ),
}


@dataclass(frozen=True)
class PayPalKey:
    """A signing key and a PayPal-shaped self-signed certificate for it."""

    private_key: Any
    pem: bytes

    @classmethod
    def make(cls) -> PayPalKey:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256())
        )  # fmt: skip
        return cls(key, certificate.public_bytes(serialization.Encoding.PEM))

    def sign(self, message: bytes) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return base64.b64encode(self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def sign_headers(
    source: str,
    body: bytes,
    paypal: PayPalKey,
    *,
    secret: str | None = None,
    event_id: str | None = None,
    paypal_time: datetime | None = None,
) -> dict[str, str]:
    """The headers `source` sends with `body`: its signature under `secret` (default: the configured one), its topic
    for the sample bodies, and a delivery id (`event_id`, default a fresh one) where the source sends one. PayPal's
    transmission is signed at `paypal_time` (default now)."""
    secret = WEBHOOK_SECRETS[source] if secret is None else secret
    event_id = event_id or uuid.uuid4().hex
    if source == "shopify":
        from crmsync.sources.shopify import sign as shopify_sign

        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": shopify_sign(body, secret),
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Webhook-Id": f"wh-{event_id}",
        }
    if source == "woocommerce":
        from crmsync.sources.woocommerce import sign as woocommerce_sign

        return {
            "Content-Type": "application/json",
            "X-WC-Webhook-Source": "https://shop.example.com/",
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Resource": "order",
            "X-WC-Webhook-Event": "created",
            "X-WC-Webhook-Signature": woocommerce_sign(body, secret),
            "X-WC-Webhook-ID": "12",
            "X-WC-Webhook-Delivery-ID": event_id,
        }
    if source == "stripe":
        from crmsync.sources.stripe import sign as stripe_sign

        return {"Content-Type": "application/json", "Stripe-Signature": stripe_sign(body, secret, int(time.time()))}
    if source == "paypal":
        transmission_time = (paypal_time or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"{event_id}|{transmission_time}|{secret}|{zlib.crc32(body)}".encode()
        return {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": event_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": paypal.sign(message),
            "PAYPAL-CERT-URL": PAYPAL_CERT_URL,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }
    raise ValueError(source)


def with_event_id(source: str, body: bytes, event_id: str) -> bytes:
    """The sample body with its own event id where the id is in the body (Stripe, PayPal): a distinct delivery."""
    if source in ("stripe", "paypal"):
        document = json.loads(body)
        document["id"] = event_id
        return json.dumps(document).encode()
    if source == "woocommerce":  # deduplicated on the order id and its modified time
        document = json.loads(body)
        document["id"] = int(event_id[:12], 16)
        return json.dumps(document).encode()
    return body


def webhook_event(
    source: str, body: bytes | str | None, headers: dict[str, Any] | None, *, base64_flag: bool | None = None
) -> dict[str, Any]:
    """The REST proxy event of POST /webhooks/<source>. `body` bytes are base64-encoded as the deployed API does
    (binary media type */*) unless `base64_flag` says otherwise; a str body is passed as it is."""
    event = api_event(
        "POST",
        f"/webhooks/{source}",
        body=b"",
        headers={},
        path_params={"source": source},
        resource="/webhooks/{source}",
    )
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in (headers or {}).items()}
    if isinstance(body, bytes):
        encode = True if base64_flag is None else base64_flag
        event["body"] = base64.b64encode(body).decode() if encode else body.decode("utf-8", "surrogateescape")
        event["isBase64Encoded"] = bool(base64_flag) if base64_flag is not None else True
    else:
        event["body"] = body
        event["isBase64Encoded"] = bool(base64_flag)
    return event


Call = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Stored:
    receipts: int
    archived: int
    queued: int


def stored(aws: Aws) -> Stored:
    """What ingest has left behind: receipts, archived objects (every version), messages on the ingest queue."""
    receipts = aws.client("dynamodb").scan(TableName=aws.env["RECEIPTS_TABLE"], Select="COUNT")["Count"]
    versions = aws.client("s3").list_object_versions(Bucket=aws.env["ARCHIVE_BUCKET"])
    archived = len(versions.get("Versions", [])) + len(versions.get("DeleteMarkers", []))
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.env["INGEST_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    queued = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
    return Stored(receipts, archived, queued)


# Every AWS call that changes something (SQS's visibility changes aside).
MUTATING = re.compile(
    r"\A(Put|Update|Delete|Send|BatchWrite|TransactWrite|Copy|Create|Restore|Upload|CompleteMultipart)"
)


class Writes:
    """The changing AWS calls made through crmsync's cached clients (crmsync.store.clients), as "Service.Operation":
    a per-request check that costs nothing (stored() asks moto, about 15 ms a call)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.expected = Stored(0, 0, 0)  # what the account should hold when the test ends
        from crmsync.store import clients

        for client in (clients.dynamodb(), clients.s3(), clients.sqs(), clients.events()):
            client.meta.events.register("before-call", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        if MUTATING.match(model.name):
            self.calls.append(f"{model.service_model.service_name}.{model.name}")

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls

    def expect(self, *, receipts: int = 0, archived: int = 0, queued: int = 0) -> None:
        e = self.expected
        self.expected = Stored(e.receipts + receipts, e.archived + archived, e.queued + queued)
