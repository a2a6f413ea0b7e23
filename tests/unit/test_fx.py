"""Reporting currency: rates from the static table and the ECB file, cross rates through EUR, half-even rounding."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crmsync import fx
from crmsync.fx import EcbDailyRates, FxError, Rate, StaticRates, apply_reporting, load_static_rates, rate_source
from crmsync.models import Money, Order, OrderStatus, Payment, PaymentStatus, Refund, RefundStatus, ReportingAmount
from crmsync.settings import Settings
from tests.conftest import FIXTURES

STATIC = "static table (ECB reference rates of 2026-11-20)"
ECB = "ECB euro foreign exchange reference rates"
TABLE_DATE = date(2026, 11, 20)


def order(total: Money, presentment: Money | None = None, **fields: Any) -> Order:
    return Order(
        source="shopify", source_id="1042", source_version=datetime(2026, 11, 21, 15, 0, tzinfo=UTC),
        receipt_id="r-1", name="#1042", status=OrderStatus.PAID, fulfillment_status=None, total=total,
        presentment_total=presentment, subtotal=None, total_tax=None, total_discounts=None, total_shipping=None,
        line_items=(), customer_email="ada@example.com", customer_source_id=None, placed_at=None,
        cancelled_at=None, closed_at=None, **fields,
    )  # fmt: skip


def payment(amount: Money, refunded: Money | None = None) -> Payment:
    return Payment(
        source="stripe", source_id="pi_1", source_version=datetime(2026, 11, 22, 9, 30, tzinfo=UTC),
        receipt_id="r-2", kind="payment", status=PaymentStatus.SUCCEEDED, amount=amount, amount_refunded=refunded,
    )  # fmt: skip


class Half:
    """A rate source quoting 0.5 for every pair, so an odd number of minor units lands exactly on .5."""

    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        return Rate(Decimal(1) if base == quote else Decimal("0.5"), on, "half")


class RecordingLogger:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, message: str, **fields: Any) -> None:
        self.warnings.append((message, fields))


# --- the static table -----------------------------------------------------------------------------


def test_jpy_to_eur_uses_the_inverse_of_the_table_rate():
    # Given a JPY 4500 payment and the static table (1 EUR = 181.25 JPY)
    jpy = payment(Money(amount=4500, currency="JPY"))
    # When it is reported in EUR
    reported = apply_reporting(jpy, "EUR", load_static_rates())
    # Then 4500 / 181.25 = 24.8275... is EUR 24.83, at the rate 1/181.25 to 12 significant digits
    assert reported.reporting == {
        "amount": ReportingAmount(
            amount=Money(amount=2483, currency="EUR"), rate="0.00551724137931", rate_date=TABLE_DATE,
            rate_source=STATIC,
        )
    }  # fmt: skip
    assert reported.reporting["amount"].amount.formatted() == "24.83"
    # And nothing else of the payment changed
    assert reported.model_copy(update={"reporting": None}) == jpy


def test_kwd_to_usd_is_a_cross_rate_through_eur():
    # Given a KWD 12.345 order (three decimals) and the static table (1 EUR = 1.1537 USD = 0.3540 KWD)
    kwd = order(Money(amount=12345, currency="KWD"))
    # When it is reported in USD
    reported = apply_reporting(kwd, "USD", load_static_rates())
    # Then the rate is 1.1537 / 0.3540 = 3.25903954802 and 12.345 x that = 40.2328... is USD 40.23
    assert reported.reporting == {
        "total": ReportingAmount(
            amount=Money(amount=4023, currency="USD"), rate="3.25903954802", rate_date=TABLE_DATE, rate_source=STATIC
        )
    }


def test_a_field_already_in_the_reporting_currency_gets_rate_one_dated_by_the_entity():
    # Given a USD 225.40 order whose buyer paid in EUR 195.37
    usd = order(Money(amount=22540, currency="USD"), Money(amount=19537, currency="EUR"))
    # When it is reported in USD
    reported = apply_reporting(usd, "USD", load_static_rates())
    assert reported.reporting is not None
    # Then the total is copied at rate "1", dated the order's source-version day
    assert reported.reporting["total"] == ReportingAmount(
        amount=Money(amount=22540, currency="USD"), rate="1", rate_date=date(2026, 11, 21), rate_source=STATIC
    )
    # And the presentment total is converted (195.37 x 1.1537 = 225.398369 -> USD 225.40)
    assert reported.reporting["presentment_total"].amount == Money(amount=22540, currency="USD")
    assert reported.reporting["presentment_total"].rate == "1.1537"


def test_a_currency_without_a_rate_is_left_out_and_logged_without_personal_data(monkeypatch):
    # Given an order in XAF (not in the table) that the buyer saw in USD
    log = RecordingLogger()
    monkeypatch.setattr(fx, "logger", log)
    xaf = order(Money(amount=150000, currency="XAF"), Money(amount=26500, currency="USD"))
    # When it is reported in EUR
    reported = apply_reporting(xaf, "EUR", load_static_rates())
    # Then only the presentment total has a reporting amount (265.00 / 1.1537 = 229.695... -> EUR 229.70)
    assert reported.reporting is not None
    assert set(reported.reporting) == {"presentment_total"}
    assert reported.reporting["presentment_total"].amount == Money(amount=22970, currency="EUR")
    # And one warning names the entity, the field and the pair, and nothing personal
    assert log.warnings == [
        (
            "no FX rate; reporting amount left out",
            {"entity": "shopify:order:1042", "field": "total", "base": "XAF", "quote": "EUR", "on": "2026-11-21"},
        )
    ]
    assert "ada@example.com" not in repr(log.warnings)


def test_an_entity_with_no_convertible_amount_comes_back_unchanged(monkeypatch):
    # Given a refund in a currency the table does not know
    monkeypatch.setattr(fx, "logger", RecordingLogger())
    refund = Refund(
        source="stripe", source_id="re_1", source_version=datetime(2026, 11, 22, tzinfo=UTC), receipt_id="r-3",
        status=RefundStatus.SUCCEEDED, amount=Money(amount=500, currency="XOF"),
    )  # fmt: skip
    # When it is reported in EUR, Then it is the same refund, reporting still None
    assert apply_reporting(refund, "EUR", load_static_rates()) is refund


def test_rounding_is_half_even_on_an_exact_half():
    # Given a payment of USD 0.05 with USD 0.07 refunded, and a rate of exactly 0.5
    small = payment(Money(amount=5, currency="USD"), Money(amount=7, currency="USD"))
    # When reported in EUR
    reported = apply_reporting(small, "EUR", Half())
    assert reported.reporting is not None
    # Then 2.5 cents rounds to the even 2 and 3.5 cents to the even 4
    assert reported.reporting["amount"].amount == Money(amount=2, currency="EUR")
    assert reported.reporting["amount_refunded"].amount == Money(amount=4, currency="EUR")
    assert reported.reporting["amount"].rate == "0.5"


def test_minor_units_are_scaled_by_both_exponents():
    # Given KWD 0.001 (three decimals) and JPY 3 (none), at rate 0.5 into EUR and JPY
    # Then 0.001 x 0.5 = 0.0005 EUR -> 0 cents; JPY 3 x 0.5 = 1.5 EUR -> 150 cents; KWD 12.345 x 0.5 -> JPY 6 (6.1725)
    assert fx.convert_minor(Money(amount=1, currency="KWD"), "EUR", Decimal("0.5")) == 0
    assert fx.convert_minor(Money(amount=3, currency="JPY"), "EUR", Decimal("0.5")) == 150
    assert fx.convert_minor(Money(amount=12345, currency="KWD"), "JPY", Decimal("0.5")) == 6


def test_on_overrides_the_entity_date():
    # Given a USD order, When reported in USD for an explicit day, Then the rate-1 amount carries that day
    reported = apply_reporting(order(Money(amount=100, currency="USD")), "USD", Half(), on=date(2026, 1, 2))
    assert reported.reporting is not None
    assert reported.reporting["total"].rate_date == date(2026, 1, 2)


def test_reporting_survives_the_json_round_trip_of_stored_state():
    # Given an order with a reporting amount, When dumped as stored state and read back, Then it is equal
    reported = apply_reporting(order(Money(amount=450000, currency="JPY")), "EUR", load_static_rates())
    assert reported.model_dump(mode="json")["reporting"]["total"] == {
        "amount": {"amount": 248276, "currency": "EUR"},
        "rate": "0.00551724137931",
        "rate_date": "2026-11-20",
        "rate_source": STATIC,
    }
    assert Order.model_validate(reported.model_dump(mode="json")) == reported


def test_the_static_table_answers_for_any_date():
    # Given the shipped table, Then a date years away still gets the table's rate, dated the table's day
    rate = load_static_rates().rate("EUR", "USD", date(2020, 1, 1))
    assert rate == Rate(Decimal("1.1537"), TABLE_DATE, STATIC)
    assert load_static_rates().rate("EUR", "BGN", TABLE_DATE) is None  # not in the table


def test_reporting_amount_refuses_a_rate_that_is_not_a_plain_decimal():
    with pytest.raises(ValidationError):
        ReportingAmount(amount=Money(amount=1, currency="EUR"), rate="1e-3", rate_date=TABLE_DATE, rate_source="x")


# --- the ECB daily file ---------------------------------------------------------------------------


def test_ecb_csv_is_parsed_with_its_spaces_trailing_commas_and_na():
    # Given the ECB daily CSV (", " separators, a trailing ", " on both lines, RUB as N/A)
    rates = EcbDailyRates.from_file(FIXTURES / "fx" / "eurofxref.csv")
    day = date(2026, 11, 19)
    # Then the date and every quoted currency are read as exact decimals
    assert rates.rate_date == day
    assert rates.rate("EUR", "USD", day) == Rate(Decimal("1.1512"), day, ECB)
    assert rates.rate("EUR", "GBP", day) == Rate(Decimal("0.87860"), day, ECB)
    assert rates.rate("EUR", "CHF", day) == Rate(Decimal("0.9281"), day, ECB)
    assert set(rates.rates) == {"USD", "JPY", "BGN", "CZK", "DKK", "GBP", "HUF", "PLN", "SEK", "CHF"}
    # And N/A is no rate
    assert rates.rate("EUR", "RUB", day) is None
    # And USD -> GBP is the cross rate 0.87860 / 1.1512
    assert rates.rate("USD", "GBP", day) == Rate(Decimal("0.763203613621"), day, ECB)
    # And USD -> USD is 1 whatever the day
    assert rates.rate("USD", "USD", date(2030, 1, 1)) == Rate(Decimal(1), date(2030, 1, 1), ECB)


def test_ecb_rates_older_than_the_maximum_age_are_not_used():
    # Given the file of 19 November 2026 (maximum age 7 days)
    rates = EcbDailyRates.from_file(FIXTURES / "fx" / "eurofxref.csv")
    # Then an order of the 26th still gets it, one of the 27th or of a month before does not
    assert rates.rate("EUR", "USD", date(2026, 11, 26)) is not None
    assert rates.rate("EUR", "USD", date(2026, 11, 27)) is None
    assert rates.rate("EUR", "USD", date(2026, 10, 19)) is None


def test_ecb_csv_accepts_an_iso_date_and_a_byte_order_mark():
    rates = EcbDailyRates.parse("\ufeffDate,USD\n2026-11-19,1.1512\n")
    assert rates.rate_date == date(2026, 11, 19)
    assert rates.rates == {"USD": Decimal("1.1512")}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Date, USD, \n", "expected a header line and a data line"),
        ("Day, USD, \n19 November 2026, 1.1512, \n", "must start with 'Date'"),
        ("Date, USD, JPY, \n19 November 2026, 1.1512, \n", "3 header columns but 2 values"),
        ("Date, USD, \n19 Brumaire 2026, 1.1512, \n", "'19 Brumaire 2026' is not a date"),
        ("Date, USD, \n19 November 2026, 1,1512, \n", "2 header columns but 3 values"),
        ("Date, USD, \n19 November 2026, abc, \n", "USD: 'abc' is not a decimal rate"),
        ("Date, USD, \n19 November 2026, -1.2, \n", "USD: '-1.2' is not a positive rate"),
        ("Date, Dollar, \n19 November 2026, 1.2, \n", "'Dollar' is not a currency code"),
    ],
)
def test_a_broken_ecb_csv_is_refused_with_a_clear_message(text, problem):
    with pytest.raises(FxError, match=f"^eurofxref.csv: .*{problem}"):
        EcbDailyRates.parse(text)


# --- the YAML loader ------------------------------------------------------------------------------


def test_the_shipped_table_quotes_the_ecb_currencies_and_kwd():
    table = load_static_rates()
    assert isinstance(table, StaticRates)
    assert (table.base, table.rate_date, table.source) == ("EUR", TABLE_DATE, STATIC)
    assert {"USD", "JPY", "GBP", "CHF", "SEK", "PLN", "ISK", "KRW", "KWD"} <= set(table.rates)
    assert len(table.rates) == 30


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('source: "t"\nbase: EUR\ndate: 2026-11-20\nrates:\n  USD: 1.1537\n', r"USD: write the rate as a quoted"),
        ('source: "t"\nbase: EUR\ndate: 2026-11-20\nrates:\n  usd: "1.1"\n', r"rates: .*'usd' is not an ISO 4217 code"),
        ('source: "t"\nbase: EUR\ndate: 2026-11-20\nrates:\n  USD: "0"\n', r"USD: '0' is not a positive rate"),
        ('source: "t"\nbase: EUR\nrates:\n  USD: "1.1"\n', r"date: Field required"),
        ('source: "t"\nbase: EUR\ndate: 2026-11-20\nrates: {USD: "1.1"}\nextra: 1\n', r"extra: Extra inputs"),
        ("rates: [\n", r"not valid YAML"),
        ("- a list\n", r"expected a mapping with source, base, date and rates"),
    ],
)
def test_the_yaml_loader_refuses_a_broken_file_with_a_clear_message(tmp_path: Path, text, problem):
    # Given a broken rates file, When it is loaded, Then the error names the file and what is wrong
    (tmp_path / "broken.yaml").write_text(text)
    with pytest.raises(FxError, match=f"^broken.yaml: .*{problem}"):
        load_static_rates("broken", directory=tmp_path)


def test_a_missing_rates_file_is_named():
    with pytest.raises(FxError, match=r"^nope.yaml: no such rates file"):
        load_static_rates("nope")


# --- settings and the factory ---------------------------------------------------------------------


def test_settings_read_the_reporting_currency_and_rate_source(monkeypatch):
    # Given the environment of a deployed function
    monkeypatch.setenv("REPORTING_CURRENCY", "eur")
    monkeypatch.setenv("FX_RATES", "ecb-file:/tmp/eurofxref.csv")
    # Then the settings carry them, the currency in capitals
    settings = Settings.from_env()
    assert (settings.reporting_currency, settings.fx_rates) == ("EUR", "ecb-file:/tmp/eurofxref.csv")
    # And by default reporting is off and the static table is the source
    assert (Settings().reporting_currency, Settings().fx_rates) == ("", "static")


@pytest.mark.parametrize(("field", "value"), [("reporting_currency", "EURO"), ("fx_rates", "s3://bucket/rates.csv")])
def test_settings_refuse_a_bad_currency_or_rate_source(field, value):
    with pytest.raises(ValidationError):
        Settings.model_validate({field: value})


def test_rate_source_is_built_once_per_container():
    # Given the default settings, Then the static table is the source, the same object each time
    assert rate_source(Settings()) is load_static_rates()
    assert rate_source(Settings()) is rate_source(Settings(mapping="other"))


def test_rate_source_reads_an_ecb_file_under_tmp():
    # Given the ECB file copied under /tmp (where a Lambda function may write)
    directory = Path(tempfile.mkdtemp(dir="/tmp"))
    path = directory / "eurofxref.csv"
    path.write_bytes((FIXTURES / "fx" / "eurofxref.csv").read_bytes())
    try:
        source = rate_source(Settings(fx_rates=f"ecb-file:{path}"))
    finally:
        shutil.rmtree(directory)
    # When FX_RATES names it, Then the ECB rates are the source
    assert isinstance(source, EcbDailyRates)
    assert source.rate_date == date(2026, 11, 19)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("ecb-file:/etc/eurofxref.csv", "must be inside the crmsync package or under /tmp"),
        ("ecb-file:../../etc/passwd", "may not contain '..'"),
        ("ecb-file:/tmp/../etc/passwd", "may not contain '..'"),
        ("ecb-file:config/fx/missing.csv", "missing.csv: cannot read"),
    ],
)
def test_rate_source_refuses_paths_outside_the_package_and_tmp(spec, problem):
    with pytest.raises(FxError, match=problem):
        rate_source(Settings(fx_rates=spec))


def test_reporting_is_off_without_a_currency_and_bound_to_it_with_one():
    assert fx.reporting_for(Settings()) is None
    report = fx.reporting_for(Settings(reporting_currency="EUR"))
    assert report is not None
    reported = report(payment(Money(amount=4500, currency="JPY")))
    assert reported.reporting is not None
    assert reported.reporting["amount"].amount == Money(amount=2483, currency="EUR")
