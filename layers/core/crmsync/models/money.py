"""Money as integer minor units, so amounts never pass through binary floating point."""

import re
from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import lru_cache
from typing import Annotated, Self, TypedDict

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

# Hand-written: no small maintained library exposes ISO 4217 minor units (babel would, but is heavy for a Lambda layer).
_NON_DEFAULT_EXPONENTS = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
_EXPONENTS = {code: exponent for exponent, codes in _NON_DEFAULT_EXPONENTS.items() for code in codes.split()}


def currency_exponent(currency: str) -> int:
    """Number of decimals ISO 4217 gives the currency (2 unless listed)."""
    return _EXPONENTS.get(currency.upper(), 2)


# Validated by pydantic-core alone (no Python validator runs per amount): a conversion makes a dozen Money per order.
_Currency = Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{3}$")]
# DynamoDB hands numbers back as Decimal: an integral one is accepted and stored as int; floats and bools never are.
_IntegralDecimal = Annotated[Decimal, Field(strict=True, decimal_places=0), AfterValidator(int)]
# A plain decimal string ("215.40", "-3", " 4500.00 "), the shape every source sends; anything else takes the
# Decimal path.
_MAX_DIGITS = 40  # beyond any amount of money, far below what would make exact integer arithmetic slow
_PLAIN_AMOUNT = re.compile(r"\s*(-?[0-9]+)(?:\.([0-9]*))?\s*", re.ASCII)
_SCALE: tuple[int, ...] = (1, 10, 100, 1000, 10000)  # 10**places for every exponent _EXPONENTS knows


def minor_units(value: str | int | Decimal, currency: str) -> int:
    """The exact number of minor units of a major-unit amount; refuses to round away non-zero digits.

    What Money.from_decimal stores, for converters that add amounts up or build Money inside a bigger model. The
    currency code itself is not checked here: Money checks it (an unknown but well-formed code has 2 decimals)."""
    places = _EXPONENTS.get(currency.upper(), 2)
    if type(value) is str:
        # The shape sources send, read without a regex: unsigned digits with exactly the currency's decimals. (Digits of
        # other scripts are read as Decimal reads them: isdecimal() takes exactly what int() and Decimal() take.)
        whole, _, fraction = value.partition(".")
        if len(fraction) == places:
            digits = whole + fraction
            if digits.isdecimal():
                return int(digits)
        plain = _PLAIN_AMOUNT.fullmatch(value)
        if plain is not None:
            whole, fraction = plain.groups()  # whole carries the sign: int() reads "-0050" as -50
            if not fraction:
                return int(whole) * _SCALE[places]
            decimals = len(fraction)
            if decimals < places:
                return int(whole + fraction) * _SCALE[places - decimals]
            if fraction[places:].strip("0"):
                raise ValueError(f"{value!r} has more decimals than {currency.upper()} allows")
            return int(whole + fraction[:places])
    elif type(value) is int:
        return value * _SCALE[places]
    elif isinstance(value, Decimal):
        # str() of a Decimal is its exact digits ("442.73", "-0.50", "1E+3"): the common shape is read as above.
        whole, _, fraction = str(value).partition(".")
        if len(fraction) == places:
            digits = whole + fraction
            if digits.isdecimal():
                return int(digits)
    value = _finite_decimal(value)
    # An exact rational: no Decimal context precision (28 digits) can round anything away here.
    numerator, denominator = value.as_integer_ratio()
    minor, remainder = divmod(numerator * _SCALE[places], denominator)
    if remainder:
        raise ValueError(f"{value!r} has more decimals than {currency.upper()} allows")
    return minor


def exact_minor_units(value: str | int | Decimal, currency: str) -> Fraction:
    """The exact number of minor units of a major-unit amount, a fraction of a minor unit kept (0.125 USD is 25/2
    cents): for sums and differences whose parts may be finer than the minor unit while their result must not be
    (whole_minor_units). Refuses what minor_units refuses, except digits below the minor unit."""
    places = _EXPONENTS.get(currency.upper(), 2)
    if type(value) is int:
        return Fraction(value * _SCALE[places])
    return Fraction(*_finite_decimal(value).as_integer_ratio()) * _SCALE[places]


def whole_minor_units(units: Fraction, currency: str) -> int:
    """Exact minor units (exact_minor_units, or their sum) as an int; refuses a fraction of a minor unit."""
    if units.denominator != 1:
        places = _EXPONENTS.get(currency.upper(), 2)
        # Finite in decimal (a sum of decimals): this context holds every digit of an amount in range.
        with localcontext(prec=4 * _MAX_DIGITS):
            major = Decimal(units.numerator) / Decimal(units.denominator * _SCALE[places])
        raise ValueError(f"{major!r} has more decimals than {currency.upper()} allows")
    return units.numerator


def _finite_decimal(value: object) -> Decimal:
    """`value` as a finite Decimal of a size money can have; ValueError (never a decimal-module signal) if not."""
    if type(value) is str:
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"not a decimal amount: {value!r}") from None
    elif not isinstance(value, Decimal):
        raise TypeError(f"expected str, int or Decimal, got {type(value).__name__}")
    _, coefficient, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite amount: {value!r}")
    if not -_MAX_DIGITS <= exponent <= _MAX_DIGITS - len(coefficient):
        # "1e999999999" is a valid Decimal; exact arithmetic on it would take minutes, and no amount is that big.
        raise ValueError(f"amount out of range: {value!r}")
    return value


class MoneyFields(TypedDict):
    """Money's fields, to build it inside a bigger model's validation (Order.of): mypy checks the names."""

    amount: int
    currency: str


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    # StrictInt first: pydantic's lax int would take 1.0 as 1, and a float means exactness was already lost.
    amount: StrictInt | _IntegralDecimal
    currency: _Currency

    @classmethod
    def _of(cls, amount: int, currency: str) -> Self:
        # Validated exactly as Money(amount=..., currency=...) is, minus BaseModel.__init__'s Python frame, which
        # is half the cost of a Money; conversion makes a dozen per order.
        money: Self = cls.__pydantic_validator__.validate_python({"amount": amount, "currency": currency})
        return money

    @classmethod
    def from_decimal(cls, value: str | int | Decimal, currency: str) -> Self:
        """Exact conversion of a major-unit amount; refuses to round away non-zero digits (see minor_units).

        The currency code is checked by the model itself (an unknown but well-formed code has 2 decimals)."""
        return cls._of(minor_units(value, currency), currency)

    def formatted(self) -> str:
        """The amount with exactly the currency's ISO 4217 decimals, e.g. "215.40", "4500", "-1.50"."""
        exponent = currency_exponent(self.currency)
        sign = "-" if self.amount < 0 else ""
        if exponent == 0:
            return f"{sign}{abs(self.amount)}"
        major, minor = divmod(abs(self.amount), 10**exponent)
        return f"{sign}{major}.{minor:0{exponent}d}"


class ReportingAmount(BaseModel):
    """One amount restated in the configured reporting currency, with the FX rate that produced it.

    `rate` is an exact decimal string: 1 unit of the original currency = `rate` units of the reporting currency,
    and `amount` is the original amount times `rate`, rounded half-even to the reporting currency's minor unit.
    """

    model_config = ConfigDict(frozen=True)

    amount: Money  # in the reporting currency
    rate: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")]  # a string, so no float ever touches it
    rate_date: date  # the day the rate is the reference rate of (for rate 1, the entity's own day)
    rate_source: str


@lru_cache(maxsize=64)
def zero(currency: str) -> Money:
    """Money(amount=0, currency=currency), one shared instance per currency: Money is frozen, and no amount
    repeats more than zero (no discount, no tax, free shipping)."""
    return Money._of(0, currency)
