"""crmsync.store.dirty.DirtyStore on moto (the state table as template.yaml declares it), and tests/fakes/dirty.py's
MemoryDirty held to the same answers: every test runs on both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crmsync.store.dirty import SHARDS, DirtyStore, Touch
from tests.fakes import FakeClock
from tests.fakes.dirty import MemoryDirty
from tests.integration.conftest import Aws


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryDirty(clock=clock)
        return
    aws: Aws = request.getfixturevalue("aws")
    yield DirtyStore(aws.env["STATE_TABLE"], clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_795_000_000.0)


def touch(key: str, receipt: str = "r1", entity: str = "order") -> Touch:
    return Touch(entity, key, {"detail_type": "order.placed", "detail": {"key": key, "receipt_id": receipt}})


def test_a_mark_keeps_the_earliest_time_and_counts_every_mark(store: Any, clock: FakeClock) -> None:
    # Given an order marked, then marked twice more later (twice in one batch)
    store.mark([touch("shopify:order:1", "r1")])
    clock.advance(30)
    store.mark([touch("shopify:order:1", "r2"), touch("shopify:order:1", "r3")])

    # Then one item: its first time, its latest time, one revision per batch, the last event
    [item] = store.pending()
    assert (item.entity, item.key) == ("order", "shopify:order:1")
    assert (item.since, item.touched) == (1_795_000_000_000, 1_795_000_030_000)
    assert item.rev == 2
    assert item.event == {"detail_type": "order.placed", "detail": {"key": "shopify:order:1", "receipt_id": "r3"}}
    assert (item.attempts, item.retry_at, item.error) == (0, 0, "")


def test_many_marks_in_one_call_are_all_kept_oldest_first(store: Any, clock: FakeClock) -> None:
    # Given 250 entities marked in one call (three transactions), and one more a second later
    store.mark([touch(f"shopify:order:{n}", entity="customer" if n % 2 else "order") for n in range(250)])
    clock.advance(1)
    store.mark([touch("shopify:order:late")])

    # Then all 251 are listed across the shards, the late one last
    pending = store.pending()
    assert len(pending) == 251
    assert pending[-1].key == "shopify:order:late"
    assert {i.entity for i in pending} == {"customer", "order"}
    assert SHARDS > 1


def test_clear_deletes_only_what_was_not_marked_again(store: Any, clock: FakeClock) -> None:
    # Given two entities listed by the flusher, one of which is marked again before the flusher clears them
    store.mark([touch("a"), touch("b")])
    listed = store.pending()
    clock.advance(5)
    store.mark([touch("b", "r2")])

    # When the flusher clears what it listed
    kept = store.clear(listed)

    # Then the one marked again stays dirty (with its first time), the other is gone
    assert [i.key for i in kept] == ["b"]
    [left] = store.pending()
    assert (left.key, left.rev, left.since) == ("b", 2, 1_795_000_000_000)
    # And clearing it as it is now removes it
    assert store.clear(store.pending()) == []
    assert store.pending() == []


def test_failed_records_attempts_and_drop_keeps_a_newer_change(store: Any, clock: FakeClock) -> None:
    # Given an entity whose flush failed twice
    store.mark([touch("a")])
    [item] = store.pending()
    store.failed(item, 2, clock() + 60, "CrmUnavailable: 503")
    [failed] = store.pending()
    assert (failed.attempts, failed.retry_at, failed.error) == (2, 1_795_000_060_000, "CrmUnavailable: 503")

    # When it is dead-lettered after it was marked again
    store.mark([touch("a", "r2")])
    assert store.drop(failed) is False

    # Then it stays dirty with fresh attempts; and dropped as it is now, it is gone
    [again] = store.pending()
    assert (again.attempts, again.retry_at, again.error, again.rev) == (0, 0, "", 2)
    assert store.drop(again) is True
    assert store.pending() == []


def test_one_lease_at_a_time_until_it_is_released_or_expires(store: Any, clock: FakeClock) -> None:
    # Given a flusher holding the lease for 60 s
    assert store.acquire("first", clock() + 60) is True

    # Then a second cannot take it, nor release it
    assert store.acquire("second", clock() + 60) is False
    store.release("second")
    assert store.acquire("second", clock() + 60) is False
    # And once released it can; once expired, another can
    store.release("first")
    assert store.acquire("second", clock() + 60) is True
    clock.advance(61)
    assert store.acquire("third", clock() + 60) is True
