"""The local WooCommerce shop of `make demo-reconcile` (local/fixture_shop.py) behind the real WooCommerce client, and
the demo's own bookkeeping (local/demo.py). No sockets: the client's transport calls the shop's answer directly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.convert import converter
from crmsync.sync.clients import HttpResponse, RateLimiter, SourceApiError, WooCommerceClient
from local import demo, ops
from local.fixture_shop import FixtureShop, make_order
from local.send_sample import signed_woocommerce

T0 = datetime(2026, 10, 1, tzinfo=UTC)
BASE = "http://127.0.0.1:9"


def shop_of(count: int) -> FixtureShop:
    shop = FixtureShop()
    shop.put_orders(
        [
            make_order(n, email=f"b{n}@example.com", first_name="B", last_name=str(n), total="10.00",
                       modified=T0 + timedelta(seconds=n))
            for n in range(1, count + 1)
        ]
    )  # fmt: skip
    return shop


def client_of(shop: FixtureShop, secret: str | None = None) -> WooCommerceClient:
    def transport(method: str, url: str, headers: Mapping[str, str]) -> HttpResponse:
        assert url.startswith(BASE)
        status, answer_headers, body = shop.answer(method, url.removeprefix(BASE), headers.get("Authorization"), BASE)
        return HttpResponse(status, {k.lower(): v for k, v in answer_headers.items()}, body)

    return WooCommerceClient(BASE, shop.consumer_key, secret or shop.consumer_secret, transport, RateLimiter(0))


def list_all(client: WooCommerceClient, since: datetime | None = None, until: datetime | None = None) -> list[int]:
    ids: list[int] = []
    cursor: str | None = ""
    while cursor is not None:
        page = client.list_page("orders", cursor, since, until)
        ids.extend(o["id"] for o in page.records)
        cursor = page.next_cursor
    return ids


def test_the_real_client_pages_through_the_shop_by_its_headers():
    # Given 250 orders, When the WooCommerce client lists them 100 a page
    shop = shop_of(250)
    client = client_of(shop)
    first = client.list_page("orders", "", None, None)
    # Then pages follow X-WP-TotalPages, oldest modified first (orderby=modified&order=asc), every order exactly once
    assert (len(first.records), first.next_cursor, first.total) == (100, "2", 250)
    assert list_all(client) == list(range(1, 251))
    assert shop.requests == 4  # the first page, then pages 1-3


def test_pagination_headers_and_errors_are_woocommerce_s():
    shop = shop_of(250)
    auth = "Basic " + base64.b64encode(f"{shop.consumer_key}:{shop.consumer_secret}".encode()).decode()
    status, headers, body = shop.answer("GET", "/wp-json/wc/v3/orders?per_page=100&page=2", auth, BASE)
    assert (status, headers["X-WP-Total"], headers["X-WP-TotalPages"]) == (200, "250", "3")
    assert headers["Link"] == (
        f'<{BASE}/wp-json/wc/v3/orders?per_page=100&page=1>; rel="prev", '
        f'<{BASE}/wp-json/wc/v3/orders?per_page=100&page=3>; rel="next"'
    )
    assert len(json.loads(body)) == 100
    assert json.loads(shop.answer("GET", "/wp-json/wc/v3/orders?per_page=100&page=9", auth)[2]) == []
    assert shop.answer("GET", "/wp-json/wc/v3/orders?per_page=101", auth)[0] == 400
    assert json.loads(shop.answer("GET", "/wp-json/wc/v3/orders", None)[2])["code"] == "woocommerce_rest_cannot_view"
    assert shop.answer("GET", "/wp-json/wc/v3/products", auth)[0] == 404
    with pytest.raises(SourceApiError, match="401"):
        client_of(shop, secret="wrong").list_page("orders", "", None, None)


def test_modified_after_and_before_are_exclusive_bounds():
    client = client_of(shop_of(20))
    assert list_all(client, T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)) == [6, 7, 8]


def test_fixture_orders_convert_as_woocommerce_orders():
    # The converter takes the shop's orders as the webhooks of their topic: a paid order and an on-hold one
    for status, expected in (("processing", "paid"), ("on-hold", "authorized")):
        order = make_order(7, email="ada@example.com", first_name="Ada", last_name="L", total="73.50",
                           modified=T0, status=status)  # fmt: skip
        converted = converter("woocommerce").convert("order.updated", json.dumps(order).encode(), receipt_id="r")
        [(_, entity)] = converted.entities
        data = entity.model_dump(mode="json")
        assert (entity.external_id, data["status"], data["total"]) == (
            "woocommerce:order:7", expected, {"amount": 7350, "currency": "USD"},
        )  # fmt: skip
        assert converted.customer is not None
        assert converted.customer.email == "ada@example.com"


def test_webhooks_are_signed_as_woocommerce_signs_them():
    order = make_order(7, email="ada@example.com", first_name="Ada", last_name="L", total="1.00", modified=T0)
    body, headers = signed_woocommerce(order, topic="order.updated", secret="s3cret", shop_url="http://shop/")
    digest = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert headers["X-WC-Webhook-Signature"] == digest
    assert (headers["X-WC-Webhook-Topic"], headers["X-WC-Webhook-Resource"], headers["X-WC-Webhook-Event"]) == (
        "order.updated", "order", "updated",
    )  # fmt: skip


def test_each_run_has_its_own_orders_and_the_shop_keeps_their_final_state(tmp_path):
    # Given a first run that reconciled and backfilled 300 orders, saved for this life of the stack
    state = demo.DemoState(tmp_path / "demo.json", stack_pid=41)
    state.runs.append({"run": 1, "reconcile": 1, "records": 300, "customers": 150})
    state.save()
    again = demo.DemoState.load(tmp_path / "demo.json", stack_pid=41)
    # Then the next run gets new ids, and the shop holds run 1's orders as they ended: #5 deleted, #6 paid
    assert again.next_run == 2
    orders = {o["id"]: o for o in again.shop_orders(BASE)}
    assert len(orders) == 5 + 300
    assert 100_005 not in orders
    assert orders[100_006]["status"] == "processing"
    # And the backfill window of a run selects exactly its bulk orders (since is moved a second back: exclusive)
    since, until = demo.bulk_window(1, 300)
    shop = FixtureShop()
    shop.put_orders(list(orders.values()))
    listed = list_all(client_of(shop), since - timedelta(seconds=1), until)
    assert sorted(listed) == [100_000 + demo.BULK_OFFSET + i for i in range(300)]
    assert len(demo.bulk_emails(1, 300, 150)) == 150
    # And another life of the stack (another pid) starts a new shop
    assert demo.DemoState.load(tmp_path / "demo.json", stack_pid=42).runs == []


def test_the_drift_report_prints_as_a_table():
    report: dict[str, Any] = {
        "run_id": "rc_1", "source": "woocommerce", "status": "done", "full": True,
        "objects": {"orders": {"checked": 5, "missing": 2, "stale": 2, "deleted": 1, "repaired": 5, "failed": 0,
                               "examples": [{"key": "woocommerce:order:3", "where": "crm deals",
                                             "drift": "stale: amount"}]}},
    }  # fmt: skip
    lines = demo.format_report(report)
    assert lines[0] == "Drift report rc_1 (woocommerce, full run): done"
    assert lines[2].split() == ["orders", "5", "2", "2", "1", "5", "0"]
    assert lines[-1].split() == ["woocommerce:order:3", "crm", "deals", "stale:", "amount"]


def test_no_stack_means_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ops, "stack_state", lambda name, repo=None: None)
    assert demo.main(["--stack", "nothing-here"], out=io.StringIO()) == 2
    assert "make run" in capsys.readouterr().err
