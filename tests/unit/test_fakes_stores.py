"""What the store fakes add to their contract (tests/integration/test_fakes_contract.py): thread safety, injected
faults, the by-customer index's lag, the bus's rules, and the inspection helpers the suites assert with."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest

from crmsync.store.errors import StoreError
from crmsync.store.receipts import Claim
from crmsync.store.state import Versioned
from tests.fakes import (
    FakeClock,
    Faults,
    InjectedStoreError,
    MemoryArchive,
    MemoryBus,
    MemoryReceipts,
    MemoryState,
    SqsSimulator,
    matches,
    version_guard_allows,
)
from tests.fakes.template import rule_pattern


def run_threads(count: int, target: Any) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- MemoryState ---------------------------------------------------------------------------------------------------
def test_concurrent_versioned_writers_leave_the_winner_of_the_guard() -> None:
    # Given 8 threads writing 50 versions each of one order, in their own orders
    state = MemoryState()
    metas = [Versioned(version=v, rank=r, receipt_id=f"r{v}-{r}") for v in range(20) for r in range(3)]

    def writer(n: int) -> None:
        for meta in metas[n::3] + metas[::-1][n::5]:
            state.put_versioned("ORDER#o1", "STATE", meta, {"v": meta.version, "r": meta.rank}, customer_id="c1")

    run_threads(8, writer)
    # Then the newest version at the highest rank is stored
    stored = state.get_order("o1")
    assert stored is not None
    assert stored.data == {"v": 19, "r": 2}
    assert [k for k, _ in state.customer_entities("c1")] == ["ORDER"]


def test_concurrent_identity_links_agree_on_one_customer() -> None:
    state = MemoryState()
    answers: list[str] = []
    lock = threading.Lock()

    def link(n: int) -> None:
        winner = state.link_identity("email:a@example.com", f"c{n}", "same email")
        with lock:
            answers.append(winner)

    run_threads(16, link)
    assert len(set(answers)) == 1
    assert state.lookup_identity("email:a@example.com") == answers[0]
    assert state.identities() == {"email:a@example.com": answers[0]}


def test_the_guard_function_is_the_version_guard() -> None:
    stored = {"version": 10, "rank": 1, "receipt_id": "a"}
    assert version_guard_allows(None, Versioned(1, 0, "x"))
    assert version_guard_allows(stored, Versioned(11, 0, "x"))
    assert version_guard_allows(stored, Versioned(10, 2, "x"))
    assert version_guard_allows(stored, Versioned(10, 1, "a"))
    assert not version_guard_allows(stored, Versioned(10, 1, "b"))
    assert not version_guard_allows(stored, Versioned(9, 9, "a"))
    assert not version_guard_allows({"pk": "x"}, Versioned(10, 1, "a"))  # no version attribute: comparisons false


def test_a_lagging_index_shows_writes_late_as_a_gsi_does() -> None:
    # Given an index that lags two writes behind
    state = MemoryState(index_lag=2)
    state.put_versioned("ORDER#o1", "STATE", Versioned(1, 0, "r1"), {}, customer_id="c1")
    # Then a read of the entity is consistent, the index not yet
    assert state.get_order("o1") is not None
    assert state.customer_entities("c1") == []
    assert state.customer_index("c1") == []
    # And two writes later it shows; a reassignment shows late too
    state.link_identity("email:a@example.com", "c1", "same email")
    state.reassign("ORDER#o1", "STATE", "c1", "c2")
    assert state.customer_index("c1") == [("ORDER#o1", "STATE")]
    state.settle_index()
    assert state.customer_index("c1") == [("IDENTITY#email:a@example.com", "IDENTITY")]
    assert [k for k, _ in state.customer_entities("c2")] == ["ORDER"]


def test_injected_state_faults_fail_before_the_write() -> None:
    faults = Faults(0, before={"state.put_versioned": 1.0})
    state = MemoryState(faults=faults)
    with pytest.raises(InjectedStoreError):
        state.put_versioned("ORDER#o1", "STATE", Versioned(1, 0, "r1"), {})
    assert state.get_order("o1") is None
    with faults.paused():
        assert state.put_versioned("ORDER#o1", "STATE", Versioned(1, 0, "r1"), {})
    assert faults.injected == Counter({"before:state.put_versioned": 1})


def test_a_state_write_whose_answer_is_lost_happened_and_its_retry_agrees() -> None:
    faults = Faults(0)
    state = MemoryState(faults=faults)
    faults.force("state.link_identity", when="after")
    with pytest.raises(InjectedStoreError):
        state.link_identity("email:a@example.com", "c1", "same email")
    assert state.link_identity("email:a@example.com", "c9", "same email") == "c1"
    faults.force("state.put_versioned", when="after")
    with pytest.raises(InjectedStoreError):
        state.put_versioned("ORDER#o1", "STATE", Versioned(1, 0, "r1"), {"n": 1})
    assert state.put_versioned("ORDER#o1", "STATE", Versioned(1, 0, "r1"), {"n": 1})  # the same receipt rewrites


def test_a_crash_between_copy_and_delete_of_a_source_move_leaves_both_copies() -> None:
    faults = Faults(0)
    state = MemoryState(faults=faults)
    state.put_versioned("CUSTOMER#c2", "SRC#shopify#7", Versioned(5, 0, "r5"), {"email": "a@example.com"})
    [item] = state.customer_items("c2")
    faults.force("state.move_source")
    with pytest.raises(InjectedStoreError):
        state.move_source("c2", "c1", item)
    assert [i.sk for i in state.customer_items("c1")] == [i.sk for i in state.customer_items("c2")] == ["SRC#shopify#7"]
    state.move_source("c2", "c1", item)  # resuming the merge finishes it
    assert state.customer_items("c2") == []


def test_inspection_helpers_show_the_whole_state() -> None:
    state = MemoryState()
    state.put_versioned("ORDER#shopify:order:1", "STATE", Versioned(1, 0, "r1"), {"n": 1}, customer_id="c1")
    state.put_versioned("CUSTOMER#c1", "SRC#shopify#7", Versioned(1, 0, "r1"), {"email": "a@example.com"})
    state.put_links(["txn:9"], "shopify:order:1")
    state.record_notice("r2", "erasure.requested", "shopify:customer:7", {"x": 1})
    state.mark_merged("c2", "c1", "same email", "r3", "t")
    assert set(state.entities("ORDER")) == {"shopify:order:1"}
    assert list(state.customers()) == ["c1"]
    assert state.links() == {"txn:9": "shopify:order:1"}
    assert state.notices() == [
        {"receipt_id": "r2", "detail_type": "erasure.requested", "key": "shopify:customer:7", "data": {"x": 1}}
    ]
    assert state.merges() == {"c2": "c1"}
    assert state.calls["put_versioned"] == 2


# --- MemoryReceipts and MemoryArchive ---------------------------------------------------------------------------
def test_the_ttl_sweeper_forgets_receipts_only_when_told() -> None:
    receipts = MemoryReceipts()
    receipts.claim("r1", "t", now=100, claim_seconds=60, retention_seconds=1_000)
    receipts.accept("r1", "t", topic="x", archive_key="k", now=101)
    assert receipts.sweep_expired(1_100) == []
    assert receipts.claim("r1", "t2", now=5_000, claim_seconds=60, retention_seconds=1_000) is Claim.DUPLICATE
    assert receipts.sweep_expired(1_101) == ["r1"]
    assert receipts.claim("r1", "t2", now=5_000, claim_seconds=60, retention_seconds=1_000) is Claim.CLAIMED
    assert receipts.statuses() == {"r1": "IN_PROGRESS"}


def test_concurrent_claims_of_one_receipt_have_one_winner() -> None:
    receipts = MemoryReceipts()
    answers: list[Claim] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        answer = receipts.claim("r1", f"t{n}", now=100, claim_seconds=60, retention_seconds=1_000)
        with lock:
            answers.append(answer)

    run_threads(16, claim)
    assert Counter(answers) == Counter({Claim.CLAIMED: 1, Claim.IN_PROGRESS: 15})


def test_an_accept_whose_answer_is_lost_is_still_accepted() -> None:
    faults = Faults(0)
    receipts = MemoryReceipts(faults=faults)
    receipts.claim("r1", "t", now=100, claim_seconds=60, retention_seconds=1_000)
    faults.force("receipts.accept", when="after")
    with pytest.raises(InjectedStoreError):
        receipts.accept("r1", "t", topic="x", archive_key="k", now=101)
    assert receipts.status("r1") == "ACCEPTED"


def test_the_archive_keeps_s3s_limits_and_times() -> None:
    clock = FakeClock(1_795_000_000.7)
    archive = MemoryArchive(clock=clock)
    archive.put("raw/a", b"{}", {"Topic": "t"})
    head = archive.head("raw/a")
    assert head is not None
    assert head.last_modified.timestamp() == 1_795_000_000
    assert archive.metadata("raw/a") == {"topic": "t"}
    with pytest.raises(StoreError, match="MetadataTooLarge"):
        archive.put("raw/b", b"{}", {"big": "x" * 3_000})
    assert archive.all_keys() == ["raw/a"]
    assert len(archive) == 1


# --- MemoryBus ------------------------------------------------------------------------------------------------------
def test_the_bus_routes_what_the_template_rule_matches_to_the_crm_queue() -> None:
    queue = SqsSimulator("crm")
    bus = MemoryBus()
    bus.route_crm_queue(queue)
    bus.publish([("order.placed", '{"key": "o1"}'), ("erasure.requested", '{"key": "c1"}')])
    [message] = queue.receive()
    envelope = json.loads(message.body)
    assert (envelope["detail-type"], envelope["source"], envelope["detail"]) == (
        "order.placed",
        "crmsync",
        {"key": "o1"},
    )
    assert bus.detail_types() == Counter({"order.placed": 1, "erasure.requested": 1})
    assert bus.details("order.placed") == [{"key": "o1"}]
    assert "order.placed" in rule_pattern()["detail-type"]


def test_another_publisher_shares_the_bus_under_its_own_source() -> None:
    queue = SqsSimulator("crm")
    bus = MemoryBus()
    bus.route_crm_queue(queue)
    rules = bus.with_source("crmsync.rules")
    rules.publish([("risk.flagged", '{"key": "c1"}')])
    bus.publish([("risk.flagged", '{"key": "c2"}')])
    assert [json.loads(m.body)["detail"]["key"] for m in queue.receive()] == ["c2"]
    assert bus.details("risk.flagged", source="crmsync.rules") == [{"key": "c1"}]
    assert (bus.calls, rules.calls, len(rules.published)) == (2, 2, 2)


def test_faults_hit_one_put_events_call_of_ten_entries() -> None:
    # Given 25 events (three PutEvents calls) and the second call failing after its effect
    faults = Faults(0)
    delivered: list[dict[str, Any]] = []
    bus = MemoryBus(faults=faults)
    bus.route(delivered.append, {"source": ["crmsync"]})
    faults.force("bus.publish")  # the first call fails before anything
    with pytest.raises(InjectedStoreError):
        bus.publish([("order.placed", json.dumps({"n": i})) for i in range(25)])
    assert delivered == []
    faults.force("bus.publish", when="after")
    with pytest.raises(InjectedStoreError):
        bus.publish([("order.placed", json.dumps({"n": i})) for i in range(25)])
    # Then the first ten were published and delivered: a retry publishes them again (consumers are idempotent)
    assert [d["detail"]["n"] for d in delivered] == list(range(10))
    assert bus.calls == 2


def test_an_entry_over_256_kb_fails_its_call_and_a_failing_target_never_fails_the_publisher() -> None:
    bus = MemoryBus()

    def broken(envelope: dict[str, Any]) -> None:
        raise RuntimeError("target down")

    bus.route(broken, {"detail-type": ["order.placed"]}, name="broken")
    with pytest.raises(StoreError, match="ValidationException"):
        bus.publish([("order.placed", json.dumps({"x": "y" * 262_144}))])
    bus.publish([("order.placed", "{}")])
    assert [(route, error) for route, _, error in bus.undelivered] == [("broken", "RuntimeError: target down")]
    limited = MemoryBus(max_request_bytes=1_000)
    with pytest.raises(StoreError):
        limited.publish([("order.placed", json.dumps({"x": "y" * 600}))] * 2)


@pytest.mark.parametrize(
    ("pattern", "event", "matched"),
    [
        ({"source": ["crmsync"]}, {"source": "crmsync"}, True),
        ({"source": ["crmsync"]}, {"source": "other"}, False),
        ({"detail": {"entity": ["order"]}}, {"detail": {"entity": "order"}}, True),
        ({"detail": {"entity": ["order"]}}, {"detail": {}}, False),
        ({"detail": {"tags": ["vip"]}}, {"detail": {"tags": ["new", "vip"]}}, True),
        ({"detail": {"n": [5]}}, {"detail": {"n": "5"}}, False),
        ({"detail-type": [{"prefix": "order."}]}, {"detail-type": "order.paid"}, True),
        ({"detail-type": [{"suffix": ".paid"}]}, {"detail-type": "order.placed"}, False),
        ({"detail-type": [{"anything-but": ["risk.flagged"]}]}, {"detail-type": "order.paid"}, True),
        ({"detail-type": [{"anything-but": "order.paid"}]}, {"detail-type": "order.paid"}, False),
        ({"detail": {"email": [{"exists": False}]}}, {"detail": {}}, True),
        ({"detail": {"email": [{"exists": True}]}}, {"detail": {}}, False),
        ({"detail-type": [{"equals-ignore-case": "ORDER.PAID"}]}, {"detail-type": "order.paid"}, True),
    ],
)
def test_eventbridge_patterns(pattern: dict[str, Any], event: dict[str, Any], matched: bool) -> None:
    assert matches(pattern, event) is matched


def test_an_unsimulated_content_filter_is_refused_rather_than_guessed() -> None:
    with pytest.raises(NotImplementedError):
        matches({"detail": {"n": [{"numeric": [">", 0]}]}}, {"detail": {"n": 1}})
