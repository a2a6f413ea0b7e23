"""Shopify order payloads → canonical Customer and Order; every expectation below is written by hand."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from crmsync.models import Address, Customer, LineItem, Money, Order, OrderStatus, normalize_email, normalize_phone
from crmsync.sources.shopify import ShopifyOrder, order_to_canonical, parse_order

RECEIPT = "shopify:demo.myshopify.com:evt-1"

type Convert = Callable[[str], tuple[Customer | None, Order]]


@pytest.fixture
def convert(shopify_order: Callable[[str], ShopifyOrder]) -> Convert:
    def run(name: str) -> tuple[Customer | None, Order]:
        return order_to_canonical(shopify_order(name), receipt_id=RECEIPT)

    return run


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="USD")


def assert_same_fields(actual: BaseModel | None, expected: BaseModel) -> None:
    """Field by field, so a failure names the field, then whole-object equality to catch anything missed."""
    assert actual is not None
    for name in type(expected).model_fields:
        assert getattr(actual, name) == getattr(expected, name), name
    assert actual == expected


# ---- the published sample ----------------------------------------------------------------------------------------


def test_published_sample_converts_field_by_field(convert: Convert) -> None:
    # Given Shopify's own order fixture (old API shape: no *_set objects, no current_* totals)
    # When it is converted
    customer, order = convert("orders-create.json")

    # Then the customer comes from `customer` plus the billing address; "555-625-1199" is no valid US number
    sample_time = datetime(2008, 1, 10, 16, 0, tzinfo=UTC)  # "2008-01-10T11:00:00-05:00"
    assert_same_fields(
        customer,
        Customer(
            source="shopify",
            source_id="207119551",
            source_version=sample_time,
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
    )
    # And the order falls back to total_price and sums the (free) shipping lines
    assert_same_fields(
        order,
        Order(
            source="shopify",
            source_id="450789469",
            source_version=sample_time,
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
            placed_at=sample_time,
            cancelled_at=None,
            closed_at=None,
            test=False,
        ),
    )
    assert order.external_id == "shopify:order:450789469"
    assert order.total.formatted() == "409.94"


# ---- variants --------------------------------------------------------------------------------------------------


def test_jpy_order_has_no_decimals_and_keeps_japanese_names(convert: Convert) -> None:
    # Given a modern-shape JPY order from 山田 太郎, stamped +09:00
    customer, order = convert("jpy-yamada.json")

    # Then amounts are whole yen and the Japanese text is untouched
    version = datetime(2024, 5, 1, 0, 30, tzinfo=UTC)
    assert_same_fields(
        customer,
        Customer(
            source="shopify",
            source_id="115310627314723954",
            source_version=version,
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
            accepts_marketing=True,
        ),
    )
    yen = Money(amount=4500, currency="JPY")
    assert_same_fields(
        order,
        Order(
            source="shopify",
            source_id="820982911946154508",
            source_version=version,
            receipt_id=RECEIPT,
            name="#9001",
            status=OrderStatus.PAID,
            fulfillment_status=None,
            total=yen,
            presentment_total=yen,
            subtotal=Money(amount=4000, currency="JPY"),
            total_tax=Money(amount=400, currency="JPY"),
            total_discounts=Money(amount=0, currency="JPY"),
            total_shipping=Money(amount=100, currency="JPY"),
            line_items=(
                LineItem(
                    source_id="866550311766439020",
                    sku="MATCHA-100G",
                    title="抹茶 100g",
                    quantity=2,
                    unit_price=Money(amount=2000, currency="JPY"),
                    total_discount=Money(amount=0, currency="JPY"),
                ),
            ),
            customer_email="taro.yamada@example.jp",
            customer_source_id="115310627314723954",
            placed_at=datetime(2024, 5, 1, 0, 0, 5, tzinfo=UTC),  # processed_at wins over created_at
            cancelled_at=None,
            closed_at=None,
        ),
    )
    assert order.total.formatted() == "4500"


def test_kwd_order_has_three_decimals(convert: Convert) -> None:
    # Given a Kuwaiti test order with a lower-case country code and no province code
    customer, order = convert("kwd.json")

    # Then fils are exact, the country is upper-cased and the province name stands in for its code
    assert order.total == Money(amount=12345, currency="KWD")
    assert order.total.formatted() == "12.345"
    assert order.line_items[0].unit_price.formatted() == "4.115"
    assert order.total_tax == Money(amount=0, currency="KWD")
    assert order.total_shipping is None  # no shipping lines, no shipping set
    assert order.status is OrderStatus.AUTHORIZED
    assert order.source_version == datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
    assert order.test is True
    assert customer is not None
    assert customer.test is True
    assert customer.phone == "+96522223333"
    assert customer.address == Address(
        line1="Block 3, Street 14", city="Kuwait City", region="Al Asimah", postal_code="13001", country="KW"
    )


def test_guest_checkout_without_customer_object(convert: Convert) -> None:
    # Given a guest checkout: no customer, blank `email`, contact_email set, only a shipping address
    customer, order = convert("guest-checkout.json")

    # Then a customer is still made, without a Shopify id, from contact_email and the shipping address
    assert_same_fields(
        customer,
        Customer(
            source="shopify",
            source_id=None,
            source_version=datetime(2024, 2, 2, 7, 15, tzinfo=UTC),
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
        ),
    )
    assert order.customer_source_id is None
    assert order.customer_email == "guest.buyer@example.com"
    assert order.status is OrderStatus.PENDING
    assert order.total == Money(amount=3990, currency="EUR")
    assert order.line_items[0].sku is None  # Shopify sends "" for custom items


def test_order_naming_nobody_has_no_customer(convert: Convert) -> None:
    # Given a point-of-sale sale with no email and no customer
    customer, order = convert("anonymous-pos.json")

    # Then only the order is produced
    assert customer is None
    assert order.customer_email is None
    assert order.customer_source_id is None
    assert order.status is OrderStatus.PAID
    assert order.fulfillment_status == "fulfilled"
    assert order.closed_at == datetime(2024, 2, 3, 15, 0, 1, tzinfo=UTC)
    assert order.line_items[0].sku is None


def test_missing_phone_and_address_from_default_address(convert: Convert) -> None:
    # Given no phone anywhere and neither billing nor shipping address
    customer, _ = convert("missing-phone.json")

    # Then the phone is None and the address is the customer's default address
    assert customer is not None
    assert customer.phone is None
    assert customer.email == "no.phone@example.com"
    assert customer.accepts_marketing is False
    assert customer.address == Address(
        line1="221B Baker Street", city="London", region="ENG", postal_code="NW1 6XE", country="GB"
    )


def test_unparseable_phone_is_dropped_not_fatal(convert: Convert) -> None:
    # Given a customer phone of "call me maybe"
    customer, order = convert("unparseable-phone.json")

    # Then conversion succeeds with no phone and everything else intact
    assert customer is not None
    assert customer.phone is None
    assert (customer.first_name, customer.last_name) == ("Pat", "Lee")
    assert order.total == usd(1000)


def test_non_latin_names_survive_from_the_billing_address(convert: Convert) -> None:
    # Given a customer without names and a billing address for " Zoë " Ødegård-Łukasiewicz
    customer, order = convert("unicode-names.json")

    # Then the names come from the billing address, trimmed but otherwise byte-for-byte
    assert customer is not None
    assert customer.first_name == "Zoë"
    assert customer.last_name == "Ødegård-Łukasiewicz"
    assert customer.phone == "+4722123456"
    assert customer.address is not None
    assert customer.address.country == "NO"
    assert customer.address.region is None
    assert order.line_items[0].title == "Skismøring"
    assert order.fulfillment_status == "partial"
    assert order.total == Money(amount=19900, currency="NOK")


def test_cancelled_order(convert: Convert) -> None:
    # Given a voided order cancelled at 10:00 -05:00
    customer, order = convert("cancelled.json")

    # Then it is cancelled, timestamps are UTC, and the current total (0.00) is the amount
    assert order.status is OrderStatus.CANCELLED
    assert order.cancelled_at == datetime(2024, 1, 1, 15, 0, tzinfo=UTC)
    assert order.closed_at == datetime(2024, 1, 1, 15, 0, tzinfo=UTC)
    assert order.placed_at == datetime(2024, 1, 1, 14, 0, tzinfo=UTC)
    assert order.source_version == datetime(2024, 1, 1, 15, 0, tzinfo=UTC)
    assert order.total == usd(0)
    assert order.subtotal == usd(5000)
    assert customer is not None
    assert customer.address is None
    assert customer.phone is None


def test_refunded_order_sums_successful_refund_transactions(convert: Convert) -> None:
    # Given a fully refunded order: two successful refunds (32.40 + 5.00) and one failed attempt
    _, order = convert("refunded.json")

    # Then refunded counts only the successful ones and current_* totals are what remains
    assert order.status is OrderStatus.REFUNDED
    assert order.refunded == usd(3740)
    assert order.total == usd(0)
    assert order.subtotal == usd(0)
    assert order.total_tax == usd(0)
    assert order.total_shipping == usd(500)
    assert order.source_version == datetime(2024, 7, 3, 20, 20, tzinfo=UTC)


def test_presentment_currency_differs_from_shop_currency(convert: Convert) -> None:
    # Given a USD shop selling in EUR, partially refunded in EUR
    customer, order = convert("presentment-eur.json")

    # Then the books stay in USD, the buyer's EUR total sits beside them,
    # and the refund is taken in USD from total_price - current_total_price
    assert order.total == usd(8000)
    assert order.presentment_total == Money(amount=7273, currency="EUR")
    assert order.refunded == usd(3000)
    assert order.subtotal == usd(8000)
    assert order.status is OrderStatus.PARTIALLY_REFUNDED
    assert [item.unit_price for item in order.line_items] == [usd(8000), usd(3000)]
    assert customer is not None
    assert customer.last_name == "Müller"
    assert customer.phone == "+49301234567"


def test_fully_discounted_order_totals_zero(convert: Convert) -> None:
    # Given a 100% discount code on a 25.00 item
    _, order = convert("full-discount.json")

    # Then the total is an exact zero and the discount is carried on the order and the line
    assert order.total == usd(0)
    assert order.total.formatted() == "0.00"
    assert order.total_discounts == usd(2500)
    assert order.line_items[0].unit_price == usd(2500)
    assert order.line_items[0].total_discount == usd(2500)
    assert order.total_shipping == usd(0)
    assert order.status is OrderStatus.PAID


# ---- rules on the sample, one field changed ----------------------------------------------------------------------


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


def test_lifecycle_ranks_grow_along_the_lifecycle() -> None:
    # Given the declared states / Then each ranks one above the previous, cancelled last
    assert [status.rank for status in OrderStatus] == [0, 1, 2, 3, 4, 5]
    assert OrderStatus.PENDING.rank < OrderStatus.PAID.rank < OrderStatus.REFUNDED.rank < OrderStatus.CANCELLED.rank


def test_email_falls_back_to_the_order_email(sample: ShopifyOrder) -> None:
    # Given a customer object without an email / When converted / Then the order's email is used
    assert sample.customer is not None
    anonymous = sample.model_copy(
        update={"customer": sample.customer.model_copy(update={"email": None}), "email": " BOB@Example.com "}
    )
    customer, order = order_to_canonical(anonymous, receipt_id="r")
    assert customer is not None
    assert customer.email == order.customer_email == "bob@example.com"


def test_customer_object_without_any_email_still_makes_a_customer(sample: ShopifyOrder) -> None:
    # Given a customer object and no email anywhere / Then a customer is still made, email None
    assert sample.customer is not None
    no_email = sample.model_copy(
        update={"customer": sample.customer.model_copy(update={"email": None}), "email": None, "contact_email": None}
    )
    customer, _ = order_to_canonical(no_email, receipt_id="r")
    assert customer is not None
    assert customer.email is None
    assert customer.source_id == "207119551"


def test_customer_phone_comes_before_the_address_phone(sample: ShopifyOrder) -> None:
    # Given a valid customer phone and a valid billing phone / Then the customer's is used, in the address's region
    assert sample.customer is not None
    assert sample.billing_address is not None
    both = sample.model_copy(
        update={
            "customer": sample.customer.model_copy(update={"phone": "(502) 555-0142"}),
            "billing_address": sample.billing_address.model_copy(update={"phone": "(502) 625-1199"}),
        }
    )
    customer, _ = order_to_canonical(both, receipt_id="r")
    assert customer is not None
    assert customer.phone == "+15025550142"


def test_address_phone_is_used_when_the_customer_has_none(sample: ShopifyOrder) -> None:
    # Given the sample with a valid billing phone / Then it is parsed with the billing country as region
    assert sample.billing_address is not None
    valid = sample.model_copy(
        update={"billing_address": sample.billing_address.model_copy(update={"phone": "(502) 625-1199"})}
    )
    customer, _ = order_to_canonical(valid, receipt_id="r")
    assert customer is not None
    assert customer.phone == "+15026251199"


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


def test_refund_payload_is_not_an_order(shopify_payload: Callable[[str], bytes]) -> None:
    # Given a signed refunds/create body routed as an order / When parsed / Then it is rejected
    with pytest.raises(ValidationError):
        parse_order(shopify_payload("refunds-create.json"))


def test_minimal_order_parses_with_defaults() -> None:
    # Given only the required fields / When parsed and converted / Then defaults fill the rest
    body = (
        b'{"id": 1, "name": "#1", "currency": "usd", "total_price": "1.00",'
        b' "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00+01:00"}'
    )
    customer, order = order_to_canonical(parse_order(body), receipt_id="r")
    assert customer is None
    assert order.total == usd(100)
    assert order.line_items == ()
    assert order.source_version == datetime(2023, 12, 31, 23, 0, tzinfo=UTC)


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
