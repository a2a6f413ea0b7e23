"""`make send-sample [SOURCE=shopify|woocommerce|stripe]`: post a signed sample webhook to the running local stack.

Signed with the secrets `make run` seeded (the same env vars and defaults). PayPal is not offered: PayPal signs with
its own private key, verified against a certificate fetched from PayPal's hosts, which a laptop offline cannot reach.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAYLOADS = REPO / "events" / "payloads"


def b64_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify() -> tuple[bytes, dict[str, str]]:
    body = (PAYLOADS / "shopify-orders-create.json").read_bytes()
    secret = os.environ.get("SHOPIFY_WEBHOOK_SECRET", "local-shopify-secret").split(",")[0]
    return body, {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-Event-Id": f"sample-{time.time_ns()}",
        "X-Shopify-Hmac-Sha256": b64_hmac(secret, body),
    }


def signed_woocommerce(
    resource: dict[str, object],
    *,
    topic: str = "order.created",
    secret: str | None = None,
    shop_url: str = "https://shop.example.com/",
) -> tuple[bytes, dict[str, str]]:
    """A WooCommerce delivery of `topic` for this resource (an order or a customer), signed as WooCommerce signs it."""
    body = json.dumps(resource).encode()
    secret = secret or os.environ.get("WOOCOMMERCE_WEBHOOK_SECRET", "local-woocommerce-secret").split(",")[0]
    resource_name, _, event = topic.partition(".")
    return body, {
        "X-WC-Webhook-Source": shop_url,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource_name,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Delivery-ID": f"sample-{time.time_ns()}",
        "X-WC-Webhook-Signature": b64_hmac(secret, body),
    }


def woocommerce() -> tuple[bytes, dict[str, str]]:
    order = json.loads((PAYLOADS / "woocommerce-order-created.json").read_bytes())
    order["date_modified_gmt"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())  # a new state each time
    return signed_woocommerce(order)


def stripe() -> tuple[bytes, dict[str, str]]:
    event = json.loads((PAYLOADS / "stripe-payment-intent-succeeded.json").read_bytes())
    event["id"] = f"evt_sample{time.time_ns()}"
    body = json.dumps(event).encode()
    secret = os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_local-stripe-secret").split(",")[0]
    timestamp = int(time.time())
    v1 = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={timestamp},v1={v1}"}


SAMPLES = {"shopify": shopify, "woocommerce": woocommerce, "stripe": stripe}


def main() -> int:
    source = os.environ.get("SOURCE", "shopify")
    if source not in SAMPLES:
        print(f"SOURCE must be one of {', '.join(SAMPLES)}")
        return 2
    port = os.environ.get("CRMSYNC_PORT", "3000")
    body, headers = SAMPLES[source]()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/{source}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.status, json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode(errors="replace"))
        return 1
    except urllib.error.URLError as exc:
        print(f"nothing answers on 127.0.0.1:{port} ({exc.reason}); start the stack with `make run` first")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
