"""Money: exact minor units and ISO 4217 formatting."""

from decimal import Decimal
from fractions import Fraction

import pytest
from pydantic import ValidationError

from crmsync.models import Money, currency_exponent, exact_minor_units, minor_units, whole_minor_units


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("usd", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("XPF", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("TND", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("ZZZ", 2),  # unknown codes fall back to the common case
    ],
)
def test_currency_exponent(currency: str, exponent: int) -> None:
    # Given an ISO 4217 code / When its minor units are looked up / Then the table answers
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize(
    ("value", "currency", "amount", "formatted"),
    [
        ("215.40", "USD", 21540, "215.40"),
        ("215.4", "USD", 21540, "215.40"),
        ("0.00", "USD", 0, "0.00"),
        ("0.05", "USD", 5, "0.05"),
        ("4500", "JPY", 4500, "4500"),
        ("4500.00", "JPY", 4500, "4500"),
        ("12.345", "KWD", 12345, "12.345"),
        ("0.5", "KWD", 500, "0.500"),
        ("1.2345", "CLF", 12345, "1.2345"),
        ("-1.50", "USD", -150, "-1.50"),
        ("-0.01", "EUR", -1, "-0.01"),
        ("-7", "JPY", -7, "-7"),
        (" 3.10 ", "USD", 310, "3.10"),
        (7, "USD", 700, "7.00"),
        (Decimal("19.99"), "USD", 1999, "19.99"),
        ("1E+2", "USD", 10000, "100.00"),
        (
            "12345678901234567890123456789.99",
            "USD",
            1234567890123456789012345678999,
            "12345678901234567890123456789.99",
        ),
    ],
)
def test_from_decimal_is_exact_and_formats_with_iso_decimals(
    value: str | int | Decimal, currency: str, amount: int, formatted: str
) -> None:
    # Given a major-unit amount / When it becomes Money
    money = Money.from_decimal(value, currency)

    # Then the minor units are exact and the text has exactly the currency's decimals
    assert money.amount == amount
    assert money.formatted() == formatted


def test_currency_is_upper_cased() -> None:
    # Given a lower-case code / When Money is made / Then the code is stored upper-case
    assert Money.from_decimal("1", "usd").currency == "USD"


@pytest.mark.parametrize(
    ("value", "currency"),
    [("215.401", "USD"), ("4500.5", "JPY"), ("12.3456", "KWD"), ("0.001", "EUR")],
)
def test_more_decimals_than_the_currency_allows_is_refused(value: str, currency: str) -> None:
    # Given non-zero digits beyond the currency's minor unit / When converted / Then nothing is rounded away
    with pytest.raises(ValueError, match="more decimals"):
        Money.from_decimal(value, currency)


def test_trailing_zeros_beyond_the_minor_unit_are_fine() -> None:
    # Given zeros past the minor unit / When converted / Then they are simply dropped
    assert Money.from_decimal("4500.000", "JPY").amount == 4500
    assert Money.from_decimal("1.2300", "USD").amount == 123


@pytest.mark.parametrize("value", [0.1, 215.4, True])
def test_floats_are_never_accepted(value: object) -> None:
    # Given a binary float (or a bool posing as an int) / When converted / Then it is refused outright
    with pytest.raises((TypeError, ValueError)):
        Money.from_decimal(value, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "abc", "1,50", "NaN", "Infinity", "1.2.3"])
def test_garbage_is_a_value_error(value: str) -> None:
    # Given text that is no finite decimal / When converted / Then ValueError, not a decimal-module signal
    with pytest.raises(ValueError, match="not a"):
        Money.from_decimal(value, "USD")


@pytest.mark.parametrize("currency", ["US", "USDX", "U$D", "12A", ""])
def test_currency_must_be_three_letters(currency: str) -> None:
    # Given a malformed currency code / When Money is made / Then validation fails
    with pytest.raises(ValidationError):
        Money(amount=1, currency=currency)


def test_float_amount_is_refused_by_the_model() -> None:
    # Given a float already in minor units / When Money is validated / Then it is refused, even if integral
    with pytest.raises(ValidationError):
        Money(amount=1.0, currency="USD")


def test_integral_decimal_amount_is_accepted() -> None:
    # Given an amount as DynamoDB hands numbers back (Decimal) / When validated / Then it is the same int
    assert Money.model_validate({"amount": Decimal("21540"), "currency": "USD"}) == Money(amount=21540, currency="USD")


def test_money_is_frozen_and_round_trips_through_json() -> None:
    # Given Money / When dumped and loaded / Then it is equal, and it cannot be mutated
    money = Money.from_decimal("12.345", "KWD")
    assert Money.model_validate_json(money.model_dump_json()) == money
    with pytest.raises(ValidationError):
        money.amount = 1  # type: ignore[misc]


@pytest.mark.parametrize("value", ["1e999999999", "1e-999999999", Decimal("9E+100")])
def test_absurd_exponents_are_refused_quickly(value: str | Decimal) -> None:
    # Given a valid Decimal far beyond any amount / When converted / Then refused at once, not computed for minutes
    with pytest.raises(ValueError, match="out of range"):
        Money.from_decimal(value, "USD")


@pytest.mark.parametrize("body", [b'{"amount": 1.5, "currency": "USD"}', b'{"amount": true, "currency": "USD"}'])
def test_stored_json_with_a_fractional_or_boolean_amount_is_refused(body: bytes) -> None:
    # Given stored JSON whose amount is not a whole number of minor units / When loaded / Then validation fails
    with pytest.raises(ValidationError):
        Money.model_validate_json(body)


@pytest.mark.parametrize(
    ("parts", "currency", "units"),
    [
        (["1.125", "2.375"], "USD", 350),  # a store set to 3 decimals: the parts have half cents, the sum does not
        (["0.0005", "0.0005"], "KWD", 1),
        (["1e3", "-0.005", "0.005"], "USD", 100000),
        (["0.1000000000000000000000000000001", "0.8999999999999999999999999999999"], "EUR", 100),  # 31 digits
    ],
)
def test_exact_minor_units_add_up_without_rounding(parts: list[str], currency: str, units: int) -> None:
    # Given amounts finer than the minor unit whose sum is whole / When added as exact minor units
    total = sum((exact_minor_units(part, currency) for part in parts), Fraction(0))
    # Then the sum is exactly that many minor units (no Decimal context rounds a digit away)
    assert whole_minor_units(total, currency) == units


def test_a_sum_with_a_fraction_of_a_minor_unit_is_refused_in_major_units() -> None:
    # Given 1.125 + 0.0000000000000000000000000000001 USD / When made whole / Then refused, naming the exact amount
    total = exact_minor_units("1.125", "USD") + exact_minor_units("1e-31", "USD")
    with pytest.raises(ValueError, match=r"Decimal\('1.1250000000000000000000000000001'\) has more decimals than USD"):
        whole_minor_units(total, "USD")


@pytest.mark.parametrize(
    ("value", "reason"), [("1e999999999", "out of range"), ("NaN", "not a finite"), ("abc", "not a decimal")]
)
def test_exact_minor_units_refuse_what_minor_units_refuses(value: str, reason: str) -> None:
    # Given no finite amount in range / When read exactly / Then the same ValueError as minor_units gives
    with pytest.raises(ValueError, match=reason):
        exact_minor_units(value, "USD")
    with pytest.raises(ValueError, match=reason):
        minor_units(value, "USD")
