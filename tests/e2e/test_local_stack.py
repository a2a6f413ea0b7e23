"""The walking skeleton over HTTP: `make run`'s stack turns a signed Shopify order into a contact and a deal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import EVENTS, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ORDER = (EVENTS / "payloads" / "shopify-orders-create.json").read_bytes()


def shopify_headers(secret: str, body: bytes, event_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Hmac-Sha256": base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode(),
    }


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_health_answers_once_deployed(stack):
    assert stack.request("GET", "/health") == (200, {"status": "ok"})


def test_signed_shopify_order_becomes_contact_and_deal(stack):
    # Given the running local stack, When a signed orders/create webhook is posted
    status, body = stack.request(
        "POST", "/webhooks/shopify", body=ORDER, headers=shopify_headers(stack.shopify_secret, ORDER, "e2e-1")
    )
    assert (status, body["status"]) == (200, "accepted")
    # Then within seconds the local CRM shows one contact and one deal, associated
    deals = wait_for(lambda: stack.local_crm("deals"))
    contacts = wait_for(lambda: stack.local_crm("contacts"))
    assert len(deals) == 1
    assert len(contacts) == 1
    deal, contact = deals[0], contacts[0]
    assert contact["properties"]["email"] == "ada.lovelace@example.com"
    assert contact["properties"]["phone"] == "+15024581234"
    assert contact["properties"]["city"] == "Louisville"
    assert deal["properties"]["amount"] == "225.40"
    assert deal["properties"]["deal_currency_code"] == "USD"
    assert deal["properties"]["dealname"] == "Shopify order #1042"
    assert deal["properties"]["dealstage"] == "closedwon"
    assert wait_for(lambda: stack.local_crm("deals")[0]["associations"]) == {"contacts": [contact["id"]]}

    # When Shopify redelivers the same event, Then it is a duplicate and nothing new appears
    status, body = stack.request(
        "POST", "/webhooks/shopify", body=ORDER, headers=shopify_headers(stack.shopify_secret, ORDER, "e2e-1")
    )
    assert (status, body["status"]) == (200, "duplicate")
    time.sleep(2)
    assert len(stack.local_crm("deals")) == 1
    assert len(stack.local_crm("contacts")) == 1


@pytest.mark.parametrize(
    ("source", "external_id"),
    [("woocommerce", "woocommerce:order:727"), ("stripe", "stripe:payment:pi_3RTkpYQ8iJWBZFaM1LBHNo0J")],
)
def test_make_send_sample_for_other_sources_reaches_the_crm(stack, source, external_id):
    # Given the running stack, When `make send-sample SOURCE=<source>` runs (its script, with the stack's port)
    env = {**os.environ, "SOURCE": source, "CRMSYNC_PORT": stack.url.rsplit(":", 1)[1]}
    result = subprocess.run(
        [sys.executable, str(REPO / "local" / "send_sample.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accepted" in result.stdout
    # Then the order or payment shows up as a deal with its external id
    deals = wait_for(
        lambda: [d for d in stack.local_crm("deals") if d["properties"]["crmsync_external_id"] == external_id]
    )
    assert len(deals) == 1


def test_bad_requests_get_4xx_json_through_the_real_api(stack):
    status, body = stack.request(
        "POST", "/webhooks/shopify", body=ORDER, headers=shopify_headers("wrong-secret", ORDER, "e2e-bad")
    )
    assert (status, body) == (401, {"error": "signature mismatch"})
    big = b'{"x":"' + b"y" * (1024 * 1024) + b'"}'
    status, body = stack.request(
        "POST", "/webhooks/shopify", body=big, headers=shopify_headers(stack.shopify_secret, big, "e2e-big")
    )
    assert status == 413
    assert stack.request("GET", "/local-crm/contacts")[0] == 401


def test_two_stacks_run_side_by_side_and_stop_cleanly(stack, start_stack):
    # Given a second stack next to the first
    other = start_stack()
    assert other.url != stack.url
    assert other.request("GET", "/health") == (200, {"status": "ok"})
    # Then it has its own, empty CRM
    assert other.local_crm("contacts") == []
    # When it is stopped with Ctrl-C, Then it exits cleanly and frees its ports
    assert other.stop() == 0
    port = int(other.url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    ministack_port = int(other.state["ministack_endpoint"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", ministack_port)) != 0
