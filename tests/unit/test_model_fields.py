"""The <Model>Fields TypedDicts that converters build canonical models from (<Model>.of) say exactly what the models
declare, so mypy checks a converter's field names as it checks Model(...) keyword arguments."""

import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from crmsync.models import (
    Address,
    AddressFields,
    Customer,
    CustomerFields,
    Dispute,
    DisputeFields,
    DisputeStatus,
    LineItem,
    LineItemFields,
    Money,
    MoneyFields,
    Order,
    OrderFields,
    OrderStatus,
    Payment,
    PaymentFields,
    PaymentStatus,
    Refund,
    RefundFields,
    RefundStatus,
    minor_units,
    zero,
)

PAIRS = [
    (Money, MoneyFields),
    (Address, AddressFields),
    (Customer, CustomerFields),
    (LineItem, LineItemFields),
    (Order, OrderFields),
    (Payment, PaymentFields),
    (Refund, RefundFields),
    (Dispute, DisputeFields),
]


@pytest.mark.parametrize(("model", "fields"), PAIRS, ids=[model.__name__ for model, _ in PAIRS])
def test_fields_name_every_model_field_and_require_what_the_model_requires(
    model: type[BaseModel], fields: type
) -> None:
    # Given a canonical model and its Fields TypedDict / Then they have the same names
    assert set(typing.get_type_hints(fields)) == set(model.model_fields)
    # And a key is required exactly when the model has no default for it (AddressFields: none is required)
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    assert set(fields.__required_keys__) == required  # type: ignore[attr-defined]


LOCAL = timezone(timedelta(hours=-5))


def test_of_validates_like_the_constructor_with_nested_fields() -> None:
    # Given an order whose money, lines and timestamps come as fields, in a local offset
    fields: OrderFields = {
        "source": "shop",
        "source_id": "1",
        "source_version": datetime(2024, 1, 1, 7, tzinfo=LOCAL),
        "receipt_id": "r",
        "name": "#1",
        "status": OrderStatus.PAID,
        "fulfillment_status": None,
        "total": {"amount": 1050, "currency": "usd"},
        "presentment_total": None,
        "subtotal": Money(amount=1000, currency="USD"),
        "total_tax": None,
        "total_discounts": None,
        "total_shipping": None,
        "line_items": [
            {
                "source_id": "9",
                "sku": None,
                "title": "Tea",
                "quantity": 2,
                "unit_price": {"amount": 500, "currency": "USD"},
                "total_discount": {"amount": 0, "currency": "USD"},
            }
        ],
        "customer_email": " A@Example.COM ",
        "customer_source_id": None,
        "placed_at": None,
        "cancelled_at": None,
        "closed_at": None,
    }
    # When built through Order.of / Then it equals the model built by its constructors, normalised alike
    line = LineItem(
        source_id="9",
        sku=None,
        title="Tea",
        quantity=2,
        unit_price=Money(amount=500, currency="USD"),
        total_discount=Money(amount=0, currency="USD"),
    )
    expected = Order(
        **{
            **fields,
            "total": Money(amount=1050, currency="USD"),
            "line_items": (line,),
        }
    )
    order = Order.of(fields)
    assert order == expected
    assert order.total.currency == "USD"
    assert order.customer_email == "a@example.com"
    assert order.source_version.tzinfo is UTC


@pytest.mark.parametrize(
    "broken",
    [
        {"total": {"amount": 1.5, "currency": "USD"}},  # a float never becomes money
        {"total": {"amount": 1, "currency": "dollars"}},
        {"line_items": [{"source_id": "1", "sku": None, "title": "x", "quantity": -1}]},
        {"source_version": datetime(2024, 1, 1)},  # naive
    ],
)
def test_of_refuses_what_the_constructor_refuses(broken: dict[str, object]) -> None:
    fields = {
        "source": "shop",
        "source_id": "1",
        "source_version": datetime(2024, 1, 1, tzinfo=UTC),
        "receipt_id": "r",
        "name": "#1",
        "status": OrderStatus.PAID,
        "fulfillment_status": None,
        "total": {"amount": 1, "currency": "USD"},
        "presentment_total": None,
        "subtotal": None,
        "total_tax": None,
        "total_discounts": None,
        "total_shipping": None,
        "line_items": [],
        "customer_email": None,
        "customer_source_id": None,
        "placed_at": None,
        "cancelled_at": None,
        "closed_at": None,
    } | broken
    with pytest.raises(ValidationError):
        Order.of(fields)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Order(**fields)


def test_entities_and_customers_build_alike() -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    address: AddressFields = {"line1": "1 Main St", "country": " us "}
    customer = Customer.of(
        {
            "source": "s",
            "source_id": None,
            "source_version": at,
            "receipt_id": "r",
            "email": "B@X.COM",
            "first_name": None,
            "last_name": None,
            "phone": "+15026251199",
            "address": address,
        }
    )
    assert customer == Customer(
        source="s",
        source_id=None,
        source_version=at,
        receipt_id="r",
        email="b@x.com",
        first_name=None,
        last_name=None,
        phone="+15026251199",
        address=Address(line1="1 Main St", country="US"),
    )
    money: MoneyFields = {"amount": 5, "currency": "EUR"}
    assert Payment.of(
        {
            "source": "s",
            "source_id": "p",
            "source_version": at,
            "receipt_id": "r",
            "kind": "payment",
            "status": PaymentStatus.SUCCEEDED,
            "amount": money,
            "billing_address": address,
        }
    ) == Payment(
        source="s",
        source_id="p",
        source_version=at,
        receipt_id="r",
        kind="payment",
        status=PaymentStatus.SUCCEEDED,
        amount=Money(amount=5, currency="EUR"),
        billing_address=Address(line1="1 Main St", country="US"),
    )
    base = {"source": "s", "source_id": "x", "source_version": at, "receipt_id": "r"}
    assert Refund.of({**base, "status": RefundStatus.SUCCEEDED, "amount": money}) == Refund(  # type: ignore[typeddict-item]
        **base, status=RefundStatus.SUCCEEDED, amount=Money(amount=5, currency="EUR")
    )
    assert Dispute.of({**base, "status": DisputeStatus.LOST, "amount": None}) == Dispute(  # type: ignore[typeddict-item]
        **base, status=DisputeStatus.LOST, amount=None
    )


@pytest.mark.parametrize(
    ("value", "currency", "units"),
    [
        ("215.40", "USD", 21540),
        ("4500", "JPY", 4500),
        ("-0.5", "KWD", -500),
        (Decimal("1.10"), "EUR", 110),
        (Decimal("-0.50"), "USD", -50),
        (3, "USD", 300),
        ("\u0661\u0662.\u0665\u0660", "USD", 1250),  # Arabic-Indic digits: read as Decimal reads them
        (".50", "USD", 50),
        ("12.", "JPY", 12),
    ],
)
def test_minor_units_is_what_from_decimal_stores(value: str | int | Decimal, currency: str, units: int) -> None:
    assert minor_units(value, currency) == units == Money.from_decimal(value, currency).amount


@pytest.mark.parametrize("value", ["\u00b2.00", "1.\u00b2\u00b2", "1 000.00", "+-1.00"])
def test_digits_int_would_refuse_are_refused_as_before(value: str) -> None:
    # Given a superscript (isdigit() but no decimal digit) or other text / Then the Decimal path refuses it, as before
    with pytest.raises(ValueError, match="not a"):
        minor_units(value, "USD")


def test_zero_is_one_shared_money_per_currency() -> None:
    assert zero("EUR") is zero("EUR")
    assert zero("EUR") == Money(amount=0, currency="EUR")
    assert zero("jpy") == Money(amount=0, currency="JPY")
