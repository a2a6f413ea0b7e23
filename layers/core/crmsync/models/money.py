"""Money as integer minor units, so amounts never pass through binary floating point."""

from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Hand-written: no small maintained library exposes ISO 4217 minor units (babel would, but is heavy for a Lambda layer).
_NON_DEFAULT_EXPONENTS = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
_EXPONENTS = {code: exponent for exponent, codes in _NON_DEFAULT_EXPONENTS.items() for code in codes.split()}


def _currency_code(value: str) -> str:
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ValueError("currency must be an ISO 4217 alpha-3 code")
    return value.upper()


def currency_exponent(currency: str) -> int:
    """Number of decimals ISO 4217 gives the currency (2 unless listed)."""
    return _EXPONENTS.get(currency.upper(), 2)


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: int
    currency: str

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        # pydantic's lax mode would accept 1.0 as 1; a float here means someone already lost exactness upstream.
        if isinstance(value, float | bool):
            raise ValueError("amount must be an integer number of minor units")
        return value

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        return _currency_code(value)

    @classmethod
    def from_decimal(cls, value: str | int | Decimal, currency: str) -> Self:
        """Exact conversion of a major-unit amount; refuses to round away non-zero digits."""
        if isinstance(value, float | bool) or not isinstance(value, str | int | Decimal):
            raise TypeError(f"expected str, int or Decimal, got {type(value).__name__}")
        if isinstance(value, str):
            units = _plain_minor_units(value, currency)
            if units is not None:
                return cls(amount=units, currency=currency)
        code = _currency_code(currency)
        places = currency_exponent(code)
        try:
            number = Decimal(value.strip() if isinstance(value, str) else value)
        except ArithmeticError:
            raise ValueError(f"not a decimal amount: {value!r}") from None
        sign, digits, exponent = number.as_tuple()
        if not isinstance(exponent, int):
            raise ValueError(f"not a finite amount: {value!r}")
        # Integer arithmetic on the digit tuple: Decimal context precision (28 digits) can never round here.
        coefficient = int("".join(map(str, digits)))
        shift = exponent + places
        if shift >= 0:
            minor = coefficient * 10**shift
        else:
            minor, remainder = divmod(coefficient, 10**-shift)
            if remainder:
                raise ValueError(f"{value!r} has more decimals than {code} allows")
        return cls(amount=-minor if sign else minor, currency=code)

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


@lru_cache(maxsize=4096)
def _plain_minor_units(value: str, currency: str) -> int | None:
    """Minor units of a plain decimal string ("215.40", "-3", "4500.00"), the shape every source sends; None
    for anything else (exponents, signs like "+"), which takes the Decimal path. Cached: amounts such as
    "0.00" and catalogue prices recur in every order, and this runs a dozen times per order."""
    text = value.strip()
    negative = text.startswith("-")
    whole, _, fraction = text.removeprefix("-").partition(".")
    if not (whole.isascii() and whole.isdigit() and (not fraction or (fraction.isascii() and fraction.isdigit()))):
        return None
    places = currency_exponent(currency)
    if fraction[places:].strip("0"):
        raise ValueError(f"{value!r} has more decimals than {currency.upper()} allows")
    units = int(whole + fraction[:places].ljust(places, "0"))
    return -units if negative else units
