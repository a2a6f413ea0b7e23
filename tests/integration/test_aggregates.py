"""Customer aggregates on the state table (moto): exact under duplicated, reordered and concurrent events."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from crmsync.models import Money, Order, OrderStatus, Payment, PaymentStatus
from crmsync.rules.facts import contributions_for, fold
from crmsync.store.aggregates import AggregateStore
from crmsync.store.decisions import DecisionStore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=30)


def order(number: int, total: str, *, status: OrderStatus = OrderStatus.PAID, minutes: int = 0) -> dict[str, Any]:
    return Order(
        source="shopify", source_id=str(number), source_version=T0 + timedelta(minutes=minutes),
        receipt_id=f"r-{number}-{minutes}", name=f"#{number}", status=status, fulfillment_status=None,
        total=Money.from_decimal(total, "USD"), presentment_total=None, subtotal=None, total_tax=None,
        total_discounts=None, total_shipping=None, line_items=(), customer_email="a@example.com",
        customer_source_id=None, placed_at=T0, cancelled_at=None, closed_at=None,
    ).model_dump(mode="json")  # fmt: skip


def failed(number: int, minutes: int) -> dict[str, Any]:
    return Payment(
        source="stripe", source_id=f"pi_{number}", source_version=T0 + timedelta(minutes=minutes),
        receipt_id=f"f-{number}-{minutes}", kind="payment", status=PaymentStatus.FAILED,
        amount=Money.from_decimal("10.00", "USD"), created_at=T0,
    ).model_dump(mode="json")  # fmt: skip


@pytest.fixture
def store(aws) -> AggregateStore:
    return AggregateStore(aws.env["STATE_TABLE"])


def record(store: AggregateStore, kind: str, data: dict[str, Any], *, failed_event: bool = False) -> None:
    for contribution in contributions_for(kind, data, failed=failed_event):
        store.put("cus_1", contribution)


def facts(store: AggregateStore, as_of: datetime = LATER):
    return fold("cus_1", store.contributions("cus_1"), as_of=as_of)


def test_a_duplicated_order_counts_once(aws, store):
    # Given one paid order recorded three times (redelivery, resend under a new event id)
    for _ in range(3):
        record(store, "ORDER", order(1, "120.00"))
    # Then it counts once
    result = facts(store)
    assert (result.lifetime_value, result.paid_orders, result.orders) == (Decimal("120.00"), 1, 1)


def test_an_older_version_arriving_late_never_overwrites_a_newer_one(aws, store):
    # Given the order was refunded in a newer version
    refunded = {**order(1, "120.00", status=OrderStatus.REFUNDED, minutes=5), "refunded": {"amount": 12000,
                "currency": "USD"}}  # fmt: skip
    record(store, "ORDER", refunded)
    # When the paid version arrives late
    record(store, "ORDER", order(1, "120.00", minutes=1))
    # Then the refund stands: nothing of it counts toward lifetime value
    assert facts(store).lifetime_value == Decimal("0.00")


def test_each_failed_attempt_counts_once_and_only_inside_the_window(aws, store):
    # Given two failed attempts of one payment (two versions), each delivered twice, and an older one
    for minutes in (600, 610, 600, 610):
        record(store, "PAYMENT", failed(1, minutes), failed_event=True)
    record(store, "PAYMENT", failed(2, -2000), failed_event=True)
    # Then the window 24 h before T0+11h holds exactly the two attempts; all time holds three
    result = facts(store, as_of=T0 + timedelta(hours=11))
    assert (result.failed_payments_24h, result.failed_payments) == (2, 3)


def test_concurrent_and_duplicated_events_leave_exact_aggregates(aws):
    # Given 30 paid orders (1.00 .. 30.00) and 6 failed attempts, each delivered 3 times, and for every order an
    # older "pending" version racing its paid one, all written by 12 threads in a random order
    table = aws.env["STATE_TABLE"]
    work: list[tuple[str, dict[str, Any], bool]] = []
    for number in range(1, 31):
        work += [("ORDER", order(number, f"{number}.00", minutes=2), False)] * 3
        work.append(("ORDER", order(number, f"{number}.00", status=OrderStatus.PENDING, minutes=1), False))
    for number in range(1, 7):
        work += [("PAYMENT", failed(100 + number, number), True)] * 3
    random.Random(7).shuffle(work)  # noqa: S311 - a reproducible order, not a secret

    def put(item: tuple[str, dict[str, Any], bool]) -> None:
        kind, data, failed_event = item
        client = boto3.client("dynamodb", region_name="us-east-1")  # a client per call: threads share no session
        for contribution in contributions_for(kind, data, failed=failed_event):
            AggregateStore(table, client).put("cus_1", contribution)

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(put, work))
    # Then every order counts once, at its newest (paid) version, and every failure once
    result = facts(AggregateStore(table))
    assert result.lifetime_value == Decimal(sum(range(1, 31))).quantize(Decimal("0.01"))
    assert (result.paid_orders, result.orders, result.failed_payments) == (30, 30, 6)


def test_a_payment_that_pays_a_known_order_is_counted_with_the_order(aws, store):
    # Given an order quoting a Stripe payment id, and that payment
    paid_order = {**order(1, "80.00"), "transaction_ids": ["pi_77"]}
    payment = Payment(
        source="stripe", source_id="pi_77", source_version=T0, receipt_id="p", kind="payment",
        status=PaymentStatus.SUCCEEDED, amount=Money.from_decimal("80.00", "USD"), transaction_ids=("pi_77",),
        created_at=T0,
    ).model_dump(mode="json")  # fmt: skip
    record(store, "PAYMENT", payment)
    record(store, "ORDER", paid_order)
    # Then 80.00 counts once, whichever arrived first
    assert (facts(store).lifetime_value, facts(store).paid_orders) == (Decimal("80.00"), 1)


def test_merging_customers_moves_their_aggregates_once(aws, store):
    # Given two customers with one order each and a tag
    record(store, "ORDER", order(1, "10.00"))
    for contribution in contributions_for("ORDER", order(2, "5.00")):
        store.put("cus_2", contribution)
    store.add_tags("cus_2", ["vip"])
    # When cus_2 is merged into cus_1, twice (a redelivered customer.merged)
    assert store.merge("cus_2", "cus_1") == 1
    assert store.merge("cus_2", "cus_1") == 0
    # Then cus_1 holds both orders and the tag; cus_2 holds nothing
    result = fold("cus_1", store.contributions("cus_1"), as_of=LATER, tags=store.tags("cus_1"))
    assert (result.lifetime_value, result.paid_orders, result.tags) == (Decimal("15.00"), 2, frozenset({"vip"}))
    assert store.contributions("cus_2") == []
    assert store.tags("cus_2") == set()


def test_tags_are_a_set(aws, store):
    assert store.add_tags("cus_1", ["vip"]) == {"vip"}
    assert store.add_tags("cus_1", ["vip", "risk"]) == {"vip", "risk"}


def test_a_decision_is_marked_once_under_concurrency(aws):
    table = aws.env["STATE_TABLE"]

    def mark(_: int) -> bool:
        client = boto3.client("dynamodb", region_name="us-east-1")
        return DecisionStore(table, client).mark("dispute-opened", 1, "stripe:dispute:dp_1@1", {"n": 1})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(mark, range(16)))
    assert results.count(True) == 1
    assert DecisionStore(table).done("dispute-opened", 1, "stripe:dispute:dp_1@1")
    assert not DecisionStore(table).done("dispute-opened", 2, "stripe:dispute:dp_1@1")
