"""FaultyCrm: faults before any effect change nothing, effect-then-timeout applies and still raises, upserts by id
property never duplicate, and the duplicate checks find what a sloppy pipeline would make."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter

import pytest

from crmsync.crm import errors as crm_errors
from crmsync.crm.port import Association, UpsertInput, UpsertResult
from tests.fakes import (
    CrmBadRequest,
    CrmError,
    CrmNotFound,
    CrmRateLimited,
    CrmServerError,
    CrmTimeout,
    FaultKind,
    FaultyCrm,
)


def contact(customer: str, **properties: str) -> UpsertInput:
    external_id = f"crmsync:customer:{customer}"
    return UpsertInput("crmsync_external_id", external_id, {"crmsync_external_id": external_id, **properties})


def snapshot(crm: FaultyCrm) -> tuple[object, ...]:
    return (crm.records("contacts"), crm.records("deals"), crm.associations("deals", "contacts"))


@pytest.mark.parametrize(
    ("kind", "error"),
    [("rate_limited", CrmRateLimited), ("server_error", CrmServerError), ("timeout", CrmTimeout)],
)
def test_a_fault_before_the_effect_changes_nothing(
    kind: FaultKind, error: type[CrmRateLimited | CrmServerError | CrmTimeout]
) -> None:
    # Given a CRM with a contact and a deal associated
    crm = FaultyCrm()
    crm.upsert("contacts", [contact("c1", email="a@example.com")])
    crm.upsert("deals", [UpsertInput("crmsync_external_id", "shopify:order:1", {"amount": "1.00"})])
    crm.associate("deals", "contacts", [Association("1", "1")])
    before = snapshot(crm)
    # When each kind of call fails with the fault
    for call in (
        lambda: crm.upsert("contacts", [contact("c1", email="b@example.com"), contact("c2")]),
        lambda: crm.associate("deals", "contacts", [Association("1", "1")]),
        lambda: crm.merge("contacts", "1", "1"),
    ):
        crm.fail_next(kind)
        with pytest.raises(error) as raised:
            call()
        fault = raised.value
        assert isinstance(fault, CrmRateLimited | CrmServerError | CrmTimeout)
        assert fault.effect_applied is False
    # Then the CRM is exactly as before, and the failed requests were counted
    assert snapshot(crm) == before
    assert crm.faults_injected == Counter({f"upsert:{kind}": 1, f"associate:{kind}": 1, f"merge:{kind}": 1})


def test_rate_limits_carry_retry_after_and_server_errors_a_5xx_status() -> None:
    crm = FaultyCrm(retry_after=2.5)
    crm.fail_next("rate_limited", "server_error")
    with pytest.raises(CrmRateLimited) as limited:
        crm.upsert("contacts", [contact("c1")])
    assert (limited.value.status, limited.value.retry_after) == (429, 2.5)
    with pytest.raises(CrmServerError) as failed:
        crm.upsert("contacts", [contact("c1")])
    assert failed.value.status in (500, 502, 503, 504)
    # raised as the adapters raise them, so the writer's handling of real CRM errors is what gets exercised
    assert isinstance(limited.value, crm_errors.CrmRateLimited)
    assert limited.value.policy == "TEN_SECONDLY_ROLLING"
    assert isinstance(failed.value, crm_errors.CrmUnavailable)
    assert isinstance(CrmTimeout("x"), crm_errors.CrmUnavailable)
    assert issubclass(CrmBadRequest, crm_errors.CrmRejected)
    assert issubclass(CrmNotFound, crm_errors.CrmRejected)


def test_effect_then_timeout_applies_the_request_and_a_retry_does_not_duplicate() -> None:
    # Given a timeout after the effect
    crm = FaultyCrm()
    crm.fail_next("effect_then_timeout")
    with pytest.raises(CrmTimeout) as raised:
        crm.upsert("contacts", [contact("c1", email="a@example.com")])
    # Then the record exists although the caller saw a timeout
    assert raised.value.effect_applied is True
    assert [r.id for r in crm.records("contacts")] == ["1"]
    # And the caller's retry finds it: same id, not created again
    assert crm.upsert("contacts", [contact("c1", email="a@example.com")]) == [UpsertResult("1", False)]
    assert len(crm.records("contacts")) == 1
    # Associations and merges alike
    crm.upsert("deals", [UpsertInput("crmsync_external_id", "shopify:order:1", {})])
    crm.fail_next("effect_then_timeout")
    with pytest.raises(CrmTimeout):
        crm.associate("deals", "contacts", [Association("1", "1")])
    assert crm.associations("deals", "contacts") == {("1", "1")}


def test_upsert_by_id_property_updates_in_place_and_never_duplicates() -> None:
    crm = FaultyCrm()
    assert crm.upsert("contacts", [contact("c1", email="a@example.com")]) == [UpsertResult("1", True)]
    assert crm.upsert("contacts", [contact("c1", phone="+1")]) == [UpsertResult("1", False)]
    [record] = crm.records("contacts")
    assert record.properties == {"crmsync_external_id": "crmsync:customer:c1", "email": "a@example.com", "phone": "+1"}
    assert crm.find("contacts", "crmsync_external_id", "crmsync:customer:c1") == record
    assert crm.find("contacts", "crmsync_external_id", "nope") is None
    assert crm.duplicates("contacts", "crmsync_external_id") == {}
    assert (crm.created["contacts"], crm.updated["contacts"]) == (1, 1)


def test_a_call_of_several_requests_keeps_the_requests_done_before_a_failure() -> None:
    # Given requests of 2 inputs (HubSpot's take 100) and a contact c0
    crm = FaultyCrm(batch_limit=2)
    crm.upsert("contacts", [contact("c0")])
    # When a call of 5 inputs (3 requests) fails at its second request, before that request's effect
    inputs = [contact(f"c{i}") for i in range(1, 6)]
    crm.fail_next(None, "server_error")
    with pytest.raises(CrmServerError):
        crm.upsert("contacts", inputs)
    # Then the first request's c1 and c2 exist, c3 to c5 do not
    assert [r.properties["crmsync_external_id"] for r in crm.records("contacts")] == [
        f"crmsync:customer:c{i}" for i in range(3)
    ]
    assert [c.outcome for c in crm.calls] == ["ok", "ok", "server_error"]
    # And a retry of the whole call creates only the missing ones
    assert [r.created for r in crm.upsert("contacts", inputs)] == [False, False, True, True, True]
    assert len(crm.records("contacts")) == 6


def test_associations_are_idempotent_both_ways_and_need_both_records() -> None:
    crm = FaultyCrm()
    crm.upsert("contacts", [contact("c1")])
    crm.upsert("deals", [UpsertInput("crmsync_external_id", "shopify:order:1", {})])
    crm.associate("deals", "contacts", [Association("1", "1"), Association("1", "1")])
    crm.associate("deals", "contacts", [Association("1", "1")])
    assert crm.associations("deals", "contacts") == {("1", "1")}
    assert crm.associations("contacts", "deals") == {("1", "1")}
    assert crm.records("contacts")[0].associations == {"deals": ["1"]}
    with pytest.raises(CrmNotFound):
        crm.associate("deals", "contacts", [Association("1", "1"), Association("1", "99")])
    assert crm.associations("deals", "contacts") == {("1", "1")}


def test_duplicate_contacts_by_email_are_found() -> None:
    # Given two contacts for one person (two canonical ids, one email): what a missed merge leaves behind
    crm = FaultyCrm()
    crm.upsert("contacts", [contact("c1", email="Ada@Example.com "), contact("c2", email="ada@example.com")])
    crm.upsert("contacts", [contact("c3", email="grace@example.com"), contact("c4")])
    assert crm.duplicate_contacts_by_email() == {"ada@example.com": ["1", "2"]}
    # And a merge resolves it
    crm.merge("contacts", "1", "2")
    assert crm.duplicate_contacts_by_email() == {}
    assert crm.merged["contacts"] == 1


def test_hubspot_mode_refuses_a_batch_naming_one_id_twice() -> None:
    crm = FaultyCrm(reject_duplicate_ids=True)
    with pytest.raises(CrmBadRequest):
        crm.upsert("contacts", [contact("c1"), contact("c1")])
    assert crm.records("contacts") == []


def test_seeded_fault_rates_are_reproducible_and_close_to_their_rates() -> None:
    def outcomes(seed: int) -> list[str]:
        crm = FaultyCrm(seed=seed, rate_limited=0.1, server_error=0.05, timeout=0.05, effect_then_timeout=0.05)
        for i in range(2_000):
            with contextlib.suppress(CrmError):
                crm.upsert("contacts", [contact(f"c{i}")])
        return [c.outcome for c in crm.calls]

    first = outcomes(4)
    assert first == outcomes(4)
    assert first != outcomes(5)
    counts = Counter(first)
    assert 150 <= counts["rate_limited"] <= 250
    for kind in ("server_error", "timeout", "effect_then_timeout"):
        assert 60 <= counts[kind] <= 140
    with pytest.raises(ValueError, match="more than 1"):
        FaultyCrm(rate_limited=0.6, timeout=0.6)


def test_healthy_turns_random_faults_off_but_not_scripted_ones() -> None:
    crm = FaultyCrm(server_error=1.0)
    with crm.healthy():
        crm.upsert("contacts", [contact("c1")])
        crm.fail_next("timeout")
        with pytest.raises(CrmTimeout):
            crm.upsert("contacts", [contact("c2")])
    with pytest.raises(CrmServerError):
        crm.upsert("contacts", [contact("c3")])


def test_concurrent_upserts_of_one_id_make_one_record() -> None:
    crm = FaultyCrm()
    results: list[UpsertResult] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(50):
            [result] = crm.upsert("contacts", [contact("c1")])
            with lock:
                results.append(result)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.id for r in results} == {"1"}
    assert sum(r.created for r in results) == 1
