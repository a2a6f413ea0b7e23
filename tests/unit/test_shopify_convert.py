"""Shopify order payloads → canonical Customer and Order; every expectation below is written by hand.

The conversion cases are data: `CASES` holds `pytest.param(topic, fixture, expected Converted)`, each fixture a file in
tests/fixtures/shopify/. One Given/When/Then test compares every case field by field, and bench/accuracy.py reads
the same table (refunds, customers and the compliance topics are in test_shopify_topics.py). After it come the
lifecycle rules checked on the published sample with one field changed, parsing, and the normalisers.
"""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from crmsync.messages import DetailType
from crmsync.models import Address, Customer, LineItem, Money, Order, OrderStatus, normalize_email, normalize_phone
from crmsync.sources.base import Converted
from crmsync.sources.shopify import ShopifyOrder, ShopifyWebhooks, order_to_canonical, parse_order
from tests.unit.conversion import assert_same_conversion, shown, usd, utc

RECEIPT = "shopify:demo.myshopify.com:evt-1"
SHOPIFY = ShopifyWebhooks()

type Load = Callable[[str], bytes]


def jpy(amount: int) -> Money:
    return Money(amount=amount, currency="JPY")


def kwd(amount: int) -> Money:
    return Money(amount=amount, currency="KWD")


SAMPLE_TIME = utc(2008, 1, 10, 16, 0)  # "2008-01-10T11:00:00-05:00"

CASES = [
    # ---- the published sample ----
    pytest.param(
        # Given Shopify's own order fixture (old API shape: no *_set objects, no current_* totals). The customer comes
        # from `customer` plus the billing address ("555-625-1199" is no valid US number); the order falls back to
        # total_price and sums the (free) shipping lines
        "orders/create",
        "orders-create.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="207119551",
                source_version=SAMPLE_TIME,
                receipt_id=RECEIPT,
                email="bob.norman@hostmail.com",
                first_name="Bob",
                last_name="Norman",
                phone=None,
                address=Address(
                    line1="Chestnut Street 92",
                    line2=None,
                    city="Louisville",
                    region="KY",
                    postal_code="40202",
                    country="US",
                ),
                accepts_marketing=False,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="shopify",
                        source_id="450789469",
                        source_version=SAMPLE_TIME,
                        receipt_id=RECEIPT,
                        name="#1001",
                        status=OrderStatus.AUTHORIZED,
                        fulfillment_status=None,
                        total=usd(40994),
                        presentment_total=None,
                        subtotal=usd(39800),
                        total_tax=usd(1194),
                        total_discounts=usd(0),
                        total_shipping=usd(0),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="466157049",
                                sku="IPOD2008GREEN",
                                title="IPod Nano - 8gb",
                                quantity=1,
                                unit_price=usd(19900),
                                total_discount=usd(0),
                            ),
                            LineItem(
                                source_id="518995019",
                                sku="IPOD2008RED",
                                title="IPod Nano - 8gb",
                                quantity=1,
                                unit_price=usd(19900),
                                total_discount=usd(0),
                            ),
                            LineItem(
                                source_id="703073504",
                                sku="IPOD2008BLACK",
                                title="IPod Nano - 8gb",
                                quantity=1,
                                unit_price=usd(19900),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="bob.norman@hostmail.com",
                        customer_source_id="207119551",
                        placed_at=SAMPLE_TIME,
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),  # its only transactions are inside refunds
                    ),
                ),
            ),
        ),
        id="order-published-sample",
    ),
    # ---- currencies ----
    pytest.param(
        # Given a modern-shape JPY order from 山田 太郎, stamped +09:00, paid: amounts are whole yen (even the
        # "4500.00" current total), the Japanese text is untouched, and processed_at wins over created_at
        "orders/paid",
        "jpy-yamada.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="115310627314723954",
                source_version=utc(2024, 5, 1, 0, 30),
                receipt_id=RECEIPT,
                email="taro.yamada@example.jp",
                first_name="太郎",
                last_name="山田",
                phone="+819012345678",
                address=Address(
                    line1="千代田区千代田1-1",
                    line2=None,
                    city="千代田区",
                    region="JP-13",
                    postal_code="100-0001",
                    country="JP",
                ),
                accepts_marketing=True,  # email_marketing_consent "subscribed" over buyer_accepts_marketing false
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PAID,
                    Order(
                        source="shopify",
                        source_id="820982911946154508",
                        source_version=utc(2024, 5, 1, 0, 30),
                        receipt_id=RECEIPT,
                        name="#9001",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=jpy(4500),
                        presentment_total=jpy(4500),
                        subtotal=jpy(4000),
                        total_tax=jpy(400),
                        total_discounts=jpy(0),
                        total_shipping=jpy(100),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="866550311766439020",
                                sku="MATCHA-100G",
                                title="抹茶 100g",
                                quantity=2,
                                unit_price=jpy(2000),
                                total_discount=jpy(0),
                            ),
                        ),
                        customer_email="taro.yamada@example.jp",
                        customer_source_id="115310627314723954",
                        placed_at=utc(2024, 5, 1, 0, 0, 5),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-jpy-japanese-names",
    ),
    pytest.param(
        # Given a Kuwaiti test order with a lower-case country code and no province code: fils are exact, the country
        # is upper-cased, the province name stands in for its code, and there is no shipping at all
        "orders/create",
        "kwd.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="77",
                source_version=utc(2024, 3, 10, 9, 0),
                receipt_id=RECEIPT,
                email="layla@example.com.kw",
                first_name="Layla",
                last_name="Al-Sabah",
                phone="+96522223333",  # the billing phone, read in the billing country
                address=Address(
                    line1="Block 3, Street 14",
                    line2=None,
                    city="Kuwait City",
                    region="Al Asimah",
                    postal_code="13001",
                    country="KW",
                ),
                accepts_marketing=None,
                test=True,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="shopify",
                        source_id="5001002003",
                        source_version=utc(2024, 3, 10, 9, 0),
                        receipt_id=RECEIPT,
                        name="#KW-17",
                        status=OrderStatus.AUTHORIZED,
                        fulfillment_status=None,
                        total=kwd(12345),
                        presentment_total=None,
                        subtotal=kwd(12345),
                        total_tax=kwd(0),
                        total_discounts=kwd(0),
                        total_shipping=None,  # no shipping lines, no shipping set
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="1",
                                sku="DATES-1KG",
                                title="Dates 1 kg",
                                quantity=3,
                                unit_price=kwd(4115),
                                total_discount=kwd(0),
                            ),
                        ),
                        customer_email="layla@example.com.kw",
                        customer_source_id="77",
                        placed_at=utc(2024, 3, 10, 9, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=True,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-kwd-three-decimals-test-mode",
    ),
    pytest.param(
        # Given a USD shop selling in EUR, partially refunded in EUR: the books stay in USD, the buyer's EUR total
        # sits beside them, and the refund is taken in USD from total_price - current_total_price
        "orders/updated",
        "presentment-eur.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="808",
                source_version=utc(2024, 8, 5, 9, 0),
                receipt_id=RECEIPT,
                email="hans@example.de",
                first_name="Hans",
                last_name="Müller",
                phone="+49301234567",
                address=Address(
                    line1="Unter den Linden 1",
                    line2=None,
                    city="Berlin",
                    region="BE",
                    postal_code="10117",
                    country="DE",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="shopify",
                        source_id="6100000008",
                        source_version=utc(2024, 8, 5, 9, 0),
                        receipt_id=RECEIPT,
                        name="#1208",
                        status=OrderStatus.PARTIALLY_REFUNDED,
                        fulfillment_status="fulfilled",
                        total=usd(8000),
                        presentment_total=Money(amount=7273, currency="EUR"),
                        subtotal=usd(8000),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=None,
                        refunded=usd(3000),
                        line_items=(
                            LineItem(
                                source_id="81",
                                sku="BOOTS-42",
                                title="Wanderstiefel",
                                quantity=1,
                                unit_price=usd(8000),
                                total_discount=usd(0),
                            ),
                            LineItem(
                                source_id="82",
                                sku="SOCKS",
                                title="Socken",
                                quantity=1,
                                unit_price=usd(3000),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="hans@example.de",
                        customer_source_id="808",
                        placed_at=utc(2024, 8, 1, 7, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-presentment-eur-partial-refund",
    ),
    # ---- who the order is about ----
    pytest.param(
        # Given a guest checkout: no customer, blank `email`, contact_email set, only a shipping address. A customer
        # is still made, without a Shopify id, from contact_email and the shipping address; Shopify sends "" as the
        # sku of custom items
        "orders/create",
        "guest-checkout.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id=None,
                source_version=utc(2024, 2, 2, 7, 15),
                receipt_id=RECEIPT,
                email="guest.buyer@example.com",
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
                accepts_marketing=True,  # buyer_accepts_marketing, the only consent a guest gives
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="shopify",
                        source_id="6100000001",
                        source_version=utc(2024, 2, 2, 7, 15),
                        receipt_id=RECEIPT,
                        name="#1201",
                        status=OrderStatus.PENDING,
                        fulfillment_status=None,
                        total=Money(amount=3990, currency="EUR"),
                        presentment_total=None,
                        subtotal=Money(amount=3990, currency="EUR"),
                        total_tax=Money(amount=637, currency="EUR"),
                        total_discounts=Money(amount=0, currency="EUR"),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="11",
                                sku=None,
                                title="Custom engraving",
                                quantity=1,
                                unit_price=Money(amount=3990, currency="EUR"),
                                total_discount=Money(amount=0, currency="EUR"),
                            ),
                        ),
                        customer_email="guest.buyer@example.com",
                        customer_source_id=None,
                        placed_at=utc(2024, 2, 2, 7, 15),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-guest-checkout",
    ),
    pytest.param(
        # Given a point-of-sale sale with no email and no customer, fulfilled at once: only the order is produced
        "orders/fulfilled",
        "anonymous-pos.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.ORDER_FULFILLED,
                    Order(
                        source="shopify",
                        source_id="6100000002",
                        source_version=utc(2024, 2, 3, 15, 0, 1),
                        receipt_id=RECEIPT,
                        name="#1202",
                        status=OrderStatus.PAID,
                        fulfillment_status="fulfilled",
                        total=usd(450),
                        presentment_total=None,
                        subtotal=usd(450),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="21",
                                sku=None,
                                title="Coffee",
                                quantity=1,
                                unit_price=usd(450),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email=None,
                        customer_source_id=None,
                        placed_at=utc(2024, 2, 3, 15, 0),
                        cancelled_at=None,
                        closed_at=utc(2024, 2, 3, 15, 0, 1),
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-missing-customer",
    ),
    pytest.param(
        # Given a customer object without email or phone, the order's email " BOB@Example.com " and a valid billing
        # phone: the order's email stands in (normalised), and the billing phone is read in the billing country
        "orders/updated",
        "customer-without-email-or-phone.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="1010",
                source_version=utc(2024, 10, 2, 13, 1),
                receipt_id=RECEIPT,
                email="bob@example.com",
                first_name="Bob",
                last_name="Norman",
                phone="+15026251199",
                address=Address(
                    line1="Chestnut Street 92",
                    line2=None,
                    city="Louisville",
                    region="KY",
                    postal_code="40202",
                    country="US",
                ),
                accepts_marketing=True,  # the older accepts_marketing flag: no email_marketing_consent
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="shopify",
                        source_id="6100000010",
                        source_version=utc(2024, 10, 2, 13, 1),
                        receipt_id=RECEIPT,
                        name="#1210",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=usd(1500),
                        presentment_total=None,
                        subtotal=usd(1500),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="101",
                                sku="PIN-1",
                                title="Enamel pin",
                                quantity=3,
                                unit_price=usd(500),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="bob@example.com",
                        customer_source_id="1010",
                        placed_at=utc(2024, 10, 2, 13, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-email-and-phone-from-order-and-address",
    ),
    pytest.param(
        # Given a customer object with a phone but no email anywhere, and another valid phone and first name on the
        # billing address: a customer is still made (email None); the customer's own phone and name come first
        "orders/create",
        "customer-phone-no-email.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="1011",
                source_version=utc(2024, 10, 3, 18, 0),
                receipt_id=RECEIPT,
                email=None,
                first_name="Bob",
                last_name="Norman",
                phone="+15025550142",
                address=Address(
                    line1="Chestnut Street 92",
                    line2="Apt 4",
                    city="Louisville",
                    region="KY",
                    postal_code="40202",
                    country="US",
                ),
                accepts_marketing=False,  # email_marketing_consent "unsubscribed"
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="shopify",
                        source_id="6100000011",
                        source_version=utc(2024, 10, 3, 18, 0),
                        receipt_id=RECEIPT,
                        name="#1211",
                        status=OrderStatus.PENDING,
                        fulfillment_status=None,
                        total=usd(848),
                        presentment_total=None,
                        subtotal=usd(800),
                        total_tax=usd(48),
                        total_discounts=usd(0),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="111",
                                sku="CANDLE",
                                title="Candle",
                                quantity=1,
                                unit_price=usd(800),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email=None,
                        customer_source_id="1011",
                        placed_at=utc(2024, 10, 3, 18, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-customer-without-any-email",
    ),
    pytest.param(
        # Given no phone anywhere and neither billing nor shipping address: no phone, and the address is the
        # customer's default address; the mixed-case customer email is normalised
        "orders/updated",
        "missing-phone.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="303",
                source_version=utc(2024, 4, 4, 9, 5),
                receipt_id=RECEIPT,
                email="no.phone@example.com",
                first_name="Alex",
                last_name="Smith",
                phone=None,
                address=Address(
                    line1="221B Baker Street",
                    line2=None,
                    city="London",
                    region="ENG",
                    postal_code="NW1 6XE",
                    country="GB",
                ),
                accepts_marketing=False,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="shopify",
                        source_id="6100000003",
                        source_version=utc(2024, 4, 4, 9, 5),
                        receipt_id=RECEIPT,
                        name="#1203",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=Money(amount=2400, currency="GBP"),
                        presentment_total=None,
                        subtotal=Money(amount=2000, currency="GBP"),
                        total_tax=Money(amount=400, currency="GBP"),
                        total_discounts=Money(amount=0, currency="GBP"),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="31",
                                sku="TEA-EARL",
                                title="Earl Grey",
                                quantity=4,
                                unit_price=Money(amount=500, currency="GBP"),
                                total_discount=Money(amount=0, currency="GBP"),
                            ),
                        ),
                        customer_email="no.phone@example.com",
                        customer_source_id="303",
                        placed_at=utc(2024, 4, 4, 9, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-missing-phone-default-address",
    ),
    pytest.param(
        # Given a customer phone of "call me maybe": conversion succeeds with no phone and everything else intact
        "orders/create",
        "unparseable-phone.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="404",
                source_version=utc(2024, 4, 5, 17, 0),
                receipt_id=RECEIPT,
                email="pat@example.com",
                first_name="Pat",
                last_name="Lee",
                phone=None,
                address=Address(
                    line1="1 Market St",
                    line2=None,
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
                    DetailType.ORDER_PLACED,
                    Order(
                        source="shopify",
                        source_id="6100000004",
                        source_version=utc(2024, 4, 5, 17, 0),
                        receipt_id=RECEIPT,
                        name="#1204",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=usd(1000),
                        presentment_total=None,
                        subtotal=usd(1000),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="41",
                                sku="STICKER",
                                title="Sticker",
                                quantity=10,
                                unit_price=usd(100),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="pat@example.com",
                        customer_source_id="404",
                        placed_at=utc(2024, 4, 5, 17, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-unparseable-phone",
    ),
    pytest.param(
        # Given a customer without names and a billing address for " Zoë " Ødegård-Łukasiewicz, partly fulfilled:
        # the names come from the billing address, trimmed but otherwise byte for byte
        "orders/updated",
        "unicode-names.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="505",
                source_version=utc(2024, 6, 1, 10, 30),
                receipt_id=RECEIPT,
                email="zoe@example.no",
                first_name="Zoë",
                last_name="Ødegård-Łukasiewicz",
                phone="+4722123456",
                address=Address(
                    line1="Karl Johans gate 1",
                    line2=None,
                    city="Oslo",
                    region=None,
                    postal_code="0154",
                    country="NO",
                ),
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="shopify",
                        source_id="6100000005",
                        source_version=utc(2024, 6, 1, 10, 30),
                        receipt_id=RECEIPT,
                        name="#1205",
                        status=OrderStatus.PAID,
                        fulfillment_status="partial",
                        total=Money(amount=19900, currency="NOK"),
                        presentment_total=None,
                        subtotal=Money(amount=19900, currency="NOK"),
                        total_tax=Money(amount=4975, currency="NOK"),
                        total_discounts=Money(amount=0, currency="NOK"),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="51",
                                sku="SKI-WAX",
                                title="Skismøring",
                                quantity=1,
                                unit_price=Money(amount=19900, currency="NOK"),
                                total_discount=Money(amount=0, currency="NOK"),
                            ),
                        ),
                        customer_email="zoe@example.no",
                        customer_source_id="505",
                        placed_at=utc(2024, 6, 1, 10, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-non-latin-names-from-billing",
    ),
    pytest.param(
        # Given an order paid by Stripe (authorized, then captured: the same pi_ twice, once padded), a gift card
        # (no authorization), a blank one and a PayPal sale, from a buyer known only by email: each payment id is
        # listed once, trimmed, in the order first seen
        "orders/create",
        "order-with-transactions.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id=None,
                source_version=utc(2024, 10, 1, 10, 0, 5),
                receipt_id=RECEIPT,
                email="ada@example.com",
                first_name=None,
                last_name=None,
                phone=None,
                address=None,
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PLACED,
                    Order(
                        source="shopify",
                        source_id="820982911946154520",
                        source_version=utc(2024, 10, 1, 10, 0, 5),
                        receipt_id=RECEIPT,
                        name="#1120",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=usd(4900),
                        presentment_total=None,
                        subtotal=usd(4900),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="866550311766439050",
                                sku="MUG-1",
                                title="Mug",
                                quantity=1,
                                unit_price=usd(4900),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="ada@example.com",
                        customer_source_id=None,
                        placed_at=utc(2024, 10, 1, 10, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=("pi_3PZabc2eZvKYlo2C1xYzAbCd", "5TY05013RG002845M"),
                    ),
                ),
            ),
        ),
        id="order-with-payment-transactions",
    ),
    pytest.param(
        # Given only the required fields (lower-case currency, updated_at at +01:00): defaults fill the rest, and
        # with nobody named there is no customer
        "orders/updated",
        "minimal-order.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="shopify",
                        source_id="1",
                        source_version=utc(2023, 12, 31, 23, 0),
                        receipt_id=RECEIPT,
                        name="#1",
                        status=OrderStatus.PENDING,  # no financial_status
                        fulfillment_status=None,
                        total=usd(100),
                        presentment_total=None,
                        subtotal=None,
                        total_tax=None,
                        total_discounts=None,
                        total_shipping=None,
                        refunded=None,
                        line_items=(),
                        customer_email=None,
                        customer_source_id=None,
                        placed_at=utc(2024, 1, 1, 0, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-minimal-defaults",
    ),
    # ---- lifecycle ----
    pytest.param(
        # Given a voided order cancelled at 10:00 -05:00: it is cancelled, timestamps are UTC, and the current total
        # (0.00) is the amount; the customer has no address and no phone
        "orders/cancelled",
        "cancelled.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="606",
                source_version=utc(2024, 1, 1, 15, 0),
                receipt_id=RECEIPT,
                email="changed.mind@example.com",
                first_name="Chris",
                last_name="Jones",
                phone=None,
                address=None,
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_CANCELLED,
                    Order(
                        source="shopify",
                        source_id="6100000006",
                        source_version=utc(2024, 1, 1, 15, 0),
                        receipt_id=RECEIPT,
                        name="#1206",
                        status=OrderStatus.CANCELLED,
                        fulfillment_status=None,
                        total=usd(0),
                        presentment_total=None,
                        subtotal=usd(5000),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=None,
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="61",
                                sku="MUG",
                                title="Mug",
                                quantity=2,
                                unit_price=usd(2500),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="changed.mind@example.com",
                        customer_source_id="606",
                        placed_at=utc(2024, 1, 1, 14, 0),
                        cancelled_at=utc(2024, 1, 1, 15, 0),
                        closed_at=utc(2024, 1, 1, 15, 0),
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-cancelled",
    ),
    pytest.param(
        # Given a fully refunded order: two successful refunds (32.40 + 5.00) and one failed attempt. Refunded counts
        # only the successful ones and current_* totals are what remains; shipping comes from its shop-money set
        "orders/updated",
        "refunded.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="707",
                source_version=utc(2024, 7, 3, 20, 20),
                receipt_id=RECEIPT,
                email="refund.me@example.com",
                first_name="Sam",
                last_name="Taylor",
                phone=None,
                address=None,
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_UPDATED,
                    Order(
                        source="shopify",
                        source_id="6100000007",
                        source_version=utc(2024, 7, 3, 20, 20),
                        receipt_id=RECEIPT,
                        name="#1207",
                        status=OrderStatus.REFUNDED,
                        fulfillment_status=None,
                        total=usd(0),
                        presentment_total=None,
                        subtotal=usd(0),
                        total_tax=usd(0),
                        total_discounts=usd(0),
                        total_shipping=usd(500),
                        refunded=usd(3740),
                        line_items=(
                            LineItem(
                                source_id="71",
                                sku="BOOK-1",
                                title="A Book",
                                quantity=1,
                                unit_price=usd(3000),
                                total_discount=usd(0),
                            ),
                        ),
                        customer_email="refund.me@example.com",
                        customer_source_id="707",
                        placed_at=utc(2024, 7, 1, 14, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-refunded-in-full",
    ),
    pytest.param(
        # Given a 100% discount code on a 25.00 item, with free shipping: the total is an exact zero and the discount
        # is carried on the order and the line
        "orders/paid",
        "full-discount.json",
        Converted(
            customer=Customer(
                source="shopify",
                source_id="909",
                source_version=utc(2024, 9, 1, 0, 0),
                receipt_id=RECEIPT,
                email="lucky@example.com",
                first_name="Lou",
                last_name="Kee",
                phone=None,
                address=None,
                accepts_marketing=None,
                test=False,
            ),
            entities=(
                (
                    DetailType.ORDER_PAID,
                    Order(
                        source="shopify",
                        source_id="6100000009",
                        source_version=utc(2024, 9, 1, 0, 0),
                        receipt_id=RECEIPT,
                        name="#1209",
                        status=OrderStatus.PAID,
                        fulfillment_status=None,
                        total=usd(0),
                        presentment_total=None,
                        subtotal=usd(0),
                        total_tax=usd(0),
                        total_discounts=usd(2500),
                        total_shipping=usd(0),
                        refunded=None,
                        line_items=(
                            LineItem(
                                source_id="91",
                                sku="TOTE",
                                title="Tote bag",
                                quantity=1,
                                unit_price=usd(2500),
                                total_discount=usd(2500),
                            ),
                        ),
                        customer_email="lucky@example.com",
                        customer_source_id="909",
                        placed_at=utc(2024, 9, 1, 0, 0),
                        cancelled_at=None,
                        closed_at=None,
                        test=False,
                        transaction_ids=(),
                    ),
                ),
            ),
        ),
        id="order-fully-discounted",
    ),
]


@pytest.mark.parametrize(("topic", "fixture", "expected"), CASES)
def test_order_converts_field_by_field(shopify_payload: Load, topic: str, fixture: str, expected: Converted) -> None:
    # Given the signed order body of the case (each case says what it holds)
    # When it is converted under its topic
    converted = SHOPIFY.convert(topic, shopify_payload(fixture), receipt_id=RECEIPT)

    # Then the customer and the order, with the topic's domain event, are exactly as the case writes them
    assert_same_conversion(converted, expected)


def test_every_order_topic_has_a_case() -> None:
    assert {case.values[0] for case in CASES} == {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
    }


# How a CRM shows the order of some cases: external id, then the total and each line's unit price with the currency's
# decimals, written by hand.
SHOWN = {
    "orders-create.json": [("shopify:order:450789469", "409.94", "199.00", "199.00", "199.00")],
    "jpy-yamada.json": [("shopify:order:820982911946154508", "4500", "2000")],
    "kwd.json": [("shopify:order:5001002003", "12.345", "4.115")],
    "full-discount.json": [("shopify:order:6100000009", "0.00", "25.00")],
}


@pytest.mark.parametrize(("topic", "fixture", "expected"), [case for case in CASES if case.values[1] in SHOWN])
def test_order_is_keyed_and_formatted_for_the_crm(
    shopify_payload: Load, topic: str, fixture: str, expected: Converted
) -> None:
    # Given a case whose order a CRM shows / When converted
    converted = SHOPIFY.convert(topic, shopify_payload(fixture), receipt_id=RECEIPT)

    # Then it is the case's result, and the order's external id and amounts read as written
    assert converted == expected
    assert [shown(entity) for _, entity in converted.entities] == SHOWN[fixture]


# ---- lifecycle rules on the sample, one field changed ----------------------------------------------------------


@pytest.fixture
def sample(shopify_order: Callable[[str], ShopifyOrder]) -> ShopifyOrder:
    return shopify_order("orders-create.json")


@pytest.mark.parametrize(
    ("financial_status", "status"),
    [
        ("pending", OrderStatus.PENDING),
        ("authorized", OrderStatus.AUTHORIZED),
        ("partially_paid", OrderStatus.PENDING),
        ("paid", OrderStatus.PAID),
        ("partially_refunded", OrderStatus.PARTIALLY_REFUNDED),
        ("refunded", OrderStatus.REFUNDED),
        ("voided", OrderStatus.CANCELLED),
        ("some_future_status", OrderStatus.PENDING),
        (None, OrderStatus.PENDING),
    ],
)
def test_financial_status_maps_to_lifecycle(
    sample: ShopifyOrder, financial_status: str | None, status: OrderStatus
) -> None:
    # Given the sample with another financial status / When converted / Then the lifecycle state follows
    _, order = order_to_canonical(sample.model_copy(update={"financial_status": financial_status}), receipt_id="r")
    assert order.status is status


def test_cancelled_at_wins_over_financial_status(sample: ShopifyOrder) -> None:
    # Given a paid order that was then cancelled / Then it is cancelled
    cancelled = sample.model_copy(update={"financial_status": "paid", "cancelled_at": datetime(2024, 1, 1, tzinfo=UTC)})
    assert order_to_canonical(cancelled, receipt_id="r")[1].status is OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("prices", "cents"),
    [
        (["1.005", "1.005"], 201),  # half cents on each line, a whole cent in the sum
        (["0.1000000000000000000000000000001", "0.8999999999999999999999999999999"], 100),  # 31 digits, exact
    ],
)
def test_shipping_lines_finer_than_a_cent_add_up_exactly(sample: ShopifyOrder, prices: list[str], cents: int) -> None:
    # Given shipping lines only, priced finer than the shop currency's cent / When converted
    lines = [{"price": price} for price in prices]
    changed = sample.model_copy(update={"total_shipping_price_set": None, "shipping_lines": lines})
    # Then the shipping total is their exact sum
    assert order_to_canonical(changed, receipt_id="r")[1].total_shipping == Money(amount=cents, currency="USD")


def test_shipping_lines_whose_sum_is_not_whole_cents_are_refused(sample: ShopifyOrder) -> None:
    # Given shipping lines of 1.005 and 0.0000000000000000000000000000001 / When converted / Then nothing is rounded
    lines = [{"price": "1.005"}, {"price": "0.0000000000000000000000000000001"}]
    changed = sample.model_copy(update={"total_shipping_price_set": None, "shipping_lines": lines})
    with pytest.raises(ValueError, match=r"Decimal\('1.0050000000000000000000000000001'\) has more decimals than USD"):
        order_to_canonical(changed, receipt_id="r")


def test_refunded_from_totals_is_never_rounded_to_whole_cents(sample: ShopifyOrder) -> None:
    # Given a partially refunded order without refund transactions whose total_price has a 31st decimal digit
    changed = sample.model_copy(
        update={
            "financial_status": "partially_refunded",
            "refunds": [],
            "total_price": "10.0000000000000000000000000000001",
            "current_total_price": "8.00",
        }
    )
    # When converted / Then the difference is refused, not rounded to 2.00 by a 28-digit Decimal context
    with pytest.raises(ValueError, match="more decimals than USD"):
        order_to_canonical(changed, receipt_id="r")


def test_lifecycle_ranks_grow_along_the_lifecycle() -> None:
    # Given the declared states / Then each ranks one above the previous, cancelled last
    assert [status.rank for status in OrderStatus] == [0, 1, 2, 3, 4, 5]
    assert OrderStatus.PENDING.rank < OrderStatus.PAID.rank < OrderStatus.REFUNDED.rank < OrderStatus.CANCELLED.rank


# ---- parsing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"id": "x"}', id="id-not-a-number"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(
            b'{"id": 1, "name": "#1", "currency": "USD", "total_price": "1,00",'
            b' "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}',
            id="comma-decimal",
        ),
        pytest.param(
            b'{"id": 1, "name": "#1", "currency": "US Dollar", "total_price": "1.00",'
            b' "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}',
            id="currency-name",
        ),
        pytest.param(
            b'{"id": 1, "name": "#1", "currency": "USD", "total_price": "1.00",'
            b' "created_at": "2024-01-01T00:00:00", "updated_at": "2024-01-01T00:00:00"}',
            id="naive-timestamps",
        ),
    ],
)
def test_json_that_is_not_an_order_is_a_validation_error(body: bytes) -> None:
    # Given a body that does not fit the order schema / When parsed / Then pydantic says why
    with pytest.raises(ValidationError):
        parse_order(body)


def test_refund_payload_is_not_an_order(shopify_payload: Load) -> None:
    # Given a signed refunds/create body routed as an order / When parsed / Then it is rejected
    with pytest.raises(ValidationError):
        parse_order(shopify_payload("refunds-create.json"))


# ---- normalisers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [(" Bob.Norman@HostMail.com ", "bob.norman@hostmail.com"), ("", None), ("   ", None), (None, None)],
)
def test_normalize_email(raw: str | None, normalised: str | None) -> None:
    assert normalize_email(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(502) 625-1199", "US", "+15026251199"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("090-1234-5678", "jp", "+819012345678"),
        ("555-625-1199", "US", None),  # parses, but no such US area code
        ("0612345678", None, None),  # national number without a region
        ("call me maybe", "US", None),
        ("", "US", None),
        (None, None, None),
    ],
)
def test_normalize_phone_never_raises(raw: str | None, region: str | None, e164: str | None) -> None:
    assert normalize_phone(raw, region) == e164
