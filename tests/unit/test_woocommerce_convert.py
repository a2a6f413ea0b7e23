"""WooCommerce order and customer payloads → canonical entities; every expectation below is written by hand.

The conversion cases are data: `CASES` holds `pytest.param(topic, fixture, expected Converted)`, each fixture a file in
tests/fixtures/woocommerce/ (SOURCES.md says where each one comes from). One Given/When/Then test compares every case
field by field, and bench/accuracy.py reads the same table. After it come the rules checked on the published sample
with one field changed (status tables), and what conversion refuses.
"""

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crmsync.messages import DetailType
from crmsync.models import Address, Customer, LineItem, Money, Order, OrderStatus, Refund, RefundStatus
from crmsync.sources.base import Converted, Notice, UnsupportedTopic
from crmsync.sources.woocommerce import (
    WooCommerceWebhooks,
    WooOrder,
    WooRefundRef,
    _divide_half_even,
    order_to_canonical,
    parse_order,
)
from tests.unit.conversion import assert_same_conversion, fixture_body, shown, usd, utc

RECEIPT = "woocommerce:https://example.com/:order:727:2017-03-22T19:28:08"

woo = WooCommerceWebhooks()


def payload(name: str) -> bytes:
    return fixture_body("woocommerce", name)


def eur(amount: int) -> Money:
    return Money(amount=amount, currency="EUR")


# ---- the published order sample, under each order topic -----------------------------------------------------------

SAMPLE_VERSION = utc(2017, 3, 22, 19, 28, 8)  # "date_modified_gmt": "2017-03-22T19:28:08", UTC without an offset

# The customer comes from billing; "(555) 555-5555" is no valid US number, so it is dropped
SAMPLE_BUYER = Customer(
    source="woocommerce",
    source_id=None,  # customer_id 0: a guest checkout
    source_version=SAMPLE_VERSION,
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
)

# Paid (processing with a payment date), priced exactly from strings and numbers
SAMPLE_ORDER = Order(
    source="woocommerce",
    source_id="727",
    source_version=SAMPLE_VERSION,
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
    placed_at=utc(2017, 3, 22, 19, 28, 2),
    cancelled_at=None,
    closed_at=None,
    test=False,
    transaction_ids=(),  # "transaction_id": ""
)

CASES = [
    pytest.param(
        # Given WooCommerce's own order example, delivered as order.created: a placement
        "order.created",
        "order.created.json",
        Converted(customer=SAMPLE_BUYER, entities=((DetailType.ORDER_PLACED, SAMPLE_ORDER),)),
        id="order-published-sample-created",
    ),
    pytest.param(
        # Given the same paid order delivered as order.updated: a payment
        "order.updated",
        "order.created.json",
        Converted(customer=SAMPLE_BUYER, entities=((DetailType.ORDER_PAID, SAMPLE_ORDER),)),
        id="order-published-sample-updated",
    ),
    pytest.param(
        # Given the same order restored from the trash: an update
        "order.restored",
        "order.created.json",
        Converted(customer=SAMPLE_BUYER, entities=((DetailType.ORDER_UPDATED, SAMPLE_ORDER),)),
        id="order-published-sample-restored",
    ),
    pytest.param(
        # Given WooCommerce's own customer example: only the customer, versioned by its date_modified_gmt
        "customer.created",
        "customer.created.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="25",
                source_version=utc(2017, 3, 21, 19, 9, 30),
                receipt_id=RECEIPT,
                email="john.doe@example.com",
                first_name="John",
                last_name="Doe",
                phone=None,  # "(555) 555-5555" again
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
            )
        ),
        id="customer-published-sample",
    ),
    # ---- currencies ----
    pytest.param(
        # Given a paid JPY order from 山田 太郎 in core's exact wire format (compact, \u escapes, "\/" in URLs):
        # amounts are whole yen, text is decoded, and the padded mixed-case email is normalised
        "order.updated",
        "order-jpy.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="88",
                source_version=utc(2024, 4, 30, 15, 0, 7),
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
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PAID,
                    Order(
                        source="woocommerce",
                        source_id="4101",
                        source_version=utc(2024, 4, 30, 15, 0, 7),
                        receipt_id=RECEIPT,
                        name="#4101",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=Money(amount=4500, currency="JPY"),
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
                        placed_at=utc(2024, 4, 30, 15, 0, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=("pi_3PJpYamada0001",),
                    ),
                ),
            ),
        ),
        id="order-jpy-japanese-names",
    ),
    pytest.param(
        # Given a KWD bank-transfer order awaiting payment (on-hold), line price sent as the JSON number 4.115:
        # fils are exact and the order is authorized, not paid
        "order.created",
        "order-kwd.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="310",
                source_version=utc(2024, 3, 10, 9, 0),
                receipt_id=RECEIPT,
                email="fatima@example.com.kw",
                first_name="Fatima",
                last_name="Al-Sabah",
                phone="+96522223333",  # "2222 3333" read in the billing country
                address=Address(
                    line1="Block 3, Street 14",
                    line2=None,
                    city="Kuwait City",
                    region="Al Asimah",
                    postal_code="13001",
                    country="KW",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="woocommerce",
                        source_id="5120",
                        source_version=utc(2024, 3, 10, 9, 0),
                        receipt_id=RECEIPT,
                        name="#5120",
                        status=OrderStatus.AUTHORIZED,
                        fulfillment_status=None,
                        total=Money(amount=12345, currency="KWD"),
                        presentment_total=None,
                        subtotal=Money(amount=12345, currency="KWD"),
                        total_tax=Money(amount=0, currency="KWD"),
                        total_discounts=Money(amount=0, currency="KWD"),
                        total_shipping=Money(amount=0, currency="KWD"),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="611",
                                sku="CARD-TIN",
                                title="Cardamom tin",
                                quantity=3,
                                unit_price=Money(amount=4115, currency="KWD"),  # 12.345 / 3
                                total_discount=Money(amount=0, currency="KWD"),
                            ),
                        ),
                        customer_email="fatima@example.com.kw",
                        customer_source_id="310",
                        placed_at=utc(2024, 3, 10, 8, 55),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-kwd-three-decimals-on-hold",
    ),
    # ---- who the order is about ----
    pytest.param(
        # Given a guest order (customer_id 0) taken by phone: no billing email, `sku` null. A customer without store
        # id or email is made from the billing name, phone and address
        "order.created",
        "order-guest.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id=None,
                source_version=utc(2024, 2, 2, 7, 15),
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
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="woocommerce",
                        source_id="6001",
                        source_version=utc(2024, 2, 2, 7, 15),
                        receipt_id=RECEIPT,
                        name="#6001",
                        status=OrderStatus.PENDING,
                        fulfillment_status=None,
                        total=eur(3990),
                        presentment_total=None,
                        subtotal=eur(3500),
                        total_tax=eur(0),
                        total_discounts=eur(0),
                        total_shipping=eur(490),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="701",
                                sku=None,  # null in the payload
                                title="Carnet de notes",
                                quantity=1,
                                unit_price=eur(3500),
                                total_discount=eur(0),
                            ),
                        ),
                        customer_email=None,
                        customer_source_id=None,
                        placed_at=utc(2024, 2, 2, 7, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-guest-known-by-name-and-phone",
    ),
    pytest.param(
        # Given a counter sale to a guest who left a name and a country but neither email nor phone: there is
        # nobody identity resolution could work with, so only the order comes out (completed: paid and fulfilled)
        "order.created",
        "order-guest-no-contact.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="woocommerce",
                        source_id="6002",
                        source_version=utc(2024, 2, 3, 9, 2),
                        receipt_id=RECEIPT,
                        name="#6002",
                        status=OrderStatus.PAID,
                        fulfillment_status="fulfilled",
                        total=eur(1250),
                        presentment_total=None,
                        subtotal=eur(1250),
                        total_tax=eur(0),
                        total_discounts=eur(0),
                        total_shipping=eur(0),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="702",
                                sku="POSTCARD",
                                title="Carte postale",
                                quantity=5,
                                unit_price=eur(250),
                                total_discount=eur(0),
                            ),
                        ),
                        customer_email=None,
                        customer_source_id=None,
                        placed_at=utc(2024, 2, 3, 9, 0),
                        cancelled_at=None,
                        closed_at=utc(2024, 2, 3, 9, 2),
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-missing-customer",
    ),
    pytest.param(
        # Given an order of store customer 5, still without email or phone, awaiting a bank transfer (on-hold):
        # the store's id alone is enough for a customer, carried as text by both customer and order
        "order.updated",
        "order-registered-no-contact.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="5",
                source_version=utc(2024, 2, 5, 10, 20),
                receipt_id=RECEIPT,
                email=None,
                first_name="Marie",
                last_name="Dupont",
                phone=None,
                address=Address(
                    line1="12 rue de la Paix",
                    line2="Bât. B",
                    city="Paris",
                    region=None,
                    postal_code="75002",
                    country="FR",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="woocommerce",
                        source_id="6003",
                        source_version=utc(2024, 2, 5, 10, 20),
                        receipt_id=RECEIPT,
                        name="#6003",
                        status=OrderStatus.AUTHORIZED,
                        fulfillment_status=None,
                        total=eur(3990),
                        presentment_total=None,
                        subtotal=eur(3500),
                        total_tax=eur(0),
                        total_discounts=eur(0),
                        total_shipping=eur(490),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="703",
                                sku="NOTE-A5",
                                title="Carnet de notes",
                                quantity=1,
                                unit_price=eur(3500),
                                total_discount=eur(0),
                            ),
                        ),
                        customer_email=None,
                        customer_source_id="5",
                        placed_at=utc(2024, 2, 5, 10, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-store-customer-id-alone",
    ),
    pytest.param(
        # Given " Zoë " Ødegård-Łukasiewicz in Tromsø, order number "NO-7800", prices including tax, paid by Vipps:
        # names, city and title survive byte for byte, trimmed; the order name is the store's number
        "order.updated",
        "order-unicode.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="61",
                source_version=utc(2024, 1, 15, 9, 0, 5),
                receipt_id=RECEIPT,
                email="zoe@example.no",
                first_name="Zoë",
                last_name="Ødegård-Łukasiewicz",
                phone="+4722123456",
                address=Address(
                    line1="Storgata 1",
                    line2=None,
                    city="Tromsø",
                    region=None,
                    postal_code="9008",
                    country="NO",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PAID,
                    Order(
                        source="woocommerce",
                        source_id="7800",
                        source_version=utc(2024, 1, 15, 9, 0, 5),
                        receipt_id=RECEIPT,
                        name="#NO-7800",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=Money(amount=19900, currency="NOK"),
                        presentment_total=None,
                        subtotal=Money(amount=15920, currency="NOK"),
                        total_tax=Money(amount=3980, currency="NOK"),
                        total_discounts=Money(amount=0, currency="NOK"),
                        total_shipping=Money(amount=0, currency="NOK"),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="9501",
                                sku="SKI-WAX",
                                title="Skismøring",
                                quantity=1,
                                unit_price=Money(amount=15920, currency="NOK"),  # the subtotal, excluding tax
                                total_discount=Money(amount=0, currency="NOK"),
                            ),
                        ),
                        customer_email="zoe@example.no",
                        customer_source_id="61",
                        placed_at=utc(2024, 1, 15, 9, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=("vipps-7800-1",),
                    ),
                ),
            ),
        ),
        id="order-non-latin-names",
    ),
    pytest.param(
        # Given a completed order whose billing phone is "": no phone, everything else intact, paid and fulfilled
        "order.updated",
        "order-missing-phone.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="42",
                source_version=utc(2024, 4, 3, 14, 0),
                receipt_id=RECEIPT,
                email="no.phone@example.co.uk",
                first_name="Sherlock",
                last_name="Holmes",
                phone=None,
                address=Address(
                    line1="221B Baker Street",
                    line2=None,
                    city="London",
                    region=None,
                    postal_code="NW1 6XE",
                    country="GB",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PAID,
                    Order(
                        source="woocommerce",
                        source_id="7900",
                        source_version=utc(2024, 4, 3, 14, 0),
                        receipt_id=RECEIPT,
                        name="#7900",
                        status=OrderStatus.PAID,
                        fulfillment_status="fulfilled",
                        total=Money(amount=1620, currency="GBP"),
                        presentment_total=None,
                        subtotal=Money(amount=1000, currency="GBP"),
                        total_tax=Money(amount=270, currency="GBP"),
                        total_discounts=Money(amount=0, currency="GBP"),
                        total_shipping=Money(amount=350, currency="GBP"),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="9601",
                                sku="LENS-1",
                                title="Magnifying glass",
                                quantity=1,
                                unit_price=Money(amount=1000, currency="GBP"),
                                total_discount=Money(amount=0, currency="GBP"),
                            ),
                        ),
                        customer_email="no.phone@example.co.uk",
                        customer_source_id="42",
                        placed_at=utc(2024, 4, 1, 9, 0),
                        cancelled_at=None,
                        closed_at=utc(2024, 4, 3, 14, 0),
                        test=False,
                        transaction_ids=("ch_3MissingPhone01",),
                    ),
                ),
            ),
        ),
        id="order-missing-phone",
    ),
    pytest.param(
        # Given "call me maybe" as the phone, on a cash-on-delivery order: processing, but no date_paid. The phone is
        # dropped (not fatal) and the order is authorized, since the money comes on delivery
        "order.updated",
        "order-unparseable-phone.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="43",
                source_version=utc(2024, 4, 10, 12, 0, 4),
                receipt_id=RECEIPT,
                email="pat.lee@example.com",
                first_name="Pat",
                last_name="Lee",
                phone=None,
                address=Address(
                    line1="9 Elm St",
                    line2=None,
                    city="Springfield",
                    region="IL",
                    postal_code="62701",
                    country="US",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="woocommerce",
                        source_id="7950",
                        source_version=utc(2024, 4, 10, 12, 0, 4),
                        receipt_id=RECEIPT,
                        name="#7950",
                        status=OrderStatus.AUTHORIZED,
                        fulfillment_status=None,
                        total=usd(1000),
                        presentment_total=None,
                        subtotal=usd(1000),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=usd(0),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="9651",
                                sku="GNOME",
                                title="Garden gnome",
                                quantity=1,
                                unit_price=usd(1000),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="pat.lee@example.com",
                        customer_source_id="43",
                        placed_at=utc(2024, 4, 10, 12, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-unparseable-phone-cash-on-delivery",
    ),
    # ---- lifecycle ----
    pytest.param(
        # Given a guest order cancelled before payment, delivered as order.updated, with an upper-case email and a
        # billing address that is only a country: a cancellation; WooCommerce keeps no cancellation date
        "order.updated",
        "order-cancelled.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id=None,
                source_version=utc(2024, 1, 1, 15, 0),
                receipt_id=RECEIPT,
                email="jo.park@example.com",
                first_name="Jo",
                last_name="Park",
                phone=None,
                address=Address(line1=None, line2=None, city=None, region=None, postal_code=None, country="US"),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_CANCELLED,
                    Order(
                        source="woocommerce",
                        source_id="8000",
                        source_version=utc(2024, 1, 1, 15, 0),
                        receipt_id=RECEIPT,
                        name="#8000",
                        status=OrderStatus.CANCELLED,
                        fulfillment_status=None,
                        total=usd(5000),
                        presentment_total=None,
                        subtotal=usd(5000),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=usd(0),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="9701",
                                sku="LAMP-D",
                                title="Desk lamp",
                                quantity=1,
                                unit_price=usd(5000),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="jo.park@example.com",
                        customer_source_id=None,
                        placed_at=utc(2024, 1, 1, 14, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-cancelled",
    ),
    pytest.param(
        # Given a paid order with one refund of "-15.00", a coupon on one line and a 3-for-10.00 line: the order is
        # partially refunded, its total stays what was charged, and the refund is its own entity, tied to the order
        # and versioned by it
        "order.updated",
        "order-partial-refund.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="57",
                source_version=utc(2024, 6, 12, 17, 30),
                receipt_id=RECEIPT,
                email="sam.rivera@example.com",
                first_name="Sam",
                last_name="Rivera",
                phone="+14155550132",
                address=Address(
                    line1="500 Howard St",
                    line2="Suite 2",
                    city="San Francisco",
                    region="CA",
                    postal_code="94105",
                    country="US",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="woocommerce",
                        source_id="7310",
                        source_version=utc(2024, 6, 12, 17, 30),
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
                                # 10.00 / 3, rounded half-even; core's own "price" is 3.3333333333333335
                                unit_price=usd(333),
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
                        placed_at=utc(2024, 6, 10, 16, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=("pi_3PartialRefund0001",),
                    ),
                ),
                (
                    DetailType.REFUND_ISSUED,
                    Refund(
                        source="woocommerce",
                        source_id="7420",
                        source_version=utc(2024, 6, 12, 17, 30),
                        receipt_id=RECEIPT,
                        test=False,
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(1500),
                        payment_id=None,
                        order_id="7310",
                        reason="Jacket arrived torn",
                        created_at=None,
                    ),
                ),
            ),
        ),
        id="order-partial-refund",
    ),
    pytest.param(
        # Given a refunded order with two refunds, newest first (20.00 without a reason, then 10.00): the status is
        # refunded, refunded is the sum, and each refund is issued in the order core lists them
        "order.updated",
        "order-refunded.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="58",
                source_version=utc(2024, 7, 3, 20, 20),
                receipt_id=RECEIPT,
                email="ada@example.com",
                first_name="Ada",
                last_name="Byron",
                phone=None,
                address=Address(
                    line1="1 Main St",
                    line2=None,
                    city="Boston",
                    region="MA",
                    postal_code="02108",
                    country="US",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="woocommerce",
                        source_id="7500",
                        source_version=utc(2024, 7, 3, 20, 20),
                        receipt_id=RECEIPT,
                        name="#7500",
                        status=OrderStatus.REFUNDED,
                        fulfillment_status=None,
                        total=usd(3000),
                        presentment_total=None,
                        subtotal=usd(3000),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=usd(0),
                        refunded=usd(3000),
                        line_items=(
                            LineItem(
                                source_id="9201",
                                sku="NB-A5",
                                title="Notebook",
                                quantity=2,
                                unit_price=usd(1500),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="ada@example.com",
                        customer_source_id="58",
                        placed_at=utc(2024, 7, 1, 16, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=("8MC585209K746392H",),
                    ),
                ),
                (
                    DetailType.REFUND_ISSUED,
                    Refund(
                        source="woocommerce",
                        source_id="7502",
                        source_version=utc(2024, 7, 3, 20, 20),
                        receipt_id=RECEIPT,
                        test=False,
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(2000),
                        payment_id=None,
                        order_id="7500",
                        reason=None,
                        created_at=None,
                    ),
                ),
                (
                    DetailType.REFUND_ISSUED,
                    Refund(
                        source="woocommerce",
                        source_id="7501",
                        source_version=utc(2024, 7, 3, 20, 20),
                        receipt_id=RECEIPT,
                        test=False,
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(1000),
                        payment_id=None,
                        order_id="7500",
                        reason="Customer changed their mind",
                        created_at=None,
                    ),
                ),
            ),
        ),
        id="order-refunded-in-two-refunds",
    ),
    pytest.param(
        # Given a 25.00 goodwill refund on a 20.00 order, and a billing address that is blank throughout: nothing is
        # capped (refunded exceeds the total, exactly as the store recorded it) and the customer has no address
        "order.updated",
        "order-over-refund.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="59",
                source_version=utc(2024, 8, 5, 14, 0),
                receipt_id=RECEIPT,
                email="lin.chen@example.com",
                first_name="Lin",
                last_name="Chen",
                phone=None,
                address=None,
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="woocommerce",
                        source_id="7600",
                        source_version=utc(2024, 8, 5, 14, 0),
                        receipt_id=RECEIPT,
                        name="#7600",
                        status=OrderStatus.REFUNDED,
                        fulfillment_status=None,
                        total=usd(2000),
                        presentment_total=None,
                        subtotal=usd(2000),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=usd(0),
                        refunded=usd(2500),
                        line_items=(
                            LineItem(
                                source_id="9301",
                                sku=None,  # ""
                                title="Gift card top-up",
                                quantity=1,
                                unit_price=usd(2000),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="lin.chen@example.com",
                        customer_source_id="59",
                        placed_at=utc(2024, 8, 1, 14, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
                (
                    DetailType.REFUND_ISSUED,
                    Refund(
                        source="woocommerce",
                        source_id="7601",
                        source_version=utc(2024, 8, 5, 14, 0),
                        receipt_id=RECEIPT,
                        test=False,
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(2500),
                        payment_id=None,
                        order_id="7600",
                        reason="Goodwill: refund plus shipping of the return",
                        created_at=None,
                    ),
                ),
            ),
        ),
        id="order-refund-larger-than-the-order",
    ),
    pytest.param(
        # Given a 100% coupon on a 25.00 e-book, completed at once: the total is an exact zero, the line keeps its
        # price and carries the whole discount
        "order.updated",
        "order-full-discount.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="60",
                source_version=utc(2024, 9, 9, 13, 9, 12),
                receipt_id=RECEIPT,
                email="noor@example.com",
                first_name="Noor",
                last_name="Haddad",
                phone="+14155550177",
                address=Address(line1=None, line2=None, city=None, region=None, postal_code=None, country="US"),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PAID,
                    Order(
                        source="woocommerce",
                        source_id="7700",
                        source_version=utc(2024, 9, 9, 13, 9, 12),
                        receipt_id=RECEIPT,
                        name="#7700",
                        status=OrderStatus.PAID,
                        fulfillment_status="fulfilled",
                        total=usd(0),
                        presentment_total=None,
                        subtotal=usd(2500),
                        total_tax=usd(0),
                        total_discounts=usd(2500),
                        total_shipping=usd(0),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="9401",
                                sku="EBOOK-FG",
                                title="E-book: Field Guide",
                                quantity=1,
                                unit_price=usd(2500),
                                total_discount=usd(2500),
                            ),
                        ),
                        customer_email="noor@example.com",
                        customer_source_id="60",
                        placed_at=utc(2024, 9, 9, 13, 9, 9),
                        cancelled_at=None,
                        closed_at=utc(2024, 9, 9, 13, 9, 12),
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-fully-discounted",
    ),
    # ---- deletions and customers ----
    pytest.param(
        # Given an order.deleted body ({"id": 727}): only a cancellation notice about that order remains
        "order.deleted",
        "order.deleted.json",
        Converted(
            notices=(
                Notice(DetailType.ORDER_CANCELLED, key="woocommerce:order:727", data={"deleted": True}, deletes=Order),
            )
        ),
        id="order-deleted",
    ),
    pytest.param(
        # Given a customer.deleted body ({"id": 26}): a customer.deleted notice keyed by the store's id
        "customer.deleted",
        "customer.deleted.json",
        Converted(notices=(Notice(DetailType.CUSTOMER_DELETED, key="woocommerce:customer:26"),)),
        id="customer-deleted",
    ),
    pytest.param(
        # Given a customer whose own first and last names are blank: the billing names stand in, the account email
        # wins over billing, and the phone is E.164
        "customer.updated",
        "customer.updated.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="26",
                source_version=utc(2024, 6, 1, 12, 0),
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
                accepts_marketing=None,
                test=False,
            )
        ),
        id="customer-updated-billing-names",
    ),
    pytest.param(
        # Given a new customer never modified (date_modified_gmt null), named in Cyrillic, without any phone: the
        # creation time is the version, the names are untouched and the mixed-case account email is normalised
        "customer.created",
        "customer-never-modified.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="27",
                source_version=utc(2024, 5, 20, 12, 0),
                receipt_id=RECEIPT,
                email="oksana.kovalenko@example.com.ua",
                first_name="Оксана",
                last_name="Коваленко",
                phone=None,
                address=Address(
                    line1="вул. Хрещатик, 1",
                    line2=None,
                    city="Київ",
                    region=None,
                    postal_code="01001",
                    country="UA",
                ),
                accepts_marketing=None,
                test=False,
            )
        ),
        id="customer-never-modified",
    ),
    # ---- the current shape ----
    pytest.param(
        # Given an order.created body as a store on current WooCommerce sends it (block checkout, order attribution
        # meta, line images, display meta, _links with targetHints): a paid order of store customer 1187, a simple line
        # of 3 and a variation line of 2 whose core "price" is the PHP float 34.5, 8.25% sales tax and a flat rate.
        # Everything core added since 2017 is read past; the customer's accented names come through \u escapes
        "order.created",
        "order-current.json",
        Converted(
            customer=Customer(
                source="woocommerce",
                source_id="1187",
                source_version=utc(2025, 9, 18, 19, 22, 10),
                receipt_id=RECEIPT,
                email="renee.castaneda@example.com",
                first_name="Renée",
                last_name="Castañeda",
                phone="+15125550147",  # "(512) 555-0147" read in the billing country
                address=Address(
                    line1="2100 S Congress Ave",
                    line2="Unit 204",
                    city="Austin",
                    region="TX",
                    postal_code="78704",
                    country="US",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="woocommerce",
                        source_id="9153",
                        source_version=utc(2025, 9, 18, 19, 22, 10),
                        receipt_id=RECEIPT,
                        name="#9153",
                        status=OrderStatus.PAID,  # processing, with a payment date
                        fulfillment_status=None,
                        total=usd(12161),
                        presentment_total=None,
                        subtotal=usd(10500),  # 36.00 + 69.00
                        total_tax=usd(866),
                        total_discounts=usd(0),
                        total_shipping=usd(795),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="5521",
                                sku="SOCK-MER-CRW",
                                title="Merino Crew Socks",
                                quantity=3,
                                unit_price=usd(1200),
                                total_discount=usd(0),
                            ),
                            LineItem(
                                source_id="5522",
                                sku="HOOD-TRL-GRN-M",
                                title="Trail Hoodie - Green, M",  # the variation's name; its attribute meta is not read
                                quantity=2,
                                unit_price=usd(3450),  # 69.00 / 2; core's "price" 34.5 is not read
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="renee.castaneda@example.com",
                        customer_source_id="1187",
                        placed_at=utc(2025, 9, 18, 19, 22, 5),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=("pi_3S8kQ2LmZ4w7Yt1c0h9VxR2d",),
                    ),
                ),
            ),
        ),
        id="order-current-woocommerce-shape",
    ),
]


@pytest.mark.parametrize(("topic", "fixture", "expected"), CASES)
def test_payload_converts_field_by_field(topic: str, fixture: str, expected: Converted) -> None:
    # Given the signed body of the case (each case says what it holds)
    # When it is converted under its topic
    converted = woo.convert(topic, payload(fixture), receipt_id=RECEIPT)

    # Then the customer, each entity with its domain event, and each notice are exactly as the case writes them
    assert_same_conversion(converted, expected)


def test_every_handled_topic_has_a_case() -> None:
    assert {case.values[0] for case in CASES} == woo.handled_topics


# How a CRM shows the entities of some cases: external id, then the amount (and each line's unit price) with the
# currency's decimals, written by hand.
SHOWN = {
    "order.created.json": [("woocommerce:order:727", "29.35", "3.00", "12.00")],
    "order-jpy.json": [("woocommerce:order:4101", "4500", "2000")],
    "order-kwd.json": [("woocommerce:order:5120", "12.345", "4.115")],
    "order-full-discount.json": [("woocommerce:order:7700", "0.00", "25.00")],
    "order-partial-refund.json": [
        ("woocommerce:order:7310", "60.00", "3.33", "50.00"),
        ("woocommerce:refund:7420", "15.00"),
    ],
}


@pytest.mark.parametrize(("topic", "fixture", "expected"), [case for case in CASES if case.values[1] in SHOWN])
def test_entities_are_keyed_and_formatted_for_the_crm(topic: str, fixture: str, expected: Converted) -> None:
    # Given a case whose entities a CRM shows / When converted
    converted = woo.convert(topic, payload(fixture), receipt_id=RECEIPT)

    # Then it is the case's result, and each entity's external id and amounts read as written
    assert converted == expected
    assert [shown(entity) for _, entity in converted.entities] == SHOWN[fixture]


# ---- rules on the sample, one field changed ----------------------------------------------------------------------


@pytest.fixture
def sample() -> WooOrder:
    return parse_order(payload("order.created.json"))


PAID_AT = datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
ONE_REFUND = (WooRefundRef(id=1, reason=None, total="-1.00"),)


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
    ((published, _),) = woo.convert("order.updated", body, receipt_id="r").entities
    assert published is detail_type


# ---- parsing -----------------------------------------------------------------------------------------------------


def test_json_numbers_are_read_exactly() -> None:
    # Given amounts sent as JSON numbers (some plugins do) / When parsed
    order = parse_order(
        b'{"id": 1, "status": "pending", "currency": "USD", "total": 0.3, "date_modified_gmt": "2024-01-01T00:00:00",'
        b' "line_items": [{"id": 2, "name": "x", "quantity": 1, "subtotal": 0.1, "total": 12.345678901234567890123}]}'
    )

    # Then every digit is kept: no binary float rounds 0.3 or the 23-digit number
    assert order.total == Decimal("0.3")
    assert order.line_items[0]["subtotal"] == Decimal("0.1")
    assert order.line_items[0]["total"] == Decimal("12.345678901234567890123")
    assert order.date_modified_gmt == utc(2024, 1, 1)
    # And an amount with more digits than the currency has is refused rather than rounded
    with pytest.raises(ValueError, match="more decimals than USD allows"):
        order_to_canonical(order, receipt_id="r")


# ---- amounts: exact minor units from core's decimal strings ------------------------------------------------------


def order_body(total: str = '"1.00"', lines: str = "[]", currency: str = "USD") -> bytes:
    """A minimal order body with the given raw JSON for its total and line_items."""
    return (
        f'{{"id": 1, "status": "pending", "currency": "{currency}", "total": {total},'
        f' "date_modified_gmt": "2024-01-01T00:00:00", "line_items": {lines}}}'
    ).encode()


def line(subtotal: str, total: str, quantity: int = 1) -> str:
    return f'{{"id": 2, "name": "x", "quantity": {quantity}, "subtotal": "{subtotal}", "total": "{total}"}}'


@pytest.mark.parametrize(
    ("text", "units"),
    [("29.35", 2935), (" 2.00 ", 200), ("+1.00", 100), (".5", 50), ("5.", 500), ("7", 700), ("1e3", 100000)],
)
def test_decimal_text_of_any_plain_shape_is_read_exactly(text: str, units: int) -> None:
    # Given an order total written as decimal text / When converted / Then it is exactly that many cents
    _, order, _ = order_to_canonical(parse_order(order_body(total=f'"{text}"')), receipt_id="r")
    assert order.total == usd(units)


@pytest.mark.parametrize("text", ["1,00", "1_000", "\u0661\u0662", "", "NaN", "1.0.0", "0x10"])
def test_amount_text_that_is_not_a_decimal_is_refused_naming_the_field(text: str) -> None:
    # Given a total PHP would never write (a comma, an underscore, Arabic-Indic digits, nothing, NaN, ...)
    # When parsed / Then pydantic says which field does not fit, before anything is converted
    with pytest.raises(ValidationError, match=r"(?s)^1 validation error for WooOrder\ntotal\n"):
        parse_order(order_body(total=f'"{text}"'))


def test_store_decimals_beyond_the_currency_stay_exact_until_the_totals() -> None:
    # Given a USD store set to 3 price decimals: two lines at 1.125 and 2.375, whose subtotal is 3.500
    body = order_body(total='"3.50"', lines=f"[{line('1.125', '1.125')}, {line('2.375', '2.375')}]")

    # When converted
    _, order, _ = order_to_canonical(parse_order(body), receipt_id="r")

    # Then the subtotal is exact, and each unit price is rounded half-even to the cent (112.5 -> 112, 237.5 -> 238)
    assert order.subtotal == usd(350)
    assert [item.unit_price for item in order.line_items] == [usd(112), usd(238)]
    assert [item.total_discount for item in order.line_items] == [usd(0), usd(0)]


def test_a_fraction_of_a_cent_the_order_must_hold_is_refused() -> None:
    # Given one line at 1.125 USD: the order's subtotal would be 112.5 cents / When converted / Then it is refused
    with pytest.raises(ValueError, match=r"Decimal\('1.125'\) has more decimals than USD allows"):
        order_to_canonical(parse_order(order_body(lines=f"[{line('1.125', '1.125')}]")), receipt_id="r")


@given(units=st.integers(-(10**20), 10**20), quantity=st.integers(1, 10**6), tenths=st.booleans())
@settings(derandomize=True, database=None, max_examples=500)
def test_unit_price_rounds_half_even_like_decimal(units: int, quantity: int, tenths: bool) -> None:
    # Given a line subtotal in minor units (an int, or an exact Fraction in tenths of a unit) and a quantity
    subtotal = Fraction(units, 10) if tenths else units
    # When divided for the unit price / Then it is what Decimal's half-even quantize gives, every digit held
    with localcontext(prec=60):
        exact = Decimal(units) / (10 if tenths else 1) / quantity
        expected = exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    assert _divide_half_even(subtotal, quantity) == expected


@pytest.mark.parametrize(
    ("subtotal", "reason"),
    [
        ("1e999999999", "out of range"),  # a valid Decimal no amount comes near: refused at once, never computed
        ("1.001e40", "out of range"),
        ("1.0000000000000000000000000000001", "more decimals than USD allows"),  # 33 digits: no 28-digit rounding
    ],
)
def test_line_amounts_beyond_any_price_are_refused_as_value_errors(subtotal: str, reason: str) -> None:
    # Given a line amount the store's decimals cannot explain / When converted / Then a ValueError says why (a DLQ
    # reason), never a decimal-module signal and never a silently rounded amount
    body = order_body(lines=f"[{line(subtotal, subtotal)}]")
    with pytest.raises(ValueError, match=reason):
        order_to_canonical(parse_order(body), receipt_id="r")


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
