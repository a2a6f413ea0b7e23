"""Regenerates the sample Lambda events in events/ (run: .venv/bin/python local/make_events.py).

The webhook events are signed with the local default secrets that `make run` and the tests use, so
`sam local invoke -e events/<file>.json <Function>` and the tests exercise the very same bytes.
- Stripe signs a timestamp with a 300 s tolerance: its event is signed at STRIPE_SIGNED_AT, so regenerate it
  right before invoking it by hand (the tests freeze the clock instead).
- PayPal signs with PayPal's private key, which nobody else has: the PayPal event is signed with the test-only
  key in local/paypal-test-key.pem, whose certificate tests serve in place of PayPal's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "events"
SHOPIFY_SECRET = "local-shopify-secret"  # noqa: S105 - the documented local default
WOOCOMMERCE_SECRET = "local-woocommerce-secret"  # noqa: S105 - the documented local default
STRIPE_SECRET = "whsec_local-stripe-secret"  # noqa: S105 - the documented local default
STRIPE_SIGNED_AT = 1763651743
PAYPAL_WEBHOOK_ID = "LOCAL-PAYPAL-WEBHOOK-ID"
PAYPAL_KEY = REPO / "local" / "paypal-test-key.pem"
PAYPAL_CERT = REPO / "tests" / "fixtures" / "paypal" / "local-test-cert.pem"
PAYPAL_CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-LOCALTEST"
API_KEY = "local-operator-key"
RECEIPT = "shopify:demo.myshopify.com:4f0a6c1e-0001"
ARCHIVE_KEY = "raw/shopify/2026/11/20/example-orders-create"


def api_request(method: str, path: str, resource: str, **extra: Any) -> dict[str, Any]:
    body: bytes | None = extra.pop("body", None)
    headers: dict[str, str] = extra.pop("headers", {})
    query: dict[str, str] | None = extra.pop("query", None)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": extra.pop("path_params", None),
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.24"},
        },
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def sqs_event(bodies: list[str], queue: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"0c1d2e3f-0000-4000-8000-00000000000{i}",
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763651743000"},
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def paypal_key() -> Any:
    """The test-only PayPal signing key and its certificate (made once, then kept in the repository)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    if PAYPAL_KEY.exists() and PAYPAL_CERT.exists():
        return serialization.load_pem_private_key(PAYPAL_KEY.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmsync local test only - not PayPal")])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650)).sign(key, hashes.SHA256())
    )  # fmt: skip
    PAYPAL_KEY.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    PAYPAL_CERT.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key


def paypal_headers(body: bytes) -> dict[str, str]:
    import zlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    transmission_id, transmission_time = "69cd13f0-d67a-11e5-baa3-778b53f4ae55", "2026-11-20T15:15:43Z"
    message = f"{transmission_id}|{transmission_time}|{PAYPAL_WEBHOOK_ID}|{zlib.crc32(body)}".encode()
    signature = paypal_key().sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Content-Type": "application/json",
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
        "PAYPAL-CERT-URL": PAYPAL_CERT_URL,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


def main() -> None:
    order = (EVENTS / "payloads" / "shopify-orders-create.json").read_bytes()
    signature = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), order, hashlib.sha256).digest()).decode()
    shopify_headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "4f0a6c1e-0001",
        "X-Shopify-Triggered-At": "2026-11-20T15:15:43.000000Z",
        "X-Shopify-API-Version": "2025-10",
    }
    ingest_message = {
        "receipt_id": RECEIPT,
        "source": "shopify",
        "topic": "orders/create",
        "archive_key": ARCHIVE_KEY,
        "received_at": "2026-11-20T15:15:44Z",
        "correlation_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "account": "demo.myshopify.com",
    }
    order_placed = {
        "version": "0",
        "id": "5b1f5c5e-6a54-4b43-9e0c-2f5c8f2f0a01",
        "detail-type": "order.placed",
        "source": "crmsync",
        "account": "123456789012",
        "time": "2026-11-20T15:15:45Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "entity": "order",
            "key": "shopify:order:5678901234567",
            "customer_id": "cus_0123456789abcdef0123",
            "source": "shopify",
            "source_id": "5678901234567",
            "source_version": "2026-11-20T15:15:43Z",
            "receipt_id": RECEIPT,
            "correlation_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "data": None,
        },
    }
    # What convert publishes for Shopify's customers/redact (crmsync.erasure.screen_notice), as the bus delivers it.
    erasure_requested = {
        **order_placed,
        "id": "5b1f5c5e-6a54-4b43-9e0c-2f5c8f2f0a02",
        "detail-type": "erasure.requested",
        "detail": {
            "entity": "notice",
            "key": "shopify:customer:7300000000001",
            "customer_id": "cus_0123456789abcdef0123",
            "source": "shopify",
            "source_id": None,
            "source_version": "2026-11-20T15:15:43Z",
            "receipt_id": "shopify:demo.myshopify.com:redact-0001",
            "correlation_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "data": {
                "kind": "customers/redact",
                "shop_domain": "demo.myshopify.com",
                "customer_id": "7300000000001",
                "orders_to_redact": [],
                "erasure_id": "era_0123456789abcdef01234567",
                "scope": "customer",
                "trigger": {
                    "source": "shopify",
                    "topic": "customers/redact",
                    "receipt_id": "shopify:demo.myshopify.com:redact-0001",
                },
                "key_sha256": [],
            },
        },
    }
    woo_order = (EVENTS / "payloads" / "woocommerce-order-created.json").read_bytes()
    woo_signature = base64.b64encode(hmac.new(WOOCOMMERCE_SECRET.encode(), woo_order, hashlib.sha256).digest())
    woo_headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-Signature": woo_signature.decode(),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": "9f1c0a7e5b3d4c2a8e6f0b1d2c3a4b5c",
    }
    stripe_event = (EVENTS / "payloads" / "stripe-payment-intent-succeeded.json").read_bytes()
    signed_payload = f"{STRIPE_SIGNED_AT}.".encode() + stripe_event
    stripe_v1 = hmac.new(STRIPE_SECRET.encode(), signed_payload, hashlib.sha256).hexdigest()
    stripe_headers = {"Content-Type": "application/json", "Stripe-Signature": f"t={STRIPE_SIGNED_AT},v1={stripe_v1}"}
    paypal_event = (EVENTS / "payloads" / "paypal-capture-completed.json").read_bytes()
    files: dict[str, Any] = {
        "ingest-shopify-orders-create.json": api_request(
            "POST", "/webhooks/shopify", "/webhooks/{source}", body=order, headers=shopify_headers,
            path_params={"source": "shopify"},
        ),
        "ingest-woocommerce-order-created.json": api_request(
            "POST", "/webhooks/woocommerce", "/webhooks/{source}", body=woo_order, headers=woo_headers,
            path_params={"source": "woocommerce"},
        ),
        "ingest-stripe-payment-intent-succeeded.json": api_request(
            "POST", "/webhooks/stripe", "/webhooks/{source}", body=stripe_event, headers=stripe_headers,
            path_params={"source": "stripe"},
        ),
        "ingest-paypal-capture-completed.json": api_request(
            "POST", "/webhooks/paypal", "/webhooks/{source}", body=paypal_event, headers=paypal_headers(paypal_event),
            path_params={"source": "paypal"},
        ),
        "convert-shopify-orders-create.json": sqs_event([json.dumps(ingest_message)], "crmsync-IngestQueue"),
        "crm-writer-order-placed.json": sqs_event([json.dumps(order_placed)], "crmsync-CrmQueue"),
        "api-health.json": api_request("GET", "/health", "/health"),
        "api-local-crm-contacts.json": api_request(
            "GET", "/local-crm/contacts", "/local-crm/{type}", headers={"x-api-key": API_KEY},
            path_params={"type": "contacts"},
        ),
        "api-sync-dlq-list.json": api_request(
            "GET", "/sync/dlq", "/sync/dlq", headers={"x-api-key": API_KEY}, query={"limit": "10"},
        ),
        "api-sync-dlq-redrive.json": api_request(
            "POST", "/sync/dlq/redrive", "/sync/dlq/redrive",
            headers={"x-api-key": API_KEY, "Content-Type": "application/json"},
            body=json.dumps({"queue": "ingest-dlq"}).encode(),
        ),
        "api-sync-replay.json": api_request(
            "POST", "/sync/replay", "/sync/replay",
            headers={"x-api-key": API_KEY, "Content-Type": "application/json"},
            body=json.dumps({"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z", "limit": 100}).encode(),
        ),
        "api-rules-dry-run.json": api_request(
            "POST", "/rules/dry-run", "/rules/dry-run",
            headers={"x-api-key": API_KEY, "Content-Type": "application/json"},
            body=json.dumps({"since": "2026-11-20T00:00:00Z", "until": "2026-11-21T00:00:00Z", "rules": "default"})
            .encode(),
        ),
        "rules-order-placed.json": sqs_event([json.dumps(order_placed)], "crmsync-RulesQueue"),
        "api-sync-backfill.json": api_request(
            "POST", "/sync/backfill", "/sync/backfill",
            headers={"x-api-key": API_KEY, "Content-Type": "application/json"},
            body=json.dumps({"source": "woocommerce", "objects": ["orders"], "since": "2026-11-01T00:00:00Z",
                             "dry_run": True}).encode(),
        ),
        "api-sync-import.json": api_request(
            "POST", "/sync/import", "/sync/import",
            headers={"x-api-key": API_KEY, "Content-Type": "text/csv"},
            body=b"type,id,updated_at,email,total,currency,status\n"
            b"order,A-1,2026-11-20T10:00:00Z,ann@example.com,25.50,EUR,paid\n"
            b"order,A-2,,bob@example.com,10.00,EUR,paid\n",
        ),
        "api-sync-import-upload.json": api_request(
            "POST", "/sync/import/uploads", "/sync/import/uploads",
            headers={"x-api-key": API_KEY, "Content-Type": "application/json"},
            body=json.dumps({"format": "csv"}).encode(),
        ),
        "api-sync-job.json": api_request(
            "GET", "/sync/jobs/im_example", "/sync/jobs/{id}", headers={"x-api-key": API_KEY},
            path_params={"id": "im_example"},
        ),
        "api-sync-reconcile.json": api_request(
            "POST", "/sync/reconcile", "/sync/reconcile",
            headers={"x-api-key": API_KEY, "Content-Type": "application/json"},
            body=json.dumps({"source": "woocommerce", "full": True}).encode(),
        ),
        "api-sync-reconcile-run.json": api_request(
            "GET", "/sync/reconcile/runs/rc_example", "/sync/reconcile/runs/{id}", headers={"x-api-key": API_KEY},
            path_params={"id": "rc_example"},
        ),
        "api-sync-metrics.json": api_request(
            "GET", "/sync/metrics", "/sync/metrics", headers={"x-api-key": API_KEY}, query={"days": "7"},
        ),
        "api-customer-erasure.json": api_request(
            "DELETE", "/customers/cus_0123456789abcdef0123", "/customers/{id}", headers={"x-api-key": API_KEY},
            path_params={"id": "cus_0123456789abcdef0123"},
        ),
        "privacy-erasure-requested.json": sqs_event([json.dumps(erasure_requested)], "crmsync-PrivacyQueue"),
    }  # fmt: skip
    for name, event in files.items():
        (EVENTS / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/{name}")


if __name__ == "__main__":
    main()
