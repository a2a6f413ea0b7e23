"""The risk score: 0-100, the sum of explainable factors (each capped at its weight), capped at 100.

Every factor says what it saw and what it scored, so a task or note can list them. Weights and the threshold live
in the rule file (`risk:`), versioned with the rules:

- failed_payment_velocity: `per_failure` points for each failed payment attempt of the customer in the last
  `window_hours` (this one included).
- amount_vs_history: this order's or payment's amount against the average of the customer's earlier paid orders in
  the same currency: 0 at or below the average, the full weight at `full_ratio` times it, linear between.
- country_mismatch: the full weight when the countries known for this purchase disagree: the payment's billing
  address, the order's shipping address, the buyer's IP or card country (when a converter provides them), and
  the customer's own address.
- dispute_history: `per_dispute` points for each other dispute (or fraud warning) of the customer.
- radar: Stripe Radar on the payment (or the disputed payment): risk level `highest` scores the weight, `elevated`
  half; a risk score (0-99) scores that share of the weight; the larger counts.
- shop_order_risk: a shop's own order risk where a converter provides it (`risk_level` high / medium, or
  `risk_recommendation` cancel / investigate): the weight, or half.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from crmsync.models import currency_exponent

if TYPE_CHECKING:
    from crmsync.rules.facts import CustomerFacts


class _Factor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    weight: int = Field(ge=0, le=100)


class VelocityFactor(_Factor):
    weight: int = Field(default=30, ge=0, le=100)
    per_failure: int = Field(default=10, ge=0, le=100)
    window_hours: int = Field(default=24, ge=1, le=24 * 90)


class AmountFactor(_Factor):
    weight: int = Field(default=20, ge=0, le=100)
    full_ratio: Decimal = Field(default=Decimal(3), gt=1, le=1000)


class CountryFactor(_Factor):
    weight: int = Field(default=20, ge=0, le=100)


class DisputeFactor(_Factor):
    weight: int = Field(default=25, ge=0, le=100)
    per_dispute: int = Field(default=15, ge=0, le=100)


class RadarFactor(_Factor):
    weight: int = Field(default=30, ge=0, le=100)


class ShopRiskFactor(_Factor):
    weight: int = Field(default=25, ge=0, le=100)


class RiskFactors(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    failed_payment_velocity: VelocityFactor = VelocityFactor()
    amount_vs_history: AmountFactor = AmountFactor()
    country_mismatch: CountryFactor = CountryFactor()
    dispute_history: DisputeFactor = DisputeFactor()
    radar: RadarFactor = RadarFactor()
    shop_order_risk: ShopRiskFactor = ShopRiskFactor()


class RiskConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: int = Field(default=60, ge=0, le=100)
    factors: RiskFactors = RiskFactors()


@dataclass(frozen=True)
class Factor:
    name: str
    points: int
    weight: int
    detail: str


@dataclass(frozen=True)
class RiskScore:
    score: int
    threshold: int
    factors: tuple[Factor, ...]

    @property
    def above_threshold(self) -> bool:
        return self.score >= self.threshold and self.score > 0

    @property
    def explanation(self) -> str:
        scored = [f for f in self.factors if f.points]
        if not scored:
            return "no risk factor scored"
        return "; ".join(f"{f.name} +{f.points} (weight {f.weight}): {f.detail}" for f in scored)

    def for_rules(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "threshold": self.threshold,
            "above_threshold": self.above_threshold,
            "factors": [f.name for f in self.factors if f.points],
            "explanation": self.explanation,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "threshold": self.threshold,
            "factors": [{"name": f.name, "points": f.points, "weight": f.weight, "detail": f.detail}
                        for f in self.factors if f.points],
        }  # fmt: skip


@dataclass(frozen=True)
class RiskInput:
    """What one event tells about risk: the entity, its customer's aggregates, and what surrounds it."""

    entity: str  # order, payment, refund, dispute, ...
    key: str
    data: dict[str, Any]
    customer: CustomerFacts
    as_of: datetime
    payment: dict[str, Any] | None = None  # the payment itself, or the one a dispute or refund is about
    customer_country: str | None = None  # the customer's own address


def assess(config: RiskConfig, given: RiskInput) -> RiskScore:
    weights = config.factors
    factors = (
        _velocity(weights.failed_payment_velocity, given),
        _amount(weights.amount_vs_history, given),
        _countries(weights.country_mismatch, given),
        _disputes(weights.dispute_history, given),
        _radar(weights.radar, given),
        _shop_risk(weights.shop_order_risk, given),
    )
    return RiskScore(score=min(100, sum(f.points for f in factors)), threshold=config.threshold, factors=factors)


def _velocity(factor: VelocityFactor, given: RiskInput) -> Factor:
    since = given.as_of - timedelta(hours=factor.window_hours)
    failures = sum(1 for at in given.customer.failures if since < at <= given.as_of)
    points = min(factor.weight, factor.per_failure * failures)
    return Factor("failed_payment_velocity", points, factor.weight,
                  f"{failures} failed payment(s) in {factor.window_hours} h")  # fmt: skip


def _own_amount(given: RiskInput) -> tuple[int, str] | None:
    money = given.data.get("total") if given.entity == "order" else given.data.get("amount")
    if given.entity not in ("order", "payment") or not money:
        return None
    return int(money["amount"]), str(money["currency"])


def _format(minor: int | Decimal, currency: str) -> str:
    return f"{Decimal(minor).scaleb(-currency_exponent(currency)):.{currency_exponent(currency)}f} {currency}"


def _amount(factor: AmountFactor, given: RiskInput) -> Factor:
    own = _own_amount(given)
    if own is None:
        return Factor("amount_vs_history", 0, factor.weight, "not an order or payment")
    amount, currency = own
    history = [p.amount for p in given.customer.paid if p.key != given.key and p.currency == currency]
    if not history:
        return Factor("amount_vs_history", 0, factor.weight, f"no earlier paid order in {currency}")
    average = Decimal(sum(history)) / len(history)
    ratio = Decimal(amount) / average if average else Decimal(0)
    if ratio >= factor.full_ratio:
        points = factor.weight
    elif ratio > 1:
        points = int((factor.weight * (ratio - 1) / (factor.full_ratio - 1)).to_integral_value())
    else:
        points = 0
    detail = (
        f"{_format(amount, currency)} is {ratio:.1f}x the average {_format(average.to_integral_value(), currency)} "
        f"of {len(history)} earlier paid order(s)"
    )
    return Factor("amount_vs_history", points, factor.weight, detail)


def _country(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and len(value) == 2 else None


def _countries(factor: CountryFactor, given: RiskInput) -> Factor:
    payment = given.payment or {}
    known = {
        "billing": _country((payment.get("billing_address") or {}).get("country"))
        or _country((given.data.get("billing_address") or {}).get("country")),
        "shipping": _country((given.data.get("shipping_address") or {}).get("country")),
        "ip": _country(given.data.get("ip_country") or payment.get("ip_country")),
        "card": _country(given.data.get("card_country") or payment.get("card_country")),
        "customer address": _country(given.customer_country),
    }
    seen = {name: country for name, country in known.items() if country}
    detail = ", ".join(f"{name} {country}" for name, country in seen.items()) or "no country known"
    points = factor.weight if len(set(seen.values())) > 1 else 0
    return Factor("country_mismatch", points, factor.weight, detail)


def _disputes(factor: DisputeFactor, given: RiskInput) -> Factor:
    others = [key for key in given.customer.dispute_keys if key != given.key]
    points = min(factor.weight, factor.per_dispute * len(others))
    lost = given.customer.lost_disputes
    return Factor("dispute_history", points, factor.weight, f"{len(others)} other dispute(s), {lost} lost")


def _radar(factor: RadarFactor, given: RiskInput) -> Factor:
    payment = given.payment or {}
    level, score = payment.get("risk_level"), payment.get("risk_score")
    by_level = {"highest": factor.weight, "elevated": factor.weight // 2}.get(str(level), 0)
    by_score = round(factor.weight * int(score) / 100) if isinstance(score, int) else 0
    if level is None and score is None:
        return Factor("radar", 0, factor.weight, "no Stripe Radar assessment")
    return Factor("radar", max(by_level, by_score), factor.weight, f"Stripe Radar risk level {level}, score {score}")


def _shop_risk(factor: ShopRiskFactor, given: RiskInput) -> Factor:
    if given.entity != "order":
        return Factor("shop_order_risk", 0, factor.weight, "not an order")
    level = str(given.data.get("risk_level") or given.data.get("risk_recommendation") or "").lower()
    points = {"high": factor.weight, "cancel": factor.weight, "medium": factor.weight // 2,
              "investigate": factor.weight // 2}.get(level, 0)  # fmt: skip
    return Factor("shop_order_risk", points, factor.weight, f"shop order risk {level or 'not given'}")
