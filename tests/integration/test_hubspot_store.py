"""The HubSpot adapter's DynamoDB parts on moto: the rate budget every Lambda shares, and the id ledger that makes
notes exactly-once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from crmsync.store.crm_ledger import CrmIdLedger
from crmsync.store.rate_budget import RateBudget


class Clock:
    def __init__(self, now: float = 1_764_151_200.0) -> None:  # 2025-11-26T10:00:00Z
        self.now = now
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class AtomicClient:
    """A DynamoDB client whose every call is atomic, as DynamoDB's single-item operations are (moto's are not
    across threads); threads still interleave between calls, which is what optimistic concurrency must survive."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return method(*args, **kwargs)

        return call


@pytest.fixture
def table(aws) -> str:
    return aws.env["STATE_TABLE"]


def test_the_budget_grants_the_limit_then_says_how_long_to_wait(aws, table):
    # Given a budget of 5 requests per 10 s
    clock = Clock()
    budget = RateBudget(table, limit=5, margin_seconds=0, clock=clock)
    # When 6 requests ask within a second
    decisions = []
    for _ in range(6):
        decisions.append(budget.try_take())
        clock.advance(0.1)
    # Then 5 are granted, and the 6th is told to wait until the first leaves the window
    assert [d.granted for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].wait_seconds == pytest.approx(9.5, abs=0.01)
    # And after that wait one more is granted
    clock.advance(9.51)
    assert budget.try_take().granted


def test_concurrent_takers_never_exceed_the_limit_within_any_window(aws, table):
    # Given 8 Lambdas sharing one budget of 20 requests per 10 s, each asking as fast as it can for 25 s
    clock = Clock()
    client: Any = AtomicClient(aws.client("dynamodb"))
    granted: list[float] = []
    record = threading.Lock()
    stop = threading.Event()

    def taker() -> None:
        seen = threading.local()

        def own_clock() -> float:  # remembers the time this taker's budget last read: a grant's own time
            seen.now = clock()
            return float(seen.now)

        budget = RateBudget(table, limit=20, margin_seconds=0, clock=own_clock, client=client)
        while not stop.is_set():
            if budget.try_take().granted:
                with record:
                    granted.append(seen.now)

    threads = [threading.Thread(target=taker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(250):  # 25 s of fake time in 0.1 s steps, while the takers race
        stop.wait(0.004)
        clock.advance(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    # Then no 10-second window holds more than 20 grants, and the budget was used (not starved)
    times = sorted(granted)
    worst = max(sum(1 for t in times if start <= t < start + 10) for start in times)
    assert worst <= 20
    assert len(times) >= 40


def test_a_lost_race_reads_again_instead_of_overspending(aws, table):
    # Given two Lambdas that both read the budget's last token before either writes
    clock = Clock()
    ddb = aws.client("dynamodb")
    first = RateBudget(table, limit=1, margin_seconds=0, clock=clock)
    interloper = RateBudget(table, limit=1, margin_seconds=0, clock=clock)

    class Racing:
        """Lets the interloper take the token between the first taker's read and its write."""

        def __init__(self) -> None:
            self.raced = False

        def __getattr__(self, name: str) -> Any:
            return getattr(ddb, name)

        def put_item(self, **kwargs: Any) -> Any:
            if not self.raced:
                self.raced = True
                assert interloper.try_take().granted
            return ddb.put_item(**kwargs)

    racing = RateBudget(table, limit=1, margin_seconds=0, clock=clock, client=Racing())  # type: ignore[arg-type]
    # When the first writes, Then its conditional write fails, it reads again and is told to wait
    assert not racing.try_take().granted
    assert not first.try_take().granted


def test_the_daily_cap_and_a_hold_refuse_for_the_day(aws, table):
    clock = Clock()
    budget = RateBudget(table, limit=100, daily_limit=2, clock=clock)
    assert budget.try_take().granted
    assert budget.try_take().granted
    refused = budget.try_take()
    assert (refused.granted, refused.daily) == (False, True)
    assert refused.wait_seconds == pytest.approx(14 * 3600)  # until midnight UTC
    # A DAILY 429 from HubSpot holds every taker, whatever the cap
    other = RateBudget(table, name="hubspot-other", clock=clock)
    other.hold(900)
    held = other.try_take()
    assert (held.granted, held.daily, held.wait_seconds) == (False, True, 900)
    clock.advance(901)
    assert other.try_take().granted


def test_the_ledger_lets_one_writer_claim_a_create_and_remembers_its_outcome(aws, table):
    ledger = CrmIdLedger(table, clock=lambda: 1000.0)
    # Given one writer claimed note n:1, Then no other writer can
    assert ledger.claim("notes", "n:1", "tok-a")
    assert not ledger.claim("notes", "n:1", "tok-b")
    assert ledger.lookup("notes", ["n:1", "n:2"])["n:1"].state == "claimed"
    # When it records the id HubSpot gave, Then lookups see it
    ledger.record("notes", "n:1", "301")
    entry = ledger.lookup("notes", ["n:1"])["n:1"]
    assert (entry.state, entry.crm_id, entry.claimed_at) == ("created", "301", 1000.0)
    # A refused create frees its claim (only its own), an unclear one stays, marked unknown
    assert ledger.claim("notes", "n:2", "tok-a")
    ledger.release("notes", "n:2", "tok-other")
    assert "n:2" in ledger.lookup("notes", ["n:2"])
    ledger.release("notes", "n:2", "tok-a")
    assert ledger.lookup("notes", ["n:2"]) == {}
    assert ledger.claim("notes", "n:3", "tok-a")
    ledger.mark_unknown("notes", "n:3", "tok-a")
    assert ledger.lookup("notes", ["n:3"])["n:3"].state == "unknown"
    ledger.forget("notes", "n:3")
    assert ledger.claim("notes", "n:3", "tok-c")


def test_the_ledger_looks_up_more_than_100_keys(aws, table):
    ledger = CrmIdLedger(table)
    for n in range(130):
        assert ledger.claim("notes", f"n:{n}", "t")
    assert len(ledger.lookup("notes", [f"n:{n}" for n in range(140)])) == 130
