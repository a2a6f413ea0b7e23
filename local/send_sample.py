"""`make send-sample`: post the signed sample Shopify orders/create webhook to the running local stack."""

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


def main() -> int:
    port = os.environ.get("CRMSYNC_PORT", "3000")
    secret = os.environ.get("SHOPIFY_WEBHOOK_SECRET", "local-shopify-secret")
    body = (REPO / "events" / "payloads" / "shopify-orders-create.json").read_bytes()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/shopify",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Event-Id": f"sample-{time.time_ns()}",
            "X-Shopify-Hmac-Sha256": signature,
        },
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
