"""Shopify refunds/create, customers/*, the compliance topics and order transaction ids, through
ShopifyWebhooks.convert; every expectation below is written by hand."""

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from crmsync.messages import DetailType
from crmsync.models import Address, Customer, Money, Refund, RefundStatus
from crmsync.sources.base import Converted, Notice, UnsupportedTopic
from crmsync.sources.shopify import ShopifyWebhooks, order_to_canonical, parse_order
from tests.unit.conversion import assert_same_conversion, usd

RECEIPT = "shopify:demo.myshopify.com:evt-7"
SHOPIFY = ShopifyWebhooks()

type Load = Callable[[str], bytes]


def refund(**fields: object) -> Refund:
    """A Shopify refund with this file's receipt; every other field is spelled out by each case."""
    return Refund.model_validate({"source": "shopify", "receipt_id": RECEIPT, "payment_id": None, **fields})


def customer(**fields: object) -> Customer:
    return Customer.model_validate({"source": "shopify", "receipt_id": RECEIPT, "test": False, **fields})


# ---- every topic, converted ----------------------------------------------------------------------------------------

CASES = [
    pytest.param(
        # Given Shopify's own (old-shape) refund fixture: one successful 209.00 USD transaction
        "refunds/create",
        "refunds-create.json",
        Converted(
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    refund(
                        source_id="509562969",
                        source_version=datetime(2016, 6, 20, 17, 35, 6, tzinfo=UTC),  # no processed_at: created_at
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(20900),
                        order_id="450789469",
                        reason="it broke during shipping",
                        created_at=datetime(2016, 6, 20, 17, 35, 6, tzinfo=UTC),
                        test=False,
                    ),
                ),
            )
        ),
        id="refund-published-sample",
    ),
    pytest.param(
        # Given a partial refund of one shirt (30.00 + 2.40 tax) of a two-shirt order, processed a second later
        "refunds/create",
        "refund-partial.json",
        Converted(
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    refund(
                        source_id="929361462",
                        source_version=datetime(2024, 7, 3, 20, 20, 1, tzinfo=UTC),  # processed_at
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(3240),
                        order_id="820982911946154508",
                        reason="Wrong size",
                        created_at=datetime(2024, 7, 3, 20, 20, tzinfo=UTC),
                        test=False,
                    ),
                ),
            )
        ),
        id="refund-partial",
    ),
    pytest.param(
        # Given a full refund (lines 54.00 + shipping 5.00) whose first transaction failed and second succeeded,
        # with a blank note and a null processed_at
        "refunds/create",
        "refund-full.json",
        Converted(
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    refund(
                        source_id="929361463",
                        source_version=datetime(2024, 7, 4, 14, 0, tzinfo=UTC),
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(5900),  # the failed 59.00 attempt is not money returned
                        order_id="820982911946154509",
                        reason=None,
                        created_at=datetime(2024, 7, 4, 14, 0, tzinfo=UTC),
                        test=False,
                    ),
                ),
            )
        ),
        id="refund-full-after-a-failed-attempt",
    ),
    pytest.param(
        # Given a 4500 yen refund from a test-mode shop, stamped +09:00, with a Japanese note
        "refunds/create",
        "refund-jpy.json",
        Converted(
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    refund(
                        source_id="929361464",
                        source_version=datetime(2024, 5, 2, 1, 0, 2, tzinfo=UTC),
                        status=RefundStatus.SUCCEEDED,
                        amount=Money(amount=4500, currency="JPY"),
                        order_id="820982911946154508",
                        reason="配送中に破損",
                        created_at=datetime(2024, 5, 2, 1, 0, tzinfo=UTC),
                        test=True,
                    ),
                ),
            )
        ),
        id="refund-jpy-test-mode",
    ),
    pytest.param(
        # Given a refund with no transactions yet: line 20.00 + tax 3.80, shipping adjustment "-4.90" (order's side)
        "refunds/create",
        "refund-no-transactions.json",
        Converted(
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    refund(
                        source_id="929361465",
                        source_version=datetime(2024, 8, 12, 9, 30, tzinfo=UTC),
                        status=RefundStatus.PENDING,
                        amount=Money(amount=2870, currency="EUR"),  # 20.00 + 3.80 + 4.90 in shop money
                        order_id="820982911946154510",
                        reason="Return received, payout pending",
                        created_at=datetime(2024, 8, 12, 9, 30, tzinfo=UTC),
                        test=False,
                    ),
                ),
            )
        ),
        id="refund-without-transactions-priced-by-lines",
    ),
    pytest.param(
        # Given a KWD refund whose only transaction is still pending: it is priced by its lines, in fils
        "refunds/create",
        "refund-pending-kwd.json",
        Converted(
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    refund(
                        source_id="929361466",
                        source_version=datetime(2024, 3, 11, 9, 0, tzinfo=UTC),
                        status=RefundStatus.PENDING,
                        amount=Money(amount=12345, currency="KWD"),
                        order_id="820982911946154511",
                        reason=None,
                        created_at=datetime(2024, 3, 11, 9, 0, tzinfo=UTC),
                        test=False,
                    ),
                ),
            )
        ),
        id="refund-pending-kwd",
    ),
    pytest.param(
        # Given a 500.00 goodwill refund on the sample order, whose total is 409.94
        "refunds/create",
        "refund-larger-than-order.json",
        Converted(
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    refund(
                        source_id="509562970",
                        source_version=datetime(2016, 6, 21, 13, 0, tzinfo=UTC),
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(50000),  # reported as Shopify says: the body has no order total to cap it by
                        order_id="450789469",
                        reason="Goodwill: refund more than was paid",
                        created_at=datetime(2016, 6, 21, 13, 0, tzinfo=UTC),
                        test=False,
                    ),
                ),
            )
        ),
        id="refund-larger-than-the-order",
    ),
    pytest.param(
        # Given Shopify's own (old-shape) customer fixture: accepts_marketing false, a 555 phone on the address
        "customers/create",
        "customers-create.json",
        Converted(
            customer=customer(
                source_id="207119551",
                source_version=datetime(2015, 5, 27, 22, 11, 24, tzinfo=UTC),
                email="bob.norman@hostmail.com",
                first_name="Bob",
                last_name="Norman",
                phone=None,  # "555-625-1199" is no valid US number
                address=Address(
                    line1="Chestnut Street 92",
                    line2=None,
                    city="Louisville",
                    region="KY",
                    postal_code="40202",
                    country="US",
                ),
                accepts_marketing=False,
            )
        ),
        id="customer-published-sample",
    ),
    pytest.param(
        # Given an update for " Zoë " Ødegård-Łukasiewicz: no customer phone, a Norwegian phone on the address
        "customers/update",
        "customers-update-unicode.json",
        Converted(
            customer=customer(
                source_id="706405506930370084",
                source_version=datetime(2024, 9, 1, 10, 0, tzinfo=UTC),
                email="zoe.odegard@example.no",
                first_name="Zoë",
                last_name="Ødegård-Łukasiewicz",
                phone="+4722123456",  # the address phone, read in the address's country
                address=Address(
                    line1="Karl Johans gate 1",
                    line2=None,
                    city="Oslo",
                    region=None,
                    postal_code="0154",
                    country="NO",
                ),
                accepts_marketing=True,  # email_marketing_consent.state "subscribed"
            )
        ),
        id="customer-update-unicode-names",
    ),
    pytest.param(
        # Given 山田 太郎 with no phone anywhere; consent "not_subscribed" while the old flag still says true
        "customers/create",
        "customers-create-no-phone.json",
        Converted(
            customer=customer(
                source_id="115310627314723954",
                source_version=datetime(2024, 5, 1, 0, 30, tzinfo=UTC),
                email="taro.yamada@example.jp",
                first_name="太郎",
                last_name="山田",
                phone=None,
                address=Address(
                    line1="千代田区千代田1-1",
                    line2=None,
                    city="千代田区",
                    region="JP-13",
                    postal_code="100-0001",
                    country="JP",
                ),
                accepts_marketing=False,  # the current consent wins over the deprecated flag
            )
        ),
        id="customer-without-phone",
    ),
    pytest.param(
        # Given a phone of "call me maybe", no address at all and a consent still pending confirmation
        "customers/create",
        "customers-create-unparseable-phone.json",
        Converted(
            customer=customer(
                source_id="706405506930370085",
                source_version=datetime(2024, 6, 1, 15, 0, tzinfo=UTC),
                email="pat.lee@example.com",
                first_name="Pat",
                last_name="Lee",
                phone=None,  # dropped, not fatal
                address=None,
                accepts_marketing=None,  # "pending" is neither yes nor no, and there is no old flag
            )
        ),
        id="customer-unparseable-phone",
    ),
    pytest.param(
        # Given a customers/delete body (Shopify sends little more than the id)
        "customers/delete",
        "customers-delete.json",
        Converted(notices=(Notice(DetailType.CUSTOMER_DELETED, key="shopify:customer:706405506930370084"),)),
        id="customer-deleted",
    ),
    pytest.param(
        # Given a customers/redact request for customer 191167 and three orders
        "customers/redact",
        "customers-redact.json",
        Converted(
            notices=(
                Notice(
                    DetailType.ERASURE_REQUESTED,
                    key="shopify:customer:191167",
                    data={
                        "kind": "customers/redact",
                        "shop_domain": "demo.myshopify.com",
                        "customer_id": "191167",
                        "orders_to_redact": ["299938", "280263", "220458"],
                    },
                ),
            )
        ),
        id="customers-redact",
    ),
    pytest.param(
        # Given a shop/redact request (48 hours after uninstall)
        "shop/redact",
        "shop-redact.json",
        Converted(
            notices=(
                Notice(
                    DetailType.ERASURE_REQUESTED,
                    key="shopify:shop:demo.myshopify.com",
                    data={"kind": "shop/redact", "shop_domain": "demo.myshopify.com", "shop_id": "954889"},
                ),
            )
        ),
        id="shop-redact",
    ),
    pytest.param(
        # Given a customers/data_request: an export request, its own event (never an erasure)
        "customers/data_request",
        "customers-data-request.json",
        Converted(
            notices=(
                Notice(
                    DetailType.DATA_REQUESTED,
                    key="shopify:customer:191167",
                    data={
                        "kind": "customers/data_request",
                        "data_request_id": "9999",
                        "shop_domain": "demo.myshopify.com",
                        "customer_id": "191167",
                        "orders_requested": ["299938", "280263", "220458"],
                    },
                ),
            )
        ),
        id="customers-data-request",
    ),
]


@pytest.mark.parametrize(("topic", "fixture", "expected"), CASES)
def test_topic_converts_field_by_field(shopify_payload: Load, topic: str, fixture: str, expected: Converted) -> None:
    # When the signed body is converted under its topic
    converted = SHOPIFY.convert(topic, shopify_payload(fixture), receipt_id=RECEIPT)

    # Then it says exactly what the case expects
    assert_same_conversion(converted, expected)


def test_refund_is_keyed_and_formatted_like_every_refund(shopify_payload: Load) -> None:
    # Given the partial refund / When converted
    [(_, entity)] = SHOPIFY.convert(
        "refunds/create", shopify_payload("refund-partial.json"), receipt_id=RECEIPT
    ).entities

    # Then its external id and human amount follow the canonical rules
    assert isinstance(entity, Refund)
    assert entity.external_id == "shopify:refund:929361462"
    assert entity.amount.formatted() == "32.40"


# ---- compliance: nothing personal leaves the body ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "fixture", "detail_type"),
    [
        ("customers/redact", "customers-redact.json", DetailType.ERASURE_REQUESTED),
        ("customers/data_request", "customers-data-request.json", DetailType.DATA_REQUESTED),
        ("shop/redact", "shop-redact.json", DetailType.ERASURE_REQUESTED),
    ],
)
def test_compliance_notices_hold_no_email_or_phone(
    shopify_payload: Load, topic: str, fixture: str, detail_type: DetailType
) -> None:
    # Given a compliance body (the customer ones carry john@example.com and +15026251199)
    # When converted
    converted = SHOPIFY.convert(topic, shopify_payload(fixture), receipt_id=RECEIPT)

    # Then a single notice of its kind is recorded, no customer is upserted, and neither the email nor the
    # phone appears in what is stored or published
    [notice] = converted.notices
    assert notice.detail_type is detail_type
    assert converted.customer is None
    assert converted.entities == ()
    stored = json.dumps([notice.key, notice.data])
    for personal in ("john@example.com", "+15026251199", "email", "phone"):
        assert personal not in stored
    assert notice.data["kind"] == topic


# ---- order transaction ids -----------------------------------------------------------------------------------------


def test_order_carries_the_authorizations_of_its_transactions(shopify_payload: Load) -> None:
    # Given an order paid by Stripe (authorized, then captured: the same pi_ twice, once padded), a gift card
    # (no authorization), a blank one and a PayPal sale
    _, order = order_to_canonical(parse_order(shopify_payload("order-with-transactions.json")), receipt_id=RECEIPT)

    # Then each payment id is listed once, trimmed, in the order first seen
    assert order.transaction_ids == ("pi_3PZabc2eZvKYlo2C1xYzAbCd", "5TY05013RG002845M")


def test_order_without_transactions_lists_no_payment_ids(shopify_payload: Load) -> None:
    # Given the published order sample (its only transactions are inside refunds, none at the top level)
    _, order = order_to_canonical(parse_order(shopify_payload("orders-create.json")), receipt_id=RECEIPT)

    # Then it quotes no payment ids
    assert order.transaction_ids == ()


# ---- bodies that do not fit, topics we do not convert --------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "fixture"),
    [
        pytest.param("refunds/create", "orders-create.json", id="order-as-refund"),
        pytest.param("refunds/create", "customers-create.json", id="customer-as-refund"),
        pytest.param("customers/create", "refunds-create.json", id="refund-as-customer"),
        pytest.param("customers/redact", "shop-redact.json", id="shop-redact-as-customers-redact"),
        pytest.param("customers/data_request", "customers-redact.json", id="redact-as-data-request"),
    ],
)
def test_json_of_another_shape_is_a_validation_error(shopify_payload: Load, topic: str, fixture: str) -> None:
    # Given a signed body of another topic's shape / When converted / Then pydantic says why (the DLQ keeps it)
    with pytest.raises(ValidationError):
        SHOPIFY.convert(topic, shopify_payload(fixture), receipt_id=RECEIPT)


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("refunds/create", b"{}", id="refund-empty-object"),
        pytest.param("refunds/create", b'{"id": 1, "order_id": "x", "created_at": "2024-01-01T00:00:00Z"}', id="id"),
        pytest.param("refunds/create", b'{"id": 1, "order_id": 2, "created_at": "2024-01-01T00:00:00"}', id="naive"),
        pytest.param("customers/update", b'{"id": 1}', id="customer-without-updated-at"),
        pytest.param("customers/delete", b"[]", id="delete-array"),
        pytest.param("shop/redact", b'{"shop_id": 954889, "shop_domain": "  "}', id="blank-shop-domain"),
        pytest.param("customers/redact", b'{"shop_id": 1, "shop_domain": "a.myshopify.com"}', id="no-customer"),
    ],
)
def test_malformed_bodies_are_validation_errors(topic: str, body: bytes) -> None:
    with pytest.raises(ValidationError):
        SHOPIFY.convert(topic, body, receipt_id=RECEIPT)


def _edited(body: bytes, **changes: object) -> bytes:
    payload = json.loads(body)
    payload.update(changes)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("fixture", "changes", "message"),
    [
        pytest.param(
            "refund-full.json",
            {
                "transactions": [
                    {"kind": "refund", "status": "success", "amount": "10.00", "currency": "USD"},
                    {"kind": "refund", "status": "success", "amount": "9.00", "currency": "EUR"},
                ]
            },
            "several currencies",
            id="successful-transactions-in-two-currencies",
        ),
        pytest.param(
            # The old sample's line items carry no *_set money: with nothing paid back, there is no price to take
            "refunds-create.json",
            {"transactions": []},
            "without shop money",
            id="no-transaction-and-unpriced-lines",
        ),
        pytest.param(
            "refund-partial.json",
            {"transactions": [], "refund_line_items": [], "order_adjustments": []},
            "names no currency",
            id="nothing-to-price",
        ),
    ],
)
def test_refund_that_cannot_be_priced_is_a_value_error(
    shopify_payload: Load, fixture: str, changes: dict[str, object], message: str
) -> None:
    # Given a refund whose amount cannot be told without guessing / When converted / Then it fails loudly
    with pytest.raises(ValueError, match=message):
        SHOPIFY.convert("refunds/create", _edited(shopify_payload(fixture), **changes), receipt_id=RECEIPT)


@pytest.mark.parametrize("topic", ["products/create", "orders/delete", "customers/enable", "app/uninstalled", ""])
def test_topic_without_a_converter_is_unsupported(topic: str) -> None:
    with pytest.raises(UnsupportedTopic):
        SHOPIFY.convert(topic, b'{"id": 1}', receipt_id=RECEIPT)


def test_handled_topics_are_exactly_the_converted_ones() -> None:
    # Then ingest accepts every topic convert handles, and nothing more
    assert ShopifyWebhooks().handled_topics == {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "refunds/create",
        "customers/create",
        "customers/update",
        "customers/delete",
        "customers/redact",
        "shop/redact",
        "customers/data_request",
    }
    assert {case.values[0] for case in CASES} <= ShopifyWebhooks().handled_topics
