"""Money as integer minor units, so amounts never pass through binary floating point."""

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Self

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
_PLAIN_AMOUNT = re.compile(r"\s*(-?)([0-9]+)(?:\.([0-9]*))?\s*", re.ASCII)


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
        """Exact conversion of a major-unit amount; refuses to round away non-zero digits.

        The currency code is checked by the model itself (an unknown but well-formed code has 2 decimals)."""
        places = currency_exponent(currency)
        if isinstance(value, str):
            plain = _PLAIN_AMOUNT.fullmatch(value)
            if plain is not None:
                negative, whole, fraction = plain.groups()
                if fraction and fraction[places:].strip("0"):
                    raise ValueError(f"{value!r} has more decimals than {currency.upper()} allows")
                units = int(whole + (fraction or "")[:places].ljust(places, "0"))
                return cls._of(-units if negative else units, currency)
            try:
                value = Decimal(value.strip())
            except ArithmeticError:
                raise ValueError(f"not a decimal amount: {value!r}") from None
        elif type(value) is int:
            return cls._of(value * 10**places, currency)
        elif not isinstance(value, Decimal):
            raise TypeError(f"expected str, int or Decimal, got {type(value).__name__}")
        _, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):
            raise ValueError(f"not a finite amount: {value!r}")
        if not -_MAX_DIGITS <= exponent <= _MAX_DIGITS - len(digits):
            # "1e999999999" is a valid Decimal; exact arithmetic on it would take minutes, and no amount is that big.
            raise ValueError(f"amount out of range: {value!r}")
        # An exact rational: no Decimal context precision (28 digits) can round anything away here.
        numerator, denominator = value.as_integer_ratio()
        minor, remainder = divmod(numerator * 10**places, denominator)
        if remainder:
            raise ValueError(f"{value!r} has more decimals than {currency.upper()} allows")
        return cls._of(minor, currency)

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
