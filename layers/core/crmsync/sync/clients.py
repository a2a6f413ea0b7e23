"""Source API clients behind one port: list a source's objects changed within a window, a page at a time.

Each client follows its vendor's documented pagination (research/facts.md; vendor docs):
- Shopify REST Admin: GET /admin/api/<version>/orders.json?status=any&updated_at_min=&updated_at_max=&limit=250, the
  next page in the `Link: <...page_info=...>; rel="next"` header (cursor pagination: a page_info URL carries only
  limit and page_info). customers.json alike. The response wraps the list: {"orders": [...]}. 429 with Retry-After
  (leaky bucket of 40 requests, 2/s refill on standard plans).
- WooCommerce REST v3: GET /wp-json/wc/v3/orders?modified_after=&modified_before=&per_page=100&page=N&orderby=modified
  &order=asc, totals in X-WP-Total / X-WP-TotalPages; basic auth with the consumer key and secret (HTTPS).
- Stripe list APIs: GET /v1/payment_intents?created[gte]=&created[lt]=&limit=100&starting_after=<last id>, has_more;
  /v1/customers alike; /v1/events (30 days of history) for reconciliation by change time. Bearer secret key;
  429 on rate limit (100 read requests/s live, 25 in test mode).
- PayPal transaction search (/v1/reporting/transactions, 31-day windows, 3-hour data lag): not supported yet.

The cursor of a page is opaque text the client gave out (a Shopify page_info URL, a WooCommerce page number, a
Stripe object id); "" is the first page. HTTP goes through an injectable Transport (stdlib urllib by default), so
unit tests never open sockets.
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
from datetime import UTC, datetime
from typing import Any, Protocol

from crmsync.sync.errors import NotConfigured, NotSupported

SHOPIFY_API_VERSION = "2025-01"
SHOPIFY_PAGE = 250
WOOCOMMERCE_PAGE = 100
STRIPE_PAGE = 100

OBJECTS: dict[str, tuple[str, ...]] = {
    "shopify": ("orders", "customers"),
    "woocommerce": ("orders", "customers"),
    "stripe": ("payment_intents", "customers", "events"),
    "paypal": (),
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


def urllib_transport(method: str, url: str, headers: Mapping[str, str], *, timeout: float = 20.0) -> HttpResponse:
    if urllib.parse.urlparse(url).scheme not in ("https", "http"):
        raise SourceApiError("not an http(s) URL")
    request = urllib.request.Request(url, method=method, headers=dict(headers))  # noqa: S310 - http(s), checked above
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


def _check(response: HttpResponse) -> HttpResponse:
    if response.status == 429:
        try:
            retry_after = float(response.headers.get("retry-after", "2"))
        except ValueError:
            retry_after = 2.0
        raise SourceRateLimited(retry_after)
    if response.status >= 500:
        raise SourceApiError(f"source API answered {response.status}", response.status)
    if response.status >= 400:
        raise SourceApiError(f"source API refused the request ({response.status})", response.status)
    return response


_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass
class ShopifyClient:
    shop_domain: str  # x.myshopify.com
    access_token: str
    transport: Transport = urllib_transport
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(2.0, burst=40))
    api_version: str = SHOPIFY_API_VERSION
    source: str = "shopify"

    def _get(self, url: str) -> HttpResponse:
        self.limiter.acquire()
        headers = {"X-Shopify-Access-Token": self.access_token, "Accept": "application/json"}
        return _check(self.transport("GET", url, headers))

    def list_page(self, object_type: str, cursor: str, since: datetime | None, until: datetime | None) -> Page:
        if object_type not in OBJECTS["shopify"]:
            raise NotSupported(f"shopify cannot list {object_type}; use one of {', '.join(OBJECTS['shopify'])}")
        base = f"https://{self.shop_domain}/admin/api/{self.api_version}/{object_type}.json"
        total = None
        if cursor:
            url = cursor  # the Link header's next URL: page_info carries the filters
        else:
            query: dict[str, str] = {"limit": str(SHOPIFY_PAGE)}
            if object_type == "orders":
                query["status"] = "any"
            if since:
                query["updated_at_min"] = _iso(since)
            if until:
                query["updated_at_max"] = _iso(until)
            url = f"{base}?{urllib.parse.urlencode(query)}"
            count_query = {k: v for k, v in query.items() if k != "limit"}
            counted = self._get(f"{base.removesuffix('.json')}/count.json?{urllib.parse.urlencode(count_query)}")
            total = int((counted.json() or {}).get("count", 0)) or None
        response = self._get(url)
        records = (response.json() or {}).get(object_type, [])
        match = _LINK_NEXT.search(response.headers.get("link", ""))
        return Page(records, match.group(1) if match else None, total)


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


@dataclass(frozen=True)
class SourceCredentials:
    """From the SourceApiCredentials secret (JSON) or the environment (local runs)."""

    shopify_shop_domain: str = ""
    shopify_access_token: str = ""
    woocommerce_base_url: str = ""
    woocommerce_consumer_key: str = ""
    woocommerce_consumer_secret: str = ""
    stripe_api_key: str = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SourceCredentials:
        return cls(**{k: str(values[k]) for k in cls.__dataclass_fields__ if values.get(k)})


def client_for(
    source: str,
    credentials: SourceCredentials,
    *,
    transport: Transport = urllib_transport,
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
        raise NotSupported("paypal backfill and reconciliation are not supported yet (transaction search)")
    else:
        raise NotSupported(f"unknown source {source}")
    if rate_per_second is not None:
        client.limiter.per_second = rate_per_second
    return client
