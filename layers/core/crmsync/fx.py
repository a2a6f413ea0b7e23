"""Reporting currency: FX rates from a pluggable source, and every Money field of an entity restated with them.

Rates are exact decimals end to end (no float): a table quotes every currency against one base (EUR for the
ECB), and any other pair is the cross rate through that base, rounded to RATE_DIGITS significant digits. The
rate recorded with an amount is exactly the one it was multiplied by, so anyone can recompute it.

Two sources ship:
- StaticRates: config/fx/rates.yaml, a fixed table for tests and `make run`. It is a fixture, so it answers for
  any date however far from the table's own date (rate_date tells the reader how old the rate is).
- EcbDailyRates: the ECB's daily reference-rate CSV (eurofxref.csv). It answers only within MAX_AGE of its
  date; outside that there is no rate, and the amount stays without a reporting figure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmsync.models import Dispute, Money, Order, Payment, Refund, ReportingAmount, currency_exponent
from crmsync.observability import logger

if TYPE_CHECKING:
    from crmsync.settings import Settings
    from crmsync.sources.base import Entity

PACKAGE_DIR = Path(__file__).parent
CONFIG_DIR = PACKAGE_DIR / "config" / "fx"
RATE_DIGITS = 12  # significant digits of a cross rate; ECB quotes have 5 or 6, so this adds no visible error
MAX_AGE = timedelta(days=7)  # longest ECB gap is 4 days (Easter); a week also rides out a late file refresh
CURRENCY = re.compile(r"^[A-Z]{3}$")
_MONTHS = {
    name: number
    for number, name in enumerate(
        [
            "january", "february", "march", "april", "may", "june",
            "july", "august", "september", "october", "november", "december",
        ],
        start=1,
    )
}  # fmt: skip

__all__ = [
    "EcbDailyRates",
    "FxError",
    "Rate",
    "RateSource",
    "StaticRates",
    "apply_reporting",
    "load_static_rates",
    "rate_source",
    "reporting_for",
]


class FxError(ValueError):
    """A rate table or rate setting is missing or wrong; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Rate:
    """1 unit of the base currency = `rate` units of the quote currency, the reference rate of `rate_date`."""

    rate: Decimal
    rate_date: date
    source: str


class RateSource(Protocol):
    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        """The rate for converting `base` into `quote` on day `on`; None when the source has none.

        base == quote is always Decimal(1) (dated `on`)."""
        ...


@dataclass(frozen=True)
class _Table:
    """Rates of one day, all quoted against `base`; other pairs are cross rates through it."""

    base: str
    rates: Mapping[str, Decimal]  # 1 base = rates[code] code; every value > 0
    rate_date: date
    source: str
    max_age: timedelta | None  # None: any date may use this table

    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        base, quote = base.upper(), quote.upper()
        if base == quote:
            return Rate(Decimal(1), on, self.source)
        if self.max_age is not None and abs(on - self.rate_date) > self.max_age:
            return None
        per_base = self._per_table_base(base)
        per_quote = self._per_table_base(quote)
        if per_base is None or per_quote is None:
            return None
        # 1 base = (per_quote / per_base) quote; from the table's own base that is the published rate, unrounded.
        cross = Context(prec=RATE_DIGITS, rounding=ROUND_HALF_EVEN).divide(per_quote, per_base)
        return Rate(cross, self.rate_date, self.source)

    def _per_table_base(self, code: str) -> Decimal | None:
        return Decimal(1) if code == self.base else self.rates.get(code)


class StaticRates(_Table):
    """The shipped table (config/fx/rates.yaml). A fixture: used for every date, however old the table is."""


class EcbDailyRates(_Table):
    """The ECB's daily euro reference rates, as in https://www.ecb.europa.eu/stats/eurofxref/eurofxref.zip.

    Only answers for dates within MAX_AGE of the file's date: an old file means no reporting figure, not a
    silently wrong one."""

    SOURCE = "ECB euro foreign exchange reference rates"

    @classmethod
    def parse(cls, text: str, *, name: str = "eurofxref.csv", max_age: timedelta = MAX_AGE) -> EcbDailyRates:
        """Read the CSV: a `Date, USD, JPY, ...` header line and one data line; "N/A" means no rate."""
        lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
        if len(lines) < 2:
            raise FxError(f"{name}: expected a header line and a data line")
        header, values = (_csv_cells(line) for line in lines[:2])
        if not header or header[0].lower() != "date":
            raise FxError(f"{name}: the header line must start with 'Date'")
        if len(header) != len(values):
            raise FxError(f"{name}: {len(header)} header columns but {len(values)} values")
        rate_date = _ecb_date(values[0], name)
        rates: dict[str, Decimal] = {}
        for code, value in zip(header[1:], values[1:], strict=True):
            if not CURRENCY.match(code):
                raise FxError(f"{name}: {code!r} is not a currency code")
            if value.upper() == "N/A":
                continue
            rates[code] = _positive_decimal(value, f"{name}: {code}")
        return cls(base="EUR", rates=rates, rate_date=rate_date, source=cls.SOURCE, max_age=max_age)

    @classmethod
    def from_file(cls, path: Path, *, max_age: timedelta = MAX_AGE) -> EcbDailyRates:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FxError(f"{path.name}: cannot read {path} ({exc.__class__.__name__})") from exc
        return cls.parse(text, name=path.name, max_age=max_age)


def _csv_cells(line: str) -> list[str]:
    cells = [cell.strip() for cell in line.split(",")]
    while cells and not cells[-1]:  # the ECB ends each line with ", "
        cells.pop()
    return cells


def _ecb_date(value: str, name: str) -> date:
    """The daily file's "20 November 2026" or the history file's "2026-11-20"; month names are English whatever
    the locale, so strptime's %B is not used."""
    try:
        if "-" in value:
            return date.fromisoformat(value)
        day, month, year = value.split()
        return date(int(year), _MONTHS[month.lower()], int(day))
    except (ValueError, KeyError):
        raise FxError(f"{name}: {value!r} is not a date") from None


def _positive_decimal(value: str, where: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise FxError(f"{where}: {value!r} is not a decimal rate") from None
    if not number.is_finite() or number <= 0:
        raise FxError(f"{where}: {value!r} is not a positive rate")
    return number


class _RatesFile(BaseModel):
    """config/fx/<name>.yaml: `source`, `base`, `date` and `rates` (code: "decimal string")."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: str = Field(min_length=1)
    base: str = Field(pattern=r"^[A-Z]{3}$")
    rate_date: date = Field(alias="date")
    rates: dict[str, Decimal] = Field(min_length=1)

    @field_validator("rates", mode="before")
    @classmethod
    def _decimal_strings(cls, value: Any) -> Any:
        # Quoted strings only: YAML reads an unquoted 1.1537 as a float, which is exactly the inexactness to avoid.
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of currency code to quoted decimal string")
        for code, rate in value.items():
            if not isinstance(code, str) or not CURRENCY.match(code):
                raise ValueError(f"{code!r} is not an ISO 4217 code in capitals")
            if not isinstance(rate, str):
                raise ValueError(f'{code}: write the rate as a quoted string, e.g. "1.1537"')
            _positive_decimal(rate, code)
        return value


@functools.cache
def load_static_rates(name: str = "rates", directory: Path = CONFIG_DIR) -> StaticRates:
    """Load and validate config/fx/<name>.yaml once per container."""
    import yaml  # lazily: convert imports this module, and only the static table needs YAML (~15 ms of cold start)

    path = directory / f"{name}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FxError(f"{path.name}: no such rates file in {directory}") from exc
    except yaml.YAMLError as exc:
        raise FxError(f"{path.name}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(raw, dict):
        raise FxError(f"{path.name}: expected a mapping with source, base, date and rates")
    try:
        table = _RatesFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise FxError(f"{path.name}: {problems}") from exc
    return StaticRates(base=table.base, rates=table.rates, rate_date=table.rate_date, source=table.source, max_age=None)


def rate_source(settings: Settings) -> RateSource:
    """The source FX_RATES names, built once per container: "static" or "ecb-file:<path>"."""
    return _rate_source(settings.fx_rates)


@functools.cache
def _rate_source(spec: str) -> RateSource:
    if spec == "static":
        return load_static_rates()
    kind, _, location = spec.partition(":")
    if kind == "ecb-file" and location:
        return EcbDailyRates.from_file(_allowed_path(location))
    raise FxError(f"FX_RATES={spec!r}: expected 'static' or 'ecb-file:<path>'")


def _allowed_path(location: str) -> Path:
    """A path relative to the crmsync package (e.g. config/fx/eurofxref.csv), or an absolute one under /tmp."""
    path = Path(location)
    if ".." in path.parts:
        raise FxError(f"FX_RATES: {location!r} may not contain '..'")
    if not path.is_absolute():
        return PACKAGE_DIR / path
    if path.parts[:2] == ("/", "tmp") and len(path.parts) > 2:
        return path
    raise FxError(f"FX_RATES: {location!r} must be inside the crmsync package or under /tmp")


def apply_reporting[E: Order | Payment | Refund | Dispute](
    entity: E, currency: str, rates: RateSource, on: date | None = None
) -> E:
    """The entity with `reporting` holding each top-level Money field restated in `currency`.

    A field already in `currency` gets rate "1"; a field whose rate the source lacks is left out (and logged). `on`
    defaults to the UTC date of the entity's source version. With no field converted the entity comes back as is.
    """
    currency = currency.upper()
    day = on or entity.source_version.date()
    reporting: dict[str, ReportingAmount] = {}
    for field in type(entity).model_fields:
        money = getattr(entity, field)
        if not isinstance(money, Money):
            continue
        rate = rates.rate(money.currency, currency, day)
        if rate is None:
            logger.warning(
                "no FX rate; reporting amount left out",
                entity=entity.external_id, field=field, base=money.currency, quote=currency, on=day.isoformat(),
            )  # fmt: skip
            continue
        reporting[field] = ReportingAmount(
            amount=Money(amount=convert_minor(money, currency, rate.rate), currency=currency),
            rate=format(rate.rate, "f"),
            rate_date=rate.rate_date,
            rate_source=rate.source,
        )
    if not reporting:
        return entity
    # model_copy returns the entity's own class; mypy widens Self on a union-bound type variable to the union.
    return cast(E, entity.model_copy(update={"reporting": reporting}))


def convert_minor(money: Money, currency: str, rate: Decimal) -> int:
    """money x rate in minor units of `currency`, rounded half-even; exact up to that one rounding."""
    amount = Decimal(money.amount)
    # Enough digits that the product is exact whatever the sizes: only the final quantize rounds.
    exact = Context(prec=len(amount.as_tuple().digits) + len(rate.as_tuple().digits) + 2)
    scaled = exact.multiply(amount, rate).scaleb(currency_exponent(currency) - currency_exponent(money.currency), exact)
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


def reporting_for(settings: Settings) -> Callable[[Entity], Entity] | None:
    """apply_reporting bound to REPORTING_CURRENCY and FX_RATES; None when no reporting currency is set."""
    if not settings.reporting_currency:
        return None
    currency, rates = settings.reporting_currency, rate_source(settings)

    def report(entity: Entity) -> Entity:
        return apply_reporting(entity, currency, rates)

    return report
