"""Source API clients behind one port: list a source's objects changed within a window, a page at a time.

Each client follows its vendor's documented pagination (research/facts.md; vendor docs):
- Shopify GraphQL Admin API: POST /admin/api/<version>/graphql.json, `orders` / `customers` with
  `query: "updated_at:>='<since>' AND updated_at:<'<until>'"`, sortKey UPDATED_AT, cursor pagination by
  pageInfo { hasNextPage endCursor }; throttled by query cost (extensions.cost.throttleStatus: a bucket restored at
  the plan's points per second; THROTTLED errors). Each node is mapped to the REST resource its webhook carries.
- WooCommerce REST v3: GET /wp-json/wc/v3/orders?modified_after=&modified_before=&per_page=100&page=N&orderby=modified
  &order=asc, totals in X-WP-Total / X-WP-TotalPages; basic auth with the consumer key and secret (HTTPS).
- Stripe list APIs: GET /v1/payment_intents?created[gte]=&created[lt]=&limit=100&starting_after=<last id>, has_more;
  /v1/customers alike; /v1/events (30 days of history) for reconciliation by change time. Bearer secret key;
  429 on rate limit (100 read requests/s live, 25 in test mode).
- PayPal transaction search: GET /v1/reporting/transactions?start_date=&end_date=&fields=all&page_size=500&page=N
  in ranges of at most 31 days, `total_pages`; OAuth 2.0 client-credentials token; transactions appear up to three
  hours late, so a window starts three hours early. Each transaction is returned as the webhook event reporting it.

The cursor of a page is opaque text the client gave out (a Shopify endCursor, a WooCommerce page number, a Stripe
object id, a PayPal range and page); "" is the first page. HTTP goes through an injectable transport (stdlib urllib
by default), so unit tests never open sockets. A 429 raises SourceRateLimited (the caller retries later: SQS
redelivery for a backfill page, the next run for a reconciliation); other refusals SourceApiError naming the status
and the vendor's error code, never a body's text.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crmsync.sync.errors import NotConfigured, NotSupported

SHOPIFY_API_VERSION = "2026-01"  # a supported stable version (Shopify supports each for 12 months at least)
WOOCOMMERCE_PAGE = 100
STRIPE_PAGE = 100

OBJECTS: dict[str, tuple[str, ...]] = {
    "shopify": ("orders", "customers"),
    "woocommerce": ("orders", "customers"),
    "stripe": ("payment_intents", "customers", "events"),
    "paypal": ("transactions",),
}


class SourceApiError(Exception):
    """The source API failed or refused; the message names the status, never personal data."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SourceRateLimited(SourceApiError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:g} s", 429)
        self.retry_after = retry_after


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Transport = Callable[[str, str, Mapping[str, str]], HttpResponse]  # (method, url, headers) -> response
# (method, url, headers, body) -> response: the clients that POST (Shopify GraphQL, PayPal's token)
BodyTransport = Callable[[str, str, Mapping[str, str], bytes | None], HttpResponse]


def urllib_transport(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None = None, *, timeout: float = 20.0
) -> HttpResponse:
    if urllib.parse.urlparse(url).scheme not in ("https", "http"):
        raise SourceApiError("not an http(s) URL")
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310 - http(s), checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s), checked above
            return HttpResponse(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read())
    except urllib.error.HTTPError as exc:
        return HttpResponse(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
    except (urllib.error.URLError, TimeoutError) as exc:
        raise SourceApiError(f"source API unreachable: {type(exc).__name__}") from exc


@dataclass
class RateLimiter:
    """At most `per_second` requests a second from this process (a token bucket of `burst`); the sleep and the clock
    are injectable. One limiter per source, shared by every job in the warm container."""

    per_second: float
    burst: int = 1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float = field(default=-1.0, init=False)
    _at: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    waited: float = field(default=0.0, init=False)

    def acquire(self) -> None:
        if self.per_second <= 0:
            return
        with self._lock:
            now = self.clock()
            if self._tokens < 0:
                self._tokens, self._at = float(self.burst), now
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.per_second)
            self._at = now
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.per_second
                self.waited += wait
                self.sleep(wait)
                self._tokens, self._at = 1.0, self.clock()
            self._tokens -= 1


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_cursor: str | None  # None: this was the last page
    total: int | None = None  # records in the whole window, when the API says


class SourceClient(Protocol):
    source: str

    def list_page(self, object_type: str, cursor: str, since: datetime | None, until: datetime | None) -> Page: ...


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check(response: HttpResponse, vendor: str = "source") -> HttpResponse:
    if response.status == 429:
        try:
            retry_after = float(response.headers.get("retry-after", "2"))
        except ValueError:
            retry_after = 2.0
        raise SourceRateLimited(retry_after)
    if response.status >= 500:
        raise SourceApiError(f"{vendor} API answered {response.status}{_code(response)}", response.status)
    if response.status >= 400:
        raise SourceApiError(f"{vendor} API refused the request ({response.status}{_code(response)})", response.status)
    return response


def _code(response: HttpResponse) -> str:
    """The error's code word when the body names one (PayPal `name`, OAuth `error`), never its free text."""
    try:
        document = response.json()
    except ValueError:
        return ""
    code = document.get("name") or document.get("error") if isinstance(document, dict) else None
    return f" {code}" if isinstance(code, str) and re.fullmatch(r"[A-Za-z_]{1,64}", code) else ""


# --- Shopify: GraphQL Admin API ------------------------------------------------------------------------------------
SHOPIFY_MAX_WAIT = 30.0  # seconds a throttled query may wait for its cost to be restored before giving up
SHOPIFY_MAX_THROTTLED = 3  # THROTTLED answers waited out per page before SourceRateLimited

_MONEY = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"
_ADDRESS = "firstName lastName address1 address2 city province provinceCode zip countryCodeV2 phone"
_LINE = f"id sku title quantity originalUnitPriceSet {{ {_MONEY} }} totalDiscountSet {{ {_MONEY} }}"
_CUSTOMER = (
    "id firstName lastName createdAt updatedAt defaultEmailAddress { emailAddress marketingState } "
    f"defaultPhoneNumber {{ phoneNumber }} defaultAddress {{ {_ADDRESS} }}"
)
SHOPIFY_ORDER_FIELDS = (
    "id name currencyCode createdAt updatedAt processedAt cancelledAt closedAt test email phone "
    "customerAcceptsMarketing displayFinancialStatus displayFulfillmentStatus "
    + " ".join(
        f"{field} {{ {_MONEY} }}"
        for field in (
            "totalPriceSet", "currentTotalPriceSet", "subtotalPriceSet", "currentSubtotalPriceSet", "totalTaxSet",
            "currentTotalTaxSet", "totalDiscountsSet", "currentTotalDiscountsSet", "totalShippingPriceSet",
        )
    )
    + f" customer {{ {_CUSTOMER} }} billingAddress {{ {_ADDRESS} }} shippingAddress {{ {_ADDRESS} }}"
    + f" lineItems(first: {{lines}}) {{ nodes {{ {_LINE} }} pageInfo {{ hasNextPage endCursor }} }}"
    + f" refunds(first: 10) {{ transactions(first: 10) {{ nodes {{ kind status amountSet {{ {_MONEY} }} }} }} }}"
    + " transactions(first: 20) { authorizationCode kind status }"
)  # fmt: skip
SHOPIFY_QUERIES = {
    # Orders and customers changed in a window, oldest change first; `query` is Shopify's search syntax.
    "orders": "query Orders($first: Int!, $after: String, $query: String) { orders(first: $first, after: $after, "
    "query: $query, sortKey: UPDATED_AT) { nodes { " + SHOPIFY_ORDER_FIELDS.replace("{lines}", "20")
    + " } pageInfo { hasNextPage endCursor } } }",
    "customers": "query Customers($first: Int!, $after: String, $query: String) { customers(first: $first, "
    "after: $after, query: $query, sortKey: UPDATED_AT) { nodes { " + _CUSTOMER
    + " } pageInfo { hasNextPage endCursor } } }",
}  # fmt: skip
# The rest of an order's lines, when it has more than the page query asks for.
SHOPIFY_MORE_LINES = (
    "query OrderLines($id: ID!, $after: String) { order(id: $id) { lineItems(first: 100, after: $after) "
    f"{{ nodes {{ {_LINE} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"
)
SHOPIFY_PAGE_SIZES = {"orders": 10, "customers": 100}  # keeps each query's requested cost well under 1,000 points
_FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}


def shopify_search(since: datetime | None, until: datetime | None) -> str | None:
    """Shopify's search syntax for a window of `updated_at` (since included, until excluded)."""
    terms = []
    if since:
        terms.append(f"updated_at:>='{_iso(since)}'")
    if until:
        terms.append(f"updated_at:<'{_iso(until)}'")
    return " AND ".join(terms) or None


def _gid(value: Any) -> int:
    """gid://shopify/Order/450789469 -> 450789469 (the REST id the webhooks carry)."""
    return int(str(value).rsplit("/", 1)[-1])


def _money_set(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    shop, shown = value.get("shopMoney") or {}, value.get("presentmentMoney") or {}
    return {
        "shop_money": {"amount": shop.get("amount"), "currency_code": shop.get("currencyCode")},
        "presentment_money": {"amount": shown.get("amount"), "currency_code": shown.get("currencyCode")},
    }


def _amount(value: Any) -> str | None:
    money = _money_set(value)
    return None if money is None else money["shop_money"]["amount"]


def _address(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    names = {"firstName": "first_name", "lastName": "last_name", "address1": "address1", "address2": "address2",
             "city": "city", "province": "province", "provinceCode": "province_code", "zip": "zip",
             "countryCodeV2": "country_code", "phone": "phone"}  # fmt: skip
    return {rest: value.get(graphql) for graphql, rest in names.items()}


def shopify_customer(node: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL Customer as the REST Customer resource (the customers/update webhook body) the converter reads."""
    email = node.get("defaultEmailAddress") or {}
    phone = node.get("defaultPhoneNumber") or {}
    state = email.get("marketingState")
    return {
        "id": _gid(node["id"]),
        "email": email.get("emailAddress"),
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "phone": phone.get("phoneNumber"),
        "email_marketing_consent": {"state": str(state).lower()} if state else None,
        "default_address": _address(node.get("defaultAddress")),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
    }


def shopify_order(node: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """A GraphQL Order (with all its line items) as the REST Order resource (the orders/updated webhook body) the
    converter reads: ids from their gids, money sets as shop_money / presentment_money, statuses in REST's words."""
    financial = node.get("displayFinancialStatus")
    customer = node.get("customer")
    return {
        "id": _gid(node["id"]),
        "name": node.get("name"),
        "currency": node.get("currencyCode"),
        "total_price": _amount(node.get("totalPriceSet")),
        "current_total_price": _amount(node.get("currentTotalPriceSet")),
        "total_price_set": _money_set(node.get("totalPriceSet")),
        "current_total_price_set": _money_set(node.get("currentTotalPriceSet")),
        "subtotal_price": _amount(node.get("subtotalPriceSet")),
        "current_subtotal_price": _amount(node.get("currentSubtotalPriceSet")),
        "total_tax": _amount(node.get("totalTaxSet")),
        "current_total_tax": _amount(node.get("currentTotalTaxSet")),
        "total_discounts": _amount(node.get("totalDiscountsSet")),
        "current_total_discounts": _amount(node.get("currentTotalDiscountsSet")),
        "total_shipping_price_set": _money_set(node.get("totalShippingPriceSet")),
        "financial_status": str(financial).lower() if financial else None,
        "fulfillment_status": _FULFILLMENT.get(str(node.get("displayFulfillmentStatus"))),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "processed_at": node.get("processedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "closed_at": node.get("closedAt"),
        "test": bool(node.get("test")),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "buyer_accepts_marketing": node.get("customerAcceptsMarketing"),
        "customer": shopify_customer(customer) if isinstance(customer, dict) else None,
        "billing_address": _address(node.get("billingAddress")),
        "shipping_address": _address(node.get("shippingAddress")),
        "line_items": [
            {
                "id": _gid(line["id"]),
                "sku": line.get("sku"),
                "title": line.get("title"),
                "quantity": line.get("quantity"),
                "price": _amount(line.get("originalUnitPriceSet")),
                "total_discount": _amount(line.get("totalDiscountSet")) or "0",
            }
            for line in lines
        ],
        "refunds": [
            {
                "transactions": [
                    {
                        "kind": str(tx.get("kind", "")).lower(),
                        "status": str(tx.get("status", "")).lower() or None,
                        "amount": ((tx.get("amountSet") or {}).get("presentmentMoney") or {}).get("amount"),
                        "currency": ((tx.get("amountSet") or {}).get("presentmentMoney") or {}).get("currencyCode"),
                    }
                    for tx in ((refund.get("transactions") or {}).get("nodes") or [])
                ]
            }
            for refund in node.get("refunds") or []
        ],
        "transactions": [{"authorization": tx.get("authorizationCode")} for tx in node.get("transactions") or []],
    }


@dataclass
class ShopifyThrottle:
    """Shopify's cost bucket as the last answer told it (extensions.cost.throttleStatus): before a query whose cost
    the bucket cannot cover, wait until it is restored; never longer than `max_wait` (then SourceRateLimited)."""

    available: float | None = None
    restore_rate: float = 100.0  # points a second (Standard plan); the answers say the shop's own
    at: float = 0.0
    max_wait: float = SHOPIFY_MAX_WAIT

    def wait_for(self, cost: float, now: float) -> float:
        if self.available is None:
            return 0.0
        have = self.available + (now - self.at) * self.restore_rate
        return max(0.0, (cost - have) / self.restore_rate) if self.restore_rate > 0 else 0.0

    def update(self, extensions: Any, now: float) -> tuple[float, float | None]:
        """Read an answer's cost: (the query's requested cost, the bucket's maximum)."""
        cost = (extensions or {}).get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost, dict):
            return 0.0, None
        status = cost.get("throttleStatus") or {}
        if "currentlyAvailable" in status:
            self.available, self.at = float(status["currentlyAvailable"]), now
        if status.get("restoreRate"):
            self.restore_rate = float(status["restoreRate"])
        maximum = status.get("maximumAvailable")
        return float(cost.get("requestedQueryCost") or 0), float(maximum) if maximum is not None else None


@dataclass
class ShopifyClient:
    """Shopify's GraphQL Admin API: `orders` / `customers` changed in a window (`query: "updated_at:>='...'"`,
    sortKey UPDATED_AT), 10 orders (with 20 lines each; more lines in follow-up queries) or 100 customers a page,
    cursor pagination by pageInfo { hasNextPage endCursor }; each node mapped to the REST resource its webhook
    carries. Throttling is by query cost: the bucket each answer reports (extensions.cost.throttleStatus) decides how
    long to wait before the next query, a THROTTLED answer is waited out (up to SHOPIFY_MAX_WAIT), and GraphQL errors
    (HTTP 200 with `errors`) raise SourceApiError with their code."""

    shop_domain: str  # x.myshopify.com
    access_token: str
    transport: BodyTransport = urllib_transport
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(2.0, burst=4))
    api_version: str = SHOPIFY_API_VERSION
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    throttle: ShopifyThrottle = field(default_factory=ShopifyThrottle)
    source: str = "shopify"
    requests: int = 0
    _last_cost: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://{self.shop_domain}/admin/api/{self.api_version}/graphql.json"

    def list_page(self, object_type: str, cursor: str, since: datetime | None, until: datetime | None) -> Page:
        if object_type not in OBJECTS["shopify"]:
            raise NotSupported(f"shopify cannot list {object_type}; use one of {', '.join(OBJECTS['shopify'])}")
        variables: dict[str, Any] = {"first": SHOPIFY_PAGE_SIZES[object_type], "after": cursor or None}
        variables["query"] = shopify_search(since, until)
        data = self.query(SHOPIFY_QUERIES[object_type], variables, name=object_type)
        connection = data.get(object_type) or {}
        nodes = [n for n in connection.get("nodes") or [] if isinstance(n, dict)]
        info = connection.get("pageInfo") or {}
        if object_type == "customers":
            records = [shopify_customer(node) for node in nodes]
        else:
            records = [shopify_order(node, self._lines(node)) for node in nodes]
        more = bool(info.get("hasNextPage")) and bool(info.get("endCursor")) and bool(nodes)
        return Page(records, str(info["endCursor"]) if more else None, None)

    def _lines(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        """Every line of an order: the page's first ones, then the rest 100 at a time."""
        connection = node.get("lineItems") or {}
        lines = list(connection.get("nodes") or [])
        info = connection.get("pageInfo") or {}
        while info.get("hasNextPage") and info.get("endCursor"):
            data = self.query(SHOPIFY_MORE_LINES, {"id": node["id"], "after": info["endCursor"]}, name="lines")
            connection = (data.get("order") or {}).get("lineItems") or {}
            lines.extend(connection.get("nodes") or [])
            info = connection.get("pageInfo") or {}
        return lines

    def query(self, document: str, variables: dict[str, Any], *, name: str = "query") -> dict[str, Any]:
        """One GraphQL query within the cost budget; returns `data`."""
        body = json.dumps({"query": document, "variables": variables}, separators=(",", ":")).encode()
        headers = {
            "X-Shopify-Access-Token": self.access_token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        for _ in range(SHOPIFY_MAX_THROTTLED + 1):
            wait = self.throttle.wait_for(self._last_cost.get(name, 0.0), self.clock())
            if wait > self.throttle.max_wait:
                raise SourceRateLimited(wait)
            if wait > 0:
                self.sleep(wait)
            self.limiter.acquire()
            self.requests += 1
            response = self.transport("POST", self.url, headers, body)
            if response.status == 429:  # HTTP-level throttling (Retry-After), as REST answers it
                _check(response)
            _check(response)
            document_answer = response.json() or {}
            if not isinstance(document_answer, dict):
                raise SourceApiError("shopify answered something that is not a GraphQL response")
            requested, maximum = self.throttle.update(document_answer.get("extensions"), self.clock())
            if requested:
                self._last_cost[name] = requested
            errors = [e for e in document_answer.get("errors") or [] if isinstance(e, dict)]
            codes = [str((e.get("extensions") or {}).get("code") or "") for e in errors]
            if errors and all(
                code == "THROTTLED" or e.get("message") == "Throttled" for code, e in zip(codes, errors, strict=True)
            ):
                if maximum is not None and requested > maximum:
                    raise SourceApiError(
                        f"shopify query {name} costs {requested:g} points, over the {maximum:g} a bucket holds"
                    )
                continue  # the next round waits for the bucket to hold the requested cost
            if errors:
                raise SourceApiError(
                    f"shopify refused the {name} query: {', '.join(sorted({c or 'ERROR' for c in codes}))}"
                )
            data = document_answer.get("data")
            if not isinstance(data, dict):
                raise SourceApiError(f"shopify answered the {name} query without data")
            return data
        raise SourceRateLimited(self.throttle.wait_for(self._last_cost.get(name, 0.0), self.clock()) or 1.0)


@dataclass
class WooCommerceClient:
    base_url: str  # https://store.example
    consumer_key: str
    consumer_secret: str
    transport: Transport = urllib_transport
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(5.0, burst=5))
    source: str = "woocommerce"

    def list_page(self, object_type: str, cursor: str, since: datetime | None, until: datetime | None) -> Page:
        if object_type not in OBJECTS["woocommerce"]:
            raise NotSupported(f"woocommerce cannot list {object_type}; use orders or customers")
        page = int(cursor or "1")
        query: dict[str, str] = {"per_page": str(WOOCOMMERCE_PAGE), "page": str(page), "order": "asc"}
        if object_type == "orders":
            query["orderby"] = "modified"
            if since:
                query["modified_after"] = _iso(since)
            if until:
                query["modified_before"] = _iso(until)
            query["dates_are_gmt"] = "true"
        else:
            query["orderby"] = "id"
            query["role"] = "all"
        url = f"{self.base_url.rstrip('/')}/wp-json/wc/v3/{object_type}?{urllib.parse.urlencode(query)}"
        credentials = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode()).decode()
        self.limiter.acquire()
        response = _check(self.transport("GET", url, {"Authorization": f"Basic {credentials}"}))
        records = response.json() or []
        pages = int(response.headers.get("x-wp-totalpages", "0") or 0)
        total = int(response.headers.get("x-wp-total", "0") or 0) or None
        more = page < pages if pages else len(records) == WOOCOMMERCE_PAGE
        return Page(records, str(page + 1) if more else None, total)


@dataclass
class StripeClient:
    api_key: str
    transport: Transport = urllib_transport
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(20.0, burst=20))
    base_url: str = "https://api.stripe.com"
    source: str = "stripe"

    def list_page(self, object_type: str, cursor: str, since: datetime | None, until: datetime | None) -> Page:
        if object_type not in OBJECTS["stripe"]:
            raise NotSupported(f"stripe cannot list {object_type}; use one of {', '.join(OBJECTS['stripe'])}")
        query: dict[str, str] = {"limit": str(STRIPE_PAGE)}
        if since:
            query["created[gte]"] = str(int(since.timestamp()))
        if until:
            query["created[lt]"] = str(int(until.timestamp()))
        if cursor:
            query["starting_after"] = cursor
        url = f"{self.base_url}/v1/{object_type}?{urllib.parse.urlencode(query)}"
        self.limiter.acquire()
        response = _check(self.transport("GET", url, {"Authorization": f"Bearer {self.api_key}"}))
        document = response.json() or {}
        records = document.get("data", [])
        more = bool(document.get("has_more")) and bool(records)
        return Page(records, str(records[-1]["id"]) if more else None, None)


# --- PayPal: transaction search ------------------------------------------------------------------------------------
PAYPAL_LIVE = "https://api-m.paypal.com"
PAYPAL_SANDBOX = "https://api-m.sandbox.paypal.com"
PAYPAL_WINDOW = timedelta(days=31)  # "The maximum supported range is 31 days."
PAYPAL_LAG = timedelta(hours=3)  # "It takes a maximum of three hours for executed transactions to appear"
PAYPAL_HISTORY = timedelta(days=3 * 365 - 1)  # "This call lists transaction for the previous three years."
PAYPAL_PAGE = 500  # page_size maximum
PAYPAL_REFUND = "T1107"  # payment refund (initiated by the merchant)
PAYPAL_REVERSAL = "T1106"  # payment reversal (initiated by PayPal)
_PAYPAL_REFUND_STATUS = {"S": "COMPLETED", "P": "PENDING", "D": "FAILED", "V": "CANCELLED"}


def _paypal_time(value: Any) -> str | None:
    """PayPal's `2014-07-11T04:03:52+0000` as RFC 3339 (`...+00:00`)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").isoformat()
        except ValueError:
            return None


def paypal_event(detail: dict[str, Any], *, api_base: str = PAYPAL_LIVE) -> dict[str, Any] | None:
    """A transaction search result as the webhook event that reports it, or None when no handled event does:
    an incoming payment (T00xx, amount > 0) completed (S; V too: its refund or reversal is a transaction of its own)
    -> PAYMENT.CAPTURE.COMPLETED, denied (D) -> PAYMENT.CAPTURE.DENIED; a refund (T1107) -> PAYMENT.CAPTURE.REFUNDED
    and a reversal (T1106) -> PAYMENT.CAPTURE.REVERSED, each linked ("up") to the capture it takes money back from
    (paypal_reference_id). Pending payments, fees, transfers and withdrawals have no such event.

    Versions: a completed capture carries only its create_time (the initiation date), so it never outranks what a
    webhook (with the capture's update_time) told; a denial, refund or reversal carries the transaction's updated date.
    Links point at `api_base`, so a sandbox transaction converts as a test payment, as its webhook would."""
    info = detail.get("transaction_info") if isinstance(detail, dict) else None
    if not isinstance(info, dict) or not info.get("transaction_id"):
        return None
    code, status = str(info.get("transaction_event_code") or ""), str(info.get("transaction_status") or "")
    amount = info.get("transaction_amount") or {}
    value = str(amount.get("value") or "")
    if not value or not amount.get("currency_code"):
        return None
    txn = str(info["transaction_id"])
    created = _paypal_time(info.get("transaction_initiation_date"))
    updated = _paypal_time(info.get("transaction_updated_date")) or created
    if created is None:
        return None
    positive = {"currency_code": amount["currency_code"], "value": value.lstrip("-")}
    base = api_base.rstrip("/")
    refs = {k: v for k, v in (("invoice_id", info.get("invoice_id")), ("custom_id", info.get("custom_field"))) if v}
    if code.startswith("T00") and not value.startswith("-") and status in ("S", "V", "D"):
        topic = "PAYMENT.CAPTURE.DENIED" if status == "D" else "PAYMENT.CAPTURE.COMPLETED"
        resource: dict[str, Any] = {
            "id": txn, "status": "DECLINED" if status == "D" else "COMPLETED", "amount": positive,
            "final_capture": True, "create_time": created, **refs,
            "links": [{"href": f"{base}/v2/payments/captures/{txn}", "rel": "self", "method": "GET"}],
        }  # fmt: skip
        if status == "D":
            resource["update_time"] = updated
        kind = "capture"
    elif code in (PAYPAL_REFUND, PAYPAL_REVERSAL) and info.get("paypal_reference_id"):
        captured = str(info["paypal_reference_id"])
        links = [
            {"href": f"{base}/v2/payments/refunds/{txn}", "rel": "self", "method": "GET"},
            {"href": f"{base}/v2/payments/captures/{captured}", "rel": "up", "method": "GET"},
        ]
        topic = "PAYMENT.CAPTURE.REFUNDED" if code == PAYPAL_REFUND else "PAYMENT.CAPTURE.REVERSED"
        resource = {"id": txn, "status": _PAYPAL_REFUND_STATUS.get(status, "PENDING"), "amount": positive,
                    "create_time": created, "update_time": updated, "links": links, **refs}  # fmt: skip
        kind = "refund"
    else:
        return None
    return {
        "id": f"WH-SYNC-{txn}",
        "event_version": "1.0",
        "create_time": updated,
        "resource_type": kind,
        "resource_version": "2.0",
        "event_type": topic,
        "summary": f"{topic} from transaction search",
        "resource": resource,
    }


@dataclass
class PayPalClient:
    """PayPal's transaction search (GET /v1/reporting/transactions, fields=all, page_size 500): a window is walked
    in ranges of at most 31 days, each range page by page (`page` / `total_pages`), from `since` less PayPal's three
    hours of reporting lag (or three years back, the search's horizon) to `until` (else the time of the first page).
    The cursor is "<range start>|<end>|<page>". An OAuth 2.0 client-credentials token (POST /v1/oauth2/token) is kept
    until shortly before it expires, and fetched again once on a 401. Each transaction becomes the webhook event
    that reports it (paypal_event); the others are left out of the page."""

    client_id: str
    client_secret: str
    base_url: str = PAYPAL_LIVE
    transport: BodyTransport = urllib_transport
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(5.0, burst=5))
    clock: Callable[[], float] = time.time
    source: str = "paypal"
    requests: int = 0
    _token: str = ""
    _expires: float = 0.0

    def list_page(self, object_type: str, cursor: str, since: datetime | None, until: datetime | None) -> Page:
        if object_type not in OBJECTS["paypal"]:
            raise NotSupported(f"paypal cannot list {object_type}; use transactions")
        if cursor:
            start_text, end_text, page_text = cursor.split("|")
            start, end, page = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text), int(page_text)
        else:
            now = datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0)
            end = min(until, now) if until else now
            start = max(since - PAYPAL_LAG, now - PAYPAL_HISTORY) if since else now - PAYPAL_HISTORY
            page = 1
        stop = min(start + PAYPAL_WINDOW, end)
        query = {"start_date": _iso(start), "end_date": _iso(stop), "fields": "all", "page_size": str(PAYPAL_PAGE),
                 "page": str(page)}  # fmt: skip
        answer = self._get(f"{self.base_url.rstrip('/')}/v1/reporting/transactions?{urllib.parse.urlencode(query)}")
        document = answer.json() or {}
        details = [d for d in document.get("transaction_details") or [] if isinstance(d, dict)]
        records = [event for d in details if (event := paypal_event(d, api_base=self.base_url)) is not None]
        if page < int(document.get("total_pages") or 0):
            next_cursor: str | None = f"{start.isoformat()}|{end.isoformat()}|{page + 1}"
        elif stop < end:
            next_cursor = f"{stop.isoformat()}|{end.isoformat()}|1"
        else:
            next_cursor = None
        return Page(records, next_cursor, None)

    def _get(self, url: str) -> HttpResponse:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._access_token()}", "Accept": "application/json",
                       "Content-Type": "application/json"}  # fmt: skip
            self.limiter.acquire()
            self.requests += 1
            response = self.transport("GET", url, headers, None)
            if response.status == 401 and attempt == 1:
                self._token = ""  # expired or revoked early: one fresh token
                continue
            return _check(response, "paypal")
        raise AssertionError("unreachable")  # pragma: no cover

    def _access_token(self) -> str:
        if self._token and self.clock() < self._expires:
            return self._token
        credentials = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json",
                   "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
        self.limiter.acquire()
        self.requests += 1
        url = f"{self.base_url.rstrip('/')}/v1/oauth2/token"
        response = self.transport("POST", url, headers, b"grant_type=client_credentials")
        if response.status == 401:
            raise NotConfigured("paypal refused the client id and secret (401 invalid_client)")
        document = _check(response, "paypal").json() or {}
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceApiError("paypal answered the token request without an access token")
        self._token = token
        self._expires = self.clock() + max(0.0, float(document.get("expires_in") or 0) - 60)
        return token


@dataclass(frozen=True)
class SourceCredentials:
    """From the SourceApiCredentials secret (JSON) or the environment (local runs)."""

    shopify_shop_domain: str = ""
    shopify_access_token: str = ""
    woocommerce_base_url: str = ""
    woocommerce_consumer_key: str = ""
    woocommerce_consumer_secret: str = ""
    stripe_api_key: str = ""
    paypal_client_id: str = ""
    paypal_client_secret: str = ""
    paypal_base_url: str = PAYPAL_LIVE  # https://api-m.sandbox.paypal.com for a sandbox app

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SourceCredentials:
        return cls(**{k: str(values[k]) for k in cls.__dataclass_fields__ if values.get(k)})


def client_for(
    source: str,
    credentials: SourceCredentials,
    *,
    transport: Callable[..., HttpResponse] = urllib_transport,
    rate_per_second: float | None = None,
) -> SourceClient:
    """The client of a source, with its rate budget (requests per second; None = the vendor's documented default)."""
    client: SourceClient
    if source == "shopify":
        if not (credentials.shopify_shop_domain and credentials.shopify_access_token):
            raise NotConfigured("shopify API credentials are not configured (shop domain and Admin API token)")
        client = ShopifyClient(credentials.shopify_shop_domain, credentials.shopify_access_token, transport)
    elif source == "woocommerce":
        if not (credentials.woocommerce_base_url and credentials.woocommerce_consumer_key):
            raise NotConfigured("woocommerce API credentials are not configured (store URL, consumer key and secret)")
        client = WooCommerceClient(
            credentials.woocommerce_base_url,
            credentials.woocommerce_consumer_key,
            credentials.woocommerce_consumer_secret,
            transport,
        )
    elif source == "stripe":
        if not credentials.stripe_api_key:
            raise NotConfigured("stripe API key is not configured")
        client = StripeClient(credentials.stripe_api_key, transport)
    elif source == "paypal":
        if not (credentials.paypal_client_id and credentials.paypal_client_secret):
            raise NotConfigured("paypal API credentials are not configured (REST app client id and secret)")
        client = PayPalClient(
            credentials.paypal_client_id, credentials.paypal_client_secret, credentials.paypal_base_url, transport
        )
    else:
        raise NotSupported(f"unknown source {source}")
    if rate_per_second is not None:
        client.limiter.per_second = rate_per_second
    return client
