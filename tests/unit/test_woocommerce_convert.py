"""WooCommerce order and customer payloads → canonical entities; every expectation below is written by hand."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from crmsync.messages import DetailType
from crmsync.models import Address, Customer, LineItem, Money, Order, OrderStatus, Refund, RefundStatus
from crmsync.sources.base import Converted, Notice, UnsupportedTopic
from crmsync.sources.woocommerce import WooCommerceWebhooks, WooOrder, WooRefundRef, order_to_canonical, parse_order

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "woocommerce"
RECEIPT = "woocommerce:https://example.com/:order:727:2017-03-22T19:28:08"

woo = WooCommerceWebhooks()


def payload(name: str) -> bytes:
    """Raw bytes of a WooCommerce webhook body, exactly as the convert function reads them from the archive."""
    return (FIXTURES / name).read_bytes()


def convert(topic: str, name: str) -> Converted:
    return woo.convert(topic, payload(name), receipt_id=RECEIPT)


def order_of(converted: Converted) -> tuple[DetailType, Order]:
    detail_type, order = converted.entities[0]
    assert isinstance(order, Order)
    return detail_type, order


def refunds_of(converted: Converted) -> list[tuple[DetailType, Refund]]:
    refunds = [(detail_type, entity) for detail_type, entity in converted.entities[1:] if isinstance(entity, Refund)]
    assert len(refunds) == len(converted.entities) - 1
    return refunds


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="USD")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def assert_same_fields(actual: BaseModel | None, expected: BaseModel) -> None:
    """Field by field, so a failure names the field, then whole-object equality to catch anything missed."""
    assert actual is not None
    for name in type(expected).model_fields:
        assert getattr(actual, name) == getattr(expected, name), name
    assert actual == expected


# ---- the published samples ---------------------------------------------------------------------------------------


def test_published_order_sample_converts_field_by_field() -> None:
    # Given WooCommerce's own order example (a guest checkout: customer_id 0), delivered as order.created
    converted = convert("order.created", "order.created.json")

    # Then the customer comes from billing; "(555) 555-5555" is no valid US number, so it is dropped
    version = at(2017, 3, 22, 19, 28, 8)  # "date_modified_gmt": "2017-03-22T19:28:08", UTC without an offset
    assert_same_fields(
        converted.customer,
        Customer(
            source="woocommerce",
            source_id=None,
            source_version=version,
            receipt_id=RECEIPT,
            email="john.doe@example.com",
            first_name="John",
            last_name="Doe",
            phone=None,
            address=Address(
                line1="969 Market",
                line2=None,
                city="San Francisco",
                region="CA",
                postal_code="94103",
                country="US",
            ),
            accepts_marketing=None,
            test=False,
        ),
    )
    # And the order is placed, paid (processing with a payment date), priced exactly from strings and numbers
    detail_type, order = order_of(converted)
    assert detail_type is DetailType.ORDER_PLACED
    assert_same_fields(
        order,
        Order(
            source="woocommerce",
            source_id="727",
            source_version=version,
            receipt_id=RECEIPT,
            name="#727",
            status=OrderStatus.PAID,
            fulfillment_status=None,
            total=usd(2935),
            presentment_total=None,
            subtotal=usd(1800),
            total_tax=usd(135),
            total_discounts=usd(0),
            total_shipping=usd(1000),
            refunded=None,
            line_items=(
                LineItem(
                    source_id="315",
                    sku=None,  # "" in the payload
                    title="Woo Single #1",
                    quantity=2,
                    unit_price=usd(300),
                    total_discount=usd(0),
                ),
                LineItem(
                    source_id="316",
                    sku="Bar3",
                    title="Ship Your Idea \u2013 Color: Black, Size: M Test",  # "&ndash;" decoded to an en dash
                    quantity=1,
                    unit_price=usd(1200),
                    total_discount=usd(0),
                ),
            ),
            customer_email="john.doe@example.com",
            customer_source_id=None,
            placed_at=at(2017, 3, 22, 19, 28, 2),
            cancelled_at=None,
            closed_at=None,
            test=False,
            transaction_ids=(),  # "transaction_id": ""
        ),
    )
    assert len(converted.entities) == 1
    assert converted.notices == ()
    assert order.external_id == "woocommerce:order:727"
    assert order.total.formatted() == "29.35"


@pytest.mark.parametrize(
    ("topic", "detail_type"),
    [
        ("order.created", DetailType.ORDER_PLACED),
        ("order.updated", DetailType.ORDER_PAID),
        ("order.restored", DetailType.ORDER_UPDATED),
    ],
)
def test_order_topics_name_the_domain_event(topic: str, detail_type: DetailType) -> None:
    # Given the paid sample order under each order topic / Then the event follows the topic
    assert order_of(convert(topic, "order.created.json"))[0] is detail_type


def test_published_customer_sample_converts_field_by_field() -> None:
    # Given WooCommerce's own customer example, delivered as customer.created
    converted = convert("customer.created", "customer.created.json")

    # Then only the customer is produced, versioned by its date_modified_gmt
    assert_same_fields(
        converted.customer,
        Customer(
            source="woocommerce",
            source_id="25",
            source_version=at(2017, 3, 21, 19, 9, 30),
            receipt_id=RECEIPT,
            email="john.doe@example.com",
            first_name="John",
            last_name="Doe",
            phone=None,
            address=Address(
                line1="969 Market",
                line2=None,
                city="San Francisco",
                region="CA",
                postal_code="94103",
                country="US",
            ),
            accepts_marketing=None,
            test=False,
        ),
    )
    assert converted.entities == ()
    assert converted.notices == ()


# ---- currencies --------------------------------------------------------------------------------------------------


def test_jpy_order_on_the_wire_has_no_decimals_and_keeps_japanese_names() -> None:
    # Given a JPY order from 山田 太郎 in core's exact wire format (compact, \u escapes, "\/" in URLs)
    converted = convert("order.updated", "order-jpy.json")

    # Then amounts are whole yen, text is decoded, and the email is normalised
    version = at(2024, 4, 30, 15, 0, 7)
    assert_same_fields(
        converted.customer,
        Customer(
            source="woocommerce",
            source_id="88",
            source_version=version,
            receipt_id=RECEIPT,
            email="taro.yamada@example.jp",
            first_name="太郎",
            last_name="山田",
            phone="+819012345678",
            address=Address(
                line1="千代田1-1",
                line2=None,
                city="千代田区",
                region="JP13",
                postal_code="100-0001",
                country="JP",
            ),
        ),
    )
    detail_type, order = order_of(converted)
    assert detail_type is DetailType.ORDER_PAID
    yen = Money(amount=4500, currency="JPY")
    assert_same_fields(
        order,
        Order(
            source="woocommerce",
            source_id="4101",
            source_version=version,
            receipt_id=RECEIPT,
            name="#4101",
            status=OrderStatus.PAID,
            fulfillment_status=None,
            total=yen,
            presentment_total=None,
            subtotal=Money(amount=4000, currency="JPY"),
            total_tax=Money(amount=400, currency="JPY"),
            total_discounts=Money(amount=0, currency="JPY"),
            total_shipping=Money(amount=100, currency="JPY"),
            refunded=None,
            line_items=(
                LineItem(
                    source_id="977",
                    sku="MATCHA-100G",
                    title="抹茶 100g",
                    quantity=2,
                    unit_price=Money(amount=2000, currency="JPY"),
                    total_discount=Money(amount=0, currency="JPY"),
                ),
            ),
            customer_email="taro.yamada@example.jp",
            customer_source_id="88",
            placed_at=at(2024, 4, 30, 15, 0, 0),
            cancelled_at=None,
            closed_at=None,
            transaction_ids=("pi_3PJpYamada0001",),
        ),
    )
    assert order.total.formatted() == "4500"


def test_kwd_order_has_three_decimals_and_on_hold_is_authorized() -> None:
    # Given a KWD bank-transfer order awaiting payment (on-hold), line price sent as the JSON number 4.115
    converted = convert("order.created", "order-kwd.json")

    # Then fils are exact and the order is authorized, not paid
    detail_type, order = order_of(converted)
    kwd = Money(amount=12345, currency="KWD")
    assert detail_type is DetailType.ORDER_PLACED
    assert order.status is OrderStatus.AUTHORIZED
    assert order.total == kwd
    assert order.total.formatted() == "12.345"
    assert order.subtotal == kwd
    assert order.total_tax == Money(amount=0, currency="KWD")
    assert order.total_shipping == Money(amount=0, currency="KWD")
    assert order.line_items == (
        LineItem(
            source_id="611",
            sku="CARD-TIN",
            title="Cardamom tin",
            quantity=3,
            unit_price=Money(amount=4115, currency="KWD"),
            total_discount=Money(amount=0, currency="KWD"),
        ),
    )
    assert order.line_items[0].unit_price.formatted() == "4.115"
    assert order.source_version == at(2024, 3, 10, 9, 0)
    assert_same_fields(
        converted.customer,
        Customer(
            source="woocommerce",
            source_id="310",
            source_version=at(2024, 3, 10, 9, 0),
            receipt_id=RECEIPT,
            email="fatima@example.com.kw",
            first_name="Fatima",
            last_name="Al-Sabah",
            phone="+96522223333",
            address=Address(
                line1="Block 3, Street 14",
                line2=None,
                city="Kuwait City",
                region="Al Asimah",
                postal_code="13001",
                country="KW",
            ),
        ),
    )


# ---- who the order is about --------------------------------------------------------------------------------------


def test_guest_checkout_without_email_is_known_by_name_and_phone() -> None:
    # Given a guest order (customer_id 0) taken by phone: no billing email
    converted = convert("order.created", "order-guest.json")

    # Then a customer without store id or email is made from the billing name, phone and address
    assert_same_fields(
        converted.customer,
        Customer(
            source="woocommerce",
            source_id=None,
            source_version=at(2024, 2, 2, 7, 15),
            receipt_id=RECEIPT,
            email=None,
            first_name="Marie",
            last_name="Dupont",
            phone="+33612345678",
            address=Address(
                line1="12 rue de la Paix",
                line2="Bât. B",
                city="Paris",
                region=None,
                postal_code="75002",
                country="FR",
            ),
        ),
    )
    _, order = order_of(converted)
    assert order.customer_email is None
    assert order.customer_source_id is None
    assert order.status is OrderStatus.PENDING
    assert order.total == Money(amount=3990, currency="EUR")
    assert order.line_items[0].sku is None  # null in the payload


def test_guest_without_email_or_phone_names_nobody() -> None:
    # Given the guest order with its phone removed too / When converted
    guest = parse_order(payload("order-guest.json"))
    assert guest.billing is not None
    anonymous = guest.model_copy(update={"billing": guest.billing.model_copy(update={"phone": ""})})
    customer, order, refunds = order_to_canonical(anonymous, receipt_id="r")

    # Then there is nobody to resolve: only the order
    assert customer is None
    assert order.customer_email is None
    assert refunds == ()


def test_store_customer_id_alone_is_enough_for_a_customer() -> None:
    # Given the guest order attributed to store customer 5, still without email or phone
    guest = parse_order(payload("order-guest.json"))
    assert guest.billing is not None
    registered = guest.model_copy(update={"customer_id": 5, "billing": guest.billing.model_copy(update={"phone": ""})})
    customer, order, _ = order_to_canonical(registered, receipt_id="r")

    # Then the customer is known by that id
    assert customer is not None
    assert customer.source_id == order.customer_source_id == "5"
    assert customer.email is None
    assert customer.phone is None


def test_non_latin_names_are_trimmed_but_otherwise_untouched() -> None:
    # Given " Zoë " Ødegård-Łukasiewicz in Tromsø, order number "NO-7800", prices including tax
    converted = convert("order.updated", "order-unicode.json")

    # Then names, city and title survive byte for byte; the order name is the store's number
    assert_same_fields(
        converted.customer,
        Customer(
            source="woocommerce",
            source_id="61",
            source_version=at(2024, 1, 15, 9, 0, 5),
            receipt_id=RECEIPT,
            email="zoe@example.no",
            first_name="Zoë",
            last_name="Ødegård-Łukasiewicz",
            phone="+4722123456",
            address=Address(
                line1="Storgata 1", line2=None, city="Tromsø", region=None, postal_code="9008", country="NO"
            ),
        ),
    )
    _, order = order_of(converted)
    assert order.name == "#NO-7800"
    assert order.source_id == "7800"
    assert order.line_items[0].title == "Skismøring"
    assert order.line_items[0].unit_price == Money(amount=15920, currency="NOK")
    assert order.total == Money(amount=19900, currency="NOK")
    assert order.total_tax == Money(amount=3980, currency="NOK")
    assert order.transaction_ids == ("vipps-7800-1",)


def test_missing_phone_is_none() -> None:
    # Given a completed order whose billing phone is ""
    converted = convert("order.updated", "order-missing-phone.json")

    # Then the customer has no phone, everything else intact, and the order is paid and fulfilled
    assert_same_fields(
        converted.customer,
        Customer(
            source="woocommerce",
            source_id="42",
            source_version=at(2024, 4, 3, 14, 0),
            receipt_id=RECEIPT,
            email="no.phone@example.co.uk",
            first_name="Sherlock",
            last_name="Holmes",
            phone=None,
            address=Address(
                line1="221B Baker Street", line2=None, city="London", region=None, postal_code="NW1 6XE", country="GB"
            ),
        ),
    )
    detail_type, order = order_of(converted)
    assert detail_type is DetailType.ORDER_PAID
    assert order.status is OrderStatus.PAID
    assert order.fulfillment_status == "fulfilled"
    assert order.closed_at == at(2024, 4, 3, 14, 0)
    assert order.total == Money(amount=1620, currency="GBP")
    assert order.total_tax == Money(amount=270, currency="GBP")
    assert order.total_shipping == Money(amount=350, currency="GBP")


def test_unparseable_phone_is_dropped_not_fatal_and_cash_on_delivery_is_not_paid_yet() -> None:
    # Given "call me maybe" as the phone, on a cash-on-delivery order: processing, but no date_paid
    converted = convert("order.updated", "order-unparseable-phone.json")

    # Then conversion succeeds without a phone, and the order is authorized (money comes on delivery)
    customer = converted.customer
    assert customer is not None
    assert customer.phone is None
    assert (customer.first_name, customer.last_name, customer.email) == ("Pat", "Lee", "pat.lee@example.com")
    detail_type, order = order_of(converted)
    assert order.status is OrderStatus.AUTHORIZED
    assert detail_type is DetailType.ORDER_UPDATED
    assert order.total == usd(1000)


# ---- lifecycle ---------------------------------------------------------------------------------------------------


def test_cancelled_order() -> None:
    # Given an order cancelled before payment, delivered as order.updated
    converted = convert("order.updated", "order-cancelled.json")

    # Then it is a cancellation; WooCommerce has no cancellation date, and the upper-case email is normalised
    detail_type, order = order_of(converted)
    assert detail_type is DetailType.ORDER_CANCELLED
    assert order.status is OrderStatus.CANCELLED
    assert order.cancelled_at is None
    assert order.closed_at is None
    assert order.placed_at == at(2024, 1, 1, 14, 0)
    assert order.source_version == at(2024, 1, 1, 15, 0)
    assert order.total == usd(5000)
    assert order.customer_email == "jo.park@example.com"
    customer = converted.customer
    assert customer is not None
    assert customer.source_id is None
    assert customer.address == Address(country="US")


def test_partial_refund_issues_a_refund_and_marks_the_order() -> None:
    # Given a paid order with one refund of "-15.00", a coupon on one line and a 3-for-10.00 line
    converted = convert("order.updated", "order-partial-refund.json")

    # Then the order is partially refunded; the total stays what was charged, the refund sits beside it
    detail_type, order = order_of(converted)
    version = at(2024, 6, 12, 17, 30)
    assert detail_type is DetailType.ORDER_UPDATED
    assert_same_fields(
        order,
        Order(
            source="woocommerce",
            source_id="7310",
            source_version=version,
            receipt_id=RECEIPT,
            name="#7310",
            status=OrderStatus.PARTIALLY_REFUNDED,
            fulfillment_status=None,
            total=usd(6000),
            presentment_total=None,
            subtotal=usd(6000),
            total_tax=usd(0),
            total_discounts=usd(500),
            total_shipping=usd(500),
            refunded=usd(1500),
            line_items=(
                LineItem(
                    source_id="9101",
                    sku="SOCK-3",
                    title="Sock 3-for-10 bundle",
                    quantity=3,
                    unit_price=usd(333),  # 10.00 / 3, rounded half-even; core's own "price" is 3.3333333333333335
                    total_discount=usd(0),
                ),
                LineItem(
                    source_id="9102",
                    sku="JACKET-RAIN",
                    title="Rain jacket",
                    quantity=1,
                    unit_price=usd(5000),  # before the coupon; core's "price" (45) is after it
                    total_discount=usd(500),
                ),
            ),
            customer_email="sam.rivera@example.com",
            customer_source_id="57",
            placed_at=at(2024, 6, 10, 16, 0),
            cancelled_at=None,
            closed_at=None,
            transaction_ids=("pi_3PartialRefund0001",),
        ),
    )
    # And the refund is its own entity, tied to the order and versioned by it
    assert refunds_of(converted) == [
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="woocommerce",
                source_id="7420",
                source_version=version,
                receipt_id=RECEIPT,
                status=RefundStatus.SUCCEEDED,
                amount=usd(1500),
                payment_id=None,
                order_id="7310",
                reason="Jacket arrived torn",
                created_at=None,
            ),
        )
    ]
    assert refunds_of(converted)[0][1].external_id == "woocommerce:refund:7420"
    assert converted.customer is not None
    assert converted.customer.phone == "+14155550132"


def test_fully_refunded_order_sums_its_refunds() -> None:
    # Given a refunded order with two refunds (20.00 without a reason, then 10.00)
    converted = convert("order.updated", "order-refunded.json")

    # Then the status is refunded, refunded is the sum, and each refund is issued
    detail_type, order = order_of(converted)
    version = at(2024, 7, 3, 20, 20)
    assert detail_type is DetailType.ORDER_UPDATED
    assert order.status is OrderStatus.REFUNDED
    assert order.total == usd(3000)
    assert order.refunded == usd(3000)
    assert order.transaction_ids == ("8MC585209K746392H",)
    assert refunds_of(converted) == [
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="woocommerce",
                source_id="7502",
                source_version=version,
                receipt_id=RECEIPT,
                status=RefundStatus.SUCCEEDED,
                amount=usd(2000),
                order_id="7500",
                reason=None,
            ),
        ),
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="woocommerce",
                source_id="7501",
                source_version=version,
                receipt_id=RECEIPT,
                status=RefundStatus.SUCCEEDED,
                amount=usd(1000),
                order_id="7500",
                reason="Customer changed their mind",
            ),
        ),
    ]


def test_refund_larger_than_the_order_is_kept_as_sent() -> None:
    # Given a 25.00 goodwill refund on a 20.00 order
    converted = convert("order.updated", "order-over-refund.json")

    # Then nothing is capped: refunded exceeds the total, exactly as the store recorded it
    _, order = order_of(converted)
    assert order.status is OrderStatus.REFUNDED
    assert order.total == usd(2000)
    assert order.refunded == usd(2500)
    assert [refund.amount for _, refund in refunds_of(converted)] == [usd(2500)]
    customer = converted.customer
    assert customer is not None
    assert customer.address is None  # every billing address field is blank
    assert customer.email == "lin.chen@example.com"


def test_fully_discounted_order_totals_zero() -> None:
    # Given a 100% coupon on a 25.00 e-book, completed at once
    converted = convert("order.updated", "order-full-discount.json")

    # Then the total is an exact zero, the line keeps its price and carries the whole discount
    detail_type, order = order_of(converted)
    assert detail_type is DetailType.ORDER_PAID
    assert order.status is OrderStatus.PAID
    assert order.fulfillment_status == "fulfilled"
    assert order.total == usd(0)
    assert order.total.formatted() == "0.00"
    assert order.total_discounts == usd(2500)
    assert order.subtotal == usd(2500)
    assert order.line_items[0].unit_price == usd(2500)
    assert order.line_items[0].total_discount == usd(2500)
    assert order.closed_at == at(2024, 9, 9, 13, 9, 12)
    assert order.transaction_ids == ()
    assert converted.customer is not None
    assert converted.customer.phone == "+14155550177"
    assert converted.customer.address == Address(country="US")


# ---- deletions and customers -------------------------------------------------------------------------------------


def test_order_deleted_is_a_cancellation_notice() -> None:
    # Given an order.deleted body ({"id": 727}) / When converted / Then only a notice about that order remains
    assert convert("order.deleted", "order.deleted.json") == Converted(
        notices=(Notice(DetailType.ORDER_CANCELLED, key="woocommerce:order:727", data={"deleted": True}),)
    )


def test_customer_deleted_is_a_notice() -> None:
    # Given a customer.deleted body ({"id": 26}) / Then a customer.deleted notice keyed by the store's id
    assert convert("customer.deleted", "customer.deleted.json") == Converted(
        notices=(Notice(DetailType.CUSTOMER_DELETED, key="woocommerce:customer:26"),)
    )


def test_customer_updated_falls_back_to_billing_names() -> None:
    # Given a customer whose own first and last names are blank
    converted = convert("customer.updated", "customer.updated.json")

    # Then the billing names stand in, the account email wins over billing, and the phone is E.164
    assert converted == Converted(
        customer=Customer(
            source="woocommerce",
            source_id="26",
            source_version=at(2024, 6, 1, 12, 0),
            receipt_id=RECEIPT,
            email="ana.souza@example.com.br",
            first_name="Ana",
            last_name="Souza",
            phone="+5511912345678",
            address=Address(
                line1="Av. Paulista, 1000",
                line2="apto 12",
                city="São Paulo",
                region="SP",
                postal_code="01310-100",
                country="BR",
            ),
        )
    )


def test_customer_never_modified_is_versioned_by_its_creation() -> None:
    # Given a customer body whose date_modified_gmt is null
    body = payload("customer.updated.json").replace(
        b'"date_modified_gmt": "2024-06-01T12:00:00"', b'"date_modified_gmt": null'
    )

    # Then the creation time is its version
    customer = woo.convert("customer.updated", body, receipt_id="r").customer
    assert customer is not None
    assert customer.source_version == at(2024, 5, 20, 12, 0)


# ---- rules on the sample, one field changed ----------------------------------------------------------------------


@pytest.fixture
def sample() -> WooOrder:
    return parse_order(payload("order.created.json"))


PAID_AT = datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
ONE_REFUND = (WooRefundRef(id=1, reason=None, total=Decimal("-1.00")),)


@pytest.mark.parametrize(
    ("status", "date_paid", "refunds", "expected"),
    [
        ("pending", None, (), OrderStatus.PENDING),
        ("on-hold", None, (), OrderStatus.AUTHORIZED),
        ("processing", PAID_AT, (), OrderStatus.PAID),
        ("processing", None, (), OrderStatus.AUTHORIZED),  # cash on delivery
        ("completed", PAID_AT, (), OrderStatus.PAID),
        ("completed", None, (), OrderStatus.PAID),
        ("cancelled", None, (), OrderStatus.CANCELLED),
        ("refunded", PAID_AT, ONE_REFUND, OrderStatus.REFUNDED),
        ("failed", None, (), OrderStatus.PENDING),  # the buyer may pay again on the same order
        ("checkout-draft", None, (), OrderStatus.PENDING),
        ("some-plugin-status", None, (), OrderStatus.PENDING),
        ("processing", PAID_AT, ONE_REFUND, OrderStatus.PARTIALLY_REFUNDED),
        ("on-hold", PAID_AT, ONE_REFUND, OrderStatus.PARTIALLY_REFUNDED),
        ("cancelled", PAID_AT, ONE_REFUND, OrderStatus.CANCELLED),  # ranks above partially refunded: kept
    ],
)
def test_woocommerce_status_maps_to_lifecycle(
    sample: WooOrder, status: str, date_paid: datetime | None, refunds: tuple[WooRefundRef, ...], expected: OrderStatus
) -> None:
    # Given the sample with another status, payment date and refunds / Then the lifecycle state follows
    changed = sample.model_copy(update={"status": status, "date_paid_gmt": date_paid, "refunds": refunds})
    assert order_to_canonical(changed, receipt_id="r")[1].status is expected


@pytest.mark.parametrize(
    ("status", "date_paid", "detail_type"),
    [
        ("processing", PAID_AT, DetailType.ORDER_PAID),
        ("completed", PAID_AT, DetailType.ORDER_PAID),
        ("processing", None, DetailType.ORDER_UPDATED),
        ("on-hold", None, DetailType.ORDER_UPDATED),
        ("cancelled", None, DetailType.ORDER_CANCELLED),
        ("refunded", PAID_AT, DetailType.ORDER_UPDATED),
    ],
)
def test_order_updated_event_follows_the_status(
    sample: WooOrder, status: str, date_paid: datetime | None, detail_type: DetailType
) -> None:
    # Given an order.updated delivery of the sample in another state / Then the event name follows the state
    body = sample.model_copy(update={"status": status, "date_paid_gmt": date_paid}).model_dump_json().encode()
    assert order_of(woo.convert("order.updated", body, receipt_id="r"))[0] is detail_type


def test_registered_customer_id_is_carried(sample: WooOrder) -> None:
    # Given the sample placed by store customer 25 / Then both order and customer carry the id as text
    customer, order, _ = order_to_canonical(sample.model_copy(update={"customer_id": 25}), receipt_id="r")
    assert order.customer_source_id == "25"
    assert customer is not None
    assert customer.source_id == "25"


# ---- parsing -----------------------------------------------------------------------------------------------------


def test_json_numbers_are_read_exactly() -> None:
    # Given amounts sent as JSON numbers (some plugins do) / When parsed
    order = parse_order(
        b'{"id": 1, "status": "pending", "currency": "USD", "total": 0.3, "date_modified_gmt": "2024-01-01T00:00:00",'
        b' "line_items": [{"id": 2, "name": "x", "quantity": 1, "subtotal": 0.1, "total": 12.345678901234567890123}]}'
    )

    # Then every digit is kept: no binary float rounds 0.3 or the 23-digit number
    assert order.total == Decimal("0.3")
    assert order.line_items[0].subtotal == Decimal("0.1")
    assert order.line_items[0].total == Decimal("12.345678901234567890123")
    assert order.date_modified_gmt == at(2024, 1, 1)
    # And an amount with more digits than the currency has is refused rather than rounded
    with pytest.raises(ValueError, match="more decimals than USD allows"):
        order_to_canonical(order, receipt_id="r")


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("order.created", payload("product.created.json"), id="product-as-order"),
        pytest.param("customer.updated", payload("product.created.json"), id="product-as-customer"),
        pytest.param("order.updated", payload("customer.created.json"), id="customer-as-order"),
        pytest.param("order.updated", b"{}", id="empty-object"),
        pytest.param("order.updated", b"[]", id="array"),
        pytest.param("order.deleted", b'{"id": "x"}', id="deleted-id-not-a-number"),
        pytest.param("customer.deleted", b"{}", id="deleted-without-id"),
        pytest.param(
            "order.updated",
            b'{"id": 1, "status": "pending", "currency": "USD", "total": "1,00",'
            b' "date_modified_gmt": "2024-01-01T00:00:00"}',
            id="comma-decimal",
        ),
        pytest.param(
            "order.updated",
            b'{"id": 1, "status": "pending", "currency": "US Dollar", "total": "1.00",'
            b' "date_modified_gmt": "2024-01-01T00:00:00"}',
            id="currency-name",
        ),
        pytest.param(
            "order.updated",
            b'{"id": 1, "status": "pending", "currency": "USD", "total": "1.00", "date_modified_gmt": null}',
            id="no-version",
        ),
        pytest.param(
            "customer.updated",
            b'{"id": 3, "email": "a@example.com", "date_created_gmt": null, "date_modified_gmt": null}',
            id="customer-without-version",
        ),
    ],
)
def test_json_that_does_not_fit_is_a_validation_error(topic: str, body: bytes) -> None:
    # Given a signed JSON body that does not fit the topic's schema / When converted / Then pydantic says why
    with pytest.raises(ValidationError):
        woo.convert(topic, body, receipt_id="r")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"webhook_id=42", id="form-body"),
        pytest.param(b'{"id": 1, "total": NaN}', id="nan-literal"),
    ],
)
def test_body_that_is_not_plain_json_is_a_value_error(body: bytes) -> None:
    # Given bytes that are not strict JSON / When converted / Then it fails (ValueError) rather than guessing
    with pytest.raises(ValueError, match=r"Expecting value|NaN is not a number"):
        woo.convert("order.updated", body, receipt_id="r")


@pytest.mark.parametrize("topic", ["product.created", "coupon.updated", "action.woocommerce_new_order", "order.paid"])
def test_topics_without_a_converter_are_unsupported(topic: str) -> None:
    # Given a topic this source does not convert / Then convert says so
    with pytest.raises(UnsupportedTopic):
        woo.convert(topic, payload("order.created.json"), receipt_id="r")
