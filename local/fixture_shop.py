"""A local WooCommerce shop for demos and end-to-end tests: its REST v3 list API, served on 127.0.0.1.

    GET /wp-json/wc/v3/orders?per_page=&page=&modified_after=&modified_before=&orderby=&order=&dates_are_gmt=
    GET /wp-json/wc/v3/customers?per_page=&page=&orderby=&order=

answered as WooCommerce answers them (WC_REST_CRUD_Controller): a JSON array, `X-WP-Total` / `X-WP-TotalPages`, a
`Link` header with rel="prev" / rel="next"; `per_page` 1-100 (else 400 rest_invalid_param); a page past the last is an
empty array; `modified_after` / `modified_before` are exclusive and compare `date_modified_gmt` with
`dates_are_gmt=true` (this shop's site time zone is UTC, so both dates are equal anyway); HTTP Basic auth with the
consumer key and secret (else 401 woocommerce_rest_cannot_view). The deployed sync function reaches it through the
stack's SourceApiCredentials secret (`woocommerce_base_url`): ministack runs the functions as local processes, so
127.0.0.1 is this machine.

Orders are built from events/payloads/woocommerce-order-created.json (the documented order shape) by `make_order`.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "events" / "payloads" / "woocommerce-order-created.json"
API = "/wp-json/wc/v3/"
MAX_PER_PAGE = 100
LOOPBACK = "127.0.0.1"

Answer = tuple[int, dict[str, str], bytes]


def gmt(value: datetime) -> str:
    """WooCommerce's date format: ISO 8601 without an offset, seconds precision."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def make_order(
    order_id: int,
    *,
    email: str,
    first_name: str,
    last_name: str,
    total: str,
    modified: datetime,
    status: str = "processing",
    shop_url: str = "http://127.0.0.1",
) -> dict[str, Any]:
    """One order as GET /wp-json/wc/v3/orders lists it: a guest checkout with one line, paid unless pending/on-hold."""
    order: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    created = gmt(modified)
    paid = created if status in ("processing", "completed") else None
    order.update(
        id=order_id,
        number=str(order_id),
        order_key=f"wc_order_demo{order_id}",
        status=status,
        currency="USD",
        date_created=created,
        date_created_gmt=created,
        date_modified=created,
        date_modified_gmt=created,
        date_paid=paid,
        date_paid_gmt=paid,
        date_completed=created if status == "completed" else None,
        date_completed_gmt=created if status == "completed" else None,
        discount_total="0.00",
        shipping_total="0.00",
        cart_tax="0.00",
        total=total,
        total_tax="0.00",
        payment_method="bacs" if paid is None else "stripe",
        payment_method_title="Direct Bank Transfer" if paid is None else "Credit card",
        transaction_id="" if paid is None else f"ch_demo{order_id}",
        meta_data=[],
        tax_lines=[],
        shipping_lines=[],
        refunds=[],
        line_items=[
            {
                "id": order_id * 10, "name": "Espresso beans 1 kg", "product_id": 93, "variation_id": 0,
                "quantity": 1, "tax_class": "", "subtotal": total, "subtotal_tax": "0.00", "total": total,
                "total_tax": "0.00", "taxes": [], "meta_data": [], "sku": "BEANS-1KG", "price": float(Decimal(total)),
            }
        ],
        _links={
            "self": [{"href": f"{shop_url}{API}orders/{order_id}"}],
            "collection": [{"href": f"{shop_url}{API}orders"}],
        },
    )  # fmt: skip
    order["billing"] = {**order["billing"], "first_name": first_name, "last_name": last_name, "email": email}
    order["billing"]["phone"] = f"(415) 555-{order_id % 10000:04d}"
    order["shipping"] = {**order["shipping"], "first_name": first_name, "last_name": last_name}
    return order


def _error(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"code": code, "message": message, "data": {"status": status}}).encode()
    return status, {"Content-Type": "application/json; charset=UTF-8"}, body


def _when(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _within(modified: datetime | None, bound: datetime, *, after: bool) -> bool:
    """modified_after / modified_before are exclusive bounds."""
    if modified is None:
        return False
    return modified > bound if after else modified < bound


@dataclass
class FixtureShop:
    """The shop's data and its REST answers; `answer` is pure (no sockets), `serve` puts it on a port."""

    consumer_key: str = "ck_local_demo"
    consumer_secret: str = "cs_local_demo"  # noqa: S105 - a local fixture's credential
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def put_orders(self, orders: list[dict[str, Any]]) -> None:
        with self._lock:
            self.orders.update((int(o["id"]), o) for o in orders)

    def delete_order(self, order_id: int) -> None:
        with self._lock:
            self.orders.pop(order_id, None)

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        expected = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode()).decode()
        return scheme.lower() == "basic" and hmac.compare_digest(token.strip().encode(), expected.encode())

    def answer(self, method: str, target: str, authorization: str | None, base_url: str = "") -> Answer:
        """The response to one request: (status, headers, body)."""
        with self._lock:
            self.requests += 1
        parsed = urllib.parse.urlsplit(target)
        resource = parsed.path.removeprefix(API).strip("/") if parsed.path.startswith(API) else None
        if method != "GET" or resource not in ("orders", "customers"):
            return _error(404, "rest_no_route", "No route was found matching the URL and request method.")
        if not self._authorized(authorization):
            return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        try:
            per_page, page = int(query.get("per_page", "10")), int(query.get("page", "1"))
        except ValueError:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page, page")
        if not 1 <= per_page <= MAX_PER_PAGE:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
        if page < 1:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): page")
        with self._lock:
            items = list((self.orders if resource == "orders" else self.customers).values())
        if resource == "orders":
            for name in ("modified_after", "modified_before"):
                if not query.get(name):
                    continue
                bound = _when(query[name])
                if bound is None:
                    return _error(400, "rest_invalid_param", f"Invalid parameter(s): {name}")
                items = [
                    o for o in items if _within(_when(o["date_modified_gmt"]), bound, after=name.endswith("after"))
                ]
        orderby = query.get("orderby", "date" if resource == "orders" else "name")
        sort_field = {"modified": "date_modified_gmt", "date": "date_created_gmt", "id": "id"}.get(orderby, "id")
        items.sort(key=lambda o: (o.get(sort_field) or "", o["id"]), reverse=query.get("order", "desc") == "desc")
        total = len(items)
        pages = -(-total // per_page)
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "X-WP-Total": str(total),
            "X-WP-TotalPages": str(pages),
        }
        links = []
        base = f"{base_url}{API}{resource}"
        if page > 1:
            links.append(f'<{base}?{urllib.parse.urlencode({**query, "page": min(page - 1, pages)})}>; rel="prev"')
        if pages > page:
            links.append(f'<{base}?{urllib.parse.urlencode({**query, "page": page + 1})}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, headers, json.dumps(chunk).encode()


class _Handler(BaseHTTPRequestHandler):
    shop: FixtureShop
    base_url: str
    protocol_version = "HTTP/1.1"

    def _send(self, include_body: bool) -> None:
        status, headers, body = self.shop.answer("GET", self.path, self.headers.get("Authorization"), self.base_url)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if include_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(True)

    def do_HEAD(self) -> None:
        self._send(False)

    def do_POST(self) -> None:
        status, headers, body = _error(404, "rest_no_route", "No route was found matching the URL and request method.")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the demo prints its own story
        return


@contextmanager
def serve(shop: FixtureShop, port: int = 0) -> Iterator[str]:
    """Serve the shop on 127.0.0.1:port (0: a free port) in a thread; yields its base URL; stops on exit."""
    server = ThreadingHTTPServer((LOOPBACK, port), _Handler)
    server.daemon_threads = True
    url = f"http://{LOOPBACK}:{server.server_address[1]}"
    server.RequestHandlerClass = type("ShopHandler", (_Handler,), {"shop": shop, "base_url": url})
    thread = threading.Thread(target=server.serve_forever, name="fixture-shop", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
