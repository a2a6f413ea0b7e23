"""The coalescing CRM flusher (crmsync.flusher) on the in-memory fakes: many events for one record become one write of
its newest state, nothing is written before the delay, one flusher at a time, failures leave records dirty, a change
made during a flush is not lost, and a poison record goes to the CRM DLQ without holding the others back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from crmsync.crm.port import UpsertInput, UpsertResult
from crmsync.failures import recorded_error
from crmsync.flusher import EntityKey, FlushPolicy, choose, deferrable
from crmsync.messages import DomainEvent
from crmsync.store.dirty import DirtyItem
from tests.fakes import CrmBadRequest, CrmCall, FaultyCrm
from tests.unit.flush_world import BACKOFF, DELAY, MAX_ATTEMPTS, World


@pytest.fixture
def world() -> World:
    return World()


def order_lifecycle(world: World, order: int, *, customer: int | None = None, step: float = 5.0) -> None:
    """An order created, paid and fulfilled `step` seconds apart, each webhook's events marked as the writer does."""
    for status in ("pending", "paid", "fulfilled"):
        world.mark(world.order(order, status, customer=customer))
        world.clock.advance(step)


class HookedCrm(FaultyCrm):
    """FaultyCrm that runs `hook` once, inside its first upsert (a flush in progress)."""

    def __init__(self, hook: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hook = hook

    def upsert(self, object_type: str, inputs: Sequence[UpsertInput], policy: Any = "upsert") -> list[UpsertResult]:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return super().upsert(object_type, inputs, policy)


class PoisonCrm(FaultyCrm):
    """FaultyCrm that refuses (400, before any effect) every request holding one contact's e-mail."""

    def __init__(self, email: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.email = email

    def upsert(self, object_type: str, inputs: Sequence[UpsertInput], policy: Any = "upsert") -> list[UpsertResult]:
        if any(i.id_value == self.email for i in inputs):
            self.calls.append(CrmCall("upsert", object_type, len(inputs), "rejected"))
            raise CrmBadRequest(f"upsert {object_type}", self.email, "INVALID_EMAIL")
        return super().upsert(object_type, inputs, policy)


# ---- coalescing -------------------------------------------------------------------------------------------------


def test_many_events_for_one_record_become_one_write_with_its_newest_state(world: World) -> None:
    # Given an order created, paid and fulfilled within the delay: 6 domain events on one contact and one deal
    order_lifecycle(world, 1)
    assert world.dirty.calls["mark"] == 3
    assert len(world.dirty.items()) == 2

    # When the flusher runs once the delay has passed
    world.clock.advance(DELAY)
    report = world.flush()

    # Then each record was written once, with the newest stored state, in one request per object type
    assert (report.written, report.redirtied, report.failed) == (2, 0, 0)
    assert world.upserted("contacts") == [1]
    assert world.upserted("deals") == [1]
    assert [c.size for c in world.crm.calls if c.method == "associate"] == [1]
    assert world.deal(1) == world.expected_deal(1)
    assert world.deal(1)["dealstage"] == "closedwon"
    # And nothing is left dirty
    assert world.dirty.items() == {}


def test_records_due_together_are_written_in_full_batches(world: World) -> None:
    # Given 250 orders of 250 customers, each paid after it was placed
    for n in range(250):
        world.mark(world.order(n))
        world.mark(world.order(n, "paid"))
    world.clock.advance(DELAY)

    # When the flusher runs
    report = world.flush()

    # Then 500 records went out in batches of 100 (the CRM's limit): 3 + 3 upserts and 3 association requests
    assert report.written == 500
    assert world.upserted("contacts") == [100, 100, 50]
    assert world.upserted("deals") == [100, 100, 50]
    assert len([c for c in world.crm.calls if c.method == "associate"]) == 3


# ---- the delay --------------------------------------------------------------------------------------------------


def test_nothing_is_written_before_the_delay(world: World) -> None:
    # Given an order marked dirty
    world.mark(world.order(1))

    # When the flusher runs just before the delay is over
    world.clock.advance(DELAY - 1)
    early = world.flush()

    # Then nothing was written and the records stay dirty
    assert (early.pending, early.chosen, early.written) == (2, 0, 0)
    assert world.crm.calls == []
    # And once the delay has passed, the next run writes them
    world.clock.advance(1)
    assert world.flush().written == 2


def test_a_record_that_keeps_changing_comes_due_at_its_first_change_plus_the_delay(world: World) -> None:
    # Given an order placed, then changed again just before its delay is over
    world.mark(world.order(1))
    world.clock.advance(DELAY - 1)
    world.mark(world.order(1, "paid"))

    # When the flusher runs when the first change is DELAY old (the second only 1 s)
    world.clock.advance(1)
    report = world.flush()

    # Then the record is written (the earliest dirty time is kept), with its newest state
    assert report.written == 2
    assert world.deal(1)["dealstage"] == "closedwon"


def test_everything_writes_every_dirty_record_whatever_its_age(world: World) -> None:
    # Given an order marked dirty a second ago
    world.mark(world.order(1))
    world.clock.advance(1)

    # When the flusher is invoked on demand with everything
    report = world.flush(everything=True)

    # Then it is written now
    assert report.written == 2
    assert world.dirty.items() == {}


def item(entity: str, key: str, since: int) -> DirtyItem:
    return DirtyItem(entity, key, since=since, touched=since, rev=1)


def test_the_last_batch_is_filled_with_the_oldest_records_not_yet_due() -> None:
    # Given 3 contacts due and 5 not yet due (the oldest first), and a batch of 4
    now = 1_000.0
    due = [item("customer", f"c{n}", 0) for n in range(3)]
    later = [item("customer", f"l{n}", 900_000 + n) for n in range(5)]
    deals = [item("order", f"o{n}", 900_000) for n in range(2)]  # none due: none taken

    # When the flusher chooses what to write with a delay of 120 s
    chosen = choose([*later, *deals, *due], now, FlushPolicy(delay_seconds=120, batch_size=4))

    # Then the due ones and the oldest not-yet-due one fill one batch of contacts; no deal is due
    assert [i.key for i in chosen] == ["c0", "c1", "c2", "l0"]
    # And without filling, with early full batches, or everything once anything is due, as asked
    assert [i.key for i in choose(due + later, now, FlushPolicy(120, batch_size=4, fill_batches=False))] == [
        "c0", "c1", "c2",
    ]  # fmt: skip
    early = choose(later + deals, now, FlushPolicy(120, batch_size=4, early_full_batches=True))
    assert [i.key for i in early] == ["l0", "l1", "l2", "l3"]
    everything_once_due = choose(due + later + deals, now, FlushPolicy(120, batch_size=4, all_when_due=True))
    assert len(everything_once_due) == 10
    assert choose(later + deals, now, FlushPolicy(120, batch_size=4, all_when_due=True)) == []


def test_only_customer_merges_and_notices_are_written_at_once(world: World) -> None:
    # Given the events of an order, and a merge of two customers
    events = [event for _, event in world.order(1)]
    merge = events[0].model_copy(update={"merged": "cus_other"})
    notice = events[0].model_copy(update={"entity": "notice"})

    # Then the flusher takes the order's and the customer's, the writer keeps the merge and the notice
    assert [deferrable(e) for e in events] == [True, True]
    assert (deferrable(merge), deferrable(notice)) == (False, False)
    # And the writer is driven by entity keys as by events
    assert EntityKey("order", events[1].key).merged is None


# ---- one flusher at a time --------------------------------------------------------------------------------------


def test_two_concurrent_flushers_write_each_record_once(world: World) -> None:
    # Given 10 orders due
    for n in range(10):
        world.mark(world.order(n))
    world.clock.advance(DELAY)
    second: list[Any] = []

    # When a second flusher starts while the first is writing
    crm = HookedCrm(lambda: second.append(world.flush()))
    first = world.flush(crm=crm)

    # Then the second found the lease taken and wrote nothing; the first wrote every record once
    assert second[0].lease is False
    assert second[0].written == 0
    assert first.written == 20
    assert [c.size for c in crm.calls if c.method == "upsert"] == [10, 10]
    # And a flusher that starts afterwards finds nothing left to write
    assert world.flush(crm=crm).chosen == 0


def test_the_lease_of_a_flusher_that_died_expires(world: World) -> None:
    # Given a flusher that took the lease for 60 s and died without giving it back
    world.mark(world.order(1))
    world.clock.advance(DELAY)
    assert world.dirty.acquire("dead-flusher", world.clock() + 60)

    # When another flusher runs before and after the lease's end
    before = world.flush()
    world.clock.advance(61)
    after = world.flush()

    # Then it waits for the lease, then writes
    assert (before.lease, before.written) == (False, 0)
    assert (after.lease, after.written) == (True, 2)


# ---- failures ---------------------------------------------------------------------------------------------------


def test_a_failed_flush_leaves_the_records_dirty_with_one_more_attempt(world: World) -> None:
    # Given an order due, and a CRM that answers the next request with a 5xx
    world.mark(world.order(1))
    world.clock.advance(DELAY)
    world.crm.fail_next("server_error")

    # When the flusher runs
    report = world.flush()

    # Then nothing was cleared: both records are dirty, with one attempt and a retry time (the backoff)
    assert (report.written, report.failed) == (0, 2)
    items = world.dirty.items().values()
    assert {(i.attempts, i.retry_at) for i in items} == {(1, int((world.clock() + BACKOFF) * 1000))}
    assert all("CrmServerError" in i.error for i in items)
    # And a run before the retry time leaves them; one after writes them
    assert world.flush().chosen == 0
    world.clock.advance(BACKOFF)
    assert world.flush().written == 2
    assert world.deal(1) == world.expected_deal(1)
    assert world.dirty.items() == {}


def test_a_record_marked_again_during_the_flush_stays_dirty_and_is_written_next(world: World) -> None:
    # Given an order due
    world.mark(world.order(1))
    world.clock.advance(DELAY)

    # When it is paid while the flusher is writing its pending state
    crm = HookedCrm(lambda: world.mark(world.order(1, "paid")))
    report = world.flush(crm=crm)

    # Then the flush wrote what it read, and kept both records dirty: their marks came after the flusher listed them
    assert (report.written, report.redirtied) == (2, 2)
    assert world.crm.calls == []
    assert crm.find("deals", "crmsync_external_id", "shopify:order:7000000001")
    assert len(world.dirty.items()) == 2
    # And the next run writes the paid state (the first dirty time was kept, so it is due at once)
    again = world.flush(crm=crm)
    assert (again.written, again.redirtied) == (2, 0)
    record = crm.find("deals", "crmsync_external_id", "shopify:order:7000000001")
    assert record is not None
    assert record.properties["dealstage"] == "closedwon"
    assert world.dirty.items() == {}


def test_a_poison_record_goes_to_the_crm_dlq_and_never_holds_the_others_back(world: World) -> None:
    # Given three orders of three customers due, and a CRM that refuses the second customer's e-mail
    for n in range(3):
        world.mark(world.order(n))
    world.clock.advance(DELAY)
    crm = PoisonCrm("buyer001@example.com")

    # When the flusher runs
    first = world.flush(crm=crm)

    # Then the group was split until the refused contact was alone: the other records are written and cleared
    assert first.written == 4
    assert first.failed == 2
    assert {i.key for i in world.dirty.items().values()} == {"cus_" + f"{1:020x}", "shopify:order:7000000001"}

    # When the flusher keeps running until the records' last attempt
    for _ in range(MAX_ATTEMPTS - 1):
        world.clock.advance(3600)
        world.flush(crm=crm)

    # Then both are in the CRM DLQ with the CRM's reason, as events a redrive sends back through the CRM queue
    assert world.dirty.items() == {}
    messages = world.dlq.messages()
    assert len(messages) == 2
    for message in messages:
        error = recorded_error(message.message_attributes, {})
        assert error.type == "CrmBadRequest"
        assert "INVALID_EMAIL" in error.message
        assert (error.attempts, error.source_queue) == (MAX_ATTEMPTS, "CrmQueue")
        envelope = json.loads(message.body)
        assert envelope["source"] == "crmsync"
        assert envelope["detail-type"] in ("customer.upserted", "order.placed")
        event = DomainEvent.model_validate(envelope["detail"])
        assert event.receipt_id.startswith("rcpt-")
        assert event.data is None
    # And the good records were written once, at the first run
    assert {r.properties["email"] for r in crm.records("contacts")} == {"buyer000@example.com", "buyer002@example.com"}


def test_a_crm_outage_is_not_split_and_the_last_attempt_is_tried_alone(world: World) -> None:
    # Given two orders due whose records are on their last attempt, and a CRM that is down for the next request
    world.mark(world.order(1))
    world.mark(world.order(2))
    world.clock.advance(DELAY)
    for entry in world.dirty.pending():
        world.dirty.failed(entry, MAX_ATTEMPTS - 1, 0, "earlier")
    world.crm.fail_next("server_error")

    # When the flusher runs
    report = world.flush()

    # Then the outage failed the group once (no split into halves), and each record, tried alone, was written
    assert [c.outcome for c in world.crm.calls][:1] == ["server_error"]
    assert report.written == 4
    assert report.dead_lettered == 0
    assert world.dlq.messages() == []
    assert world.dirty.items() == {}
