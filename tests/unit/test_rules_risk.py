"""The risk score: each factor on its own, the sum capped at 100, the explanation; and the aggregates fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from crmsync.rules.facts import CustomerFacts, Paid, fold
from crmsync.rules.risk import RiskConfig, RiskInput, assess
from crmsync.store.aggregates import Contribution

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = RiskConfig()


def money(amount: int, currency: str = "USD") -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def score(entity: str = "payment", data: dict[str, Any] | None = None, **given: Any):
    customer = given.pop("customer", CustomerFacts(id="cus_1"))
    result = assess(CONFIG, RiskInput(entity=entity, key=given.pop("key", "k"), data=data or {}, customer=customer,
                                      as_of=NOW, **given))  # fmt: skip
    return result, {f.name: f for f in result.factors}


def test_nothing_known_scores_nothing():
    result, _ = score(data={"amount": money(1000)})
    assert (result.score, result.above_threshold, result.explanation) == (0, False, "no risk factor scored")


def test_failed_payment_velocity_counts_failures_in_the_window():
    failures = (NOW - timedelta(hours=30), NOW - timedelta(hours=5), NOW - timedelta(hours=1), NOW)
    _, factors = score(customer=CustomerFacts(id="c", failures=failures))
    velocity = factors["failed_payment_velocity"]
    assert (velocity.points, velocity.detail) == (30, "3 failed payment(s) in 24 h")
    _, factors = score(customer=CustomerFacts(id="c", failures=failures[:2]))
    assert factors["failed_payment_velocity"].points == 10


@pytest.mark.parametrize(("amount", "points"), [(10000, 0), (20000, 10), (30000, 20), (90000, 20), (5000, 0)])
def test_amount_against_history_is_linear_up_to_the_full_ratio(amount, points):
    history = tuple(Paid(f"o{i}", NOW - timedelta(days=i), 10000, 0, "USD", "paid") for i in (1, 2))
    _, factors = score("order", {"total": money(amount)}, key="new", customer=CustomerFacts(id="c", paid=history))
    assert factors["amount_vs_history"].points == points


def test_amount_needs_history_in_the_same_currency():
    history = (Paid("o1", NOW, 100, 0, "EUR", "paid"),)
    _, factors = score("payment", {"amount": money(90000)}, customer=CustomerFacts(id="c", paid=history))
    assert (factors["amount_vs_history"].points, factors["amount_vs_history"].detail) == (
        0, "no earlier paid order in USD",
    )  # fmt: skip


def test_country_mismatch_between_billing_and_the_customer_address():
    payment = {"billing_address": {"country": "NG"}}
    _, factors = score(data=payment, payment=payment, customer_country="GB")
    assert (factors["country_mismatch"].points, factors["country_mismatch"].detail) == (
        20, "billing NG, customer address GB",
    )  # fmt: skip
    _, factors = score(data=payment, payment=payment, customer_country="NG")
    assert factors["country_mismatch"].points == 0


def test_country_mismatch_uses_shipping_and_ip_where_a_converter_provides_them():
    _, factors = score("order", {"shipping_address": {"country": "DE"}, "ip_country": "BR"})
    assert factors["country_mismatch"].points == 20


def test_dispute_history_counts_other_disputes():
    customer = CustomerFacts(id="c", dispute_keys=("d1", "d2", "d3"), lost_disputes=1)
    _, factors = score("dispute", key="d3", customer=customer)
    assert (factors["dispute_history"].points, factors["dispute_history"].detail) == (25, "2 other dispute(s), 1 lost")
    _, factors = score("payment", customer=CustomerFacts(id="c", dispute_keys=("d1",)))
    assert factors["dispute_history"].points == 15


@pytest.mark.parametrize(
    ("level", "risk_score", "points"), [("highest", 10, 30), ("elevated", None, 15), ("normal", 80, 24),
                                        ("normal", 2, 1)],
)  # fmt: skip
def test_stripe_radar_level_or_score_whichever_is_higher(level, risk_score, points):
    payment = {"risk_level": level, "risk_score": risk_score}
    _, factors = score(data=payment, payment=payment)
    assert factors["radar"].points == points


def test_shop_order_risk_where_given():
    _, factors = score("order", {"risk_recommendation": "cancel"})
    assert factors["shop_order_risk"].points == 25
    _, factors = score("order", {"risk_level": "medium"})
    assert factors["shop_order_risk"].points == 12


def test_the_score_is_capped_and_explained():
    payment = {"risk_level": "highest", "billing_address": {"country": "NG"}}
    customer = CustomerFacts(id="c", failures=(NOW,) * 5, dispute_keys=("d1", "d2"))
    result, _ = score(data=payment, payment=payment, customer=customer, customer_country="GB")
    assert (result.score, result.above_threshold) == (100, True)
    assert result.explanation.startswith("failed_payment_velocity +30 (weight 30): 5 failed payment(s) in 24 h; ")
    assert [f["name"] for f in result.as_json()["factors"]] == [
        "failed_payment_velocity", "country_mismatch", "dispute_history", "radar",
    ]  # fmt: skip


def test_weights_and_threshold_come_from_the_rule_file():
    config = RiskConfig.model_validate({"threshold": 10, "factors": {"radar": {"weight": 12}}})
    payment = {"risk_level": "highest"}
    result = assess(config, RiskInput("payment", "k", payment, CustomerFacts(), NOW, payment=payment))
    assert (result.score, result.above_threshold) == (12, True)


# --- the aggregates fold ----------------------------------------------------------------------------------------------
def item(sk: str, version: int = 1, **data: Any) -> Contribution:
    return Contribution(sk, version, 0, "r", data)


def test_fold_counts_orders_payments_refunds_and_disputes():
    contributions = [
        item("C#ORDER#o1", key="o1", status="paid", at="2026-11-01T00:00:00+00:00", amount=10000, refunded=2500,
             currency="USD", refs=["txn:pi_1"]),
        item("C#ORDER#o2", key="o2", status="cancelled", at="2026-11-02T00:00:00+00:00", amount=999, currency="USD"),
        item("C#PAYMENT#p1", key="p1", status="succeeded", at="2026-11-01T00:00:00+00:00", amount=10000,
             currency="USD", refs=["txn:pi_1"]),
        item("C#PAYMENT#p2", key="p2", status="succeeded", at="2026-11-03T00:00:00+00:00", amount=5000,
             currency="USD", refs=["txn:pi_2"]),
        item("C#PAYMENT#p3", key="p3", status="succeeded", at="2026-11-04T00:00:00+00:00", amount=700,
             currency="EUR", refs=[]),
        item("C#DISPUTE#d1", key="d1", status="warning", at="2026-11-05T00:00:00+00:00", amount=None),
        item("C#DISPUTE#d2", key="d2", status="lost", at="2026-11-06T00:00:00+00:00", amount=100),
        item("C#REFUND#r1", key="r1", status="succeeded", at="2026-11-07T00:00:00+00:00", amount=2500),
        item("C#ORDER#future", key="future", status="paid", at="2026-12-24T00:00:00+00:00", amount=1, currency="USD"),
    ]  # fmt: skip
    facts = fold("cus_1", contributions, as_of=NOW)
    # o1 net 75.00 + standalone p2 50.00 (p1 pays o1; p3 is in EUR, another currency; the future order not yet)
    assert (facts.currency, facts.lifetime_value, facts.unconverted) == ("USD", Decimal("125.00"), 1)
    assert (facts.orders, facts.paid_orders, facts.first_order_key) == (3, 3, "o1")
    assert (facts.disputes, facts.open_disputes, facts.lost_disputes, facts.fraud_warnings) == (2, 1, 1, 1)
    assert facts.refunds == 1
    assert facts.average_order_value == Decimal("75.00")


def test_fold_uses_the_reporting_currency_when_set():
    contributions = [
        item("C#ORDER#o1", key="o1", status="paid", at="2026-11-01T00:00:00+00:00", amount=10000, currency="USD",
             reporting_amount=9200, reporting_currency="EUR"),
        item("C#ORDER#o2", key="o2", status="paid", at="2026-11-02T00:00:00+00:00", amount=500, currency="EUR"),
    ]  # fmt: skip
    facts = fold("cus_1", contributions, as_of=NOW, reporting_currency="EUR")
    assert (facts.lifetime_value, facts.currency, facts.unconverted) == (Decimal("97.00"), "EUR", 0)
