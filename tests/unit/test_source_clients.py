"""Source API clients for Shopify (GraphQL Admin API) and PayPal (transaction search) against their documented answers
(tests/fixtures/shopify/graphql/, tests/fixtures/paypal/transaction-search/, each with a SOURCE.txt): pagination,
cost-based throttling and 429s, errors, and what reconciliation and backfill make of the records. No sockets: a
scripted transport answers, and PayPal requests are validated against PayPal's OpenAPI spec of the operation."""

from __future__ import annotations

import json
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from crmsync.convert import ConvertDeps, convert_message
from crmsync.messages import IngestMessage
from crmsync.models import Payment, Refund
from crmsync.sync import reconcile
from crmsync.sync.clients import (
    PAYPAL_SANDBOX,
    HttpResponse,
    Page,
    PayPalClient,
    RateLimiter,
    ShopifyClient,
    SourceApiError,
    SourceCredentials,
    SourceRateLimited,
    client_for,
    paypal_event,
    shopify_order,
)
from crmsync.sync.errors import NotConfigured
from crmsync.sync.records import as_webhook, convert_record
from tests.conftest import EVENTS, REPO
from tests.unit.test_sync import World

SHOPIFY = REPO / "tests" / "fixtures" / "shopify" / "graphql"
PAYPAL = REPO / "tests" / "fixtures" / "paypal" / "transaction-search"
GRAPHQL_URL = "https://babbage.myshopify.com/admin/api/2026-01/graphql.json"


def fixture(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text())


@dataclass
class Call:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query))


Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]


@dataclass
class Scripted:
    """Answers in order; every call kept. A check may inspect each call before it is answered."""

    answers: list[Answer]
    check: Callable[[Call], None] = lambda call: None
    calls: list[Call] = field(default_factory=list)

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None) -> HttpResponse:
        call = Call(method, url, dict(headers), body)
        self.check(call)
        self.calls.append(call)
        status, document, *rest = self.answers.pop(0)
        headers_out = {k.lower(): v for k, v in (rest[0] if rest else {}).items()}
        return HttpResponse(status, headers_out, json.dumps(document).encode())


@dataclass
class Clock:
    now: float = datetime(2026, 11, 26, 4, 0, tzinfo=UTC).timestamp()
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def shopify(transport: Scripted, clock: Clock | None = None) -> ShopifyClient:
    clock = clock or Clock()
    return ShopifyClient("babbage.myshopify.com", "shpat_test", transport, RateLimiter(0), clock=clock,
                         sleep=clock.sleep)  # fmt: skip


def graphql_call(call: Call) -> None:
    """Every Shopify request: a POST of a GraphQL document that parses, with the Admin API token."""
    assert (call.method, call.url) == ("POST", GRAPHQL_URL)
    assert call.headers["X-Shopify-Access-Token"] == "shpat_test"
    graphql.parse(call.json["query"])


# --- Shopify ---------------------------------------------------------------------------------------------------------
def test_shopify_orders_are_queried_by_updated_at_and_paged_by_cursor():
    # Given two pages of orders, the second with an order of 22 lines (20 on the page, 2 more in a follow-up query)
    transport = Scripted(
        [(200, fixture(SHOPIFY, "orders-page-1.json")), (200, fixture(SHOPIFY, "orders-page-2.json")),
         (200, fixture(SHOPIFY, "order-lines-more.json"))],
        check=graphql_call,
    )  # fmt: skip
    client = shopify(transport)
    since, until = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    # When the orders changed in a window are listed, page by page
    first = client.list_page("orders", "", since, until)
    second = client.list_page("orders", first.next_cursor or "", since, until)
    # Then the search asks for that window of updated_at, oldest change first, and pages by endCursor
    variables = [c.json["variables"] for c in transport.calls]
    window = "updated_at:>='2026-11-01T00:00:00Z' AND updated_at:<'2026-11-26T00:00:00Z'"
    assert variables[0] == {"first": 10, "after": None, "query": window}
    assert "sortKey: UPDATED_AT" in transport.calls[0].json["query"]
    assert variables[1]["after"] == fixture(SHOPIFY, "orders-page-1.json")["data"]["orders"]["pageInfo"]["endCursor"]
    assert variables[2] == {"id": "gid://shopify/Order/5678901234599", "after": variables[2]["after"]}
    # And the records are REST orders with every line, the last page ending the walk
    assert [o["id"] for o in first.records + second.records] == [5678901234567, 5678901234599]
    assert len(second.records[0]["line_items"]) == 22
    assert second.next_cursor is None
    assert second.records[0]["refunds"] == [{"transactions": [{"kind": "refund", "status": "success",
                                                               "amount": "5.0", "currency": "USD"}]}]  # fmt: skip


def test_a_graphql_order_converts_like_its_orders_webhook():
    # Given order #1042 as the GraphQL API shows it and as its REST webhook body carried it
    [node] = fixture(SHOPIFY, "orders-page-1.json")["data"]["orders"]["nodes"]
    from_api = as_webhook("shopify", "orders", shopify_order(node, node["lineItems"]["nodes"]))
    rest = json.loads((EVENTS / "payloads" / "shopify-orders-create.json").read_text())
    from_webhook = as_webhook("shopify", "orders", rest)
    assert from_api is not None
    assert from_webhook is not None
    # When both are converted
    api, webhook = convert_record(from_api), convert_record(from_webhook)
    # Then they give the same customer and order (the API read adds the payment's id, which webhooks rarely carry)
    assert _canonical(api.customer) == _canonical(webhook.customer)
    [(_, api_order)], [(_, webhook_order)] = api.entities, webhook.entities
    api_fields, webhook_fields = _canonical(api_order), _canonical(webhook_order)
    assert api_fields.pop("transaction_ids") == ["ch_3QXn2a2eZvKYlo2C1sY0Vb8J"]
    webhook_fields.pop("transaction_ids")
    assert api_fields == webhook_fields


def _canonical(model: Any) -> dict[str, Any]:
    fields = model.model_dump(mode="json")
    fields.pop("receipt_id")
    return fields


def test_shopify_customers_page_maps_to_rest_customers_that_convert():
    # Given a customers page
    client = shopify(Scripted([(200, fixture(SHOPIFY, "customers-page.json"))], check=graphql_call))
    # When it is listed, Then each customer is the REST resource of customers/update, converting to a customer
    page = client.list_page("customers", "", datetime(2026, 11, 1, tzinfo=UTC), None)
    assert [c["id"] for c in page.records] == [7012345678901, 105906728]
    assert page.records[0]["email_marketing_consent"] == {"state": "subscribed"}
    record = as_webhook("shopify", "customers", page.records[0])
    assert record is not None
    assert record.topic == "customers/update"
    customer = convert_record(record).customer
    assert customer is not None
    assert (customer.email, customer.phone, customer.accepts_marketing) == (
        "ada.lovelace@example.com", "+15024581234", True)  # fmt: skip


def test_shopify_waits_for_its_cost_bucket_and_retries_a_throttled_query():
    # Given Shopify answering THROTTLED (72 points left, 672 asked, 100 restored a second), then the page
    clock = Clock()
    names = ["throttled.json", "orders-page-1.json", "orders-page-2.json", "order-lines-more.json"]
    transport = Scripted([(200, fixture(SHOPIFY, name)) for name in names])
    client = shopify(transport, clock)
    # When two pages are listed
    first = client.list_page("orders", "", None, None)
    client.list_page("orders", first.next_cursor or "", None, None)
    # Then the throttled query was sent again once the bucket held its cost (6 s), and the next page went at once
    # (the first page's answer said 1,959 points were left)
    assert clock.sleeps == [6.0]
    assert len(transport.calls) == 4


def test_shopify_throttled_longer_than_it_may_wait_raises_rate_limited():
    # Given a shop whose bucket refills 10 points a second and holds 72
    throttled = fixture(SHOPIFY, "throttled.json")
    throttled["extensions"]["cost"]["throttleStatus"]["restoreRate"] = 10.0
    client = shopify(Scripted([(200, throttled)]))
    # Then listing gives up with the wait it would need (60 s), for the caller to retry later
    with pytest.raises(SourceRateLimited) as raised:
        client.list_page("orders", "", None, None)
    assert raised.value.retry_after == 60.0


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (
            (429, {"errors": "Exceeded 2 calls per second for api client."}, {"Retry-After": "2.0"}),
            SourceRateLimited,
            "retry after 2 s",
        ),
        ((200, "access-denied.json"), SourceApiError, "ACCESS_DENIED"),
        (
            (401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
            SourceApiError,
            "(401)",
        ),
        ((503, {"errors": "Service unavailable"}), SourceApiError, "503"),
    ],
)
def test_shopify_refusals_raise_with_the_status_or_code_and_no_body_text(answer, kind, words):
    status, body, *rest = answer
    document = fixture(SHOPIFY, body) if isinstance(body, str) else body
    client = shopify(Scripted([(status, document, *rest)]))
    with pytest.raises(kind) as raised:
        client.list_page("orders", "", None, None)
    assert words in str(raised.value)
    assert "read_orders" not in str(raised.value)
    assert "password" not in str(raised.value)


# --- PayPal ----------------------------------------------------------------------------------------------------------
def _paypal_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(PAYPAL / "reporting_transactions_v1.trimmed.json"))


def paypal_call(call: Call) -> None:
    """Token requests are client-credentials grants; searches fit PayPal's OpenAPI spec of the operation."""
    parts = urllib.parse.urlsplit(call.url)
    if parts.path == "/v1/oauth2/token":
        assert (call.method, call.body) == ("POST", b"grant_type=client_credentials")
        assert call.headers["Authorization"].startswith("Basic ")
        return
    assert call.headers["Authorization"].startswith("Bearer A21AA")
    request = MockRequest(f"{parts.scheme}://{parts.netloc}", call.method, parts.path, args=call.query)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the spec's OAuth2 security scheme is not checked here
        _paypal_spec().validate_request(request)


def paypal(transport: Scripted, clock: Clock | None = None, base: str = PAYPAL_SANDBOX) -> PayPalClient:
    return PayPalClient("client-id", "client-secret", base, transport, RateLimiter(0), clock=clock or Clock())


def test_paypal_walks_31_day_ranges_page_by_page_with_one_token():
    # Given a window of 45 days: the first 31-day range has two pages, the second none
    transport = Scripted(
        [(200, fixture(PAYPAL, "token.json")), (200, fixture(PAYPAL, "window-page-1.json")),
         (200, fixture(PAYPAL, "window-page-2.json")), (200, fixture(PAYPAL, "empty.json"))],
        check=paypal_call,
    )  # fmt: skip
    client = paypal(transport)
    since, until = datetime(2026, 10, 1, 3, 0, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC)
    # When every page is listed
    pages: list[Page] = []
    cursor: str | None = ""
    while cursor is not None:
        page = client.list_page("transactions", cursor, since, until)
        pages.append(page)
        cursor = page.next_cursor
    # Then each search fitted the spec and covered at most 31 days, starting 3 hours early (PayPal's reporting lag)
    searches = [c.query for c in transport.calls[1:]]
    assert [(q["start_date"], q["end_date"], q["page"]) for q in searches] == [
        ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", "1"),
        ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", "2"),
        ("2026-11-01T00:00:00Z", "2026-11-15T00:00:00Z", "1"),
    ]
    assert {(q["fields"], q["page_size"]) for q in searches} == {("all", "500")}
    # And one token served every search
    assert sum(1 for c in transport.calls if c.url.endswith("/v1/oauth2/token")) == 1
    # And the payments, the denial and the refund are the webhook events that report them; the withdrawal and the
    # pending payment are left out
    events = [(e["event_type"], e["resource"]["id"]) for p in pages for e in p.records]
    assert events == [
        ("PAYMENT.CAPTURE.COMPLETED", "8MC585209K746392H"),
        ("PAYMENT.CAPTURE.DENIED", "2GG279541U471931P"),
        ("PAYMENT.CAPTURE.REFUNDED", "1JU08902781691411"),
    ]


def test_a_documented_transaction_converts_like_its_capture_webhook():
    # Given the documented sample transaction (T0006, S) of a sandbox app
    [detail] = fixture(PAYPAL, "documented-sample.json")["transaction_details"]
    event = paypal_event(detail, api_base=PAYPAL_SANDBOX)
    assert event is not None
    record = as_webhook("paypal", "transactions", event)
    assert record is not None
    # When it is converted
    [(_, payment)] = convert_record(record).entities
    assert isinstance(payment, Payment)
    # Then it is the capture a PAYMENT.CAPTURE.COMPLETED webhook gives: its id, amount, invoice, a test payment, and
    # the initiation date as its version (so it never outranks the webhook's update_time)
    assert (payment.source_id, payment.amount.amount, payment.amount.currency) == ("5TY05013RG002845M", 46500, "USD")
    assert payment.status.value == "succeeded"
    assert "Invoice-005" in payment.order_refs
    assert payment.test is True
    assert payment.source_version == datetime(2014, 7, 11, 4, 3, 52, tzinfo=UTC)


def test_a_refund_transaction_names_the_capture_it_refunds():
    # Given the refund of page 2 (T1107, -15.00, paypal_reference_id of the capture)
    refund_detail = fixture(PAYPAL, "window-page-2.json")["transaction_details"][0]
    event = paypal_event(refund_detail)
    record = as_webhook("paypal", "transactions", event or {})
    assert record is not None
    [(_, refund)] = convert_record(record).entities
    # Then it is a refund of 15.00 on that capture
    assert isinstance(refund, Refund)
    assert (refund.source_id, refund.payment_id) == ("1JU08902781691411", "8MC585209K746392H")
    assert refund.amount.amount == 1500
    assert refund.test is False


@pytest.mark.parametrize(
    ("answers", "kind", "words"),
    [
        ([(200, "token.json"), (429, "rate-limited.json")], SourceRateLimited, "rate limited"),
        ([(200, "token.json"), (403, "not-authorized.json")], SourceApiError, "403 NOT_AUTHORIZED"),
        ([(200, "token.json"), (500, "server-error.json")], SourceApiError, "500 INTERNAL_SERVER_ERROR"),
        ([(401, "token-invalid-client.json")], NotConfigured, "client id and secret"),
    ],
)
def test_paypal_refusals_raise_with_their_status_and_code(answers, kind, words):
    client = paypal(Scripted([(status, fixture(PAYPAL, name)) for status, name in answers]))
    with pytest.raises(kind, match=words):
        client.list_page("transactions", "", datetime(2026, 11, 1, tzinfo=UTC), None)


def test_paypal_fetches_a_new_token_once_when_a_search_answers_401_and_when_it_expires():
    # Given a token PayPal stops honouring early, then a fresh one
    clock = Clock()
    transport = Scripted(
        [(200, fixture(PAYPAL, "token.json")), (401, {"error": "invalid_token"}), (200, fixture(PAYPAL, "token.json")),
         (200, fixture(PAYPAL, "empty.json")), (200, fixture(PAYPAL, "empty.json")),
         (200, fixture(PAYPAL, "token.json")), (200, fixture(PAYPAL, "empty.json"))],
        check=paypal_call,
    )  # fmt: skip
    client = paypal(transport, clock)
    since = datetime(2026, 11, 20, tzinfo=UTC)
    # When a page is listed, another right after, and one more once the token's 31,668 s have passed
    client.list_page("transactions", "", since, None)
    client.list_page("transactions", "", since, None)
    clock.now += 31_668
    client.list_page("transactions", "", since, None)
    # Then a token was fetched three times: first, after the 401, after the expiry
    tokens = [n for n, c in enumerate(transport.calls) if c.url.endswith("/v1/oauth2/token")]
    assert tokens == [0, 2, 5]


def test_paypal_looks_back_at_most_three_years():
    # Given no cursor and no since (a full run), When the first page is asked for
    transport = Scripted(
        [(200, fixture(PAYPAL, "token.json")), (200, fixture(PAYPAL, "empty.json"))], check=paypal_call
    )
    page = paypal(transport).list_page("transactions", "", None, None)
    # Then the search starts three years back (less a day), in a 31-day range, and the cursor goes on from its end
    query = transport.calls[1].query
    assert (query["start_date"], query["end_date"]) == ("2023-11-28T04:00:00Z", "2023-12-29T04:00:00Z")
    assert page.next_cursor is not None
    assert page.next_cursor.endswith("|1")


def test_client_for_builds_the_paypal_client_from_its_credentials():
    made = client_for("paypal", SourceCredentials(paypal_client_id="id", paypal_client_secret="secret",
                                                  paypal_base_url=PAYPAL_SANDBOX))  # fmt: skip
    assert isinstance(made, PayPalClient)
    assert made.base_url == PAYPAL_SANDBOX
    with pytest.raises(NotConfigured, match="paypal"):
        client_for("paypal", SourceCredentials())


# --- what reconciliation makes of them -------------------------------------------------------------------------------
def test_a_paypal_reconciliation_finds_the_transactions_state_lacks_and_sends_them_through_conversion():
    # Given no PayPal payment in state, and PayPal's search answering one range of two pages
    world = World([])
    transport = Scripted(
        [(200, fixture(PAYPAL, "token.json")), (200, fixture(PAYPAL, "window-page-1.json")),
         (200, fixture(PAYPAL, "window-page-2.json"))],
        check=paypal_call,
    )  # fmt: skip
    client = paypal(transport, Clock(now=datetime(2026, 10, 20, tzinfo=UTC).timestamp()))
    world.deps.client = lambda _source: client
    world.sync.marks["reconcile:paypal"] = "2026-10-01T03:00:00+00:00"
    deps = reconcile.ReconcileDeps(sync=world.deps, crm=None, mapping=None, repair_crm=lambda events: None,
                                   known_keys=lambda prefix: [], publish=lambda source, totals: None)  # fmt: skip
    # When it runs
    report = reconcile.run("paypal", deps, run_id="rc_1")
    # Then the capture, the denied capture and the refund are missing in state, and sent through conversion
    found = report["objects"]["transactions"]
    assert (found["checked"], found["missing"], found["repaired"]) == (3, 3, 3)
    converted = ConvertDeps(archive=world.archive.as_store(), state=world.state.as_store(), bus=world.bus.as_store())

    def convert(batch: list[Any]) -> list[str]:
        for message in batch:
            convert_message(IngestMessage.model_validate_json(message.body), converted)
        return []

    world.ingest.drain(convert)
    payments = sorted(i["pk"] for i in world.state.items("PAYMENT#", "STATE"))
    assert payments == ["PAYMENT#paypal:capture:2GG279541U471931P", "PAYMENT#paypal:capture:8MC585209K746392H"]
    # And a second run over the same window finds everything in step
    world.sync.marks["reconcile:paypal"] = "2026-10-01T03:00:00+00:00"
    transport.answers += [(200, fixture(PAYPAL, "window-page-1.json")), (200, fixture(PAYPAL, "window-page-2.json"))]
    again = reconcile.run("paypal", deps, run_id="rc_2")["objects"]["transactions"]
    assert (again["missing"], again["stale"]) == (0, 0)
